"""DashboardPicker: a recipe menu that opens a :class:`~introspect_widgets.Dashboard`.

::

    from introspect_widgets import DashboardPicker

    DashboardPicker()            # pick a recipe, press "Open dashboard"

Every recipe of :data:`introspect.recipes.RECIPES` is in the menu; one whose dataset files
or weights are not on this machine (:func:`introspect.recipes.recipe_missing`) is marked
``[unavailable: needs ...]`` as in the capture panel's model menu. Selecting it says what
it needs and where to put it; **Open dashboard** refuses it with the same message instead
of failing inside the study.
"""

from __future__ import annotations

import html

import ipywidgets as W

from introspect import recipes as _recipes

from .panels._base import Panel, recipe_fields

__all__ = ["DashboardPicker", "recipe_options"]

_NOTICE = (
    '<div class="introspect-notice" style="color:#7a4d00;background:#fff8e1;'
    'border:1px solid #e0b000;border-radius:3px;padding:6px 10px;max-width:640px">{}</div>'
)


def _label(name: str, r: dict, why: str | None) -> str:
    how = _recipes.recipe_weights(r)
    return f"{name}  (recipe, {how})" + (f"  [unavailable: {why}]" if why else "")


def recipe_options(data_root=None) -> list[tuple[str, str]]:
    """``(label, name)`` of every recipe; the label marks what cannot run here."""
    return [
        (_label(k, r, _recipes.recipe_missing(k, data_root)), k)
        for k, r in _recipes.RECIPES.items()
    ]


class DashboardPicker(Panel):
    """A recipe menu, its study settings and **Open dashboard**.

    **Open dashboard** makes ``Study.from_recipe(name, ..., lazy=True)`` and shows its
    :class:`~introspect_widgets.Dashboard` below at once, computing in a background thread
    with its progress and Cancel: first the model (trained once, cached in ``workdir``),
    then the lenses. ``picker.dashboard`` is the last one.

    Parameters
    ----------
    recipe : str
        Initially selected recipe.
    data_root : str, optional
        Where MNIST, CIFAR-10 and weights live (default ``$INTROSPECT_DATA``); the menu's
        marks follow it.
    n_per_class : int, optional
        Images per class of each split (0 or None: the recipe's own).
    device, workdir
        Of the study.
    """

    def __init__(
        self,
        recipe: str = "small_cnn@digits",
        *,
        data_root: str | None = None,
        n_per_class: int | None = None,
        device: str = "cpu",
        workdir: str = "introspect-work",
    ):
        super().__init__(title="Open a dashboard on a recipe")
        style = {"description_width": "80px"}
        options = recipe_options(data_root)
        names = [v for _, v in options]
        self.recipe_select = W.Dropdown(
            options=options,
            value=recipe if recipe in names else names[0],
            description="recipe",
            style=style,
            layout=W.Layout(width="100%", max_width="640px"),
        )
        self.root_text, self.n_per_class = recipe_fields(
            data_root, n_per_class, style,
            root_layout=W.Layout(width="100%", max_width="420px"),
            layout=W.Layout(width="170px"),
        )  # fmt: skip
        self.device, self.workdir = device, workdir
        self.notice = W.HTML("")
        self.open_button = self.button(
            "Open dashboard", self.open, button_style="primary", icon="play"
        )
        self.dashboard = None
        self.dashboard_box = W.VBox([])
        self.children = [
            self.recipe_select,
            W.HBox([self.root_text, self.n_per_class], layout=W.Layout(flex_flow="row wrap")),
            W.HBox([self.open_button, self.notice], layout=W.Layout(flex_flow="row wrap")),
            self.dashboard_box,
        ]
        self.observe(self.recipe_select, lambda _c: self._explain())
        self.observe(self.root_text, lambda _c: self._relabel())
        self._explain()

    # ------------------------------------------------------------------ the menu
    @property
    def data_root(self) -> str | None:
        return self.root_text.value.strip() or None

    def missing(self, name: str | None = None) -> str | None:
        """What the recipe (default: the selected one) needs that is not here, or None."""
        return _recipes.recipe_missing(name or self.recipe_select.value, self.data_root)

    def _message(self, name: str, why: str) -> str:
        return (
            f"{name} cannot run here: it {why}. Put the files there, or set data root to "
            "the folder that holds them (or $INTROSPECT_DATA); the *@digits recipes need "
            "nothing."
        )

    def _explain(self) -> None:
        name = self.recipe_select.value
        why = self.missing(name)
        self.notice.value = _NOTICE.format(html.escape(self._message(name, why))) if why else ""
        self.notice.layout.display = None if why else "none"

    def _relabel(self) -> None:
        value = self.recipe_select.value
        self.recipe_select.options = recipe_options(self.data_root)
        self.recipe_select.value = value
        self._explain()

    # ------------------------------------------------------------------ open
    def open(self):
        """The dashboard of the selected recipe (None, with a message, if it cannot run)."""
        from introspect import Study

        from .dashboard import Dashboard

        name = self.recipe_select.value
        why = self.missing(name)
        if why:
            self._explain()
            self.set_status(f"not opened: {name} is unavailable here")
            return None
        with self.busy(f"loading {name}"):
            study = Study.from_recipe(
                name,
                workdir=self.workdir,
                device=self.device,
                data_root=self.data_root,
                n_per_class=self.n_per_class.value or None,
                progress=False,
                lazy=True,  # trains (once) in the dashboard's compute, with its progress
            )
            old, self.dashboard = self.dashboard, Dashboard(study, autostart=False)
            self.dashboard_box.children = [self.dashboard.widget]
            if old is not None:
                old.widget.close()
            self.set_status(f"{name}: computing the lenses below")
            self.dashboard.start()
        return self.dashboard if self.error is None else None
