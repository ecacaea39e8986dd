"""What the quality benchmark reports for a `stackgan` run on fmnist-captions.

    from stackgan_measures import measure_stackgan
    row = measure_stackgan(Path("benchmarks/runs/stackgan"), n=10_000)

or ``python benchmarks/stackgan_measures.py RUN [--n 10000]`` (prints JSON).

Images are drawn for the captions of ``n`` items of the test split (each item's caption with
key None, as evaluation batches are), one seed for all, so the Stage-I and Stage-II images
share z and the CA noise: each Stage-II image refines the Stage-I image beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import ganforge  # noqa: E402
from ganforge.data import load_dataset  # noqa: E402
from ganforge.data.captions import (  # noqa: E402
    FILL_WORDS,
    FOREGROUND,
    SHADE_WORDS,
    WIDTH_WORDS,
    measure,
    words,
)
from ganforge.data.core import convert_channels  # noqa: E402
from ganforge.features.domain import build_domain_network  # noqa: E402
from ganforge.features.text import R_CANDIDATES, cached_text_encoder  # noqa: E402
from ganforge.features.text import caption_r_precision as r_precision  # noqa: E402
from ganforge.metrics.evaluate import feature_source, score  # noqa: E402
from ganforge.metrics.sets import extract, subset_index, to_uint8  # noqa: E402
from ganforge.models.stackgan import text_settings  # noqa: E402

NATIVE = 28  # Fashion-MNIST's side: the captions' attributes were measured at it
CHUNK = 500
ATTRIBUTES = {"shade": SHADE_WORDS, "width": WIDTH_WORDS, "fill": FILL_WORDS}


def _data(g, split: str):
    d = g.config.data
    return load_dataset(
        d.name,
        split=split,
        resolution=g.config.family.resolution,
        channels=d.channels,
        data_dir=d.dir,
        download=d.download,
        options=d.task_options(),
    )


@torch.no_grad()
def _generate(g, texts: list[str], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Stage-I, Stage-II) uint8 images for ``texts``, chunk k drawn with seed + k."""
    low, high = [], []
    for k, start in enumerate(range(0, len(texts), CHUNK)):
        part = texts[start : start + CHUNK]
        low.append(to_uint8(g.generate(text=part, seed=seed + k, stage=1)))
        high.append(to_uint8(g.generate(text=part, seed=seed + k, stage=2)))
    return torch.cat(low), torch.cat(high)


def _upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def _native(images: torch.Tensor) -> torch.Tensor:
    """uint8 images at the captions' 28 px: the padding cropped (fmnist at 32 is padded by 2
    each side), or resized when the side is far from 28."""
    r = images.shape[-1]
    if r == NATIVE:
        return images
    if NATIVE < r <= NATIVE + 8:
        p = (r - NATIVE) // 2
        return images[..., p : p + NATIVE, p : p + NATIVE]
    return _upsample(images, NATIVE)


def raw_attributes(images: torch.Tensor) -> torch.Tensor:
    """float [N, 3]: shade (mean 8-bit level of the object's pixels; higher is a darker
    garment, Fashion-MNIST's negated intensities), width (bounding box / frame) and fill
    (object pixels / frame), as `ganforge.data.captions.measure` computes before cutting."""
    gray = torch.from_numpy(convert_channels(images.numpy(), 1))[:, 0].float()
    fg = gray > FOREGROUND
    count = fg.sum((1, 2))
    shade = (gray * fg).sum((1, 2)) / count.clamp(min=1)
    cols = fg.any(1).float()
    w = cols.shape[1]
    left, right = cols.argmax(1), w - 1 - cols.flip(1).argmax(1)
    width = torch.where(count > 0, (right - left + 1).float() / w, torch.zeros_like(shade))
    fill = count.float() / (fg.shape[1] * fg.shape[2])
    return torch.stack([shade, width, fill], 1)


def attribute_agreement(images: torch.Tensor, texts: list[str]) -> dict:
    """For each attribute, over the images whose caption names it: how often the measured
    word is the caption's (chance about 1/3), and the mean measured value for the captions'
    high word minus for their low word (dark - light object level, wide - narrow width,
    large - small fill: positive when the images follow the captions)."""
    native = _native(images)
    found, raw = measure(native), raw_attributes(native)
    out = {}
    for k, (name, vocab) in enumerate(ATTRIBUTES.items()):
        said = torch.tensor([next((vocab.index(w) for w in words(t) if w in vocab), -1)
                             for t in texts])  # fmt: skip
        named = said >= 0
        low, high = raw[said == 0, k], raw[said == 2, k]
        out[name] = {
            "captions": int(named.sum()),
            "agreement": float((found[named, k] == said[named]).double().mean()),
            "chance": 1 / 3,
            f"{vocab[2]}_minus_{vocab[0]}": float(high.mean() - low.mean())
            if len(low) and len(high)
            else None,
        }
    return out


def measure_stackgan(run: Path, n: int, seed: int = 0) -> dict:
    """FID/KID of Stage-I (upsampled) and Stage-II images against the test split with the
    domain features, class agreement, attribute agreement and the text encoder's
    R-precision, for a stackgan run on fmnist-captions; ``n`` test captions."""
    g = ganforge.load(run)
    test = _data(g, "test")
    n = min(n, len(test))
    index = subset_index(len(test), n, seed)
    index = torch.arange(len(test)) if index is None else index
    texts = test.texts(index)
    real = to_uint8(test.batch(index)["image"])
    labels = test.labels[index].numpy()
    low, high = _generate(g, texts, seed)
    size = high.shape[-1]
    net, record = build_domain_network(
        feature_source(g.config.data.name), data_dir=g.config.data.dir
    )
    real_f = extract(net, real)
    feats = {"stage1_upsampled": extract(net, _upsample(low, size)), "stage2": extract(net, high)}
    row: dict = {
        "run": str(run),
        "step": g.step,
        "n": n,
        "features": {"name": "domain", "hash": record["hash"], "accuracy": record["test_accuracy"]},
    }
    for name, f in feats.items():
        row[name] = score(real_f, f, ["fid", "kid"], seed=seed)
        row[name]["class_agreement"] = float((f.probs.argmax(1) == labels).mean())
    train = _data(g, "train")
    train_index = subset_index(len(train), n, seed + 1)
    train_index = torch.arange(len(train)) if train_index is None else train_index
    floor = extract(net, to_uint8(train.batch(train_index)["image"]))
    row["real_vs_real"] = score(real_f, floor, ["fid", "kid"], seed=seed)
    row["attributes"] = {"stage2": attribute_agreement(high, texts),
                         "real": attribute_agreement(real, texts)}  # fmt: skip
    row["r_precision"] = _r_precision(g, train, test, index, texts, high, seed)
    return row


def _r_precision(g, train, test, index, texts, generated, seed) -> dict:
    """R-precision (right caption first among 100) of the damsm encoders, on the real test
    images and on the generated Stage-II ones; None for another text encoder."""
    out = {"candidates": R_CANDIDATES, "chance": 1 / R_CANDIDATES}
    if g.model.encoder_kind != "damsm":
        return {**out, "real": None, "generated": None, "note": f"{g.model.encoder_kind} encoder"}
    found = cached_text_encoder(train, text_settings(g.model.cfg))
    if found is None:
        raise SystemExit("the run's damsm text encoder is not in the cache; train it again")
    text_enc, image_enc, record = found
    same = all(
        torch.equal(v, g.model.G.text.state_dict()[k]) for k, v in text_enc.state_dict().items()
    )
    items = test.batch(index)
    images = generated.float().div(127.5).sub(1.0)
    return {
        **out,
        "encoder": record["hash"],
        "encoder_is_the_runs": same,
        "real": r_precision(text_enc, image_enc, items["image"], items["text"], texts, seed),
        "generated": r_precision(text_enc, image_enc, images, items["text"], texts, seed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    row = measure_stackgan(args.run, args.n)
    print(json.dumps(row, indent=2, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
