"""Real browser: bokeh views that a panel first makes inside a button callback draw, in a
fresh kernel and again after a page reload (BokehJS is published with every panel display,
not once per kernel from wherever the first plot happens to be made)."""

from __future__ import annotations

import nbformat
import pytest
from browser_harness import browser, jupyter_lab, lab_page  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]

CODE = """\
from introspect import Study
from introspect_widgets.panels import ManifoldPanel

study = Study.from_recipe("small_cnn@digits", workdir="work", device="cpu", progress=False)
panel = ManifoldPanel(study, eps=["2/255", 0.05], nb_iter=2, n=60)
panel"""


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    path = tmp_path_factory.mktemp("nb") / "reload.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CODE)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def jupyter_lab_nb(notebook, tmp_path_factory):
    from browser_harness import JupyterLabServer, require_browser

    require_browser()
    server = JupyterLabServer(tmp_path_factory.mktemp("lab"), [notebook]).start()
    yield server
    server.stop()


@pytest.fixture
def page_nb(browser, jupyter_lab_nb):  # noqa: F811
    from browser_harness import LabPage

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield LabPage(page, jupyter_lab_nb)
    context.close()


def _drawn(eps: str):
    def drawn(content):
        """The scatter holds one point per digit and its title the eps of the slider."""
        titles = [t for v in content for t in v["titles"]]
        return any(10 in v["sources"].values() for v in content) and any(
            t.startswith(f"small_cnn@digits, eps {eps}, threshold") for t in titles
        )

    return drawn


def test_callback_plots_draw_in_a_fresh_kernel_and_after_reload(page_nb):
    lab = page_nb
    lab.open("reload.ipynb")
    lab.run_all(timeout=180)
    page = lab.page
    panel = page.locator(".introspect-panel").first
    panel.get_by_role("button", name="Compute").first.click()
    canvas = panel.locator(".bk-Canvas, .bk-Figure").first
    canvas.wait_for(state="attached", timeout=180_000)  # the first plot, made in the callback
    lab.wait_bokeh(panel, _drawn("0.05"))  # its points, not an empty plot
    drawn = panel.locator(".bk-Canvas, .bk-Figure").count()
    # the eps slider drags, reads the budget as written, and the titles follow it
    eps = lab.slider(panel, "eps")
    assert eps.locator(".widget-readout").inner_text() == "0.05"
    lab.drag_slider(eps, "left")
    page.wait_for_function(
        "(el) => el.innerText === '2/255'", arg=eps.locator(".widget-readout").element_handle()
    )
    lab.wait_idle()
    lab.wait_bokeh(panel, _drawn("2/255"))
    assert lab.js_errors() == []

    lab.reload("reload.ipynb")  # the same kernel: the widgets come back from it
    panel = page.locator(".introspect-panel").first
    panel.wait_for(state="visible", timeout=60_000)
    panel.locator(".bk-Canvas, .bk-Figure").first.wait_for(state="attached", timeout=60_000)
    lab.wait_bokeh(panel, _drawn("2/255"))
    assert panel.locator(".bk-Canvas, .bk-Figure").count() >= drawn
    assert lab.js_errors() == []
