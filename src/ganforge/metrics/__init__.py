"""Evaluation metrics. `stats` holds the numerical core: pure functions of feature arrays."""

from .stats import (
    density_coverage,
    feature_stats,
    fid_from_features,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)

__all__ = [
    "density_coverage",
    "feature_stats",
    "fid_from_features",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "precision_recall",
]
