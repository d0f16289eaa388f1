"""CapturePanel: a study's layers captured through ``Study.capture``, handed on to other panels."""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as W
import numpy as np
import torch

from introspect import Study
from introspect import recipes as _recipes
from introspect.data import DATASETS, load_dataset
from introspect.models import available_layers, create_model, list_models
from introspect.store import ActivationStore
from introspect.training import confusion_matrix

from ..widgets import GridView
from ._base import (
    Panel,
    as_study,
    bokeh_widget,
    guarded,
    hold_sync,
    recipe_fields,
    study_name,
)

__all__ = ["CapturePanel"]

REDUCERS = ("codes", "flatten", "gap")
SPLITS = ("test", "train")
_HIST_BINS = 40
_HIST_MAX_VALUES = 1_000_000


def _devices() -> list[str]:
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def _recipe_label(name: str, r: dict) -> str:
    return f"{name}  (recipe, {_recipes.recipe_weights(r)})"


class CapturePanel(Panel):
    """Capture the activations of chosen layers of a study's model over one of its splits.

    Give it a :class:`introspect.Study` and **Run** calls ``study.capture(reducer, split,
    layers)``: the store lands in the study's workdir, so the figures, the other panels
    and your own code reuse it instead of capturing again. Without a study the panel
    offers pickers, and **Run** builds the study first: model (the recipes of
    :mod:`introspect.recipes`, every registered architecture untrained, and any model
    objects passed in ``models``), dataset (its train and test splits), data root, images
    per class, device, workdir.

    Controls common to both: layers (the model's aliases first, then its
    ``named_modules`` paths, plus free-text names such as ``layer1.0:input``), split,
    reducer. The result is ``panel.store`` (an :class:`~introspect.store.ActivationStore`)
    and ``panel.study``, handed to every callback registered with :meth:`on_store`. The
    panel then shows a histogram of the activations of one layer (bokeh, updated in place)
    and the confusion matrix of the model's predictions (a :class:`GridView`; clicking a
    cell sets ``panel.selected_indices`` to the images of that cell).

    Parameters
    ----------
    study : Study or str, optional
        The study to capture from, or a recipe name (``"small_cnn@digits"``) preselected
        in the pickers and turned into a study by :meth:`introspect.Study.from_recipe`
        at **Run**. None: the pickers, starting at ``model``.
    model : str
        Without a study, the initial model: a recipe name, a registered architecture
        (``"small_cnn"``, untrained), ``"timm:<name>"``, or a key of ``models``.
    models : dict of str -> nn.Module, optional
        Your own models (taking images in [0, 1]) offered in the menu.
    dataset : str
        Without a study, the initial dataset; any of :data:`introspect.data.DATASETS`.
    split : {"test", "train"}
        The split captured.
    data_root : str, optional
        Where the non-embedded datasets live (``None``: ``$INTROSPECT_DATA``).
    n_per_class : int, optional
        Class-balanced subset size of both splits (0 or None: every image).
    layers : list of str, optional
        Initially selected layers (default: the study's layers, else every alias the
        model declares).
    reducer : {"codes", "flatten", "gap"}
    batch_size, device, workdir
        Of the study the pickers build (a given study keeps its own).
    """

    def __init__(
        self,
        study=None,
        *,
        model: str = "small_cnn@digits",
        models: dict | None = None,
        dataset: str = "digits",
        split: str = "test",
        data_root: str | None = None,
        n_per_class: int | None = None,
        layers: list[str] | None = None,
        reducer: str = "codes",
        batch_size: int = 128,
        device: str = "cpu",
        workdir: str = "introspect-work",
    ):
        super().__init__(title="Capture activations")
        if isinstance(study, str):  # a recipe: preselected, made a study at Run
            model, study = study, None
        elif study is not None:
            study = as_study(study, "CapturePanel")
        self._given = study
        self._user_models = dict(models or {})
        self._arch_cache: dict = {}
        self._studies: dict = {}
        self._callbacks: list[Callable] = []
        self.store: ActivationStore | None = None
        self.study: Study | None = study
        self.model = None
        self.data = None
        self.selected_indices = np.zeros(0, dtype=np.int64)

        wide = W.Layout(width="400px")
        narrow = W.Layout(width="250px")
        style = {"description_width": "90px"}
        if study is None:
            options = self._model_options(model, data_root)
            splits = list(SPLITS)
        else:
            name = study_name(study, type(study.architecture).__name__)
            options = [(f"{name}  (study)", "study")]
            splits = list(study.datasets)
        self.model_select = W.Dropdown(
            options=options, description="model", layout=wide, style=style
        )
        self.model_select.disabled = study is not None
        self.dataset_select = W.Dropdown(
            options=list(DATASETS),
            value=dataset if dataset in DATASETS else None,
            description="dataset",
            style=style,
        )
        self.split_select = W.Dropdown(
            options=splits,
            value=split if split in splits else splits[0],
            description="split",
            style=style,
        )
        self.root_text, self.n_per_class = recipe_fields(
            data_root, n_per_class, style, tooltip="images per class (0 = all)"
        )
        self.layer_select = W.SelectMultiple(
            options=[], rows=8, description="layers", layout=wide, style=style
        )
        self.extra_layers = W.Text(
            value="",
            description="more layers",
            placeholder="comma-separated, e.g. layer1.0:input, penultimate",
            layout=wide,
            style=style,
        )
        self.reducer_select = W.Dropdown(
            options=list(REDUCERS), value=reducer, description="reducer", style=style, layout=narrow
        )
        self.batch_size = W.BoundedIntText(
            value=batch_size if study is None else study.batch_size,
            min=1,
            max=65536,
            description="batch size",
            style=style,
            layout=narrow,
        )
        dev = device if study is None else str(study.device)
        self.device_select = W.Dropdown(
            options=sorted(set(_devices()) | {dev}),
            value=dev,
            description="device",
            style=style,
            layout=narrow,
        )
        self.workdir_text = W.Text(
            value=str(workdir if study is None else study.workdir.root),
            description="workdir",
            style=style,
            layout=narrow,
        )
        self.study_label = W.HTML(
            "" if study is None else f"<code>{html.escape(repr(study))}</code>"
        )
        self.run_button = self.button("Run capture", self.run, button_style="primary", icon="play")

        # result views
        self.hist_layer = W.Dropdown(options=[], description="histogram", style=style)
        self.hist_source, self.hist_figure = self._hist_figure()
        self.hist_view = bokeh_widget(self.hist_figure)
        self.confusion = GridView(colormap="blues", cell_size=26, title="confusion matrix")
        self.selection_label = W.HTML("")
        self.results = W.HBox(
            [
                W.VBox([self.hist_layer, self.hist_view]),
                W.VBox([self.confusion, self.selection_label]),
            ],
            layout=W.Layout(flex_flow="row wrap"),
        )
        self.results.layout.display = "none"

        # with a study, model, data, device and workdir are the study's: no pickers
        self.pickers = W.VBox([self.dataset_select, self.root_text, self.n_per_class])
        self.study_settings = W.VBox([self.batch_size, self.device_select, self.workdir_text])
        if study is not None:
            self.pickers.layout.display = "none"
            self.study_settings.layout.display = "none"
        self.children = [
            self.study_label,
            W.HBox(
                [
                    W.VBox([self.model_select, self.layer_select, self.extra_layers]),
                    W.VBox([self.split_select, self.pickers]),
                    W.VBox([self.reducer_select, self.study_settings]),
                ],
                layout=W.Layout(flex_flow="row wrap"),
            ),
            self.run_button,
            self.results,
        ]

        self.observe(self.model_select, self._on_model)
        self.observe(self.hist_layer, lambda _ch: self._update_hist())
        self.observe(self.confusion, self._on_cell, names="selected")
        if layers is None and study is not None:
            layers = list(study.layers)
        self._on_model(None, layers=layers)

    # ------------------------------------------------------------------ models
    def _model_options(self, initial: str, data_root=None) -> list[tuple[str, str]]:
        opts = [(f"{k}  (your model)", f"user:{k}") for k in self._user_models]
        for k, r in _recipes.RECIPES.items():
            # a recipe whose data or weights are not here says so in the menu
            why = _recipes.recipe_missing(k, data_root)
            label = _recipe_label(k, r) + (f"  [unavailable: {why}]" if why else "")
            opts.append((label, f"recipe:{k}"))
        opts += [(f"{k}  (untrained)", f"arch:{k}") for k in list_models()]
        keys = {v for _, v in opts}
        key = self._key_of(initial, keys)
        if key not in keys:
            opts.insert(0, (_recipe_label(initial, _recipes.recipe(initial)), key))
        # the initial model first, so it is the Dropdown's value
        opts.sort(key=lambda o: o[1] != key)
        return opts

    def _key_of(self, name: str, keys) -> str:
        for prefix in ("user:", "recipe:", "arch:"):
            if f"{prefix}{name}" in keys:
                return f"{prefix}{name}"
        if name.startswith(("user:", "recipe:", "arch:")):
            return name
        return f"recipe:{name}"  # e.g. timm:<name>, a pretrained recipe

    def _architecture(self, key: str):
        """The model's structure (untrained; cheap) to list its layers."""
        if key == "study":
            return self._given.model
        if key in self._arch_cache:
            return self._arch_cache[key]
        kind, name = key.split(":", 1)
        if kind == "user":
            arch = self._user_models[name]
        elif kind == "arch":
            torch.manual_seed(0)  # the same untrained weights in every session
            arch = create_model(name)
        else:
            r = _recipes.recipe(name)
            arch = create_model(r["model"], **(r.get("model_kwargs") or {}))
        self._arch_cache[key] = arch
        return arch

    def _on_model(self, _change, layers=None) -> None:
        key = self.model_select.value
        arch = self._architecture(key)
        names = available_layers(arch)
        if getattr(arch, "classifier_path", None):
            n_alias = len(getattr(arch, "layer_aliases", {}) or {})
            names.insert(n_alias, "penultimate")
        aliases = list(getattr(arch, "layer_aliases", {}) or {})
        chosen = [n for n in (layers or aliases or names[:1]) if n in names]
        extra = [n for n in (layers or []) if n not in names]
        with hold_sync(self.layer_select, self.extra_layers, self.dataset_select):
            self.layer_select.options = names
            self.layer_select.value = tuple(chosen)
            if extra:
                self.extra_layers.value = ", ".join(extra)
            if key.startswith("recipe:") and layers is None and _change is not None:
                self.dataset_select.value = _recipes.recipe(key[7:]).get("dataset", "digits")
        self.set_status(
            f"{type(arch).__name__}: {len(names)} layers, input {self._input_size(arch)}"
        )

    @staticmethod
    def _input_size(model) -> tuple | None:
        size = getattr(model, "input_size", None)
        return tuple(size) if size is not None else None

    # ------------------------------------------------------------------ the study
    def make_study(self, layers: list[str] | None = None) -> Study:
        """The study a run captures from: the given one, or one built from the pickers.

        A recipe on its own dataset goes through :meth:`introspect.Study.from_recipe`;
        other choices become ``Study(model, train=..., test=...)`` of the picked dataset
        (both splits, ``per class`` images each) with ``layers`` as the study's layers.
        Studies are kept per choice, so a second run reuses the model and its data.
        """
        if self._given is not None:
            return self._given
        layers = list(layers or self.layers())
        key, device = self.model_select.value, self.device_select.value
        workdir = self.workdir_text.value or "introspect-work"
        root = self.root_text.value or None
        n = self.n_per_class.value or None
        dataset = self.dataset_select.value
        cache_key = (key, dataset, root, n, device, workdir, tuple(layers))
        if cache_key in self._studies:
            study = self._studies[cache_key]
            study.batch_size = int(self.batch_size.value)
            return study
        kind, name = key.split(":", 1)
        common = dict(layers=layers, workdir=workdir, device=device, progress=False)
        if kind == "recipe":
            self.set_status(
                f"loading {name} (a recipe trains once, then loads from the workdir)..."
            )
            if dataset == _recipes.recipe(name).get("dataset", "digits"):
                study = Study.from_recipe(name, data_root=root, n_per_class=n, **common)
            else:
                model = _recipes.load_recipe(name, workdir=workdir, device=device, data_root=root)
                data = {
                    s: _recipes.recipe_data(name, s, dataset=dataset, data_root=root, n_per_class=n)
                    for s in SPLITS
                }
                study = Study(model, **data, **common)
                study.recipe = name
        else:
            model = self._user_models[name] if kind == "user" else self._architecture(key)
            study = Study(model, **{s: self._load_data(model, s) for s in SPLITS}, **common)
        study.batch_size = int(self.batch_size.value)
        self._studies[cache_key] = study
        return study

    def _load_data(self, model, split: str):
        size = self._input_size(model)
        kwargs = {}
        if size is not None and len(size) == 3:
            kwargs = dict(channels=int(size[0]), image_size=(int(size[1]), int(size[2])))
        return load_dataset(
            self.dataset_select.value,
            split,
            root=self.root_text.value or None,
            n_per_class=self.n_per_class.value or None,
            **kwargs,
        )

    def layers(self) -> list[str]:
        """The layers a run will capture: the selection, then the free-text names."""
        extra = [s.strip() for s in self.extra_layers.value.split(",") if s.strip()]
        out = list(self.layer_select.value)
        return out + [n for n in extra if n not in out]

    # ------------------------------------------------------------------ run
    def run(self) -> ActivationStore | None:
        """Build or take the study, capture, show the result; the Run button calls this."""

        def body():
            layers = self.layers()
            if not layers:
                raise ValueError("no layers selected: pick at least one layer.")
            study = self.make_study(layers)
            split = self.split_select.value
            n = len(study.labels(split))
            self.set_status(f"capturing {n} images, {len(layers)} layers...")
            store = study.capture(
                reducer=self.reducer_select.value, split=split, layers=layers,
            )  # fmt: skip
            self.study, self.store = study, store
            self.model, self.data = study.model, study.data(split)
            self._show_store(store)
            shapes = ", ".join(f"{k} {store.n}x{store.dims[k]}" for k in store.layers)
            acc = float(np.mean(store.preds == store.labels))
            self.set_status(f"done: {store.n} images, accuracy {acc:.1%}; {shapes}")
            for cb in list(self._callbacks):
                guarded(self.errors, cb, "on_store callback")(study, store)

        self.run_task("capture", body, self.run_button)
        return self.store if self._finished_ok() else None

    def on_store(self, callback: Callable[[Study, ActivationStore], None]) -> None:
        """Call ``callback(study, store)`` after every capture (at once if a store exists).

        The hand-off to the method panels: ``study`` holds the model, its data and the
        captured layers (``study.layers``), cached in its workdir, e.g.
        ``capture.on_store(lambda study, store: display(SOMPanel(study)))``. Errors in the
        callback are shown in this panel.
        """
        self._callbacks.append(callback)
        if self.store is not None:
            guarded(self.errors, callback, "on_store callback")(self.study, self.store)

    # ------------------------------------------------------------------ views
    @staticmethod
    def _hist_figure():
        from bokeh.models import ColumnDataSource, HoverTool
        from bokeh.plotting import figure

        source = ColumnDataSource(dict(left=[], right=[], top=[]))
        fig = figure(
            width=420,
            height=260,
            title="activations",
            x_axis_label="activation value",
            y_axis_label="count",
            tools="pan,wheel_zoom,box_zoom,reset,save",
        )
        fig.quad(
            left="left",
            right="right",
            top="top",
            bottom=0,
            source=source,
            fill_color="#4c72b0",
            line_color="white",
            fill_alpha=0.85,
        )
        fig.add_tools(
            HoverTool(tooltips=[("bin", "@left{0.000} .. @right{0.000}"), ("count", "@top")])
        )
        return source, fig

    def _show_store(self, store: ActivationStore) -> None:
        with hold_sync(self.hist_layer):
            self.hist_layer.options = list(store.layers)
            self.hist_layer.value = store.layers[0]
        self._update_hist()
        self._update_confusion(store)
        self.results.layout.display = None

    def _update_hist(self) -> None:
        if self.store is None or self.hist_layer.value is None:
            return
        name = self.hist_layer.value
        acts = np.asarray(self.store.layer(name))
        flat = acts.ravel()
        if flat.size > _HIST_MAX_VALUES:
            flat = flat[:: int(np.ceil(flat.size / _HIST_MAX_VALUES))]
        counts, edges = np.histogram(flat, bins=_HIST_BINS)
        self.hist_source.data = dict(left=edges[:-1], right=edges[1:], top=counts)
        zero = float(np.mean(flat == 0.0))
        self.hist_figure.title.text = (
            f"{name}: {acts.shape[0]} x {acts.shape[1]}, mean {flat.mean():.3g}, "
            f"zeros {zero:.0%} ({self.store.meta.get('reducer', '')})"
        )

    def _update_confusion(self, store: ActivationStore) -> None:
        classes = list(self.study.classes if self.study is not None else [])
        classes = classes or list(store.meta.get("classes") or [])
        k = max(len(classes), int(store.logits.shape[1]) if store.n else 0)
        classes += [str(i) for i in range(len(classes), k)]
        cm = confusion_matrix(store.labels, store.preds, k)
        rate = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        labels = [
            [
                f"true {classes[i]}, predicted {classes[j]}: {cm[i, j]} images "
                f"({rate[i, j]:.0%} of class {classes[i]})"
                for j in range(k)
            ]
            for i in range(k)
        ]
        acc = np.trace(cm) / max(cm.sum(), 1)
        self.confusion.set_grid(
            rate,
            labels=labels,
            text=cm.astype(str),
            vmin=0.0,
            vmax=1.0,
            cell_size=int(np.clip(360 // max(k, 1), 3, 28)),
            title=f"confusion (rows true, columns predicted), accuracy {acc:.1%}",
            selected=[],
        )
        self.selected_indices = np.zeros(0, dtype=np.int64)
        self.selection_label.value = "click a cell to select its images"

    def _on_cell(self, change) -> None:
        if self.store is None or not change["new"]:
            self.selected_indices = np.zeros(0, dtype=np.int64)
            self.selection_label.value = "click a cell to select its images"
            return
        r, c = change["new"][-1]
        idx = np.flatnonzero((self.store.labels == r) & (self.store.preds == c))
        self.selected_indices = idx
        self.selection_label.value = html.escape(
            f"selected {idx.size} images: true class {r}, predicted {c} (panel.selected_indices)"
        )
