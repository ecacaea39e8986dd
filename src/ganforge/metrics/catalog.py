"""The metrics of `ganforge.registry.METRICS`: one entry per metric, saying what it needs.

A metric is declared where it is computed::

    @metric("fid", needs={"real"}, lower_is_better=True, doc="Frechet distance ...")
    def _fid(x: MetricInputs) -> dict[str, float]:
        return {"fid": stats.fid_from_features(x.real.features, x.fake.features)}

``needs`` names what an evaluation must supply: ``real`` (a real image set; for image tasks the
targets of the evaluation split), ``labels`` (class labels of both sets), ``styles`` (a
style-based generator), ``targets`` (pixel-aligned targets of each output) and ``masks`` (the
holes of an inpainting task).  ``kind`` says what it measures: ``sets`` compares the generated
(or output) set with the real one in a feature network's space, ``pixels`` compares each output
with its target, ``generator`` measures the generator itself.  `evaluate` gathers the inputs
once, skips (with a note) the metrics whose needs it cannot meet, and calls the rest; adding a
metric is adding an entry here, never an edit of `evaluate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import DataSpec, ImageDataset
from ..errors import UserError, did_you_mean
from ..features.domain import DomainSettings, accuracy, train_classifier
from ..registry import METRICS
from . import pixels, stats
from .ppl import perceptual_path_length

NEEDS = ("real", "labels", "styles", "targets", "masks")
KINDS = ("sets", "pixels", "generator")
#: how a skip note names what was missing
NEED_PHRASES = {
    "real": "a real image set (--real FOLDER|FILE.npz or --dataset NAME)",
    "labels": "a class-conditional model and its data set",
    "styles": "a style-based generator (stylegan2, stylegan)",
    "targets": "outputs with pixel-aligned targets (a paired, masked or lowres model)",
    "masks": "the masks of an inpainting model (a masked task)",
}


@dataclass
class Features:
    """Penultimate-layer features ``[N, d]`` and class probabilities ``[N, K]`` of one set."""

    features: np.ndarray
    probs: np.ndarray


@dataclass
class MetricInputs:
    """What the metrics of one evaluation may read; each reads only what it declares it needs.

    ``real``/``fake``: features of the real (or target) set and of the generated (or output)
    set.  ``real_labels``/``fake_labels``: int64 ``[N]`` classes of each.  ``fake_images``:
    uint8 ``[N, C, R, R]`` generated images and ``test_set`` a function giving the labeled real
    test split (CAS trains on the first, tests on the second).  ``outputs``/``targets``: float
    ``[N, C, H, W]`` in [-1, 1]; ``masks``: ``[N, 1, H, W]``, 1 = hole.  ``model``, ``n`` and
    ``domain_network`` (a function giving ``(network, record)``) serve generator metrics.
    ``details`` is where a metric leaves what a report shows beside its figures."""

    seed: int = 0
    real: Features | None = None
    fake: Features | None = None
    real_labels: np.ndarray | None = None
    fake_labels: np.ndarray | None = None
    fake_images: torch.Tensor | None = None
    test_set: Callable[[], ImageDataset] | None = None
    outputs: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    model: Any = None
    n: int = 0
    domain_network: Callable[[], tuple[nn.Module, dict[str, Any]]] | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """One entry of `ganforge.registry.METRICS` (see the module docstring)."""

    name: str
    compute: Callable[[MetricInputs], dict[str, float]]
    figures: tuple[str, ...]
    lower_is_better: bool
    needs: frozenset[str] = frozenset()
    kind: str = "sets"
    doc: str = ""


def metric(
    name: str,
    *,
    lower_is_better: bool,
    doc: str,
    needs: Iterable[str] = (),
    figures: tuple[str, ...] | None = None,
    kind: str = "sets",
) -> Callable[[Callable[[MetricInputs], dict[str, float]]], Callable[..., Any]]:
    """Register the decorated function as metric ``name`` (figures default to ``(name,)``)."""
    needs = frozenset(needs)
    if not needs <= set(NEEDS) or kind not in KINDS:
        raise ValueError(f"metric {name!r}: needs {sorted(needs)} / kind {kind!r} not known")

    def decorator(compute: Callable[[MetricInputs], dict[str, float]]) -> Callable[..., Any]:
        entry = Metric(name, compute, figures or (name,), lower_is_better, needs, kind, doc)
        METRICS.register(name, doc=doc)(entry)
        return compute

    return decorator


# ----- what the rest of the code asks ----------------------------------------------------------
def get(name: str) -> Metric:
    return METRICS.get(name)


def parse_metrics(text: str | list[str]) -> list[str]:
    """``"fid,kid"`` (or a list) -> known metric names, in order; a one-line error otherwise."""
    names = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text)]
    names = [m for m in names if m]
    for name in names:
        if name not in METRICS:
            raise UserError(f"unknown metric {name!r}{did_you_mean(name, METRICS.names())}")
    if not names:
        raise UserError(f"no metrics asked for; use some of {', '.join(METRICS.names())}")
    return names


def produced_by(names: list[str]) -> list[str]:
    """Figure names (as in a report's ``metrics``) that these metrics produce."""
    return [figure for name in names for figure in get(name).figures]


def lower_is_better(figure: str) -> bool:
    """Whether a smaller value of report figure ``figure`` (``fid``, ``precision``...) is
    better; figures no metric declares (``label_agreement``) count as higher-is-better."""
    return any(figure in get(name).figures and get(name).lower_is_better for name in METRICS)


def metrics_needing(need: str) -> list[str]:
    """The metrics that need ``need`` (one of `NEEDS`): config refuses ``labels`` ones for an
    unconditional family, ``styles`` ones for a family without a style-based generator."""
    if need not in NEEDS:
        raise ValueError(f"unknown need {need!r}; one of {NEEDS}")
    return [name for name in METRICS if need in get(name).needs]


def missing(name: str, available: set[str]) -> list[str]:
    """What metric ``name`` needs that an evaluation cannot supply, in `NEEDS` order."""
    return [need for need in NEEDS if need in get(name).needs and need not in available]


def compute(names: list[str], inputs: MetricInputs) -> dict[str, float]:
    """The figures of every metric in ``names`` (all of whose needs ``inputs`` meets)."""
    out: dict[str, float] = {}
    for name in names:
        out.update(get(name).compute(inputs))
    return {k: float(v) for k, v in out.items()}


# ----- feature-set metrics ---------------------------------------------------------------------
@metric("fid", needs={"real"}, lower_is_better=True, doc="Frechet distance of feature Gaussians")
def _fid(x: MetricInputs) -> dict[str, float]:
    return {"fid": stats.fid_from_features(x.real.features, x.fake.features)}


@metric(
    "kid",
    needs={"real"},
    lower_is_better=True,
    doc="kernel inception distance, unbiased cubic-kernel MMD^2 (also kid_std)",
)
def _kid(x: MetricInputs) -> dict[str, float]:
    size = min(1000, len(x.real.features), len(x.fake.features))
    mean, std = stats.kernel_inception_distance(
        x.real.features, x.fake.features, subset_size=size, seed=x.seed
    )
    return {"kid": mean, "kid_std": std}


@metric("is", lower_is_better=False, doc="Inception Score of the classifier's predictions")
def _is(x: MetricInputs) -> dict[str, float]:
    mean, std = stats.inception_score(x.fake.probs, splits=10)
    return {"is": mean, "is_std": std}


@metric(
    "pr",
    needs={"real"},
    figures=("precision", "recall"),
    lower_is_better=False,
    doc="improved precision and recall, k=3",
)
def _pr(x: MetricInputs) -> dict[str, float]:
    precision, recall = stats.precision_recall(x.real.features, x.fake.features)
    return {"precision": precision, "recall": recall}


@metric(
    "dc",
    needs={"real"},
    figures=("density", "coverage"),
    lower_is_better=False,
    doc="density and coverage, k=5",
)
def _dc(x: MetricInputs) -> dict[str, float]:
    density, coverage = stats.density_coverage(x.real.features, x.fake.features)
    return {"density": density, "coverage": coverage}


@metric(
    "cas",
    needs={"real", "labels"},
    lower_is_better=False,
    doc="classification accuracy score: trained on generated, tested on real (conditional)",
)
def _cas(x: MetricInputs) -> dict[str, float]:
    if x.fake_images is None:
        return {}  # features alone (`evaluate.score`): no images to train a classifier on
    labels = torch.from_numpy(x.fake_labels)
    test = x.test_set()
    return {"cas": classification_accuracy_score(x.fake_images, labels, test, DomainSettings())}


@metric(
    "ifid",
    needs={"real", "labels"},
    lower_is_better=True,
    doc="intra-class FID: mean FID over classes (conditional)",
)
def _ifid(x: MetricInputs) -> dict[str, float]:
    if x.fake_labels is None or x.real_labels is None:
        return {}  # a real set from a folder has no labels: nothing to split by
    per_class = []
    for k in np.unique(x.real_labels):
        r, f = x.real.features[x.real_labels == k], x.fake.features[x.fake_labels == k]
        if len(r) > 1 and len(f) > 1:
            per_class.append(stats.fid_from_features(r, f))
    return {"ifid": float(np.mean(per_class))}


def classification_accuracy_score(
    fake_images: torch.Tensor,
    fake_labels: torch.Tensor,
    test: ImageDataset,
    settings: DomainSettings,
) -> float:
    """CAS (Ravuri and Vinyals 2019): a classifier trained only on generated labeled images
    (uint8 ``[N, C, R, R]``, int64 ``[N]``), its accuracy on the real test split.  Same network
    and recipe as the domain classifier."""
    spec = DataSpec(
        channels=test.spec.channels,
        resolution=fake_images.shape[-1],
        num_classes=test.spec.num_classes,
        class_names=test.spec.class_names,
        name="generated",
    )
    generated = ImageDataset(fake_images, fake_labels.long(), spec)
    net = train_classifier(generated, settings, progress=False)
    return accuracy(net, test)


# ----- the generator itself --------------------------------------------------------------------
@metric(
    "ppl",
    needs={"styles"},
    kind="generator",
    lower_is_better=True,
    doc="perceptual path length in W, end sampling, domain features (style-based)",
)
def _ppl(x: MetricInputs) -> dict[str, float]:
    net, record = x.domain_network()
    found = perceptual_path_length(x.model, net, n=x.n, seed=x.seed)
    x.details["ppl"] = {
        "pairs": found["n"],
        "kept": found["kept"],
        "epsilon": found["epsilon"],
        "space": "w",
        "sampling": "end",
        "features": {"name": "domain", "hash": record["hash"]},
    }
    return {"ppl": found["ppl"]}


# ----- outputs against their targets -----------------------------------------------------------
def _over_images(values: torch.Tensor, name: str) -> float:
    """The mean over images of per-image values, leaving out images without hole pixels."""
    kept = values[~torch.isnan(values)]
    if len(kept) == 0:
        raise UserError(f"{name}: no image has pixels in its hole; check the masks")
    return float(kept.mean())


def _pixel_metric(name: str, score: Callable[..., torch.Tensor], *, masked: bool) -> None:
    """Register ``name`` (whole image) or ``name_masked`` (the hole only) for ``score``."""
    unit = {
        "l1": "mean absolute error in [-1, 1] units (0 to 2)",
        "psnr": "peak signal-to-noise ratio in dB on [0, 1] images, peak 1",
        "ssim": "structural similarity, 11x11 Gaussian window of sigma 1.5, mean over channels",
    }[name]
    key = f"{name}_masked" if masked else name
    where = "over the hole only" if masked else "of outputs against their targets"

    def compute_it(x: MetricInputs) -> dict[str, float]:
        values = score(x.outputs, x.targets, x.masks if masked else None)
        return {key: _over_images(values, key)}

    metric(
        key,
        needs={"targets", "masks"} if masked else {"targets"},
        kind="pixels",
        lower_is_better=name == "l1",
        doc=f"{unit}, {where}",
    )(compute_it)


_pixel_metric("l1", pixels.l1_error, masked=False)
_pixel_metric("psnr", pixels.psnr, masked=False)
_pixel_metric("ssim", pixels.ssim, masked=False)
_pixel_metric("l1", pixels.l1_error, masked=True)
_pixel_metric("psnr", pixels.psnr, masked=True)
_pixel_metric("ssim", pixels.ssim, masked=True)
