"""Contract tests over the figure registry: generated from the registry, so every figure is covered."""

import types

import pytest

from introspect.figures import BROKEN, FIGURES, PAPERS, PROFILE_NAMES, Claim
from introspect.figures._notebooks import notebook_for, profile_yaml, repo_notebooks_dir

IDS = list(FIGURES)


def test_no_figure_module_is_broken():
    assert BROKEN == {}


@pytest.mark.parametrize("fid", IDS)
def test_figure_declares_both_profiles_and_documents_params(fid):
    fig = FIGURES[fid]
    assert set(PROFILE_NAMES) <= set(fig.profiles)
    assert fig.paper in PAPERS and fid.startswith(fig.paper + ".")
    for name, p in fig.params.items():
        assert p.help.strip(), f"{fid}.{name} has no description"
    assert fig.profile("paper") != fig.profile("quick"), "the paper profile changes something"


@pytest.mark.parametrize("fid", IDS)
def test_committed_notebook_and_yaml_match_the_module(fid):
    import nbformat

    fig = FIGURES[fid]
    root = repo_notebooks_dir()
    nb = nbformat.read(root / "figures" / f"{fid}.ipynb", as_version=4)
    assert nb == notebook_for(fig), "regenerate with: introspect figures --write-notebooks"
    assert "parameters" in nb.cells[1].metadata["tags"]
    for profile in PROFILE_NAMES:
        assert (root / "params" / profile / f"{fid}.yaml").read_text() == profile_yaml(fig, profile)


@pytest.mark.parametrize("fid", IDS)
def test_papermill_parses_every_parameter(fid):
    from papermill.inspection import inspect_notebook

    found = inspect_notebook(str(repo_notebooks_dir() / "figures" / f"{fid}.ipynb"))
    assert set(found) == set(FIGURES[fid].params)


@pytest.mark.parametrize("fid", IDS)
def test_plot_builder_exists(fid):
    import importlib

    paper, name = fid.split(".", 1)
    assert callable(getattr(importlib.import_module(f"introspect_widgets.plots.{paper}"), name))


def test_unknown_parameter_is_refused():
    fig = FIGURES["telescope.fig03"]
    with pytest.raises(TypeError, match="takes"):
        fig.compute(modelz=["x"])


@pytest.fixture(scope="module")
def report(tmp_path_factory, monkeypatch_module):
    from introspect import cli
    from introspect.figures import Figure

    fake = types.ModuleType("introspect.figures.telescope_fail")
    fake.ID, fake.PAPER, fake.TITLE = "telescope.fail", "telescope", "a figure that fails"
    fake.PARAMS, fake.PROFILES = {}, {"quick": {}, "paper": {}}
    fake.compute = lambda **kw: {}
    fake.summarize = lambda data: ""
    figures = {"telescope.fail": Figure(fake), "telescope.fig03": FIGURES["telescope.fig03"]}
    monkeypatch_module.setattr("introspect.figures.FIGURES", figures)
    out = tmp_path_factory.mktemp("report")
    code = cli.reproduce("quick", out, "telescope.fail,telescope.fig03", workdir=out / "work")
    return code, out


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_reproduce_reports_a_failure_and_still_runs_the_rest(report):
    code, out = report
    assert code == 1
    index = (out / "index.html").read_text()
    assert "1 of 2 figures ran" in index and "failed" in index and "KeyError" in index
    html = (out / "telescope.fig03.html").read_text()
    assert "explained variance of the top axes" in html  # the printed numbers
    assert (out / "figures" / "telescope.fig03.html").is_file()
    assert (out / "figures" / "telescope.fig03.json").is_file()


@pytest.mark.parametrize("fid", IDS)
def test_declared_claims_are_claims(fid):
    for c in FIGURES[fid].claims:
        assert isinstance(c, Claim) and c.text.strip() and c.where.strip() and callable(c.check)


def test_claims_are_evaluated_and_printed_under_the_summary():
    from introspect.figures import Figure

    fake = types.ModuleType("fake_claims")
    fake.ID, fake.PAPER, fake.TITLE = "compare.fake", "compare", "fake"
    fake.PARAMS, fake.PROFILES = {}, {"quick": {}, "paper": {}}
    fake.compute = lambda **kw: {"x": 3.0}
    fake.summarize = lambda data: "summary"

    def broken(data):
        raise KeyError("y")

    fake.CLAIMS = [
        Claim("x is above 2", "here", lambda d: (d["x"] > 2, {"x": d["x"]})),
        Claim("x is above 5", "there", lambda d: (d["x"] > 5, {"x": d["x"]})),
        Claim("needs y", "nowhere", lambda d: (None, {})),
        Claim("reads y", "nowhere", broken),
    ]
    fake.CLAIMS.append(Claim("raises", "nowhere", lambda d: _not_testable("one dataset only")))
    fig = Figure(fake)
    verdicts = fig.check_claims({"x": 3.0})
    assert [v["holds"] for v in verdicts] == [True, False, None, None, None]
    assert [v["verdict"] for v in verdicts] == ["reproduced", "not reproduced"] + [
        "not testable"
    ] * 3
    assert verdicts[0]["numbers"] == {"x": 3.0} and "KeyError" in verdicts[3]["reason"]
    assert verdicts[2]["reason"] and verdicts[4]["reason"] == "one dataset only"
    text = fig.summarize({"x": 3.0})
    assert text.startswith("summary\nClaims")
    assert "[reproduced] x is above 2 (here) -> x 3" in text
    assert "[not reproduced] x is above 5" in text
    assert "[not testable: one dataset only] raises" in text


def _not_testable(reason):
    from introspect.figures import NotTestable

    raise NotTestable(reason)


def test_claims_json_is_written_and_every_figure_declares_claims(tmp_path):
    import json

    # the registry as imported (a module-scoped fixture swaps introspect.figures.FIGURES)
    assert len(FIGURES) >= 29
    missing = [fid for fid, f in FIGURES.items() if not f.claims]
    assert not missing, f"figures without CLAIMS: {missing}"
    fig = FIGURES["telescope.fig07"]
    # a figure's claims on data that lacks what they read: "not testable", never an exception
    path = fig.write_claims({}, tmp_path / "x.claims.json")
    doc = json.loads(open(path).read())
    assert doc["figure"] == "telescope.fig07" and doc["claims"]
    assert {c["verdict"] for c in doc["claims"]} == {"not testable"}


def test_library_claims_read_torchvision_digit_names_and_top3_recovery():
    """MNIST's classes are named '0 - zero' ...: the CI(4, 9) claim still finds the digits;
    top-3's gain is judged against what top-1 left to gain (at 0.95 agreement the most it
    can add is 0.05)."""
    import numpy as np

    ci = np.full((10, 10), 0.01)
    np.fill_diagonal(ci, 1.0)
    ci[4, 9] = 0.2
    names = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five",
             "6 - six", "7 - seven", "8 - eight", "9 - nine"]  # fmt: skip
    data = {"classes": names, "thetas": ["0.65"], "layers": ["CN1", "FC1"],
            "ci": {"0.65": {"CN1": ci.tolist(), "FC1": (ci * 0.5).tolist()}}}  # fmt: skip
    v = {c["claim"][:8]: c for c in FIGURES["library.fig3"].check_claims(data)}
    assert v["CI(4, 9)"]["verdict"] == "reproduced"
    lib = {"layers": ["CN1"], "top1": {"CN1": [0.9, 0.95]}, "top3": {"CN1": [0.97, 0.99]}}
    from introspect.figures._library_claims import top3_helps

    ok, nums = top3_helps(lib)  # recovers 70 % and 80 % of what top-1 missed
    assert ok and nums["share of top-1's disagreement that top-3 recovers"]["CN1"] == 0.75


def test_report_lanes_keep_a_papers_figures_together_in_order_and_compare_last():
    from introspect.cli import _lanes

    ids = list(FIGURES)
    rest = [f for f in ids if not f.startswith("compare.")]
    last = [f for f in ids if f.startswith("compare.")]
    assert _lanes(ids, 1) == [[rest], [last]]
    phases = _lanes(ids, 2)
    assert len(phases) == 2 and phases[1] == [last]  # the cross-lens figures after all
    lanes = phases[0]
    assert len(lanes) == 2 and sorted(f for lane in lanes for f in lane) == sorted(rest)
    for paper in {FIGURES[f].paper for f in rest}:
        mine = [f for f in rest if FIGURES[f].paper == paper]
        holding = [lane for lane in lanes if any(f in mine for f in lane)]
        assert len(holding) == 1, paper  # one lane per paper: its shared stages in order
        assert [f for f in holding[0] if f in mine] == mine
    # the heaviest paper (selfintro) has a lane of its own
    assert any(all(f.startswith("selfintro.") for f in lane) for lane in lanes)


def test_every_figure_id_starts_with_its_paper():
    # the report's lanes group figures by the id's prefix
    for fid, fig in FIGURES.items():
        assert fid.split(".", 1)[0] == fig.paper, fid
