"""`introspect reproduce --set`: profile overrides for the selected figures."""

import pytest

from introspect.figures import FIGURES


def test_set_overrides_change_the_profile_and_refuse_typos(tmp_path):
    from introspect import cli

    ov = cli.parse_overrides(["n_attack=50", "telescope.fig03:layers=[CL1, CL2]", "x=a:b"])
    assert ov == {"*": {"n_attack": 50, "x": "a:b"}, "telescope.fig03": {"layers": ["CL1", "CL2"]}}
    fig = FIGURES["telescope.fig03"]
    p = cli._figure_params(fig, "paper", tmp_path, tmp_path, None, None, ov)
    assert p["layers"] == ["CL1", "CL2"] and "n_attack" not in p  # only where it applies
    assert p["model" if "model" in p else "models"] == fig.profile("paper").get(
        "model" if "model" in p else "models"
    )
    cli._check_overrides({"*": {"n_attack": 50}}, ["library.fig5", "telescope.fig03"])
    with pytest.raises(SystemExit, match="no selected figure has a parameter 'n_atack'"):
        cli._check_overrides({"*": {"n_atack": 50}}, ["library.fig5"])
    with pytest.raises(SystemExit, match="not among the selected"):
        cli._check_overrides({"library.fig5": {"n_attack": 5}}, ["telescope.fig03"])
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        cli.parse_overrides(["n_attack"])
