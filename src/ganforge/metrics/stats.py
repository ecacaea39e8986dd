"""The numbers behind FID, KID, IS, precision/recall and density/coverage.

Pure functions of feature arrays: features are ``[N, d]`` (one row per image, from whatever
feature network the caller chose), class probabilities are ``[N, K]``. Inputs may be NumPy arrays
or torch tensors on any device; they are converted to NumPy float64, because FID and KID subtract
large, nearly equal sums and lose digits in float32. No file I/O, no printing, no networks.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = [
    "density_coverage",
    "feature_stats",
    "fid_from_features",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "precision_recall",
]


def _as_float64(x: Any, name: str, ndim: int = 2) -> np.ndarray:
    """``x`` (array or tensor) as a finite float64 NumPy array with ``ndim`` dimensions."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != ndim:
        shape = "[N, d]" if ndim == 2 else "[d]"
        raise ValueError(f"{name} must be {shape} ({ndim}-D), got shape {tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf; check the features that produced it")
    return array


def _same_width(real: np.ndarray, fake: np.ndarray) -> None:
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real and fake features differ in width: {real.shape[1]} vs {fake.shape[1]}; "
            "extract both with the same feature network"
        )


# ----------------------------------------------------------------------------------------------
# FID


def feature_stats(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[d]`` and unbiased covariance ``[d, d]`` (float64) of features ``[N, d]``, N >= 2.

    Rows are samples (``rowvar=False`` in NumPy's terms); the covariance divides by ``N - 1``,
    as ``np.cov`` and the reference FID implementations do.
    """
    x = _as_float64(features, "features")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"feature_stats needs at least 2 samples for a covariance, got {n}")
    mu = x.mean(axis=0)
    centered = x - mu
    sigma = centered.T @ centered / (n - 1)
    return mu, sigma


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr((sigma1 sigma2)^{1/2})`` for symmetric positive semi-definite ``[d, d]`` inputs.

    ``sigma1 sigma2`` is not symmetric, and a general matrix square root of it (``sqrtm``) can
    come back complex or non-finite when a covariance is singular. It is similar to the symmetric
    PSD ``S1^{1/2} sigma2 S1^{1/2}``, so both have the same eigenvalues; those come from a
    symmetric eigensolver, real by construction, and rounding below zero is clipped.
    """
    eigvals, eigvecs = np.linalg.eigh(sigma1)
    # half = V diag(sqrt(w)): S1^{1/2} = half @ V.T, and half.T @ sigma2 @ half is
    # S1^{1/2} sigma2 S1^{1/2} rotated by the orthogonal V, which keeps its eigenvalues.
    half = eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))
    inner = half.T @ sigma2 @ half
    inner = 0.5 * (inner + inner.T)
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0.0, None)).sum())


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, *, eps: float = 1e-6) -> float:
    """Frechet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    ``||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^{1/2})`` with means ``[d]`` and
    covariances ``[d, d]``. The trace of the square root is taken from the eigenvalues of
    ``S1^{1/2} S2 S1^{1/2}``, which equal those of ``S1 S2``: this matches the
    ``scipy.linalg.sqrtm`` route of pytorch-fid and torch-fidelity on well-conditioned covariances
    and stays finite and real on singular ones. ``eps`` (default 1e-6, the offset of the reference
    implementations) is added to both diagonals only if the eigensolver fails to converge. The
    result is >= 0: rounding below zero is clamped.
    """
    mu1, mu2 = _as_float64(mu1, "mu1", ndim=1), _as_float64(mu2, "mu2", ndim=1)
    sigma1, sigma2 = _as_float64(sigma1, "sigma1"), _as_float64(sigma2, "sigma2")
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"expected means [d] and covariances [d, d] with one d, got mu1 {mu1.shape}, "
            f"sigma1 {sigma1.shape}, mu2 {mu2.shape}, sigma2 {sigma2.shape}"
        )
    # Covariances accumulated in float32 elsewhere can be asymmetric in the last digits; the
    # symmetric solvers would silently read only one triangle.
    sigma1, sigma2 = 0.5 * (sigma1 + sigma1.T), 0.5 * (sigma2 + sigma2.T)
    try:
        tr_sqrt = _trace_sqrt_product(sigma1, sigma2)
    except np.linalg.LinAlgError:
        warnings.warn(
            f"eigendecomposition for FID did not converge; retrying with {eps} added to the "
            "covariance diagonals",
            UserWarning,
            stacklevel=2,
        )
        offset = eps * np.eye(d)
        tr_sqrt = _trace_sqrt_product(sigma1 + offset, sigma2 + offset)
    diff = mu1 - mu2
    fid = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_sqrt
    return max(float(fid), 0.0)


def fid_from_features(real: Any, fake: Any) -> float:
    """FID between real and fake features, each ``[N, d]`` (N may differ between the two).

    With ``N <= d`` a covariance has rank < d (singular): the value is still finite but biased,
    and a ``UserWarning`` says so. FID is biased upwards at any finite N, so only compare figures
    computed with the same N and feature network.
    """
    real, fake = _as_float64(real, "real"), _as_float64(fake, "fake")
    _same_width(real, fake)
    for name, x in (("real", real), ("fake", fake)):
        n, d = x.shape
        if n <= d:
            warnings.warn(
                f"FID from {n} {name} samples of {d}-dimensional features: with n <= d the "
                "covariance is singular, so FID is computed from singular covariances and is "
                f"biased; use more than {d} samples per set for a comparable figure",
                UserWarning,
                stacklevel=2,
            )
    return frechet_distance(*feature_stats(real), *feature_stats(fake))


# ----------------------------------------------------------------------------------------------
# KID


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``k(a, b) = (a.b / d + 1)^3`` for all rows of ``x [m, d]`` and ``y [n, d]``: ``[m, n]``."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased estimate of MMD^2 between equally sized samples ``x`` and ``y`` ``[m, d]``.

    ``k(x_i, x_i)`` pairs a point with itself; counting them (the V-statistic) adds a positive
    bias of order 1/m, so the within-set sums skip the diagonals and divide by m (m - 1). The
    cross term pairs independent points only and keeps all m^2 terms.
    """
    m = x.shape[0]
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    within = k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)
    return float(within / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    real: Any, fake: Any, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): ``(mean, std)`` of unbiased MMD^2 over random subsets.

    ``real [N, d]`` and ``fake [M, d]``; the kernel is the cubic polynomial
    ``k(x, y) = (x.y / d + 1)^3``. Each of ``subsets`` rounds draws ``subset_size`` rows of each
    set without replacement (clipped to ``min(N, M)``) and computes the unbiased MMD^2; the
    defaults, 100 subsets of 1,000, follow the reference implementations (Binkowski et al.'s code,
    torch-fidelity) so figures are comparable. Subsets come from ``np.random.RandomState(seed)``,
    real then fake in each round, as in torch-fidelity, so a seed gives the same result every
    time. ``std`` is the spread across subsets (ddof = 0, as the references), not a standard error.
    """
    real, fake = _as_float64(real, "real"), _as_float64(fake, "fake")
    _same_width(real, fake)
    size = min(subset_size, real.shape[0], fake.shape[0])
    if subsets < 1 or size < 2:
        raise ValueError(
            f"KID needs subsets >= 1 and at least 2 samples per subset, got subsets={subsets}, "
            f"subset size {size} (subset_size={subset_size}, N={len(real)}, M={len(fake)})"
        )
    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        x = real[rng.choice(len(real), size, replace=False)]
        y = fake[rng.choice(len(fake), size, replace=False)]
        mmds[i] = _unbiased_mmd2(x, y)
    return float(mmds.mean()), float(mmds.std())


# ----------------------------------------------------------------------------------------------
# IS


def inception_score(probs: Any, *, splits: int = 10) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016): ``(mean, std)`` over ``splits`` splits.

    ``probs [N, K]``: class probabilities p(y|x), rows summing to 1 (softmax of the classifier's
    logits). Per split, ``IS = exp(mean_x KL(p(y|x) || p(y)))`` with p(y) the split's mean row;
    it ranges from 1 (every row equal) to K (confident and uniformly spread). The splits are
    consecutive runs of rows (boundaries at ``i * N // splits``), as in the original code; 10 is
    its default. Pass rows in random order. ``std`` has ddof = 0, as the references.
    """
    p = _as_float64(probs, "probs")
    n = p.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"splits must be between 1 and N = {n}, got {splits}")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError(
            "probs must hold class probabilities (non-negative rows summing to 1); "
            "apply softmax to logits first"
        )
    scores = np.empty(splits)
    for i in range(splits):
        chunk = p[i * n // splits : (i + 1) * n // splits]
        marginal = chunk.mean(axis=0, keepdims=True)
        # 0 log 0 = 0: where p(y|x) = 0 the ratio is set to 1. Where p(y|x) > 0, p(y) > 0 too.
        ratio = np.divide(chunk, marginal, out=np.ones_like(chunk), where=chunk > 0)
        scores[i] = np.exp((chunk * np.log(ratio)).sum(axis=1).mean())
    return float(scores.mean()), float(scores.std())


# ----------------------------------------------------------------------------------------------
# k-NN manifolds: precision/recall and density/coverage


def _distance_inputs(real: Any, fake: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and fake features as float32 tensors, both shifted by the real mean."""
    real, fake = _as_float64(real, "real"), _as_float64(fake, "fake")
    _same_width(real, fake)
    # Distances are unchanged by a shift. Centering in float64 before the cast keeps the norms
    # small relative to the distances, so |a|^2 - 2 a.b + |b|^2 in float32 does not cancel away
    # the distance between nearby points. float32 halves time and memory of the big matmuls.
    center = real.mean(axis=0)
    return torch.from_numpy(real - center).float(), torch.from_numpy(fake - center).float()


def _sq_distance_blocks(
    rows: torch.Tensor, cols: torch.Tensor, batch_size: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, block)``: squared distances ``[b, len(cols)]`` of rows ``start:start+b``.

    One block holds ``batch_size * len(cols)`` float32 values: 400 MB for 10,000 x 10,000.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    col_norms = cols.square().sum(dim=1)
    for start in range(0, rows.shape[0], batch_size):
        batch = rows[start : start + batch_size]
        block = batch @ cols.T
        block.mul_(-2.0).add_(batch.square().sum(dim=1, keepdim=True)).add_(col_norms)
        yield start, block.clamp_min_(0.0)


def _knn_sq_radii(x: torch.Tensor, k: int, batch_size: int) -> torch.Tensor:
    """Squared distance ``[n]`` from each row of ``x`` to its k-th nearest other row."""
    n = x.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError(
            f"k must be between 1 and N - 1 = {n - 1} (a point is not its own neighbour), got k={k}"
        )
    radii = torch.empty(n)
    for start, block in _sq_distance_blocks(x, x, batch_size):
        rows = torch.arange(block.shape[0])
        # The point itself is excluded by position, not by a distance of 0, so duplicates of
        # it still count as neighbours (as they do in the references).
        block[rows, start + rows] = float("inf")
        radii[start : start + len(rows)] = block.topk(k, dim=1, largest=False).values[:, -1]
    return radii


def _fraction_inside(
    points: torch.Tensor, ref: torch.Tensor, ref_sq_radii: torch.Tensor, batch_size: int
) -> float:
    """Fraction of ``points`` within distance r_i (inclusive) of some ``ref`` row i."""
    inside = 0
    for _, block in _sq_distance_blocks(points, ref, batch_size):
        inside += int((block <= ref_sq_radii).any(dim=1).count_nonzero())
    return inside / points.shape[0]


def precision_recall(
    real: Any, fake: Any, *, k: int = 3, batch_size: int = 10000
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): ``(precision, recall)``.

    ``real [N, d]``, ``fake [M, d]``. Each set's manifold is the union of balls around its points,
    the radius being the distance to the point's k-th nearest neighbour in the same set (itself
    excluded). Precision is the fraction of fake samples inside the real manifold, recall the
    fraction of real samples inside the fake manifold; a point on a ball's boundary is inside, as
    in the authors' code. ``k = 3`` is the paper's choice. Distances are computed ``batch_size``
    rows at a time (float32, about ``5 * batch_size * max(N, M)`` bytes per block: roughly
    500 MB at 10,000 x 10,000, whatever d); ``batch_size`` changes only float32 rounding, which
    matters for points exactly on a ball's boundary.
    """
    real_t, fake_t = _distance_inputs(real, fake)
    real_radii = _knn_sq_radii(real_t, k, batch_size)
    fake_radii = _knn_sq_radii(fake_t, k, batch_size)
    precision = _fraction_inside(fake_t, real_t, real_radii, batch_size)
    recall = _fraction_inside(real_t, fake_t, fake_radii, batch_size)
    return precision, recall


def density_coverage(
    real: Any, fake: Any, *, k: int = 5, batch_size: int = 10000
) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020): ``(density, coverage)``.

    ``real [N, d]``, ``fake [M, d]``; only real points get balls, of radius r_i = distance to the
    k-th nearest other real point. ``density = sum_j sum_i 1[fake_j in ball_i] / (k M)`` counts
    how many real balls hold each fake sample (about 1 when the two distributions match, and it
    can exceed 1); ``coverage`` is the fraction of real balls holding at least one fake sample.
    Balls are open (distance < r_i), as in the authors' code; ``k = 5`` is the paper's choice.
    Batching and memory as in `precision_recall`.
    """
    real_t, fake_t = _distance_inputs(real, fake)
    real_radii = _knn_sq_radii(real_t, k, batch_size)
    balls_holding, covered = 0, 0
    # Real points as rows, as for the radii: when fake equals real, a ball's k-th neighbour then
    # gets bit-identical distances in both passes and stays on the (open) boundary, outside.
    for start, block in _sq_distance_blocks(real_t, fake_t, batch_size):
        inside = block < real_radii[start : start + block.shape[0], None]
        balls_holding += int(inside.count_nonzero())
        covered += int(inside.any(dim=1).count_nonzero())
    return balls_holding / (k * fake_t.shape[0]), covered / real_t.shape[0]
