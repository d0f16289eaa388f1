"""introspect: the core of introspect-widgets.

Look inside trained image classifiers: capture hidden activity, fit the analyses of four
papers (self-organising maps of functional codes, library networks, self-introspective
InfoVAEs, class activation manifolds) and relate them to adversarial and noisy failures.
No Jupyter imports here; ``introspect_widgets`` is the notebook layer.

The public names below are imported lazily, so ``import introspect`` stays cheap.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

_EXPORTS = {
    "Study": "study",
    "AttackResult": "study",
    "TelescopeResult": "study",
    "LibraryResult": "study",
    "ManifoldResult": "study",
    "normalized": "models",
    "load_dataset": "data",
    "ArrayDataset": "data",
    "create_model": "models",
    "list_models": "models",
    "available_layers": "models",
    "resolve_layer": "models",
    "fit_classifier": "training",
    "evaluate": "training",
    "capture": "capture",
    "activations": "capture",
    "ActivationStore": "store",
    "vector_codes": "codes",
    "pgd": "attacks",
    "carlini_wagner_l2": "attacks",
    "DetectionTable": "detect",
    "iterative_fgsm": "attacks",
    "uniform_noise": "attacks",
    "awgn": "attacks",
    "Workdir": "cache",
    "ToroidalSOM": "som",
    "LibraryNetwork": "library",
    "LibraryStack": "library",
    "InfoVAE": "selfintro",
    "ErrorEstimator": "selfintro",
    "SelfIntrospector": "selfintro",
    "class_manifold_dims": "manifolds",
    "classwise_robustness": "manifolds",
    "dim_robustness_correlation": "manifolds",
    "get_figure": "figures",
    "FIGURES": "figures",
    "NotFittedError": "_estimator",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'introspect' has no attribute {name!r}")


def __dir__():
    return __all__


class _Package(types.ModuleType):
    """The package's module type: a submodule never shadows a public export.

    Importing ``introspect.capture`` makes the import system run
    ``setattr(introspect, "capture", <module introspect.capture>)``, which would hide the
    public function :func:`introspect.capture.capture` from ``introspect.capture``. That
    binding is dropped for the names in ``_EXPORTS``: the submodule stays reachable
    through ``sys.modules`` (``from introspect.capture import capture``,
    ``importlib.import_module("introspect.capture")``), and ``introspect.capture`` is
    the function, resolved lazily by ``__getattr__`` like every other export. (So
    ``import introspect.capture as m`` binds the function too, since that statement reads
    the package attribute: use ``importlib.import_module`` for the module.)
    """

    def __setattr__(self, name: str, value) -> None:
        if (
            name in _EXPORTS
            and isinstance(value, types.ModuleType)
            and value.__name__ == f"{self.__name__}.{name}"
        ):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
