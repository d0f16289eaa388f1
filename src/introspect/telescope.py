"""Array-in / array-out analyses of the functional telescope paper (Lee & Vijayan 2023).

Every function takes NumPy arrays (or array-likes) and returns NumPy arrays; no plotting.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pca_explained_variance"]


def pca_explained_variance(X, n_components: int = 30) -> np.ndarray:
    """Explained-variance ratio of the top principal axes of a set of codes.

    PCA is run on the raw codes, centred (mean subtracted per feature) but not
    standardised: the paper applies PCA to the vector codes as they are, so features with
    larger variance weigh more.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Codes of one layer (e.g. vector codes of CL1).
    n_components : int, default=30
        Number of principal axes to return. Clipped to ``min(n_samples, n_features)``.

    Returns
    -------
    ndarray of shape (n_components,)
        Fraction of the total variance explained by each of the top axes, in decreasing
        order (not cumulative; use ``np.cumsum`` for the curve of the paper's Fig. 3).
    """
    from sklearn.decomposition import PCA

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}.")
    if X.shape[0] < 2:
        raise ValueError(f"PCA needs at least 2 samples; got {X.shape[0]}.")
    k = int(min(n_components, X.shape[0], X.shape[1]))
    if k < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components}.")
    pca = PCA(n_components=k, svd_solver="auto", random_state=0)
    pca.fit(X)
    return pca.explained_variance_ratio_.astype(np.float64)
