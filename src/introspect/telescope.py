"""Array-in / array-out analyses of the functional telescope paper (Lee & Vijayan 2023).

Every function takes NumPy arrays (or array-likes) and returns NumPy arrays; no plotting.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "pca_explained_variance",
    "unit_coords",
    "torus_distance",
    "torus_distance_matrix",
    "unfold",
    "tile_3x3",
    "class_centres",
    "centre_units",
    "distance_to_centres",
    "d_class",
    "bmu_density",
    "cosine_distances",
    "unit_cosine_distances",
    "centre_cosine_distances",
    "bmu_shift",
    "BMU_PAIRINGS",
    "u_matrix",
    "unit_class_counts",
    "unit_majority_class",
    "unit_members",
]


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


# --------------------------------------------------------------------------- grid geometry
def _shape(shape) -> tuple[int, int]:
    m, n = (int(v) for v in shape)
    if m < 1 or n < 1:
        raise ValueError(f"shape must be (m, n) with m, n >= 1, got {shape}.")
    return m, n


def unit_coords(units, shape) -> np.ndarray:
    """Grid coordinates ``(row, col)`` of unit indices (unit ``u`` is at ``divmod(u, n)``).

    Parameters
    ----------
    units : array-like of int, any shape
    shape : (m, n)

    Returns
    -------
    ndarray of shape (*units.shape, 2), float64
    """
    m, n = _shape(shape)
    units = np.asarray(units, dtype=np.int64)
    if units.size and (units.min() < 0 or units.max() >= m * n):
        raise ValueError(f"unit indices must lie in [0, {m * n}) for a {m} x {n} map.")
    return np.stack(np.divmod(units, n), axis=-1).astype(np.float64)


def torus_distance(a, b, shape) -> np.ndarray:
    """Euclidean distance between grid points on an ``m`` x ``n`` torus.

    The shortest distance over the 3 x 3 periodic images (the paper's Fig. 2A): per axis
    the difference is wrapped to ``min(|d| mod m, m - |d| mod m)``. Works for fractional
    coordinates (class centres).

    Parameters
    ----------
    a, b : array-like of shape (..., 2)
        ``(row, col)`` coordinates; broadcast against each other.
    shape : (m, n)

    Returns
    -------
    ndarray of shape broadcast(a, b).shape[:-1]
        Never larger than the half-diagonal ``sqrt((m/2)**2 + (n/2)**2)``.
    """
    m, n = _shape(shape)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1:] != (2,) or b.shape[-1:] != (2,):
        raise ValueError(f"coordinates must have a last axis of size 2, got {a.shape}, {b.shape}.")
    d = np.abs(a - b)
    period = np.array([m, n], dtype=np.float64)
    d = np.mod(d, period)
    d = np.minimum(d, period - d)
    return np.sqrt((d**2).sum(-1))


def torus_distance_matrix(shape) -> np.ndarray:
    """Torus distances between all pairs of units.

    Returns
    -------
    ndarray of shape (m * n, m * n)
    """
    m, n = _shape(shape)
    c = unit_coords(np.arange(m * n), (m, n))
    return torus_distance(c[:, None, :], c[None, :, :], (m, n))


def unfold(coords, reference, shape) -> np.ndarray:
    """Move points to the copy, in the 3 x 3 tiling of the torus, nearest a reference.

    The original map is the centre tile, so the tiling spans ``[-m, 2m) x [-n, 2n)`` in the
    coordinates of the original map (add ``(m, n)`` to draw it on a ``3m x 3n`` canvas).
    ``reference`` itself stays in the centre tile.

    Parameters
    ----------
    coords : array-like of shape (..., 2)
        Points on the original map.
    reference : array-like of shape (2,) or broadcastable to coords
    shape : (m, n)

    Returns
    -------
    ndarray of shape coords.shape
        The moved points; their Euclidean distance to ``reference`` equals the torus
        distance (for points within the map).
    """
    m, n = _shape(shape)
    coords = np.asarray(coords, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    # the centre tile first, so that exact ties (half a period away) keep the point in place
    offsets = np.array([(i * m, j * n) for i in (0, -1, 1) for j in (0, -1, 1)], dtype=np.float64)
    cand = coords[..., None, :] + offsets  # (..., 9, 2)
    d = np.sqrt(((cand - ref[..., None, :]) ** 2).sum(-1))
    best = d.argmin(-1)
    out = np.take_along_axis(cand, best[..., None, None], axis=-2)[..., 0, :]
    return out


def tile_3x3(coords, shape) -> np.ndarray:
    """All 9 periodic copies of points, for drawing the unfolded map (Fig. 2A).

    Parameters
    ----------
    coords : array-like of shape (k, 2)
    shape : (m, n)

    Returns
    -------
    ndarray of shape (9 * k, 2)
        Coordinates on the ``3m x 3n`` canvas whose centre tile ``[m, 2m) x [n, 2n)`` is the
        original map; copy ``t`` of point ``i`` is row ``t * k + i``.
    """
    m, n = _shape(shape)
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    offsets = np.array([(i * m, j * n) for i in (0, 1, 2) for j in (0, 1, 2)], dtype=np.float64)
    return (offsets[:, None, :] + coords[None, :, :]).reshape(-1, 2)


# --------------------------------------------------------------------------- class centres
def _bmus_2d(bmus) -> np.ndarray:
    bmus = np.asarray(bmus, dtype=np.int64)
    if bmus.ndim == 1:
        bmus = bmus[:, None]
    if bmus.ndim != 2:
        raise ValueError(f"bmus must be (n_samples,) or (n_samples, k), got shape {bmus.shape}.")
    return bmus


def class_centres(bmus, labels, shape, classes=None) -> np.ndarray:
    """Class centres on the torus, by the rule of the paper (Sect. 2.4, PAPERS.md).

    For each class: the unit chosen most often as a BMU of the class's inputs (ties: the
    lowest unit index); every BMU of the class is moved to the copy of the 3 x 3 tiling
    nearest that unit; the centre is the mean of the moved coordinates, wrapped back onto
    the map. A class whose BMUs straddle the seam thus gets its centre on the seam.

    Parameters
    ----------
    bmus : array-like of int, shape (n_samples,) or (n_samples, k)
        BMU unit indices of each input (the paper uses the top-10 BMUs).
    labels : array-like of int, shape (n_samples,)
    shape : (m, n)
    classes : array-like of int, optional
        The classes to compute (default: ``np.unique(labels)``), in that order.

    Returns
    -------
    ndarray of shape (n_classes, 2), float64
        ``(row, col)`` of each centre, in ``[0, m) x [0, n)``; NaN for a class without
        inputs.
    """
    m, n = _shape(shape)
    bmus = _bmus_2d(bmus)
    labels = np.asarray(labels)
    if labels.shape != (bmus.shape[0],):
        raise ValueError(f"labels must have shape ({bmus.shape[0]},), got {labels.shape}.")
    classes = np.unique(labels) if classes is None else np.asarray(classes)
    out = np.full((len(classes), 2), np.nan)
    for i, c in enumerate(classes):
        units = bmus[labels == c].ravel()
        if units.size == 0:
            continue
        mode = int(np.bincount(units, minlength=m * n).argmax())
        ref = unit_coords(mode, (m, n))
        moved = unfold(unit_coords(units, (m, n)), ref, (m, n))
        out[i] = np.mod(moved.mean(0), [m, n])
    return out


def centre_units(centres, shape) -> np.ndarray:
    """The unit nearest each (fractional) centre on the torus.

    Used to pick the weights "at" class centres (Figs. 8, 10).

    Parameters
    ----------
    centres : array-like of shape (n_centres, 2)
    shape : (m, n)

    Returns
    -------
    ndarray of shape (n_centres,), int64
    """
    m, n = _shape(shape)
    c = np.asarray(centres, dtype=np.float64)
    if np.isnan(c).any():
        raise ValueError("centres contain NaN (a class without inputs); drop it first.")
    all_units = unit_coords(np.arange(m * n), (m, n))
    d = torus_distance(c[:, None, :], all_units[None, :, :], (m, n))
    return d.argmin(1).astype(np.int64)


def distance_to_centres(bmus, labels, centres, shape, classes=None) -> np.ndarray:
    """Mean torus distance from each input's BMUs to the centre of its class.

    Parameters
    ----------
    bmus : array-like of int, shape (n_samples,) or (n_samples, k)
    labels : array-like of int, shape (n_samples,)
        The class whose centre is used (the true label; pass predictions to measure
        distances to the predicted class's centre).
    centres : array-like of shape (n_classes, 2)
        From :func:`class_centres`, in the order of ``classes``.
    shape : (m, n)
    classes : array-like, optional
        The class of each row of ``centres`` (default ``0 .. n_classes - 1``).

    Returns
    -------
    ndarray of shape (n_samples,)
    """
    m, n = _shape(shape)
    bmus = _bmus_2d(bmus)
    labels = np.asarray(labels)
    centres = np.asarray(centres, dtype=np.float64)
    classes = np.arange(len(centres)) if classes is None else np.asarray(classes)
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    try:
        rows = np.array([lookup[c] for c in labels.tolist()], dtype=np.int64)
    except KeyError as e:
        raise ValueError(f"label {e.args[0]!r} has no centre; pass its class in classes.") from e
    coords = unit_coords(bmus, (m, n))  # (N, k, 2)
    d = torus_distance(coords, centres[rows][:, None, :], (m, n))
    return d.mean(1)


def d_class(bmus, labels, shape, centres=None, classes=None) -> np.ndarray:
    """D_class: mean torus distance from a class's BMUs to its class centre.

    Parameters
    ----------
    bmus : array-like of int, shape (n_samples,) or (n_samples, k)
    labels : array-like, shape (n_samples,)
    shape : (m, n)
    centres : array-like of shape (n_classes, 2), optional
        Default: the centres of these BMUs (:func:`class_centres`). For SOM-val pass the
        centres found on SOM-tr, as the paper does.
    classes : array-like, optional
        Classes of the rows of ``centres`` / of the output (default ``np.unique(labels)``
        when ``centres`` is None, else ``0 .. n_classes - 1``).

    Returns
    -------
    ndarray of shape (n_classes,)
        NaN for a class without inputs.
    """
    labels = np.asarray(labels)
    if centres is None:
        classes = np.unique(labels) if classes is None else np.asarray(classes)
        centres = class_centres(bmus, labels, shape, classes=classes)
    else:
        centres = np.asarray(centres, dtype=np.float64)
        classes = np.arange(len(centres)) if classes is None else np.asarray(classes)
    per_input = distance_to_centres(bmus, labels, centres, shape, classes=classes)
    out = np.full(len(classes), np.nan)
    for i, c in enumerate(classes):
        sel = labels == c
        if sel.any():
            out[i] = per_input[sel].mean()
    return out


# --------------------------------------------------------------------------- density
def bmu_density(bmus, shape, bandwidth: float = 1.0, resolution: int = 1) -> np.ndarray:
    """Density of BMUs on the torus by a periodic Gaussian kernel density estimate.

    Each BMU contributes an isotropic Gaussian of standard deviation ``bandwidth`` (grid
    units) of the torus distance, i.e. the sum over its nearest periodic image; the result
    integrates to 1 over the map's area (``m * n`` square units), so a uniform spread of
    BMUs gives ``1 / (m * n)`` everywhere (the paper notes "the density per area is very
    low").

    Parameters
    ----------
    bmus : array-like of int, any shape
        Unit indices (all BMUs are pooled, e.g. the top-10 of every input).
    shape : (m, n)
    bandwidth : float, default=1.0
        Kernel standard deviation in grid units; keep it below ``min(m, n) / 4`` so the
        nearest image dominates.
    resolution : int, default=1
        Evaluation points per grid unit along each axis; the density is evaluated at
        ``(i / resolution, j / resolution)``.

    Returns
    -------
    ndarray of shape (m * resolution, n * resolution)
    """
    m, n = _shape(shape)
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}.")
    r = int(resolution)
    if r < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}.")
    units = np.asarray(bmus, dtype=np.int64).ravel()
    if units.size == 0:
        raise ValueError("bmus is empty.")
    counts = np.bincount(units, minlength=m * n).astype(np.float64)
    used = np.flatnonzero(counts)
    pts = unit_coords(used, (m, n))
    gy, gx = np.meshgrid(np.arange(m * r) / r, np.arange(n * r) / r, indexing="ij")
    grid = np.stack([gy.ravel(), gx.ravel()], axis=-1)
    d = torus_distance(grid[:, None, :], pts[None, :, :], (m, n))
    k = np.exp(-0.5 * (d / bandwidth) ** 2) @ counts[used]
    dens = k.reshape(m * r, n * r)
    # normalise so that the density integrates to 1 over the area (cell area 1 / r^2)
    return dens / (dens.sum() / r**2)


# --------------------------------------------------------------------------- weights
def cosine_distances(A, B=None) -> np.ndarray:
    """Cosine distances ``1 - cos`` between the rows of ``A`` and of ``B`` (default ``A``).

    Returns
    -------
    ndarray of shape (len(A), len(B)), float64
    """
    A = np.asarray(A, dtype=np.float64)
    B = A if B is None else np.asarray(B, dtype=np.float64)
    na = np.linalg.norm(A, axis=1)
    nb = np.linalg.norm(B, axis=1)
    if (na == 0).any() or (nb == 0).any():
        raise ValueError("cosine distance is undefined for all-zero vectors.")
    d = 1.0 - (A / na[:, None]) @ (B / nb[:, None]).T
    return np.clip(d, 0.0, 2.0)


def unit_cosine_distances(weights) -> np.ndarray:
    """Cosine distances between all pairs of SOM units (Fig. 7C/D).

    Parameters
    ----------
    weights : array-like of shape (n_units, n_features)

    Returns
    -------
    ndarray of shape (n_units * (n_units - 1) / 2,)
        The pairs ``i < j`` (the condensed form of :func:`scipy.spatial.distance.pdist`).
    """
    d = cosine_distances(weights)
    iu = np.triu_indices(d.shape[0], k=1)
    return d[iu]


def centre_cosine_distances(weights, units) -> np.ndarray:
    """Cosine distances between the weights of the units at class centres (Figs. 8, 10).

    Parameters
    ----------
    weights : array-like of shape (n_units, n_features)
    units : array-like of int, shape (n_centres,)
        Units at the class centres (:func:`centre_units`).

    Returns
    -------
    ndarray of shape (n_centres * (n_centres - 1) / 2,)
        Pairs ``i < j`` of centres.
    """
    weights = np.asarray(weights)
    return unit_cosine_distances(weights[np.asarray(units, dtype=np.int64)])


BMU_PAIRINGS = ("rank", "top1", "set")


def bmu_shift(bmus_clean, bmus_perturbed, shape, pairing: str = "rank") -> np.ndarray:
    """Torus distance between the clean and perturbed BMUs of the same inputs (Fig. 11).

    Parameters
    ----------
    bmus_clean, bmus_perturbed : array-like of int, shape (n_samples, k)
        The top-k BMUs of each input, best first.
    shape : (m, n)
    pairing : {"rank", "top1", "set"}, default="rank"
        How the two lists of k units are compared:

        - ``"rank"``: the ``j``-th nearest unit of the clean input against the ``j``-th
          nearest unit of its perturbed version ("10 pairs of BMUs", the paper's reading).
          A mere re-ordering of near-tied units counts as a shift, so even an
          imperceptible perturbation shows one.
        - ``"top1"``: the best BMU of the clean input against the best BMU of the
          perturbed one; 0 while the winner stays, whatever the other k - 1 do.
        - ``"set"``: a distance between the two sets of k units, blind to their order:
          the symmetrised mean nearest-unit distance (the "average Hausdorff" or chamfer
          distance) ``(mean_i min_j d(a_i, b_j) + mean_j min_i d(b_j, a_i)) / 2``, with
          ``d`` the torus distance. 0 when the sets are equal; ``t`` when every unit moves
          by the same translation ``t`` (for ``t`` smaller than half the spacing of the
          set's units, so each unit's nearest partner is its own image).

    Returns
    -------
    ndarray
        ``(n_samples, k)`` for ``"rank"`` (one distance per pair); ``(n_samples,)`` for
        ``"top1"`` and ``"set"`` (one distance per input).
    """
    if pairing not in BMU_PAIRINGS:
        raise ValueError(f"pairing must be one of {BMU_PAIRINGS}; got {pairing!r}.")
    a = _bmus_2d(bmus_clean)
    b = _bmus_2d(bmus_perturbed)
    if a.shape != b.shape:
        raise ValueError(f"clean and perturbed BMUs differ in shape: {a.shape} vs {b.shape}.")
    ca, cb = unit_coords(a, shape), unit_coords(b, shape)
    if pairing == "rank":
        return torus_distance(ca, cb, shape)
    if pairing == "top1":
        return torus_distance(ca[:, 0], cb[:, 0], shape)
    d = torus_distance(ca[:, :, None, :], cb[:, None, :, :], shape)  # (N, k, k)
    return 0.5 * (d.min(2).mean(1) + d.min(1).mean(1))


def u_matrix(weights, shape, metric: str = "cosine", periodic: bool = True) -> np.ndarray:
    """Mean distance from each unit's weights to those of its 8 grid neighbours.

    Parameters
    ----------
    weights : array-like of shape (m * n, n_features)
    shape : (m, n)
    metric : {"cosine", "euclidean"}
    periodic : bool, default=True
        Neighbours wrap around the torus; otherwise border units have fewer neighbours.

    Returns
    -------
    ndarray of shape (m, n)
    """
    m, n = _shape(shape)
    W = np.asarray(weights, dtype=np.float64)
    if W.shape[0] != m * n:
        raise ValueError(f"weights has {W.shape[0]} rows, expected m * n = {m * n}.")
    if metric == "cosine":
        norms = np.linalg.norm(W, axis=1, keepdims=True)
        Wn = W / np.where(norms == 0, 1.0, norms)
    elif metric != "euclidean":
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}.")
    grid = W.reshape(m, n, -1) if metric == "euclidean" else Wn.reshape(m, n, -1)
    total = np.zeros((m, n))
    count = np.zeros((m, n))
    rows, cols = np.arange(m)[:, None], np.arange(n)[None, :]
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr == 0 and dc == 0:
                continue
            r2, c2 = rows + dr, cols + dc
            if periodic:
                valid = np.ones((m, n), bool)
                r2, c2 = r2 % m, c2 % n
            else:
                valid = (r2 >= 0) & (r2 < m) & (c2 >= 0) & (c2 < n)
                r2, c2 = np.clip(r2, 0, m - 1), np.clip(c2, 0, n - 1)
            r2, c2 = np.broadcast_arrays(r2, c2)
            other = grid[r2, c2]
            if metric == "cosine":
                d = 1.0 - (grid * other).sum(-1)
            else:
                d = np.linalg.norm(grid - other, axis=-1)
            total += np.where(valid, d, 0.0)
            count += valid
    return total / np.maximum(count, 1)


# --------------------------------------------------------------------------- unit statistics
def unit_class_counts(bmus, labels, shape, n_classes: int | None = None) -> np.ndarray:
    """How many inputs of each class have each unit as their best-matching unit.

    Only the top-1 BMU of an input counts, so every input is counted once:
    ``counts.sum() == n_samples``, ``counts.sum(-1)`` is the BMU hit map (the "density"
    a SOM viewer colours by) and ``counts[r, c]`` the class mix of unit ``(r, c)``.

    Parameters
    ----------
    bmus : array-like of int, shape (n_samples,) or (n_samples, k)
        BMU unit indices, best first (column 0 is used).
    labels : array-like of int, shape (n_samples,)
    shape : (m, n)
    n_classes : int, optional
        Default ``labels.max() + 1``.

    Returns
    -------
    ndarray of shape (m, n, n_classes), int64
    """
    m, n = _shape(shape)
    top1 = _bmus_2d(bmus)[:, 0]
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != top1.shape:
        raise ValueError(f"labels must have shape ({top1.shape[0]},), got {labels.shape}.")
    if top1.size and (top1.min() < 0 or top1.max() >= m * n):
        raise ValueError(
            f"BMU unit indices must be in [0, {m * n}); got {top1.min()}..{top1.max()}."
        )
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be non-negative class numbers.")
    k = int(n_classes) if n_classes is not None else (int(labels.max()) + 1 if labels.size else 0)
    if labels.size and labels.max() >= k:
        raise ValueError(f"label {labels.max()} is out of range for n_classes={k}.")
    counts = np.zeros((m * n, k), dtype=np.int64)
    np.add.at(counts, (top1, labels), 1)
    return counts.reshape(m, n, k)


def unit_majority_class(counts) -> np.ndarray:
    """The most frequent class of each unit (ties: the lowest class), NaN for empty units.

    Parameters
    ----------
    counts : array-like of shape (m, n, n_classes)
        From :func:`unit_class_counts`.

    Returns
    -------
    ndarray of shape (m, n), float64
    """
    counts = np.asarray(counts)
    if counts.ndim != 3:
        raise ValueError(f"counts must be (m, n, n_classes), got shape {counts.shape}.")
    out = counts.argmax(-1).astype(np.float64)
    out[counts.sum(-1) == 0] = np.nan
    return out


def unit_members(bmus, unit: int) -> np.ndarray:
    """Indices of the inputs whose top-1 BMU is ``unit``, ascending.

    Parameters
    ----------
    bmus : array-like of int, shape (n_samples,) or (n_samples, k)
    unit : int
        Unit index (row ``unit // n``, column ``unit % n``).

    Returns
    -------
    ndarray of shape (n_members,), int64
    """
    return np.flatnonzero(_bmus_2d(bmus)[:, 0] == int(unit)).astype(np.int64)
