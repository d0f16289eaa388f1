"""DashboardPicker: the dashboard's recipe menu marks what cannot run here and refuses it
with a message that says what is missing (issue 15), and opens a dashboard on the rest."""

from __future__ import annotations

import pytest

from introspect import recipes


@pytest.fixture
def empty_root(tmp_path):
    return tmp_path / "no-data"


def test_unavailable_recipes_are_marked_in_the_menu(empty_root):
    from introspect_widgets import DashboardPicker

    picker = DashboardPicker(data_root=str(empty_root))
    labels = dict((v, lab) for lab, v in picker.recipe_select.options)
    assert set(labels) == set(recipes.RECIPES)
    for name, label in labels.items():
        why = recipes.recipe_missing(name, empty_root)
        assert ("[unavailable: needs " in label) == (why is not None), label
    assert "[unavailable" not in labels["small_cnn@digits"]
    assert "[unavailable: needs mnist under" in labels["mnist_cnn"]
    assert picker.recipe_select.value == "small_cnn@digits"
    assert picker.notice.layout.display == "none"  # an available recipe: nothing to say


def test_selecting_an_unavailable_recipe_explains_and_does_not_crash(empty_root):
    from introspect_widgets import DashboardPicker

    picker = DashboardPicker(data_root=str(empty_root))
    picker.recipe_select.value = "cifar_resnet20"
    assert picker.error is None
    assert picker.notice.layout.display is None
    assert "cifar_resnet20 cannot run here: it needs cifar10 under" in picker.notice.value
    assert picker.open() is None  # refused with the message, no exception, no traceback
    picker.open_button.click()
    assert picker.error is None and picker.dashboard is None
    assert "unavailable" in picker.status.value


def test_the_marks_follow_the_data_root(empty_root):
    from introspect_widgets import DashboardPicker

    picker = DashboardPicker("net1_mlp@mnist", data_root=str(empty_root))
    assert "[unavailable" in picker.recipe_select.label
    with_mnist = empty_root.parent / "with-mnist"
    (with_mnist / "MNIST" / "raw").mkdir(parents=True)
    picker.root_text.value = str(with_mnist)
    assert picker.recipe_select.value == "net1_mlp@mnist"
    assert "[unavailable" not in picker.recipe_select.label
    assert picker.notice.layout.display == "none"


def test_an_available_recipe_opens_its_dashboard(session_workdir):
    from introspect_widgets import Dashboard, DashboardPicker

    picker = DashboardPicker(n_per_class=10, workdir=str(session_workdir))
    dash = picker.open()
    assert picker.error is None, picker.errors.text
    assert isinstance(dash, Dashboard) and picker.dashboard_box.children == (dash.widget,)
    dash.wait()
    assert dash.error is None, dash.errors.text
    assert all(dash.ready[k] for k in ("telescope", "confusion"))


def test_menus_say_where_each_recipes_weights_come_from():
    from introspect_widgets.dashboard_picker import recipe_options

    # the random copies were labelled "trained on mnist", like the models they compare with
    assert recipes.recipe_weights("kolter_madry_cnn_random@mnist") == (
        "untrained (random initialisation)"
    )
    assert recipes.recipe_weights("small_cnn@digits") == "trained on digits"
    assert recipes.recipe_weights("small_cnn_pgd@digits") == "PGD-trained on digits"
    assert recipes.recipe_weights("kolter_madry_cnn_robust@mnist") == "pretrained"
    labels = dict((name, label) for label, name in recipe_options())
    assert "(recipe, untrained (random initialisation))" in labels["small_cnn_random@digits"]
