"""User text cannot script the report's figure pages (``introspect reproduce`` -> ``_to_html``).

A class name such as ``</script><script>alert(document.domain)</script>`` (an ImageFolder folder
name, a class index file) used to end the <script> element that holds bokeh's document in a
figure page, and the browser ran what followed. The fixture really executes a notebook that
shows the name the way the figure notebooks do: in an ipywidgets Dropdown (widget view and
widget state JSON), in a bokeh figure shown with ``bokeh.io.show`` (JavaScript holding the
document JSON) and in a jupyter_bokeh ``BokehModel`` (bokeh JSON inside the widget state),
next to an escaped ``text/html`` output; then exports it with the project's ``_to_html``.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from browser_harness import browser  # noqa: F401 (fixture)

from introspect import cli

NAME = "</script><script>alert(document.domain)</script><img src=x onerror=alert(2)>"

_CELLS = [
    f"""import html
import ipywidgets as W

NAME = {NAME!r}
W.Dropdown(options=[NAME, "cat"], description="class")""",
    """from IPython.display import HTML, display

display(HTML("<b>class " + html.escape(NAME) + "</b>"))""",
    """from bokeh.io import output_notebook, show
from bokeh.models import HoverTool
from bokeh.plotting import figure
from bokeh.resources import INLINE

output_notebook(resources=INLINE, hide_banner=True)  # BokehJS in the page: renders offline
p = figure(title=NAME, x_range=[NAME, "cat"], width=300, height=200)
p.vbar(x=[NAME, "cat"], top=[1, 2], width=0.5)
p.add_tools(HoverTool(tooltips=[("class", "@x")]))
show(p)""",
    """from jupyter_bokeh import BokehModel

q = figure(title=NAME, width=300, height=200)
q.scatter([1], [1], legend_label=NAME)
BokehModel(q)""",
]

_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script", re.IGNORECASE | re.DOTALL)


@pytest.fixture(scope="module")
def executed_notebook(tmp_path_factory) -> Path:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("jupyter_bokeh")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in _CELLS])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", store_widget_state=True
    ).execute()
    path = tmp_path_factory.mktemp("xss") / "figure.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def page(executed_notebook) -> Path:
    target = executed_notebook.with_suffix(".html")
    cli._to_html(executed_notebook, target)
    return target


def test_the_notebook_carries_the_name_into_every_script_vector(executed_notebook):
    """The fixture is not vacuous: the raw outputs hold the name where nbconvert puts scripts."""
    import nbformat

    nb = nbformat.read(executed_notebook, as_version=4)
    outputs = [o for c in nb.cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    js = [
        o.data["application/javascript"]
        for o in outputs
        if "application/javascript" in o.get("data", {})
    ]
    assert any(NAME in s for s in js)  # bokeh's show: the document JSON inside code
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 2
    state = json.dumps(nb.metadata.widgets["application/vnd.jupyter.widget-state+json"])
    assert json.dumps(NAME)[1:-1] in state  # the Dropdown's options and the BokehModel's document


def test_report_page_has_no_script_breakout(page):
    body = page.read_text()
    assert "</script><script>alert" not in body
    blocks = _SCRIPT.findall(body)
    assert len(blocks) > 5
    for attrs, content in blocks:
        assert NAME not in content, attrs
        low = content.lower()
        assert "<!--" not in low or "<script" not in low[low.find("<!--") :], attrs
        if re.search(r"type=\"[\w.+-]*/(?:[\w.-]*\+)?json\"", attrs):
            json.loads(content)  # a JSON block cut short by '</script' would not parse
    # outside the script elements (where the name sits inert in string literals) no markup of
    # the name is left: no script element or event handler of its own
    markup = _SCRIPT.sub("", body)
    assert "<script>alert" not in markup.lower()
    assert not re.search(r"<img[^>]*onerror", markup, re.IGNORECASE)
    # the text/html output shows the name as text
    assert "class " + html.escape(NAME) in body


def test_report_page_keeps_the_values(page):
    """The escapes are JSON/JavaScript-equivalent: the name is intact once parsed."""
    body = page.read_text()
    state = next(
        json.loads(c)
        for a, c in _SCRIPT.findall(body)
        if "application/vnd.jupyter.widget-state+json" in a
    )
    labels = [
        m["state"]["_options_labels"]
        for m in state["state"].values()
        if m["model_name"] == "DropdownModel"
    ]
    assert labels == [[NAME, "cat"]]
    bokeh_models = [m for m in state["state"].values() if m["model_name"] == "BokehModel"]
    assert len(bokeh_models) == 1 and json.dumps(NAME)[1:-1] in json.dumps(bokeh_models[0])
    # bokeh's show: the document JSON in JavaScript, '</script' and '<!--' as '\\u003c'
    assert "\\u003c/script><script>alert(document.domain)\\u003c/script><img" in body


def test_script_safe_json_is_the_same_json():
    value = {"a<b": [NAME, "&amp;", "<!-- x -->", "\u2028\u2029", 1.5, None]}
    for kwargs in ({}, {"ensure_ascii": False}, {"indent": 1}):
        text = cli._script_safe_json(value, **kwargs)
        assert not set("<>&\u2028\u2029") & set(text)
        assert json.loads(text) == value


def test_script_safe_js_rewrites_only_the_hazards():
    js = cli._script_safe_js
    assert js('x = "</script><script>"') == 'x = "\\u003c/script><script>"'
    assert js("s = '<!--' + '</SCRIPT >'") == "s = '\\u003c!--' + '\\u003c/SCRIPT >'"
    assert js(r'"\</script>"') == r'"\u003c/script>"'  # \< is an identity escape of <
    assert js(r'"\\</script>"') == r'"\\\u003c/script>"'  # \\ is an escaped backslash
    assert js("if (a </b/.exec(c)) {} '</div>'") == "if (a </b/.exec(c)) {} '</div>'"
    # a JSON string literal is a JavaScript literal: same value after the rewrite
    assert json.loads(js(json.dumps(NAME + "<!--<script>"))) == NAME + "<!--<script>"


def test_check_script_blocks_refuses_unsafe_pages():
    cli._check_script_blocks('<script type="application/json">{"a": "\\u003c/script>"}</script>')
    with pytest.raises(ValueError, match="valid JSON"):
        cli._check_script_blocks(
            '<script type="application/vnd.jupyter.widget-state+json">{"a": "</script>'
            '<script>alert(1)</script>"}</script>'
        )
    with pytest.raises(ValueError, match="<!--"):
        cli._check_script_blocks("<script>var s = '<!--<script>';</script>")


def test_index_escapes_names_and_links(tmp_path):
    row = {
        "id": NAME,
        "title": NAME,
        "status": "failed",
        "seconds": 1.0,
        "parameters": {"classes": [NAME]},
        "links": {"html": "javascript:alert(3)//.html", "notebook": f"{NAME}.ipynb"},
        "error": NAME,
        "claims": [
            {
                "claim": NAME,
                "where": NAME,
                "verdict": "not testable",
                "holds": None,
                "reason": NAME,
                "numbers": {NAME: NAME},
            },
        ],  # fmt: skip
    }
    body = cli._index(tmp_path, NAME, [row], 0.0, {NAME: NAME}).read_text()
    assert "<script>alert" not in body.lower() and "<img" not in body
    hrefs = re.findall(r'href="([^"]*)"', body)
    assert hrefs[0] == "javascript%3Aalert%283%29//.html"
    assert all(":" not in h and "<" not in h for h in hrefs)


def test_manifold_tooltip_escapes_class_names():
    """The HTML hover template gets the class name html-escaped, marked {safe}."""
    from bokeh.models import HoverTool
    from test_panel_manifold import ACC_A, fake_result

    from introspect_widgets.panels import ManifoldPanel

    result = fake_result(ACC_A)
    names = [NAME] + result["manifolds"]["class_names"][1:]
    result["manifolds"]["class_names"] = result["robustness"]["class_names"] = names
    panel = ManifoldPanel(results={"A": result})
    panel.thumbnails["A"] = ["data:,"] * len(names)
    panel._build_view()
    assert panel.error is None, panel.errors.text
    fig, src, _ = panel._sources["A"]
    assert src.data["name"][0] == NAME and src.data["name_html"][0] == html.escape(NAME)
    templates = [t.tooltips for t in fig.select(type=HoverTool) if isinstance(t.tooltips, str)]
    assert templates and all("@name_html{safe}" in t and "@name<" not in t for t in templates)
    panel.class_select.value = 0
    assert panel.curve_figure.title.text.startswith(f"class {NAME}:")  # canvas text, not HTML


# --------------------------------------------------------------------------- real browser


@pytest.fixture(scope="module")
def chromium(browser):  # noqa: F811 - the harness's chromium (skips when absent)
    return browser


def _open(chromium, path: Path):
    """Open ``path``; returns the page and the dialogs raised until its load event."""
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(60_000)
    dialogs: list[str] = []

    def on_dialog(dialog):
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(path.resolve().as_uri(), wait_until="load")
    return context, page, dialogs


@pytest.mark.browser
def test_dialogs_are_seen_by_the_harness(chromium, tmp_path):
    """Control: a page that does script shows a dialog here (so no dialog below means safe)."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!doctype html><body><script>alert(1)</script><img src=x onerror=alert(2)></body>"
    )
    context, _, dialogs = _open(chromium, bad)
    context.close()
    assert dialogs == ["alert: 1", "alert: 2"]


@pytest.mark.browser
def test_report_page_runs_no_payload_in_chromium(chromium, page):
    context, p, dialogs = _open(chromium, page)
    try:
        assert dialogs == []  # nothing ran up to the load event (onerror handlers included)
        assert p.locator("img[src='x']").count() == 0
        # BokehJS (inline in the page) embedded the shown figure with the name intact
        p.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=20_000)
        titles = p.evaluate("() => Bokeh.documents.map(d => d.roots().map(r => r.title.text))")
        assert titles == [[NAME]]
        p.locator(".bk-Canvas, .bk-Figure").first.wait_for(state="attached")
        state = p.evaluate(
            "() => JSON.parse(document.querySelector("
            "'script[type=\"application/vnd.jupyter.widget-state+json\"]').textContent)"
        )
        labels = [
            m["state"]["_options_labels"]
            for m in state["state"].values()
            if m["model_name"] == "DropdownModel"
        ]
        assert labels == [[NAME, "cat"]]
        assert dialogs == []
    finally:
        context.close()
