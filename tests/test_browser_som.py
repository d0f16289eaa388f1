"""Real browser: the SOM explore notebook in JupyterLab; a SOM trained and a unit clicked from chromium."""

from __future__ import annotations

import re
import time

import pytest
from browser_harness import REPO, browser, jupyter_lab, lab_page  # noqa: F401 (fixtures)

NOTEBOOK = REPO / "notebooks" / "explore" / "som.ipynb"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


@pytest.mark.parametrize("jupyter_lab", [[NOTEBOOK]], indirect=True)
def test_som_notebook_trains_and_clicks_in_chromium(jupyter_lab, lab_page):  # noqa: F811
    t0 = time.monotonic()
    lab_page.open(NOTEBOOK.name)
    lab_page.run_all(timeout=300)  # trains the digits CNN once (cached in the workdir)
    page = lab_page.page
    assert lab_page.cell_errors() == []

    panel = page.locator(".introspect-panel").first
    panel.wait_for(state="visible")
    train = panel.get_by_role("button", name="Train")
    train.wait_for(state="visible")
    train.click()
    status = panel.get_by_text(re.compile(r"CL4: 10x10 SOM, \d+ steps, final QE"))
    status.wait_for(state="visible", timeout=180_000)
    t_train = time.monotonic() - t0

    # the map (anywidget canvas) shows the 10x10 SOM; a click on a unit reaches Python
    grid = panel.locator(".introspect-grid canvas").first
    grid.wait_for(state="visible")
    assert grid.get_attribute("data-rows") == "10" and grid.get_attribute("data-cols") == "10"
    grid.click(position={"x": 11, "y": 11})  # unit (0, 0): 22-pixel cells
    panel.get_by_text(re.compile(r"unit 0 \(row 0, col 0\): \d+ SOM-tr inputs")).wait_for()
    # the loss curve is a bokeh view
    panel.locator(".bk-Figure, .bk-Canvas").first.wait_for(state="attached")

    assert lab_page.js_errors() == []
    print(f"\nbrowser SOM test: trained after {t_train:.1f}s, total {time.monotonic() - t0:.1f}s")
