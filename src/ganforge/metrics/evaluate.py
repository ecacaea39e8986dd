"""Evaluation: one pass of feature extraction per image set, then every requested metric.

`evaluate` takes an already loaded model (anything with the model interface: ``task``,
``spec``, ``eval_outputs``, ``generate``, ``generator()``; `ganforge.api.evaluate_run` loads
one from a run folder) or a set of images, and asks the METRICS registry for the figures.
Each metric says what it needs; those whose needs this evaluation cannot meet are skipped
with a note.

A report always says how it was measured: the feature network and its hash, the number of
generated and real images, the real split, and beside the scores a floor.  For noise families
it is the real-vs-real figure (the training split against the evaluation split at the same
count), because FID's bias grows as the sample shrinks and a number without its floor cannot
be read; for image-to-image families it is the trivial answer (`image_tasks`).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import load_dataset
from ..errors import UserError
from ..features.domain import build_domain_network
from . import catalog, image_tasks
from .catalog import (  # noqa: F401  (re-exported: what callers of evaluation use)
    Features,
    MetricInputs,
    classification_accuracy_score,
    lower_is_better,
    parse_metrics,
    produced_by,
)
from .sets import CHUNK, cached_real_features, extract, subset, to_uint8


def score(
    real: Features,
    fake: Features,
    metrics: list[str],
    *,
    seed: int = 0,
    fake_labels: np.ndarray | None = None,
    real_labels: np.ndarray | None = None,
) -> dict[str, float]:
    """The feature-set metrics among ``metrics`` from already extracted features: those
    that need labels only when both label arrays are given (and not cas, which trains a
    classifier on the images themselves)."""
    inputs = MetricInputs(
        seed=seed, real=real, fake=fake, real_labels=real_labels, fake_labels=fake_labels
    )
    labeled = real_labels is not None and fake_labels is not None
    have = {"real", "labels"} if labeled else {"real"}
    names = [m for m in metrics if catalog.get(m).kind == "sets" and not catalog.missing(m, have)]
    return catalog.compute(names, inputs)


@dataclass
class _Request:
    """What `evaluate` was asked, as its parts need it."""

    dataset: str | None
    data_dir: str | None
    data: Any
    task_options: Any
    split: str
    n: int
    seed: int
    real: str | Path | None
    fake: str | Path | None
    features: str
    inception_weights: str | Path | None
    truncation: float | None
    source: str
    warn: Any
    res: int = 0
    ch: int = 0


def evaluate(
    *,
    model: Any = None,
    real: str | Path | None = None,
    fake: str | Path | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    data: Any = None,
    task_options: Any = None,
    metrics: str | list[str] = "fid,kid,pr",
    n: int = 10_000,
    split: str = "test",
    features: str = "domain",
    inception_weights: str | Path | None = None,
    seed: int = 0,
    truncation: float | None = None,
    out: str | Path | None = None,
    source: str = "the model in training",
    warn: Any = None,
) -> dict[str, Any]:
    """Evaluate ``model`` (or the images in ``fake``) and return the report; ``out`` writes it
    as JSON.

    Noise families: ``n`` images drawn through ``model.eval_outputs`` (or read from ``fake``)
    against the real side: ``real`` (a folder or .npz) or ``n`` images of ``dataset``'s
    ``split``.  Image families: their outputs over ``n`` items of the evaluation split
    (``data``, or ``dataset``'s ``split`` loaded with ``task_options``) against its targets,
    the domain features trained on the labeled source of ``dataset`` (`feature_source`).
    ``source`` names the model in the report.  ``ppl`` needs no real side: it measures a
    style-based generator itself over ``n`` pairs, always with the domain network.
    ``truncation`` is the family's truncation knob the generated set is drawn with (None:
    none; psi, or BigGAN's threshold); ppl ignores it.
    Metrics that do not apply are skipped with a note through ``warn``; if none is left,
    that is an error."""
    warn = warn or (lambda m: print(m, file=sys.stderr))
    names = parse_metrics(metrics)
    _check(n, split, model, fake, truncation)
    if not 0 <= seed < 2**32:  # numpy draws the real subsets, and its seeds are 32-bit
        raise UserError(f"--seed {seed}: use a seed from 0 to 2^32 - 1")
    q = _Request(
        dataset, data_dir, data, task_options, split, n, seed, real, fake, features,
        inception_weights, truncation, source, warn,
    )  # fmt: skip
    kind = "noise" if model is None else model.task.kind
    wanted = _applicable(names, model, kind, dataset, warn)
    sets = [m for m in wanted if catalog.get(m).kind == "sets"]
    generator = [m for m in wanted if catalog.get(m).kind == "generator"]
    net, record = None, None
    if sets or generator:
        # ppl always measures with the domain network: Inception quantizes its input to 8
        # bits, which erases an epsilon step
        labeled = feature_source(q.dataset)  # fmnist-captions, masked:fmnist -> fmnist
        net, record, q.res, q.ch = _feature_network(
            features if sets else "domain", labeled, data_dir, model, inception_weights
        )
    report = _empty_report(features if sets else "domain", record)
    if model is not None:
        report["truncation"] = truncation
        report["truncation_kind"] = getattr(model, "TRUNCATION", "psi")
    if kind != "noise":
        _score_image_task(report, q, net if sets else None, model, wanted)
    elif sets:
        _compare_sets(report, q, net, record, model, sets)
    if generator:
        _measure_generator(report, q, net, record, model, generator, bool(sets))
    if out is not None:
        target = Path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(report, indent=2) + "\n")
        report["written_to"] = str(target)
    return report


def _check(n: int, split: str, model: Any, fake: Any, truncation: float) -> None:
    if n < 2:
        raise UserError(f"--n {n} is too small; use at least 2 (10,000 is the usual count)")
    if split not in ("train", "test"):
        raise UserError(f"--split {split!r}: use test (default) or train")
    if model is None and fake is None:
        raise UserError("nothing to evaluate: give a run folder, or --fake DIR|FILE.npz")
    if truncation is not None and model is None:
        raise UserError(
            f"--truncation {truncation:g} needs a run to draw images from, not --fake images"
        )


def _applicable(names: list[str], model: Any, kind: str, dataset: str | None, warn) -> list[str]:
    """The requested metrics this evaluation can compute; a note for each of the others."""
    if kind != "noise":
        have = image_tasks.available(kind)
    else:
        have = {"real"}
        if model is not None and model.task.labels and dataset is not None:
            have.add("labels")
        if model is not None and model.task.styles:
            have.add("styles")
    skipped = {}
    for name in names:
        lacking = catalog.missing(name, have)
        if catalog.get(name).kind == "generator" and model is None:
            skipped[name] = f"{name} needs a generator, not a set of images"
        elif lacking:
            skipped[name] = f"{name} needs {catalog.NEED_PHRASES[lacking[0]]}"
            if model is not None and lacking[0] != "labels":
                skipped[name] += f"; this is a {_family(model)} model"
    wanted = [m for m in names if m not in skipped]
    if not wanted:
        raise UserError("; ".join(skipped.values()) + "; nothing left to evaluate")
    for reason in skipped.values():
        warn(f"note: {reason}; skipped")
    return wanted


def _family(model: Any) -> str:
    config = getattr(model, "config", None)  # a loaded run knows its family's registered name
    return config.model if config is not None else type(model).__name__.lower()


def feature_source(dataset: str | None) -> str | None:
    """The labeled plain data set whose domain network scores the images of task data set
    ``dataset``: the source of a wrapper (``masked:fmnist`` -> ``fmnist``, ``lowres:SOURCE``),
    Fashion-MNIST for the ``fmnist-*`` built-ins, else ``dataset`` itself (user layouts
    without classes cannot train one; ``--features inception`` scores them)."""
    if dataset is None:
        return None
    wrapper, sep, source = dataset.partition(":")
    if sep and wrapper in ("masked", "lowres"):
        return feature_source(source)
    return "fmnist" if dataset.startswith("fmnist-") else dataset


def _empty_report(name: str, record: dict[str, Any] | None) -> dict[str, Any]:
    features = None
    if record is not None:
        features = {
            "name": name,
            "hash": record["hash"],
            "dataset": record["dataset"],
            "test_accuracy": record["test_accuracy"],
            "dim": record.get("features"),
        }
    return {
        "features": features,
        "generated": None,
        "real": None,
        "metrics": {},
        "real_vs_real": None,
    }


def _score_image_task(report, q: _Request, net, model, names) -> None:
    """An image family's outputs over the evaluation split, and the floor beside them."""
    data = q.data
    if data is None:
        if q.dataset is None:
            raise UserError(
                f"--dataset names the evaluation data of this {model.task.kind} model; add it"
            )
        data = load_dataset(
            q.dataset,
            split=q.split,
            resolution=model.spec.resolution,  # as the model was trained (fmnist at 32: padded)
            channels=model.spec.channels,
            data_dir=q.data_dir,
            options=q.task_options,
        )
    what = q.dataset or data.spec.name or "the evaluation data"
    if q.n > len(data):
        q.warn(
            f"note: --n {q.n} is more than the {len(data):,} items of the {q.split} split; "
            f"using all {len(data):,}"
        )
    image_tasks.score_outputs(
        report,
        model,
        data,
        [m for m in names if catalog.get(m).kind != "generator"],
        net=net,
        n=q.n,
        seed=q.seed,
        source=q.source,
        real_source=f"targets of the {what} {q.split} split",
    )


def _measure_generator(report, q: _Request, net, record, model, names, used_sets) -> None:
    """The metrics of the generator itself (ppl), each with its details in the report."""

    def domain_network():
        if q.features != "domain" and used_sets:  # the set metrics used Inception
            return build_domain_network(q.dataset, data_dir=q.data_dir)
        return net, record

    inputs = MetricInputs(seed=q.seed, model=model, n=q.n, domain_network=domain_network)
    report["metrics"].update(catalog.compute(names, inputs))
    for name, details in inputs.details.items():
        report[name] = {"source": q.source, **details}


def _compare_sets(report, q: _Request, net, record, model, names) -> None:
    """The metrics that compare a generated set with a real one; fills ``report``."""
    res, ch, seed = q.res, q.ch, q.seed
    fake_labels, fake_source = None, q.source
    if model is None:
        from .sources import load_images

        fake_images, fake_source = load_images(q.fake, res, ch, warn=q.warn), str(q.fake)
    else:
        fake_images, fake_labels = generate_set(model, q.n, seed, q.truncation)
    real_images, real_labels, real_source = _real_images(q)
    real_feats = cached_real_features(
        net, record["hash"], real_images, {"source": real_source, "res": res}
    )
    fake_feats = extract(net, fake_images)
    conditional = fake_labels is not None and q.dataset is not None
    inputs = MetricInputs(
        seed=seed,
        real=real_feats,
        fake=fake_feats,
        real_labels=None if real_labels is None else real_labels.numpy(),
        fake_labels=None if fake_labels is None else fake_labels.numpy(),
        fake_images=fake_images,
        test_set=lambda: load_dataset(
            q.dataset, split="test", resolution=res, channels=ch, data_dir=q.data_dir
        ),
    )
    scores = catalog.compute(names, inputs)
    if conditional and report["features"]["name"] == "domain":
        agree = fake_feats.probs.argmax(1) == fake_labels.numpy()
        scores["label_agreement"] = float(agree.mean())
    if q.dataset is not None:
        floor_metrics = [m for m in names if catalog.get(m).needs <= {"real"}]
        report["real_vs_real"] = _real_vs_real(net, record, q, len(real_images), floor_metrics)
    report["features"]["dim"] = int(fake_feats.features.shape[1])
    report["generated"] = {"source": fake_source, "n": int(len(fake_images))}
    if model is not None and model.task.styles:
        report["generated"]["noise_mode"] = "random"  # see GANModel.eval_outputs
    notes = getattr(model, "training_notes", dict)() if model is not None else {}
    if notes:
        report["generated"]["notes"] = notes
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
        from ..features.inception import ENV_VAR, file_sha256, load_inception

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


def _real_images(q: _Request):
    """(uint8 images, labels or None, description) of the real side."""
    if q.real is not None:
        from .sources import load_images

        return load_images(q.real, q.res, q.ch, warn=q.warn), None, str(q.real)
    if q.dataset is None:
        raise UserError("no real images: give --real DIR|FILE.npz or --dataset NAME")
    data = load_dataset(
        q.dataset, split=q.split, resolution=q.res, channels=q.ch, data_dir=q.data_dir
    )
    if q.n > len(data):
        q.warn(
            f"note: --n {q.n} is more than the {len(data):,} images of the {q.split} split; "
            f"using all {len(data):,} real images"
        )
    images, labels = subset(data, q.n, q.seed)
    return images, labels, f"{q.dataset} {q.split} split"


def generate_set(
    model: Any, n: int, seed: int, truncation: float | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` uint8 images ``[n, C, R, R]`` from ``model.eval_outputs`` (and their labels when
    the model is conditional), in chunks of 500 whose seeds are ``seed * 100_003 + chunk``,
    so the set is repeatable and the global RNG is left alone."""
    chunks, labels = [], []
    for i, start in enumerate(range(0, n, CHUNK)):
        index = torch.arange(start, min(start + CHUNK, n))
        out = model.eval_outputs({"index": index}, seed=seed * 100_003 + i, truncation=truncation)
        chunks.append(to_uint8(out["image"]))
        if "label" in out:
            labels.append(out["label"].cpu())
    return torch.cat(chunks), (torch.cat(labels) if labels else None)


def _real_vs_real(net, record, q: _Request, n: int, metrics: list[str]) -> dict[str, Any]:
    """The same metrics between the training split and the evaluation split at count ``n``:
    the best a perfect generator could score with this many samples."""
    other = "train" if q.split == "test" else "test"
    shape = {"resolution": q.res, "channels": q.ch, "data_dir": q.data_dir}
    a = load_dataset(q.dataset, split=other, **shape)
    b = load_dataset(q.dataset, split=q.split, **shape)
    count = min(n, len(a), len(b))
    fa = cached_real_features(
        net,
        record["hash"],
        subset(a, count, q.seed + 1)[0],
        {"source": f"{q.dataset} {other} split", "res": q.res},
    )
    fb = cached_real_features(
        net,
        record["hash"],
        subset(b, count, q.seed)[0],
        {"source": f"{q.dataset} {q.split} split", "res": q.res},
    )
    return {
        "splits": f"{other} vs {q.split}",
        "n": count,
        "metrics": score(fb, fa, metrics, seed=q.seed),
    }


def format_report(report: dict[str, Any]) -> str:
    """A small table: metric, value, and the floor beside it (real vs real, or the trivial
    answer of an image task)."""
    g, r = report["generated"], report["real"]
    floor = report["real_vs_real"] or report.get("floor")
    base = floor["metrics"] if floor else {}
    lines = [f"features: {_network_line(report['features'])}"]
    if g is not None:
        knob, kind = report.get("truncation"), report.get("truncation_kind", "psi")
        none = knob is None or (kind == "psi" and knob == 1.0)
        drawn = "" if none else f", truncation {kind} {knob:g}"
        made = "outputs" if "task" in g else "images"
        lines += [f"generated: {g['n']:,} {made} from {g['source']}{drawn}"]
        lines += [f"{key}: {value}" for key, value in g.get("notes", {}).items()]
        lines += [f"real: {r['n']:,} images, {r['source']}"]
    if "ppl" in report:
        p = report["ppl"]
        lines.append(
            f"ppl: {p['pairs']:,} pairs of images from {p['source']}, epsilon {p['epsilon']:g} "
            f"apart in W; {p['kept']:,} kept (1st to 99th percentile)"
        )
    heading = "real vs real" if report["real_vs_real"] else "floor"
    lines += ["", f"{'metric':<16}{'value':>18}{heading:>16}"]
    for key, value in report["metrics"].items():
        if key.endswith("_std"):
            continue
        std = report["metrics"].get(f"{key}_std")
        shown = f"{value:.4f}" if std is None else f"{value:.4f}±{std:.4f}"
        beside = f"{base[key]:.4f}" if key in base else ""
        lines.append(f"{key:<16}{shown:>18}{beside:>16}")
    if report["real_vs_real"]:
        lines.append(f"(real vs real: {floor['splits']} splits, {floor['n']:,} images each)")
    elif floor:
        lines.append(f"(floor: {floor['name']}, scored against the same targets)")
    elif g is not None:
        lines.append("(no real-vs-real figure: give --dataset to have one)")
    return "\n".join(lines)


def _network_line(f: dict[str, Any] | None) -> str:
    if f is None:
        return "none (pixel metrics only)"
    if f["name"] == "domain":
        return (
            f"domain ({f['dataset']}, {f['dim']}-d, hash {f['hash']}, "
            f"test accuracy {f['test_accuracy']:.2%})"
        )
    return f"{f['name']} ({f['dim']}-d, weights {f['hash']})"
