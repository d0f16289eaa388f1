"""Real browser: the SOM explore notebook in JupyterLab; a SOM trained from chromium (about as
fast as headless) and a unit clicked."""

from __future__ import annotations

import re
import time

import pytest
from browser_harness import REPO, browser, jupyter_lab, lab_page  # noqa: F401 (fixtures)

NOTEBOOK = REPO / "notebooks" / "explore" / "som.ipynb"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

EPOCHS = 300  # 300 training images of digits in batches of 10: 9,000 steps, about 2 s
STEPS = EPOCHS * 30


def _headless_train(workdir, *, seed: int) -> float:
    """Seconds of SOMPanel(...).train() in this process: no browser, no kernel."""
    from introspect import Study
    from introspect_widgets.panels import SOMPanel

    study = Study.from_recipe(
        "small_cnn@digits", workdir=workdir, device="cpu", n_per_class=30, progress=False
    )
    study.capture("codes", layers=["CL4"])  # stored (and loaded) outside the timing
    panel = SOMPanel(study, layer="CL4", size=10, epochs=EPOCHS, seed=seed)
    t = time.perf_counter()
    panel.train()
    dt = time.perf_counter() - t
    assert panel.error is None and panel.som.n_steps_ == STEPS, panel.errors.text
    return dt


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
    train.click()  # the notebook's settings: also loads the codes into the kernel's study
    panel.get_by_text(re.compile(r"CL4: 10x10 SOM, 150 steps, final QE")).wait_for(timeout=180_000)

    # a longer fit from the browser against the same fit headless (this process, the
    # kernel's workdir: its model and codes) before and after it; other seeds than the
    # browser's, so that no fit comes from the cache
    work = jupyter_lab.root / "nb" / "introspect-work"
    headless = [_headless_train(work, seed=1)]
    lab_page.kernel_execute(f"panel.epochs.value = {EPOCHS}")
    t_click = time.perf_counter()
    train.click()
    status = panel.get_by_text(re.compile(rf"CL4: 10x10 SOM, {STEPS} steps, final QE"))
    status.wait_for(state="visible", timeout=180_000)
    t_browser = time.perf_counter() - t_click
    headless.append(_headless_train(work, seed=2))
    t_headless = sum(headless) / len(headless)
    t_kernel = float(re.search(r"\(([\d.]+) s\)", status.inner_text()).group(1))
    print(
        f"\nSOM {STEPS} steps: browser {t_browser:.2f} s (in the kernel {t_kernel:.2f} s), "
        f"headless {' and '.join(f'{t:.2f}' for t in headless)} s, "
        f"ratio {t_browser / t_headless:.2f}"
    )
    # the loss curve went out on every step: 19.6 s in the browser for 0.2 s headless
    assert t_browser <= 1.5 * t_headless
    # ... and the whole curve arrived, in a few throttled messages
    lab_page.wait_bokeh(panel, lambda c: any(v["sources"].get("loss") == STEPS for v in c))

    # the map (anywidget canvas) shows the 10x10 SOM; a click on a unit reaches Python
    grid = panel.locator(".introspect-grid canvas").first
    grid.wait_for(state="visible")
    assert grid.get_attribute("data-rows") == "10" and grid.get_attribute("data-cols") == "10"
    grid.click(position={"x": 11, "y": 11})  # unit (0, 0): 22-pixel cells
    panel.get_by_text(re.compile(r"unit 0 \(row 0, col 0\): \d+ SOM-tr inputs")).wait_for()

    assert lab_page.js_errors() == []
    print(f"browser SOM test: {time.monotonic() - t0:.1f} s")
