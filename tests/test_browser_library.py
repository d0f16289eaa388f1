"""Real browser: library.ipynb in chromium. The confusion-index heatmap holds the layer's
matrix, the eps slider drags and its readout is the CPL plot's title, and both survive a
page reload."""

from __future__ import annotations

import re

import pytest
from browser_harness import REPO, browser, jupyter_lab, lab_page  # noqa: F401 (fixtures)

NOTEBOOK = REPO / "notebooks" / "explore" / "library.ipynb"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def _titles(content):
    return [t for v in content for t in v["titles"]]


def _ci_drawn(content):  # 10 digits: a 10 x 10 heatmap (it was the 2 x 2 placeholder)
    return any(v["sources"].get("ci") == 100 for v in content) and any(
        t.startswith("confusion index: CN1, theta") for t in _titles(content)
    )


@pytest.mark.parametrize("jupyter_lab", [[NOTEBOOK]], indirect=True)
def test_library_heatmap_and_eps_slider_in_chromium(jupyter_lab, lab_page):  # noqa: F811
    lab_page.open(NOTEBOOK.name)
    lab_page.run_all(timeout=500)  # trains the digits CNN, libraries and PGD (cached)
    assert lab_page.cell_errors() == []
    page = lab_page.page
    panel = page.locator(".introspect-panel").first
    panel.wait_for(state="visible")
    lab_page.wait_bokeh(panel, _ci_drawn)

    eps = lab_page.slider(panel, "eps")
    readout = eps.locator(".widget-readout")
    assert readout.inner_text() == "0.1"  # the middle of 0.05, 0.1, 0.2: what was computed

    def title_is_readout(content):
        return f"CPL, eps {readout.inner_text()}" in _titles(content)

    lab_page.wait_bokeh(panel, title_is_readout)
    lab_page.drag_slider(eps, "left")  # to the first budget, 0.05
    page.wait_for_function("(el) => el.innerText === '0.05'", arg=readout.element_handle())
    lab_page.wait_idle()
    lab_page.wait_bokeh(panel, title_is_readout)
    assert "at eps 0.05" in panel.get_by_text(re.compile("^AUROC")).inner_text()
    assert lab_page.js_errors() == []

    lab_page.reload(NOTEBOOK.name)
    panel = page.locator(".introspect-panel").first
    panel.wait_for(state="visible")
    lab_page.wait_bokeh(panel, _ci_drawn)
    readout = lab_page.slider(panel, "eps").locator(".widget-readout")
    assert readout.inner_text() == "0.05"
    lab_page.wait_bokeh(panel, title_is_readout)
    assert lab_page.js_errors() == []
