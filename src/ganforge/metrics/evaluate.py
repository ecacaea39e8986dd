"""Evaluation: one pass of feature extraction per image set, then every requested metric.

A report always says how it was measured: the feature network and its hash, the number of
generated and real images, the real split, and beside the scores the real-vs-real figures (the
training split against the evaluation split at the same count), because FID's bias grows as the
sample shrinks and a number without its floor cannot be read.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import DataSpec, ImageDataset, load_dataset
from ..errors import UserError, did_you_mean
from ..tools.latent import is_style_based
from . import stats
from .domain import DomainClassifier, DomainSettings, accuracy, build_domain_network, cache_dir
from .domain import train_classifier as train_domain_classifier
from .ppl import perceptual_path_length

METRICS = {
    "fid": "Frechet distance between feature Gaussians (lower is better)",
    "kid": "kernel inception distance, unbiased cubic-kernel MMD^2 (lower is better)",
    "is": "Inception Score of the classifier's predictions (higher is better)",
    "pr": "improved precision and recall, k=3 (higher is better)",
    "dc": "density and coverage, k=5 (higher is better)",
    "cas": "classification accuracy score: trained on generated, tested on real (conditional)",
    "ifid": "intra-class FID: mean FID over classes (conditional)",
    "ppl": "perceptual path length in W, end sampling, domain features (style-based; lower is "
    "better)",
}
CONDITIONAL_ONLY = ("cas", "ifid")
#: metrics of a style-based generator itself (they need G's mapping and synthesis)
STYLE_ONLY = ("ppl",)
#: The figures each metric produces; the direction in which they improve.
FIGURES = {
    "fid": ("fid",),
    "kid": ("kid",),
    "is": ("is",),
    "pr": ("precision", "recall"),
    "dc": ("density", "coverage"),
    "cas": ("cas",),
    "ifid": ("ifid",),
    "ppl": ("ppl",),
}
LOWER_IS_BETTER = {"fid", "kid", "ifid", "ppl"}


def produced_by(names: list[str]) -> list[str]:
    """Figure names (as in a report's ``metrics``) that these metrics produce."""
    return [figure for name in names for figure in FIGURES[name]]


def parse_metrics(text: str | list[str]) -> list[str]:
    names = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text)]
    names = [m for m in names if m]
    for name in names:
        if name not in METRICS:
            raise UserError(f"unknown metric {name!r}{did_you_mean(name, METRICS)}")
    if not names:
        raise UserError(f"no metrics asked for; use some of {', '.join(METRICS)}")
    return names


@dataclass
class Features:
    """Penultimate-layer features ``[N, d]`` and class probabilities ``[N, K]`` of one set."""

    features: np.ndarray
    probs: np.ndarray


@torch.no_grad()
def extract(net: DomainClassifier, images: torch.Tensor, batch_size: int = 500) -> Features:
    """Run ``net`` once over uint8 ``[N, C, R, R]`` images, keeping features and probabilities."""
    net.eval()
    feats, probs = [], []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].float().div(127.5).sub(1.0)
        f = net.features(x)
        feats.append(f.double().numpy())
        probs.append(torch.softmax(net.head(f).double(), dim=1).numpy())
    return Features(np.concatenate(feats), np.concatenate(probs))


def _subset(data: ImageDataset, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` images (a seeded random subset when the split is larger)."""
    if n >= len(data):
        return data.images, data.labels
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    index = index.sort().values
    return data.images[index], (data.labels[index] if data.labels is not None else None)


def cached_real_features(
    net: DomainClassifier, net_hash: str, images: torch.Tensor, options: dict[str, Any]
) -> Features:
    """Features of a real image set, cached by a hash of the images, the network and options."""
    h = hashlib.sha256()
    h.update(images.numpy().tobytes())
    h.update(json.dumps({"net": net_hash, **options}, sort_keys=True).encode())
    path = cache_dir() / "stats" / f"real-{h.hexdigest()[:20]}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return Features(z["features"], z["probs"])
    out = extract(net, images)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npz")
    np.savez(tmp, features=out.features, probs=out.probs)
    os.replace(tmp, path)
    return out


def score(
    real: Features,
    fake: Features,
    metrics: list[str],
    *,
    seed: int = 0,
    fake_labels: np.ndarray | None = None,
    real_labels: np.ndarray | None = None,
) -> dict[str, float]:
    """Every requested metric from already extracted features."""
    out: dict[str, float] = {}
    for name in metrics:
        if name == "fid":
            out["fid"] = stats.fid_from_features(real.features, fake.features)
        elif name == "kid":
            size = min(1000, len(real.features), len(fake.features))
            mean, std = stats.kernel_inception_distance(
                real.features, fake.features, subset_size=size, seed=seed
            )
            out["kid"], out["kid_std"] = mean, std
        elif name == "is":
            out["is"], out["is_std"] = stats.inception_score(fake.probs, splits=10)
        elif name == "pr":
            out["precision"], out["recall"] = stats.precision_recall(real.features, fake.features)
        elif name == "dc":
            out["density"], out["coverage"] = stats.density_coverage(real.features, fake.features)
        elif name == "ifid" and fake_labels is not None and real_labels is not None:
            per_class = []
            for k in np.unique(real_labels):
                r, f = real.features[real_labels == k], fake.features[fake_labels == k]
                if len(r) > 1 and len(f) > 1:
                    per_class.append(stats.fid_from_features(r, f))
            out["ifid"] = float(np.mean(per_class))
    return {k: float(v) for k, v in out.items()}


def classification_accuracy_score(
    fake_images: torch.Tensor,
    fake_labels: torch.Tensor,
    test: ImageDataset,
    settings: DomainSettings,
) -> float:
    """CAS (Ravuri and Vinyals 2019): a classifier trained only on generated labeled images,
    its accuracy on the real test split.  Same network and recipe as the domain classifier."""
    spec = DataSpec(
        channels=test.spec.channels,
        resolution=fake_images.shape[-1],
        num_classes=test.spec.num_classes,
        class_names=test.spec.class_names,
        name="generated",
    )
    generated = ImageDataset(fake_images, fake_labels.long(), spec)
    net = train_domain_classifier(generated, settings, progress=False)
    return accuracy(net, test)


def evaluate(
    *,
    run_dir: str | Path | None = None,
    generator: Any = None,
    real: str | Path | None = None,
    fake: str | Path | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    metrics: str | list[str] = "fid,kid,pr",
    n: int = 10_000,
    split: str = "test",
    features: str = "domain",
    inception_weights: str | Path | None = None,
    seed: int = 0,
    truncation: float = 1.0,
    out: str | Path | None = None,
    warn=None,
) -> dict[str, Any]:
    """Evaluate a run (or any image sets) and return the report; ``out`` writes it as JSON
    (default for a run: ``RUN/eval.json``).

    The generated side is, in this order: ``generator`` (anything with ``generate``, ``spec``
    and ``conditional``: a model in training, or `ganforge.load`'s result), the newest good
    checkpoint of ``run_dir``, or the images in ``fake``.  The real side is ``real`` (a folder
    or .npz) or ``n`` images of the data set's ``split``.  ``ppl`` needs no real side: it
    measures a style-based generator itself over ``n`` pairs, always with the domain network.
    ``truncation`` is the psi the generated set is drawn with (1: none); ppl ignores it.
    Metrics that do not apply (conditional-only, style-only) are skipped with a note through
    ``warn``; if none is left, that is an error."""
    warn = warn or (lambda m: print(m, file=sys.stderr))
    names = parse_metrics(metrics)
    if n < 2:
        raise UserError(f"--n {n} is too small; use at least 2 (10,000 is the usual count)")
    if split not in ("train", "test"):
        raise UserError(f"--split {split!r}: use test (default) or train")
    model, fake_source = generator, "the model in training"
    if model is None and run_dir is not None:
        from ..api import load

        model = load(run_dir)
        if model.spec.name.startswith("imported") and dataset is None and real is None:
            raise UserError(
                f"'{run_dir}' holds imported networks whose training images are not known "
                "here; give --real FOLDER|FILE.npz with images of their domain (or --dataset)"
            )
        dataset = dataset or model.config.data.name
        data_dir = data_dir or model.config.data.dir
        fake_source = f"{model.path} (step {model.step})"
    elif model is None and fake is None:
        raise UserError("nothing to evaluate: give a run folder, or --fake DIR|FILE.npz")
    if truncation != 1.0 and model is None:
        raise UserError(
            f"--truncation {truncation:g} needs a run to draw images from, not --fake images"
        )
    conditional = model is not None and model.conditional and dataset is not None
    skipped = _unavailable(names, model, conditional)
    wanted = [m for m in names if m not in skipped]
    if not wanted:
        raise UserError("; ".join(skipped.values()) + "; nothing left to evaluate")
    for reason in skipped.values():
        warn(f"note: {reason}; skipped")
    sets = [m for m in wanted if m not in STYLE_ONLY]
    # ppl always measures with the domain network: Inception quantizes its input to 8 bits,
    # which erases an epsilon step
    net, record, res, ch = _feature_network(
        features if sets else "domain", dataset, data_dir, model, inception_weights
    )
    report: dict[str, Any] = {
        "features": {
            "name": features if sets else "domain",
            "hash": record["hash"],
            "dataset": record["dataset"],
            "test_accuracy": record["test_accuracy"],
            "dim": record.get("features"),
        },
        "generated": None,
        "real": None,
        "metrics": {},
        "real_vs_real": None,
    }
    if model is not None:
        report["truncation"] = truncation
    if sets:
        request = _SetsRequest(
            dataset, data_dir, split, n, seed, real, fake, res, ch, warn, truncation
        )
        _compare_sets(report, request, net, record, model, fake_source, sets)
    if "ppl" in wanted:
        if features != "domain" and sets:  # the set metrics used Inception
            net, record = build_domain_network(dataset, data_dir=data_dir)
        found = perceptual_path_length(model, net, n=n, seed=seed)
        report["metrics"]["ppl"] = found["ppl"]
        report["ppl"] = {
            "source": fake_source,
            "pairs": found["n"],
            "kept": found["kept"],
            "epsilon": found["epsilon"],
            "space": "w",
            "sampling": "end",
            "features": {"name": "domain", "hash": record["hash"]},
        }
    target = Path(out) if out else (Path(run_dir) / "eval.json" if run_dir else None)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(report, indent=2) + "\n")
        report["written_to"] = str(target)
    return report


def _unavailable(names: list[str], model: Any, conditional: bool) -> dict[str, str]:
    """Requested metrics that cannot be computed here, with the reason for each."""
    out = {}
    for name in names:
        if name in CONDITIONAL_ONLY and not conditional:
            out[name] = f"{name} needs a class-conditional model and its data set"
        elif name in STYLE_ONLY and model is None:
            out[name] = f"{name} needs a generator, not a set of images"
        elif name in STYLE_ONLY and not is_style_based(model):
            config = getattr(model, "config", None)
            family = config.model if config is not None else type(model).__name__.lower()
            out[name] = (
                f"{name} needs a style-based generator (stylegan2, stylegan); "
                f"this is a {family} model"
            )
    return out


@dataclass
class _SetsRequest:
    """What `evaluate` was asked, as the set-comparing metrics need it."""

    dataset: str | None
    data_dir: str | None
    split: str
    n: int
    seed: int
    real: str | Path | None
    fake: str | Path | None
    res: int
    ch: int
    warn: Any
    truncation: float = 1.0


def _compare_sets(report, q: _SetsRequest, net, record, model, fake_source, names) -> None:
    """The metrics that compare a generated set with a real one; fills ``report``."""
    dataset, data_dir, split, res, ch, seed = q.dataset, q.data_dir, q.split, q.res, q.ch, q.seed
    fake_labels = None
    if model is None:
        from .sources import load_images

        fake_images, fake_source = load_images(q.fake, res, ch, warn=q.warn), str(q.fake)
    else:
        fake_images, fake_labels = _generate(model, q.n, seed, q.truncation)
    real_images, real_labels, real_source = _real_images(
        q.real, dataset, data_dir, split, q.n, res, ch, seed, q.warn
    )
    real_feats = cached_real_features(
        net, record["hash"], real_images, {"source": real_source, "res": res}
    )
    fake_feats = extract(net, fake_images)
    conditional = fake_labels is not None and dataset is not None
    scores = score(
        real_feats,
        fake_feats,
        names,
        seed=seed,
        fake_labels=None if fake_labels is None else fake_labels.numpy(),
        real_labels=None if real_labels is None else real_labels.numpy(),
    )
    if conditional and report["features"]["name"] == "domain":
        agree = fake_feats.probs.argmax(1) == fake_labels.numpy()
        scores["label_agreement"] = float(agree.mean())
    if conditional and "cas" in names:
        test = load_dataset(dataset, split="test", resolution=res, channels=ch, data_dir=data_dir)
        scores["cas"] = classification_accuracy_score(
            fake_images, fake_labels, test, DomainSettings()
        )
    if dataset is not None:
        floor_metrics = [m for m in names if m in ("fid", "kid", "is", "pr", "dc")]
        report["real_vs_real"] = _real_vs_real(
            net, record, dataset, data_dir, res, ch, split, len(real_images), floor_metrics, seed
        )
    report["features"]["dim"] = int(fake_feats.features.shape[1])
    report["generated"] = {"source": fake_source, "n": int(len(fake_images))}
    if model is not None and is_style_based(model):
        report["generated"]["noise_mode"] = "random"  # see _generate
    report["real"] = {"source": real_source, "n": int(len(real_images))}
    report["metrics"].update(scores)


def _feature_network(
    features: str,
    dataset: str | None,
    data_dir: str | None,
    model: Any,
    inception_weights: str | Path | None,
):
    """(network, record with its hash, resolution, channels) for a feature-network name."""
    if features == "inception":
        from .inception import ENV_VAR, file_sha256, load_inception

        net = load_inception(inception_weights)  # checks the file's SHA-256 first
        path = inception_weights or os.environ[ENV_VAR]
        record = {"hash": file_sha256(path)[:16], "dataset": None, "test_accuracy": None}
        if model is not None:
            return net, record, model.spec.resolution, model.spec.channels
        if dataset is not None:
            spec = load_dataset(dataset, split="test", data_dir=data_dir).spec
            return net, record, spec.resolution, spec.channels
        return net, record, 299, 3
    if features != "domain":
        raise UserError(
            f"unknown feature network {features!r}; use domain (trained on the "
            "data set, works offline) or inception (the standard FID network)"
        )
    if dataset is None:
        raise UserError(
            "--dataset names the labeled data set the domain features are trained "
            "on (e.g. --dataset fmnist); add it, or use --features inception"
        )
    net, record = build_domain_network(dataset, data_dir=data_dir)
    if model is not None:
        return net, record, model.spec.resolution, model.spec.channels
    return net, record, net.resolution, net.channels


def _real_images(real, dataset, data_dir, split, n, res, ch, seed, warn):
    """(uint8 images, labels or None, description) of the real side."""
    if real is not None:
        from .sources import load_images

        return load_images(real, res, ch, warn=warn), None, str(real)
    if dataset is None:
        raise UserError("no real images: give --real DIR|FILE.npz or --dataset NAME")
    data = load_dataset(dataset, split=split, resolution=res, channels=ch, data_dir=data_dir)
    if n > len(data):
        warn(
            f"note: --n {n} is more than the {len(data):,} images of the {split} split; "
            f"using all {len(data):,} real images"
        )
    images, labels = _subset(data, n, seed)
    return images, labels, f"{dataset} {split} split"


def _generate(
    model, n: int, seed: int, truncation: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` uint8 images from the run's EMA generator (classes cycled if conditional).

    Style-based generators draw fresh per-pixel noise for every image, as StyleGAN2-ADA's
    metrics do (a constant noise map would be one more thing all images share), from an RNG
    seeded per chunk so that the set is repeatable and the global RNG is left alone."""
    chunks, labels = [], []
    kwargs: dict[str, Any] = {"truncation": truncation} if truncation != 1.0 else {}
    style = is_style_based(model)
    if style:
        kwargs["noise_mode"] = "random"
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    for i, start in enumerate(range(0, n, 500)):
        m = min(500, n - start)
        y = (torch.arange(start, start + m) % model.spec.num_classes) if model.conditional else None
        chunk_seed = seed * 100_003 + i
        with torch.random.fork_rng(devices=devices, enabled=style):
            if style:
                torch.manual_seed(chunk_seed + 1)  # the noise; the latents use chunk_seed
            images = model.generate(m, labels=y, seed=chunk_seed, **kwargs)
        chunks.append(((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu())
        if y is not None:
            labels.append(y)
    return torch.cat(chunks), (torch.cat(labels) if labels else None)


def _real_vs_real(net, record, dataset, data_dir, res, ch, split, n, metrics, seed):
    """The same metrics between the training split and the evaluation split at count ``n``:
    the best a perfect generator could score with this many samples."""
    other = "train" if split == "test" else "test"
    a = load_dataset(dataset, split=other, resolution=res, channels=ch, data_dir=data_dir)
    b = load_dataset(dataset, split=split, resolution=res, channels=ch, data_dir=data_dir)
    count = min(n, len(a), len(b))
    fa = cached_real_features(
        net,
        record["hash"],
        _subset(a, count, seed + 1)[0],
        {"source": f"{dataset} {other} split", "res": res},
    )
    fb = cached_real_features(
        net,
        record["hash"],
        _subset(b, count, seed)[0],
        {"source": f"{dataset} {split} split", "res": res},
    )
    return {
        "splits": f"{other} vs {split}",
        "n": count,
        "metrics": score(fb, fa, metrics, seed=seed),
    }


def format_report(report: dict[str, Any]) -> str:
    """A small table: metric, value, and the real-vs-real floor beside it."""
    f, g, r = report["features"], report["generated"], report["real"]
    floor = report["real_vs_real"]
    base = floor["metrics"] if floor else {}
    if f["name"] == "domain":
        network = (
            f"domain ({f['dataset']}, {f['dim']}-d, hash {f['hash']}, "
            f"test accuracy {f['test_accuracy']:.2%})"
        )
    else:
        network = f"{f['name']} ({f['dim']}-d, weights {f['hash']})"
    lines = [f"features: {network}"]
    if g is not None:
        psi = report.get("truncation", 1.0)
        drawn = f", truncation psi {psi:g}" if psi != 1.0 else ""
        lines += [f"generated: {g['n']:,} images from {g['source']}{drawn}"]
        lines += [f"real: {r['n']:,} images, {r['source']}"]
    if "ppl" in report:
        p = report["ppl"]
        lines.append(
            f"ppl: {p['pairs']:,} pairs of images from {p['source']}, epsilon {p['epsilon']:g} "
            f"apart in W; {p['kept']:,} kept (1st to 99th percentile)"
        )
    lines += ["", f"{'metric':<16}{'value':>18}{'real vs real':>16}"]
    for key, value in report["metrics"].items():
        if key.endswith("_std"):
            continue
        std = report["metrics"].get(f"{key}_std")
        shown = f"{value:.4f}" if std is None else f"{value:.4f}±{std:.4f}"
        beside = f"{base[key]:.4f}" if key in base else ""
        lines.append(f"{key:<16}{shown:>18}{beside:>16}")
    if floor:
        lines.append(f"(real vs real: {floor['splits']} splits, {floor['n']:,} images each)")
    elif g is not None:
        lines.append("(no real-vs-real figure: give --dataset to have one)")
    return "\n".join(lines)
