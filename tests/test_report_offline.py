"""The report folder works offline: BokehJS is copied once into it, and chromium renders the
index and a figure's pages from disk with every network request refused (issue 9)."""

from __future__ import annotations

import json

import pytest
from browser_harness import CHROMIUM, CHROMIUM_ARGS, require_browser

from introspect import cli

FIGURE = "telescope.fig03"  # cheap: one small CNN trained on digits, PCA of its codes


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    code = cli.reproduce("quick", out, FIGURE, workdir=out / "work")
    assert code == 0
    return out


def test_report_points_every_page_at_its_own_bokehjs(report):
    js = sorted(p.name for p in (report / "static" / "js").glob("*.js"))
    assert "bokeh.min.js" in js and "bokeh-widgets.min.js" in js
    plot = (report / "figures" / f"{FIGURE}.html").read_text()
    page = (report / f"{FIGURE}.html").read_text()
    assert 'src="../static/js/bokeh.min.js"' in plot  # relative to figures/
    assert "static/js/bokeh.min.js" in page and "../static" not in page
    for text in (plot, page):
        assert "cdn.bokeh.org" not in text and "cdnjs.cloudflare.com" not in text
    claims = json.loads((report / "claims.json").read_text())
    assert claims["figures"][FIGURE]["claims"][0]["verdict"] in (
        "reproduced", "not reproduced", "not testable",
    )  # fmt: skip
    index = (report / "index.html").read_text()
    assert "Scoreboard" in index and "telescope" in index and "commit" in index


@pytest.mark.browser
def test_report_renders_offline_in_chromium(report):
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            blocked, errors = [], []
            # no network: every request that is not a file of the report is refused
            page.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith("file://")
                    else (blocked.append(route.request.url), route.abort())
                ),
            )
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((report / "index.html").as_uri())
            assert page.locator("text=Scoreboard").count() == 1
            assert page.locator("li b").first.inner_text() in (
                "reproduced", "not reproduced", "not testable",
            )  # fmt: skip
            for target in (report / "figures" / f"{FIGURE}.html", report / f"{FIGURE}.html"):
                page.goto(target.as_uri())
                # BokehJS loaded from static/ and drew the document's plots
                page.wait_for_function(
                    "() => window.Bokeh && Bokeh.documents.length > 0 && "
                    "Bokeh.index && Object.keys(Bokeh.index).length > 0",
                    timeout=30_000,
                )
            assert blocked == [], f"the pages asked the network for {blocked}"
            assert errors == [], errors
        finally:
            browser.close()
