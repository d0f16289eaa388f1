"""Self-introspection (Pardo et al. 2022, "Coloring the black box").

The hidden layers of a trained classifier are concatenated into one vector ``h`` per
input; an InfoVAE maps ``h`` to a 2-D code ``z`` whose marginal is pushed towards
``N(0, I)`` (maximum mean discrepancy with a Gaussian kernel), and an error estimator
regresses ``log10 e`` on ``z``, with ``e = 1/2 ||y - y_hat||^2`` the classifier's squared
error. The three parts are trained in that order, each on the frozen output of the
previous one (the paper's "gradients stopped between them").

On top of the map:

- :meth:`SelfIntrospector.expected_codes` and :meth:`~SelfIntrospector.expected_activations`:
  ``E[z | H_k]`` by a Gaussian KDE evaluated on a grid over ``[-4, 4]^2`` and summed
  as a Riemann sum (Eq. 8), decoded to ``E[h | H_k]`` (Eq. 9);
- :meth:`~SelfIntrospector.unit_order`: every layer's units sorted by
  ``argmax_k E[h_i | H_k]`` (Eq. 10), then by strength;
- :meth:`~SelfIntrospector.brainbow`: a colour per unit, ``(1/K) sum_k c_k E[h_i | H_k]``
  (Eq. 11);
- :meth:`~SelfIntrospector.embed_trajectory`: ``z`` along a noise sweep, an attack or
  training (see :class:`TrainingRecorder`).

The array-level pieces (:class:`InfoVAE`, :class:`ErrorEstimator`,
:func:`kde_expectation`, :func:`order_units`, :func:`brainbow_colors`,
:meth:`SelfIntrospector.fit_hidden`) take plain arrays, so they work with hidden states
from any source.

The implementation is split into private modules: ``_vae`` (the InfoVAE and the error
estimator), ``_maps`` (the classifier's error, KDE, unit order and brainbow colours) and
``_introspector`` (:class:`SelfIntrospector`, :class:`TrainingRecorder`); the networks
and the training loop are in :mod:`introspect._selfintro_nets`.
"""

from ._introspector import SelfIntrospector, TrainingRecorder
from ._maps import (
    KDEWindowWarning,
    brainbow_colors,
    classifier_error,
    default_class_colors,
    kde_density,
    kde_expectation,
    order_units,
)
from ._vae import ErrorEstimator, InfoVAE

__all__ = [
    "InfoVAE",
    "ErrorEstimator",
    "SelfIntrospector",
    "TrainingRecorder",
    "classifier_error",
    "kde_density",
    "kde_expectation",
    "KDEWindowWarning",
    "order_units",
    "brainbow_colors",
    "default_class_colors",
]
