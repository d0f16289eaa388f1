"""The main job end to end: every figure's quick profile through papermill into an HTML report.

This is README command 1 (minus the install). It carries the ``figures`` marker: the
README's test command leaves it out, and ``.ci/run`` runs it as a second step.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from introspect.figures import FIGURES


@pytest.mark.figures
def test_reproduce_quick_profile_of_every_figure(tmp_path):
    out = tmp_path / "reports"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "introspect.cli",
            "reproduce",
            "--profile",
            "quick",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    index = (out / "index.html").read_text()
    assert f"{len(FIGURES)} of {len(FIGURES)} figures ran" in index
    # every figure says whether the paper's claims held on this run (issue 9)
    claims = json.loads((out / "claims.json").read_text())
    no_verdict = [f for f, v in claims["figures"].items() if not v["claims"]]
    assert not no_verdict, f"figures without a verdict: {no_verdict}"
    assert "Scoreboard" in index and "torch threads" in index
    assert "without encryption" not in proc.stdout + proc.stderr
    assert sorted(p.name for p in (out / "static" / "js").glob("bokeh*.min.js"))
    for fid in FIGURES:
        html = (out / f"{fid}.html").read_text()
        assert "Traceback" not in html, fid
        assert (out / "figures" / f"{fid}.html").is_file(), f"{fid} saved no plot"
    # every plot of this run explains itself (legends, colour bars, units, hovers): the
    # checks of test_plots_legends on the figures this run saved, none of them skipped
    env = {**os.environ, "INTROSPECT_QUICK_FIGURES": str(out / "figures")}
    legends = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         str(Path(__file__).with_name("test_plots_legends.py"))],
        capture_output=True, text=True, timeout=1200, env=env,
    )  # fmt: skip
    assert legends.returncode == 0 and " skipped" not in legends.stdout, legends.stdout[-4000:]
    print(proc.stdout)
