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
panel = ManifoldPanel(study, eps=[0.05], nb_iter=2, n=60)
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


def _drawn(content):
    """The scatter holds one point per digit and its title the eps of the slider."""
    titles = [t for v in content for t in v["titles"]]
    return any(10 in v["sources"].values() for v in content) and any(
        t.startswith("small_cnn@digits, eps 0.05, threshold") for t in titles
    )


def test_callback_plots_draw_in_a_fresh_kernel_and_after_reload(page_nb):
    lab = page_nb
    lab.open("reload.ipynb")
    lab.run_all(timeout=180)
    page = lab.page
    panel = page.locator(".introspect-panel").first
    panel.get_by_role("button", name="Compute").first.click()
    canvas = panel.locator(".bk-Canvas, .bk-Figure").first
    canvas.wait_for(state="attached", timeout=180_000)  # the first plot, made in the callback
    lab.wait_bokeh(panel, _drawn)  # its points, not an empty plot
    drawn = panel.locator(".bk-Canvas, .bk-Figure").count()
    assert lab.js_errors() == []

    lab.reload("reload.ipynb")  # the same kernel: the widgets come back from it
    panel = page.locator(".introspect-panel").first
    panel.wait_for(state="visible", timeout=60_000)
    panel.locator(".bk-Canvas, .bk-Figure").first.wait_for(state="attached", timeout=60_000)
    lab.wait_bokeh(panel, _drawn)
    assert panel.locator(".bk-Canvas, .bk-Figure").count() >= drawn
    assert lab.js_errors() == []
