"""The README's promises: the two commands, the figure table, and CI running the test command."""

import re
from pathlib import Path

from introspect.figures import FIGURES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert commands[0] == "pip install -e . && introspect reproduce --profile quick --out reports/"
    assert commands[1].startswith('pip install -e ".[test]" && python -m pytest')
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = commands[1].split("&& ", 1)[1]
    assert test_cmd in ci, "CI must run the README's test command"


def test_readme_figure_table_lists_every_figure():
    from introspect.cli import markdown_table

    assert markdown_table() in README, "refresh the table: introspect figures --markdown"
    for fid in FIGURES:
        assert f"`{fid}`" in README
