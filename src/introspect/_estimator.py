"""The estimator contract shared by the learned objects of the four methods.

Every learned object (:class:`~introspect.som.ToroidalSOM`,
:class:`~introspect.library.LibraryNetwork`, :class:`~introspect.library.LibraryStack`,
:class:`~introspect.selfintro.InfoVAE`, :class:`~introspect.selfintro.ErrorEstimator`,
:class:`~introspect.selfintro.SelfIntrospector`) follows scikit-learn's: ``__init__``
stores hyperparameters under the names of its parameters (so ``get_params``,
``set_params`` and :func:`sklearn.base.clone` work), ``fit`` returns ``self``, learned
state ends in ``_`` and is set by ``fit``, and using an unfitted object raises
:class:`NotFittedError`.

Private: the public names are ``introspect.NotFittedError`` and the estimators.
"""

from __future__ import annotations

import sklearn.base
import sklearn.exceptions
import torch

__all__ = ["Estimator", "NotFittedError"]


class NotFittedError(sklearn.exceptions.NotFittedError, RuntimeError):
    """Raised when a learned object is used before ``fit``.

    A subclass of scikit-learn's :class:`~sklearn.exceptions.NotFittedError` (itself a
    ``ValueError`` and an ``AttributeError``) and of ``RuntimeError``, so
    ``except sklearn.exceptions.NotFittedError`` catches it too.
    """


class _Shown:
    """Stands for a parameter in a repr: ``<Net1>`` instead of a whole module tree."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


class Estimator(sklearn.base.BaseEstimator):
    """:class:`sklearn.base.BaseEstimator` with the package's conventions.

    - ``_fitted_attr`` names the learned attribute whose presence means "fitted"
      (``__sklearn_is_fitted__``, so :func:`sklearn.utils.validation.check_is_fitted`
      agrees with the object's own checks);
    - a parameter holding a ``torch.nn.Module`` shows as ``<ClassName>`` in the text and
      HTML reprs (the module's own repr is its whole layer tree).
    """

    _fitted_attr: str = ""

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, self._fitted_attr, None) is not None

    def _for_display(self):
        modules = {
            k: v for k, v in self.get_params(deep=False).items() if isinstance(v, torch.nn.Module)
        }
        if not modules:
            return self
        shown = type(self).__new__(type(self))
        shown.__dict__.update(self.__dict__)
        for k, v in modules.items():
            shown.__dict__[k] = _Shown(f"<{type(v).__name__}>")
        return shown

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        return sklearn.base.BaseEstimator.__repr__(self._for_display(), N_CHAR_MAX)

    def _get_params_html(self, *args, **kwargs):
        return sklearn.base.BaseEstimator._get_params_html(self._for_display(), *args, **kwargs)
