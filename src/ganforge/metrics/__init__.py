"""Evaluation metrics.  `stats` holds the numerical core (pure functions of feature arrays),
`pixels` the pixel metrics of outputs against targets, `catalog` the entries of the METRICS
registry (importing this package registers them), `evaluate` the evaluation itself."""

from . import catalog as _catalog  # noqa: F401  (registers the metrics)
from .catalog import lower_is_better, metrics_needing, parse_metrics, produced_by
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
    "lower_is_better",
    "metrics_needing",
    "parse_metrics",
    "precision_recall",
    "produced_by",
]
