"""Real browser: selfintro.ipynb in chromium. The panel is on screen before its fit, which
runs as a background action with a progress line; the map then holds one point per input,
a trajectory runs from the browser, and the points are there again after a page reload."""

from __future__ import annotations

import re

import pytest
from browser_harness import REPO, browser, jupyter_lab, lab_page  # noqa: F401 (fixtures)

NOTEBOOK = REPO / "notebooks" / "explore" / "selfintro.ipynb"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]


@pytest.mark.parametrize("jupyter_lab", [[NOTEBOOK]], indirect=True)
def test_selfintro_map_fits_in_the_background_and_draws_in_chromium(jupyter_lab, lab_page):  # noqa: F811
    lab_page.open(NOTEBOOK.name)
    lab_page.run_all(timeout=800)  # trains Net1 on digits, then the InfoVAE and estimator
    assert lab_page.cell_errors() == []
    page = lab_page.page
    panel = page.locator(".introspect-panel").first
    panel.wait_for(state="visible")
    # the fit ran after the display, as a long action with its progress line
    task = panel.locator(".introspect-task")
    task.get_by_text(re.compile(r"fitting the self-introspective map: done after")).wait_for()
    n = int(lab_page.kernel_execute("print(len(panel.labels))"))
    assert n > 100

    def mapped(content):
        return any(v["sources"].get("points") == n for v in content)

    lab_page.wait_bokeh(panel, mapped)
    assert re.search(rf"{n} inputs mapped; accuracy 0\.\d+", panel.inner_text())

    panel.get_by_role("button", name="Run").click()  # the default: targeted FGSM
    status = panel.get_by_text(re.compile(r"targeted FGSM: answer \S+ -> \S+ after \d+ steps"))
    status.wait_for(timeout=120_000)
    assert lab_page.js_errors() == []

    lab_page.reload(NOTEBOOK.name)
    panel = page.locator(".introspect-panel").first
    panel.wait_for(state="visible")
    lab_page.wait_bokeh(panel, mapped)
    assert lab_page.js_errors() == []
