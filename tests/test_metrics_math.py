"""The numerical core of the metrics, checked against values a reader can work out by hand:
closed forms for Gaussians, a direct sqrtm formula, one-hot Inception Scores, 1-D point sets."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from ganforge.metrics import (
    density_coverage,
    feature_stats,
    fid_from_features,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)


def gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def with_exact_stats(mu: np.ndarray, variances: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` samples whose sample mean is exactly ``mu`` and sample covariance diag(variances)."""
    z = gaussian(n, len(mu), seed)
    z -= z.mean(axis=0)
    chol = np.linalg.cholesky(z.T @ z / (n - 1))
    white = np.linalg.solve(chol, z.T).T  # sample covariance I
    return mu + white * np.sqrt(variances)


def random_covariance(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(d, 2 * d))
    return a @ a.T / (2 * d) + 0.5 * np.eye(d)  # eigenvalues roughly in [0.5, 3.5]


# ------------------------------------------------------------------------------------------ FID


def test_feature_stats_match_numpy_and_accept_tensors():
    x = gaussian(50, 3, seed=0)
    mu, sigma = feature_stats(torch.from_numpy(x).float())
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (3, 3)
    np.testing.assert_allclose(mu, x.astype(np.float32).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float32), rowvar=False), rtol=1e-5)


def test_fid_of_a_set_with_itself_is_zero():
    x = gaussian(200, 8, seed=0)
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_matches_the_closed_form_for_commuting_covariances():
    # With S1 = Q diag(a) Q^T and S2 = Q diag(b) Q^T, S1 S2 = Q diag(ab) Q^T, so
    # Tr((S1 S2)^{1/2}) = sum sqrt(a_i b_i) and FID = |mu1 - mu2|^2 + sum (sqrt a_i - sqrt b_i)^2.
    rng = np.random.default_rng(1)
    d = 16
    a, b = rng.uniform(0.1, 4.0, d), rng.uniform(0.1, 4.0, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    rotated = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-9)


def test_fid_from_features_matches_the_closed_form_of_the_sample_statistics():
    # Samples built to have sample mean mu and sample covariance diag(a) exactly.
    mu1, a = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 4.0, 0.25, 9.0])
    mu2, b = np.array([1.0, 1.0, 0.0, 0.5]), np.array([4.0, 1.0, 1.0, 9.0])
    real, fake = with_exact_stats(mu1, a, 500, seed=2), with_exact_stats(mu2, b, 300, seed=3)
    # |mu1 - mu2|^2 = 1 + 0 + 4 + 0 = 5; sum (sqrt a - sqrt b)^2 = 1 + 1 + 0.25 + 0 = 2.25
    assert fid_from_features(real, fake) == pytest.approx(7.25, rel=1e-9)


def test_frechet_distance_agrees_with_the_sqrtm_formula():
    rng = np.random.default_rng(4)
    d = 64
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_covariance(d, rng), random_covariance(d, rng)
    # The pytorch-fid / torch-fidelity formula, written out directly.
    reference = (
        (mu1 - mu2) @ (mu1 - mu2)
        + np.trace(s1)
        + np.trace(s2)
        - 2.0 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    )
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-6)
    # Same means: FID is then only the covariance term, the harder case for cancellation.
    reference_same_mean = reference - (mu1 - mu2) @ (mu1 - mu2)
    assert frechet_distance(mu1, s1, mu1, s2) == pytest.approx(reference_same_mean, rel=1e-6)


def test_fid_on_singular_covariances_is_finite_and_warns():
    real, fake = gaussian(20, 64, seed=5), gaussian(20, 64, seed=6)  # n <= d: rank 19 of 64
    with pytest.warns(UserWarning, match="singular"):
        fid = fid_from_features(real, fake)
    assert np.isfinite(fid) and fid >= 0.0
    with pytest.warns(UserWarning, match="singular"):
        itself = fid_from_features(real, real)
    assert itself == pytest.approx(0.0, abs=1e-6 * np.trace(np.cov(real, rowvar=False)))


def test_fid_rejects_mismatched_widths():
    with pytest.raises(ValueError, match="differ in width"):
        fid_from_features(gaussian(10, 3, seed=0), gaussian(10, 4, seed=0))


# ------------------------------------------------------------------------------------------ KID


def test_kid_of_two_samples_of_one_distribution_is_near_zero():
    # 50 subsets of 100 out of 5,000 overlap little, so std / sqrt(50) is close to the standard
    # error of the mean, and 3 of them bounds an estimator whose expectation is 0.
    real, fake = gaussian(5000, 16, seed=7), gaussian(5000, 16, seed=8)
    mean, std = kernel_inception_distance(real, fake, subsets=50, subset_size=100)
    assert abs(mean) < 3 * std / np.sqrt(50)


def test_kid_estimator_is_unbiased_where_the_v_statistic_is_not():
    # Many independent draws of 10 points from one distribution: the unbiased estimator averages
    # to ~0, while the V-statistic (diagonal k(x, x) terms kept) is positive by about
    # 2 (E k(x, x) - E k(x, x')) / m.
    rng = np.random.default_rng(9)
    m, d, draws = 10, 4, 2000

    def kernel(a, b):
        return (a @ b.T / d + 1.0) ** 3

    unbiased, biased = np.empty(draws), np.empty(draws)
    for i in range(draws):
        x, y = rng.normal(size=(m, d)), rng.normal(size=(m, d))
        unbiased[i] = kernel_inception_distance(x, y, subsets=1, subset_size=m)[0]
        biased[i] = kernel(x, x).mean() + kernel(y, y).mean() - 2.0 * kernel(x, y).mean()
    stderr = unbiased.std() / np.sqrt(draws)
    assert abs(unbiased.mean()) < 3 * stderr
    assert biased.mean() > 20 * stderr


def test_kid_matches_the_unbiased_formula_on_one_subset():
    x, y = gaussian(6, 3, seed=10), gaussian(6, 3, seed=11, shift=0.5)
    k = lambda a, b: (a @ b.T / 3 + 1.0) ** 3  # noqa: E731
    off_diagonal = ~np.eye(6, dtype=bool)
    expected = k(x, x)[off_diagonal].mean() + k(y, y)[off_diagonal].mean() - 2 * k(x, y).mean()
    mean, std = kernel_inception_distance(x, y, subsets=3, subset_size=6)
    assert mean == pytest.approx(expected, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_kid_of_different_distributions_is_clearly_positive_and_seeded():
    real, fake = gaussian(2000, 16, seed=12), gaussian(2000, 16, seed=13, shift=0.5)
    mean, std = kernel_inception_distance(real, fake, subsets=20, subset_size=200)
    assert mean > 0.5 and mean > 10 * std / np.sqrt(20)
    assert kernel_inception_distance(real, fake, subsets=20, subset_size=200) == (mean, std)
    assert kernel_inception_distance(real, fake, subsets=20, subset_size=200, seed=1)[0] != mean


def test_kid_clips_the_subset_size_to_the_smaller_set():
    real, fake = gaussian(30, 4, seed=14), gaussian(20, 4, seed=15)
    mean, _ = kernel_inception_distance(real, fake, subsets=2)  # subset_size 1000 -> 20
    assert np.isfinite(mean)


# ------------------------------------------------------------------------------------------- IS


def test_inception_score_of_confident_uniform_predictions_is_k():
    classes = 5
    probs = np.eye(classes)[np.arange(100) % classes]  # each split of 10 rows: 2 of each class
    mean, std = inception_score(probs, splits=10)
    assert mean == pytest.approx(classes, abs=1e-6) and std == pytest.approx(0.0, abs=1e-6)


def test_inception_score_of_identical_rows_is_one():
    probs = np.tile([0.2, 0.3, 0.5], (40, 1))
    assert inception_score(probs, splits=4) == pytest.approx((1.0, 0.0), abs=1e-12)


def test_inception_score_by_hand():
    # p(y) = (0.75, 0.25); KL row 1 = log(1 / 0.75), KL row 2 = 0.5 log(0.5 / 0.75) + 0.5 log 2.
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    expected = np.exp(0.5 * (np.log(4 / 3) + 0.5 * np.log(2 / 3) + 0.5 * np.log(2)))
    assert inception_score(probs, splits=1)[0] == pytest.approx(expected, rel=1e-12)


def test_inception_score_rejects_logits():
    with pytest.raises(ValueError, match="softmax"):
        inception_score(np.array([[2.0, -1.0], [0.5, 3.0]]), splits=1)


# -------------------------------------------------------------------- precision/recall, D/C

REAL_1D = [[0.0], [1.0], [2.0], [3.0]]  # k = 1: every real radius is 1


def test_precision_recall_of_identical_sets_is_one():
    x = gaussian(300, 8, seed=16)
    assert precision_recall(x, x) == (1.0, 1.0)


def test_precision_recall_of_far_apart_sets_is_zero():
    real, fake = gaussian(200, 8, seed=17), gaussian(150, 8, seed=18, shift=100.0)
    assert precision_recall(real, fake) == (0.0, 0.0)
    assert density_coverage(real, fake) == (0.0, 0.0)


def test_precision_recall_by_hand():
    # Fake 0.5 lies within 1 of real 0 -> in; fake 10 is 7 from real 3 -> out: precision 1/2.
    # The fake radii are both 9.5 (0.5 <-> 10), so every real point is within 9.5 of fake 0.5:
    # recall 1. An outlier inflates the radius of its neighbour (why k > 1 is the default).
    assert precision_recall(REAL_1D, [[0.5], [10.0]], k=1) == (0.5, 1.0)
    # Fakes 0, 0.5, 1 all have radius 0.5: real 0 and 1 are covered, 2 and 3 are not (recall
    # 1/2, a dropped mode), while every fake is near a real point (precision 1).
    assert precision_recall(REAL_1D, [[0.0], [0.5], [1.0]], k=1) == (1.0, 0.5)


def test_density_coverage_by_hand():
    # Fake 0.5 is inside the balls (radius 1, open) of real 0 and real 1; fake 10 in none.
    # density = (2 + 0) / (k M) = 2 / (1 * 2) = 1; coverage: balls 0 and 1 of 4 hold a fake.
    assert density_coverage(REAL_1D, [[0.5], [10.0]], k=1) == (1.0, 0.5)
    # Fake 1.5 is 1.5 from real 0 and 3 but 0.5 from real 1 and 2: 2 balls; coverage 2 of 4.
    assert density_coverage(REAL_1D, [[1.5]], k=1) == (2.0, 0.5)


def test_density_coverage_of_identical_sets():
    # Ball i (open, radius = distance to its k-th neighbour) holds fake i itself and the k - 1
    # strictly nearer neighbours: k fakes per ball, so density = k N / (k N) = 1 exactly, provided
    # the k-th neighbour on the boundary is not let in by rounding (hence also batch_size=7).
    x = gaussian(300, 8, seed=19)
    assert density_coverage(x, x) == (1.0, 1.0)
    assert density_coverage(x, x, batch_size=7) == (1.0, 1.0)


def test_knn_metrics_do_not_depend_on_the_batch_size():
    real, fake = gaussian(101, 6, seed=20), gaussian(87, 6, seed=21, shift=0.3)
    assert precision_recall(real, fake, batch_size=7) == precision_recall(real, fake)
    assert density_coverage(real, fake, batch_size=7) == density_coverage(real, fake)
    assert 0.0 < precision_recall(real, fake)[0] < 1.0


def test_knn_metrics_reject_k_too_large():
    with pytest.raises(ValueError, match="k must be"):
        precision_recall(REAL_1D, REAL_1D, k=4)
