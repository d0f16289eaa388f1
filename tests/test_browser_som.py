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
HEADLESS = f"""
import time
import comm

def _headless(seed):
    create, comm.create_comm = comm.create_comm, comm.DummyComm
    try:  # widgets with no browser side: nothing they change goes out
        p = SOMPanel(study, layer="CL4", size=10, epochs={EPOCHS}, seed=seed)
    finally:
        comm.create_comm = create
    t = time.perf_counter()
    p.train()
    assert p.error is None and p.som.n_steps_ == {STEPS}, p.errors.text
    return time.perf_counter() - t
"""


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
    panel.get_by_text(re.compile(r"CL4: 10x10 SOM, 3000 steps, final QE")).wait_for(timeout=180_000)

    # a longer fit from the browser against the same fit headless: in the same kernel
    # (same process, cores and study; a fit in this test process is ~1.2x faster than in
    # any kernel), by a SOMPanel whose widgets have no comm, so nothing goes to the browser;
    # alternated, best of three each (the least noisy estimate on shared cores); every seed
    # differs, so no fit comes from the cache
    lab_page.kernel_execute(f"panel.epochs.value = {EPOCHS}")
    lab_page.kernel_execute(HEADLESS)
    browser_s, headless_s, kernel_s = [], [], []
    for k in range(3):
        headless_s.append(float(lab_page.kernel_execute(f"print(_headless({1 + k}))")))
        status = panel.get_by_text(re.compile(rf"CL4: 10x10 SOM, {STEPS} steps, final QE"))
        lab_page.kernel_execute(f"panel.seed = {10 + k}; panel.set_status('')")
        status.wait_for(state="detached")  # the last fit's status is gone from the page
        t_click = time.perf_counter()
        train.click()
        status.wait_for(state="visible", timeout=180_000)
        browser_s.append(time.perf_counter() - t_click)
        kernel_s.append(float(re.search(r"\(([\d.]+) s\)$", status.inner_text()).group(1)))
        lab_page.wait_idle()
    ratio = min(browser_s) / min(headless_s)
    print(
        f"\nSOM {STEPS} steps: browser {', '.join(f'{t:.2f}' for t in browser_s)} s (in the "
        f"kernel {', '.join(f'{t:.2f}' for t in kernel_s)} s), headless "
        f"{', '.join(f'{t:.2f}' for t in headless_s)} s, ratio of the best {ratio:.2f}"
    )
    # the loss curve went out on every step: 19.6 s in the browser for 0.2 s headless
    # speed is a benchmark's business (a wall-time ratio failed on a busy machine: 1.82 beside
    # the rest of the suite, 1.40 quiet); what this test holds is the cause of the old
    # 100x: the curve and bar go out throttled, at most 1 / update_interval per second
    n_updates, interval = lab_page.kernel_execute(
        "print(panel.n_updates, panel.update_interval)"
    ).split()
    assert int(n_updates) <= max(kernel_s) / float(interval) + 2, (n_updates, kernel_s)
    # ... and the whole curve arrived, in a few throttled messages
    lab_page.wait_bokeh(panel, lambda c: any(v["sources"].get("loss") == STEPS for v in c))

    # the map (anywidget canvas) shows the 10x10 SOM; a click on a unit reaches Python
    grid = panel.locator(".introspect-grid canvas").first
    grid.wait_for(state="visible")
    assert grid.get_attribute("data-rows") == "10" and grid.get_attribute("data-cols") == "10"
    grid.click(position={"x": 11, "y": 11})  # unit (0, 0): 22-pixel cells
    panel.get_by_text(re.compile(r"unit 0 \(row 0, col 0\): \d+ SOM-tr inputs")).wait_for()

    assert lab_page.js_errors() == []

    # a long fit shows its stage, k/n and time left, and Cancel stops it: the kernel is
    # free while it runs (the fit is in a worker thread), the cancelled map is not used
    lab_page.kernel_execute("panel.epochs.value = 1000; panel.seed = 99")  # 30,000 steps: ~15 s
    train.click()
    task = panel.locator(".introspect-task")
    task.get_by_text(re.compile(r"SOM \d+/30000, .* left")).wait_for(timeout=120_000)
    assert lab_page.kernel_execute("print(panel.running)").strip() == "True"  # kernel is free
    task.get_by_role("button", name="Cancel").click()
    task.get_by_text(re.compile(r"training a SOM on CL4: cancelled after")).wait_for(timeout=60_000)
    out = lab_page.kernel_execute(
        "print(panel.last_task['outcome'], panel.som.n_steps_, panel.train_button.disabled)"
    )
    assert out.split() == ["cancelled", str(STEPS), "False"], out  # the old map stays
    # the status line names where it stopped (the assertion above could not fail: it
    # looked for the text it asserted)
    panel.get_by_text(
        re.compile(r"training a SOM on CL4 cancelled: cancelled at SOM \d+/30000")
    ).wait_for()
    assert lab_page.js_errors() == []

    lab_page.reload(NOTEBOOK.name)  # the same panel after a page reload
    panel = page.locator(".introspect-panel").first
    panel.wait_for(state="visible")
    panel.locator(".introspect-task").get_by_text(
        re.compile(r"training a SOM on CL4: cancelled after")
    ).wait_for()
    lab_page.wait_bokeh(panel, lambda c: any(v["sources"].get("loss") == STEPS for v in c))
    assert lab_page.js_errors() == []
    print(f"browser SOM test: {time.monotonic() - t0:.1f} s")
