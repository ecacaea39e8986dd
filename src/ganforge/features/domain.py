"""The ``domain`` feature network: a small CNN classifier trained by GANForge on the data set
itself, whose penultimate layer gives the features for FID, KID, precision/recall and the
classifier outputs for IS and label agreement.  It needs no download, so it works offline.

It is trained deterministically (fixed seed, fixed data order) and cached in the user cache
folder under a name that holds a hash of the data and the settings, so two machines that build
it from the same data get the same network, and a change of data or settings never reuses a
stale one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..data import DataSpec, ImageDataset, load_dataset
from ..errors import UserError

# says what long one-time work is doing before it starts (shown by the CLI; see cli.py)
log = logging.getLogger("ganforge")

FORMAT_VERSION = 2


@dataclass(frozen=True)
class DomainSettings:
    """What the domain classifier is and how it is trained (all part of its cache hash)."""

    width: int = 32  # channels of the first block; the second has twice as many
    features: int = 128  # size of the penultimate layer (the feature vector)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 5e-4
    max_shift: int = 2  # random translation in pixels (augmentation)
    seed: int = 0


class DomainClassifier(nn.Module):
    """Two conv blocks (conv-BN-ReLU x2, max-pool) and a dropout MLP head.

    Input ``[N, C, R, R]`` in [-1, 1] at the data set's native resolution ``R``; ``features``
    gives ``[N, settings.features]``, ``forward`` the class logits ``[N, K]``."""

    def __init__(self, channels: int, resolution: int, classes: int, s: DomainSettings) -> None:
        super().__init__()
        self.resolution, self.channels = resolution, channels
        w = s.width

        def block(a: int, b: int) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]

        self.body = nn.Sequential(
            *block(channels, w),
            *block(w, w),
            nn.MaxPool2d(2),
            *block(w, 2 * w),
            *block(2 * w, 2 * w),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(2 * w * (resolution // 4) ** 2, s.features),
            nn.BatchNorm1d(s.features),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(s.features, classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(self._fit(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def _fit(self, images: torch.Tensor) -> torch.Tensor:
        """Bring any image size and channel count (luma or repeated gray) to the network's
        (both sides of a comparison get the same treatment, so this changes no ranking)."""
        if images.shape[1] != self.channels:
            if self.channels == 1:
                luma = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype)
                images = (images[:, :3] * luma.to(images.device).view(1, 3, 1, 1)).sum(1, True)
            else:
                images = images[:, :1].expand(-1, self.channels, -1, -1)
        if images.shape[-1] != self.resolution or images.shape[-2] != self.resolution:
            images = F.interpolate(
                images,
                size=(self.resolution, self.resolution),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        return images


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "ganforge" / "features"


#: The DataSpec fields of format 2.  Fields added to DataSpec since (the data task and its
#: input shape, captions) enter the fingerprint only when they differ from their defaults, so
#: a network cached for plain data before they existed keeps its name and stays valid.
SPEC_FIELDS_V2 = ("channels", "resolution", "num_classes", "class_names", "name")


def _spec_key(spec: DataSpec) -> dict[str, Any]:
    """The spec as hashed: format 2's fields, plus any later field that is set."""
    values = spec.to_dict()
    later = {
        f.name
        for f in fields(spec)
        if f.name not in SPEC_FIELDS_V2 and getattr(spec, f.name) != f.default
    }
    return {k: v for k, v in values.items() if k in SPEC_FIELDS_V2 or k in later}


def data_fingerprint(data: ImageDataset) -> str:
    """SHA-256 of the images, labels and spec: which data the classifier is trained on."""
    h = hashlib.sha256()
    h.update(data.images.numpy().tobytes())
    if data.labels is not None:
        h.update(data.labels.numpy().tobytes())
    h.update(json.dumps(_spec_key(data.spec), sort_keys=True).encode())
    return h.hexdigest()


def network_hash(train: ImageDataset, settings: DomainSettings) -> str:
    """Short hash naming a domain network: training data + settings + format version."""
    key = json.dumps(
        {"data": data_fingerprint(train), "settings": asdict(settings), "format": FORMAT_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _shift(images: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Random integer translation of the whole batch (pad with the background, crop back)."""
    if max_shift == 0:
        return images
    dx, dy = (torch.randint(-max_shift, max_shift + 1, (2,), generator=gen)).tolist()
    padded = F.pad(images, (max_shift,) * 4, value=-1.0)
    r = images.shape[-1]
    return padded[..., max_shift + dy : max_shift + dy + r, max_shift + dx : max_shift + dx + r]


def train_classifier(
    train: ImageDataset, settings: DomainSettings, *, progress: bool = True
) -> DomainClassifier:
    """Train deterministically on ``train`` (labeled) with AdamW and a one-cycle schedule."""
    if train.labels is None or train.spec.num_classes < 2:
        raise UserError(
            f"the domain feature network needs a labeled data set; "
            f"'{train.spec.name}' has no classes"
        )
    torch.manual_seed(settings.seed)
    spec = train.spec
    net = DomainClassifier(spec.channels, spec.resolution, spec.num_classes, settings)
    net.to(memory_format=torch.channels_last)  # ~20% faster convolutions on CPU; same function
    steps_per_epoch = len(train) // settings.batch_size
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch
    )
    gen = torch.Generator().manual_seed(settings.seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=settings.epochs * steps_per_epoch,
            unit="step",
            file=sys.stderr,
            disable=None,
            desc="domain features",
        )
    net.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(train), generator=gen)
        for i in range(steps_per_epoch):
            batch = train.batch(order[i * settings.batch_size : (i + 1) * settings.batch_size])
            images = _shift(batch["image"], settings.max_shift, gen)
            images = images.contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(net(images), batch["label"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    # back to the layout a network loaded from the cache has: the convolutions then take the
    # same code path, so the first evaluation after training gives the very figures of later ones
    return net.to(memory_format=torch.contiguous_format).eval()


@torch.no_grad()
def accuracy(net: DomainClassifier, data: ImageDataset, batch_size: int = 1000) -> float:
    net.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        batch = data.batch(torch.arange(start, min(start + batch_size, len(data))))
        correct += (net(batch["image"]).argmax(1) == batch["label"]).sum().item()
    return correct / len(data)


def build_domain_network(
    dataset: str,
    *,
    data_dir: str | None = None,
    settings: DomainSettings | None = None,
    progress: bool = True,
    rebuild: bool = False,
) -> tuple[DomainClassifier, dict]:
    """The cached domain network of ``dataset``, trained on its train split on first use.

    Returns the network (eval mode) and its record: hash, test accuracy, settings, file.
    The global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        return _build(dataset, data_dir, settings or DomainSettings(), progress, rebuild)


def cached_domain_network(
    dataset: str, *, data_dir: str | None = None, settings: DomainSettings | None = None
) -> tuple[DomainClassifier, dict] | None:
    """The domain network of ``dataset`` if it is already in the cache, else None: never
    trains and never downloads (for optional uses such as projection's perceptual term).
    Raises `UserError` when the data set itself cannot be loaded."""
    settings = settings or DomainSettings()
    train = load_dataset(dataset, split="train", data_dir=data_dir, download=False)
    _, _, weights_file, record_file = _cache_files(train, settings)
    with torch.random.fork_rng(devices=[]):  # building the empty network draws from the RNG
        return _cached(train.spec, settings, weights_file, record_file)


def _cache_files(train: ImageDataset, settings: DomainSettings) -> tuple[str, str, Path, Path]:
    """(name, hash, weights file, record file) of the network for ``train`` and ``settings``."""
    digest = network_hash(train, settings)
    name = f"domain-{train.spec.name.replace(':', '_').replace('/', '_')}-{digest}"
    return name, digest, cache_dir() / f"{name}.safetensors", cache_dir() / f"{name}.json"


def _cached(
    spec, settings: DomainSettings, weights_file: Path, record_file: Path
) -> tuple[DomainClassifier, dict] | None:
    if not (weights_file.exists() and record_file.exists()):
        return None
    net = DomainClassifier(spec.channels, spec.resolution, spec.num_classes, settings)
    net.load_state_dict(load_file(str(weights_file)))
    return net.eval(), {**json.loads(record_file.read_text()), "file": str(weights_file)}


def _build(
    dataset: str, data_dir: str | None, settings: DomainSettings, progress: bool, rebuild: bool
) -> tuple[DomainClassifier, dict]:
    train = load_dataset(dataset, split="train", data_dir=data_dir)
    name, digest, weights_file, record_file = _cache_files(train, settings)
    spec = train.spec
    found = None if rebuild else _cached(spec, settings, weights_file, record_file)
    if found is not None:
        return found
    log.info(
        f"building the domain features of {spec.name}: training a classifier on "
        f"{len(train):,} images for {settings.epochs} epochs (once; cached in {weights_file})"
    )
    net = train_classifier(train, settings, progress=progress)
    test = load_dataset(dataset, split="test", data_dir=data_dir)
    record = {
        "name": name,
        "hash": digest,
        "dataset": spec.name,
        "test_accuracy": round(accuracy(net, test), 4),
        "test_images": len(test),
        "train_images": len(train),
        "settings": asdict(settings),
        "features": settings.features,
        "resolution": spec.resolution,
    }
    weights_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights_file.with_name(f".{weights_file.name}.tmp-{os.getpid()}")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    os.replace(tmp, weights_file)  # the weights land before the record that vouches for them
    record_file.write_text(json.dumps(record, indent=2) + "\n")
    return net, {**record, "file": str(weights_file)}
