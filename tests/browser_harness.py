"""Real-browser harness: JupyterLab on 127.0.0.1 driven by Debian's chromium through playwright.

Reuse it for any panel::

    from browser_harness import jupyter_lab, lab_page, browser  # noqa: F401  (fixtures)

    NOTEBOOK = REPO / "notebooks" / "explore" / "mypanel.ipynb"

    @pytest.mark.browser
    @pytest.mark.parametrize("jupyter_lab", [[NOTEBOOK]], indirect=True)
    def test_my_panel(jupyter_lab, lab_page):
        lab_page.open(NOTEBOOK.name)      # waits until the kernel is idle
        lab_page.run_all()                # runs every cell, waits for idle
        panel = lab_page.page.locator(".introspect-panel").first
        panel.get_by_role("button", name="Run").click()
        # what the page's bokeh views hold: rows per source (by name), titles
        lab_page.wait_bokeh(panel, lambda c: any(v["sources"].get("points") for v in c))
        lab_page.drag_slider(lab_page.slider(panel, "eps"), "left")
        lab_page.kernel_execute("print(panel.eps)")   # stdout of code run in the kernel
        lab_page.reload(NOTEBOOK.name)    # save, reload, reopen on the same kernel
        lab_page.show_cell("MyPanel(")    # a cell further down: scroll to it first
        ...
        assert lab_page.js_errors() == []

The test skips when ``/usr/bin/chromium`` or playwright is missing (CI's ``.ci/run`` installs
``chromium`` with apt). Nothing is downloaded: playwright drives the system browser via
``executable_path``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("INTROSPECT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[1]

# Console messages that are not errors of our code: JupyterLab asks the server for optional
# resources (e.g. translations, workspaces) that a fresh, empty server answers with 404.
BENIGN = ("Failed to load resource: the server responded with a status of 404",)


def require_browser():
    """Skip unless Debian's chromium and the playwright package are present."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLabServer:
    """A JupyterLab server in a temporary root holding copies of the given notebooks."""

    def __init__(self, root: Path, notebooks, startup_timeout: float = 60.0):
        self.root = Path(root)
        self.token = uuid.uuid4().hex
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.notebooks = [Path(n) for n in notebooks]
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.log = self.root / "jupyterlab.log"

    def start(self) -> JupyterLabServer:
        (self.root / "nb").mkdir(parents=True, exist_ok=True)
        for nb in self.notebooks:
            shutil.copy(nb, self.root / "nb" / nb.name)
        env = dict(os.environ)
        for var, sub in [
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("JUPYTERLAB_SETTINGS_DIR", "settings"),
            ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
            ("IPYTHONDIR", "ipython"),
        ]:
            env[var] = str(self.root / sub)
        env["PYTHONUNBUFFERED"] = "1"
        # no "get notified about Jupyter news?" toast over the notebook (it can cover widgets)
        notif = self.root / "settings" / "@jupyterlab" / "apputils-extension"
        notif.mkdir(parents=True, exist_ok=True)
        (notif / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        # every cell attached and rendered wherever it is scrolled: JupyterLab 4.6's default
        # windowing ("contentVisibility") skips the cells out of the viewport. The dashboard
        # test's picker state never became visible after a reload in 1 of 2 full runs here
        # under load, after show_cell had scrolled to it; the likely (unproven) cause is the
        # dashboard above it growing as it drew, pushing the picker out of view again
        tracker = self.root / "settings" / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True, exist_ok=True)
        (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        cmd = [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            f"--port={self.port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root / 'nb'}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers, CI
            cmd.append("--allow-root")
        self._logf = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root / "nb",
            env=env,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited at start-up:\n{self.log.read_text()[-3000:]}"
                )
            try:
                self.api("GET", "/api/status")
                return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"JupyterLab did not answer within {self.startup_timeout}s")

    def api(self, method: str, path: str):
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            body = r.read()
        return json.loads(body) if body else None

    def stop(self) -> None:
        if self.proc is None:
            return
        try:  # shut the kernels down cleanly, then the server
            for k in self.api("GET", "/api/kernels") or []:
                self.api("DELETE", f"/api/kernels/{k['id']}")
            self.api("POST", "/api/shutdown")
            self.proc.wait(timeout=15)
        except Exception:
            pass
        if self.proc.poll() is None:  # our own process group only
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._logf.close()
        self.proc = None


class LabPage:
    """A chromium page on the JupyterLab server that records JavaScript errors."""

    def __init__(self, page, server: JupyterLabServer):
        self.page, self.server = page, server
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        page.on(
            "console",
            lambda m: self.console_errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def js_errors(self) -> list[str]:
        """Uncaught exceptions and console errors, except the benign ones in ``BENIGN``."""
        msgs = self.page_errors + self.console_errors
        return [m for m in msgs if not any(b in m for b in BENIGN)]

    def _app(self, expr: str):
        return self.page.evaluate(f"() => {{ const app = window.jupyterapp; {expr} }}")

    def kernel_status(self) -> str | None:
        return self._app(
            "const w = app && app.shell.currentWidget;"
            "const s = w && w.sessionContext && w.sessionContext.session;"
            "return s && s.kernel ? s.kernel.status : null;"
        )

    def wait_idle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.kernel_status() == "idle":
                return
            time.sleep(0.2)
        raise TimeoutError(f"kernel not idle after {timeout}s (status {self.kernel_status()})")

    def open(self, name: str, timeout: float = 60.0) -> None:
        """Open ``name`` (a notebook copied into the server root) and wait for its kernel."""
        self.page.goto(f"{self.server.url}/lab/tree/{name}?token={self.server.token}")
        self.page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
            " && window.jupyterapp.shell.currentWidget.content"
            " && window.jupyterapp.shell.currentWidget.content.widgets",
            timeout=timeout * 1000,
        )
        mode = self.page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.content.notebookConfig.windowingMode"
        )
        assert mode == "none", f"the test server's windowing setting was not applied: {mode!r}"
        self.wait_idle(timeout)

    def run_all(self, timeout: float = 90.0) -> None:
        """Run every cell and wait until each code cell has an execution count."""
        self._app("return app.commands.execute('notebook:run-all-cells');")
        self.page.wait_for_function(
            "() => { const nb = window.jupyterapp.shell.currentWidget.content;"
            " return nb.widgets.filter(c => c.model.type === 'code')"
            "   .every(c => c.model.executionCount !== null); }",
            timeout=timeout * 1000,
        )
        self.wait_idle(timeout)

    def save(self, timeout: float = 30.0) -> None:
        """Save the notebook (its outputs) and wait until it is no longer dirty."""
        self._app("return app.commands.execute('docmanager:save');")
        self.page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.context.model.dirty",
            timeout=timeout * 1000,
        )

    def reload(self, name: str, timeout: float = 60.0) -> None:
        """Save, reload the page, reopen ``name`` on the same kernel; JS errors start afresh."""
        self.save()
        self.page_errors.clear()
        self.console_errors.clear()
        self.page.reload()
        self.open(name, timeout)

    def wait_in_cell(self, needle: str, locator, timeout: float = 120.0) -> None:
        """Scroll to the cell holding ``needle`` (:meth:`show_cell`) and wait until
        ``locator`` is visible, scrolling again every 10 s: a cell above that grows after
        the scroll (a panel drawing its plots after a reload) can push this one out of view.
        On a timeout the error says what the page held: the panels, and every state line's
        ``data-state``."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        deadline = time.monotonic() + timeout
        while True:
            self.show_cell(needle)
            try:
                locator.wait_for(timeout=min(10.0, max(deadline - time.monotonic(), 0.1)) * 1000)
                return
            except PlaywrightTimeout:
                if time.monotonic() >= deadline:
                    seen = self.page.evaluate(
                        """() => ({
                            panels: document.querySelectorAll('.introspect-panel').length,
                            states: [...document.querySelectorAll('.introspect-dash-state')]
                                .map(e => [e.getAttribute('data-state'), e.offsetParent !== null]),
                        })"""
                    )
                    raise AssertionError(
                        f"{locator} not visible within {timeout}s after scrolling to the cell "
                        f"holding {needle!r}; the page held {seen}"
                    ) from None

    def show_cell(self, needle: str, timeout: float = 30.0) -> None:
        """Scroll the notebook to the first code cell whose source holds ``needle``.

        JupyterLab attaches the cells out of the viewport lazily (its windowing), so after a
        reload a panel further down the notebook may not be in the page at all until it is
        scrolled to, as a user would.
        """
        found = self.page.evaluate(
            """async (needle) => {
                const nb = window.jupyterapp.shell.currentWidget.content;
                const i = nb.widgets.findIndex(
                    c => c.model.type === 'code' && c.model.sharedModel.getSource().includes(needle));
                if (i < 0) return false;
                nb.activeCellIndex = i;
                await nb.scrollToCell(nb.widgets[i], 'start');
                return true;
            }""",
            needle,
        )
        if not found:
            raise AssertionError(f"no code cell holds {needle!r}")
        self.page.wait_for_function(
            """(needle) => {
                const nb = window.jupyterapp.shell.currentWidget.content;
                const c = nb.widgets.find(
                    c => c.model.type === 'code' && c.model.sharedModel.getSource().includes(needle));
                return c && c.node.isConnected && c.outputArea.node.childElementCount > 0;
            }""",
            arg=needle,
            timeout=timeout * 1000,
        )

    def slider(self, within, description: str):
        """The ipywidgets slider under ``within`` whose description is ``description``."""
        label = self.page.locator(
            ".widget-label", has_text=re.compile(f"^{re.escape(description)}$")
        )
        return within.locator(".widget-slider").filter(has=label)

    def drag_slider(self, slider, to: str = "left") -> None:
        """Drag a slider's handle with the mouse past the ``to`` end of its track."""
        slider.scroll_into_view_if_needed()  # the mouse reaches what is on screen only
        box = slider.locator(".noUi-handle").bounding_box()
        track = slider.locator(".noUi-target").bounding_box()
        y = box["y"] + box["height"] / 2
        self.page.mouse.move(box["x"] + box["width"] / 2, y)
        self.page.mouse.down()
        x = track["x"] - 20 if to == "left" else track["x"] + track["width"] + 20
        self.page.mouse.move(x, y, steps=5)
        self.page.mouse.up()

    def bokeh_content(self, locator) -> list[dict]:
        """What the BokehJS views inside ``locator`` hold, one dict per root view.

        ``{"sources": {name or id: rows}, "titles": [...]}`` read from each view's document
        in the page (``Bokeh.index``): the data a view draws, not the kernel's copy.
        """
        return locator.evaluate(_BOKEH_CONTENT_JS)

    def wait_bokeh(self, locator, predicate, timeout: float = 60.0) -> list[dict]:
        """Poll :meth:`bokeh_content` until ``predicate(content)`` holds; returns it."""
        deadline = time.monotonic() + timeout
        content = []
        while time.monotonic() < deadline:
            content = self.bokeh_content(locator)
            if predicate(content):
                return content
            self.page.wait_for_timeout(200)  # let the browser run between two looks
        raise AssertionError(f"bokeh views never matched within {timeout}s: {content}")

    def kernel_execute(self, code: str, timeout: float = 120.0) -> str:
        """Run ``code`` in the notebook's kernel (no cell); returns its stdout."""
        return self.page.evaluate(
            """async ([code, timeout]) => {
                const w = window.jupyterapp.shell.currentWidget;
                const kernel = w.sessionContext.session.kernel;
                const future = kernel.requestExecute({code, silent: false, store_history: false});
                let out = "", err = null;
                future.onIOPub = (msg) => {
                    const t = msg.header.msg_type;
                    if (t === "stream") out += msg.content.text;
                    if (t === "error") err = msg.content.ename + ": " + msg.content.evalue;
                };
                await future.done;
                if (err !== null) throw new Error(err);
                return out;
            }""",
            [code, timeout],
        )

    def cell_errors(self) -> list[str]:
        """Text of error outputs in the notebook (tracebacks)."""
        return self.page.locator(".jp-OutputArea-output[data-mime-type*='error']").all_inner_texts()


_BOKEH_CONTENT_JS = """(el) => {
    const out = [];
    if (typeof Bokeh === "undefined" || Bokeh.index === undefined) return out;
    for (const view of Bokeh.index.roots) {
        if (!view.el || !view.el.isConnected || !el.contains(view.el)) continue;
        const sources = {}, titles = [];
        for (const m of view.model.document.all_models) {
            if (m.type === "ColumnDataSource") {
                const data = m.data instanceof Map ? Object.fromEntries(m.data) : m.data;
                const cols = Object.values(data);
                sources[m.name || m.id] = cols.length ? cols[0].length : 0;
            } else if (m.type === "Title") {
                titles.push(m.text);
            }
        }
        out.push({sources, titles});
    }
    return out;
}"""


@pytest.fixture(scope="module")
def jupyter_lab(request, tmp_path_factory):
    """A running JupyterLab; parametrize indirectly with the list of notebooks to copy in."""
    require_browser()
    notebooks = getattr(request, "param", [])
    server = JupyterLabServer(tmp_path_factory.mktemp("lab"), notebooks).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def lab_page(browser, jupyter_lab):
    """A fresh page (1400x1000) on the server; its JavaScript errors are in ``js_errors()``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield LabPage(page, jupyter_lab)
    context.close()
