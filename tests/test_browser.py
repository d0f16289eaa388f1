"""Real browser: the capture notebook in JupyterLab, run from chromium, capture started by a click."""

from __future__ import annotations

import re
import time

import pytest
from browser_harness import REPO, browser, jupyter_lab, lab_page  # noqa: F401 (fixtures)

NOTEBOOK = REPO / "notebooks" / "explore" / "capture.ipynb"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.mark.parametrize("jupyter_lab", [[NOTEBOOK]], indirect=True)
def test_capture_notebook_runs_in_chromium(jupyter_lab, lab_page):  # noqa: F811
    t0 = time.monotonic()
    lab_page.open(NOTEBOOK.name)
    lab_page.run_all()
    page = lab_page.page
    assert lab_page.cell_errors() == []

    # the panel rendered: ipywidgets DOM, the anywidget grid and the bokeh view
    panel = page.locator(".introspect-panel").first
    panel.wait_for(state="visible")
    run = panel.get_by_role("button", name="Run capture")
    run.wait_for(state="visible")
    layers = panel.locator("select[multiple] option")
    assert layers.first.inner_text() == "CL1"
    panel.locator(".introspect-grid canvas").first.wait_for(state="attached")
    t_render = time.monotonic() - t0

    # a capture started from the browser finishes
    run.click()
    status = panel.get_by_text(re.compile(r"^done: 360 images"))
    status.wait_for(state="visible", timeout=90_000)
    assert "CL1 360x32" in status.inner_text() and "FC 360x10" in status.inner_text()
    panel.get_by_text(re.compile(r"capture: done after .* \(capture 360/360\)")).wait_for()
    t_capture = time.monotonic() - t0

    # results: the histogram in bokeh and the confusion grid; a click on a cell reaches Python
    panel.locator(".bk-Figure, .bk-Canvas").first.wait_for(state="attached")
    grid = panel.locator(".introspect-grid canvas").first
    grid.wait_for(state="visible")
    assert grid.get_attribute("data-rows") == "10" and grid.get_attribute("data-cols") == "10"
    grid.click(position={"x": 14, "y": 14})  # cell (0, 0): 28-pixel cells
    panel.get_by_text(re.compile(r"selected \d+ images: true class 0, predicted 0")).wait_for()
    grid.hover(position={"x": 14 + 28, "y": 14})
    tip = panel.locator(".introspect-grid-tooltip").first
    tip.wait_for(state="visible")
    assert "unit (0, 1)" in tip.inner_text() and "true 0, predicted 1" in tip.inner_text()

    assert lab_page.js_errors() == []
    print(
        f"\nbrowser test: rendered {t_render:.1f}s, captured {t_capture:.1f}s, "
        f"total {time.monotonic() - t0:.1f}s after the server start"
    )
