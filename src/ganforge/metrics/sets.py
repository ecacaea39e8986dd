"""Image sets as features: one pass of a feature network over a set, cached for real sets.

Sets travel as uint8 ``[N, C, R, R]`` (what an image file holds), so generated images are
quantized exactly as saved ones would be and a set scores the same from memory or from disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import ImageDataset
from ..features.domain import cache_dir
from .catalog import Features

#: images per forward pass of a feature network (and per chunk of an evaluation)
CHUNK = 500


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8 ``[N, C, H, W]`` on the CPU, rounded as when saved."""
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu()


@torch.no_grad()
def extract(net: nn.Module, images: torch.Tensor, batch_size: int = CHUNK) -> Features:
    """Run ``net`` (with ``features`` and ``head``) once over uint8 ``[N, C, R, R]`` images,
    keeping features ``[N, d]`` and class probabilities ``[N, K]`` (float64)."""
    net.eval()
    feats, probs = [], []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].float().div(127.5).sub(1.0)
        f = net.features(x)
        feats.append(f.double().numpy())
        probs.append(torch.softmax(net.head(f).double(), dim=1).numpy())
    return Features(np.concatenate(feats), np.concatenate(probs))


def concat(parts: list[Features]) -> Features:
    """One set from the features of its chunks, in order."""
    return Features(
        np.concatenate([p.features for p in parts]), np.concatenate([p.probs for p in parts])
    )


def subset_index(size: int, n: int, seed: int) -> torch.Tensor | None:
    """Sorted positions of a seeded random ``n`` of ``size`` items; None when ``n >= size``
    (all of them)."""
    if n >= size:
        return None
    index = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:n]
    return index.sort().values


def subset(data: ImageDataset, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` images (a seeded random subset when the split is larger) and their labels."""
    index = subset_index(len(data), n, seed)
    if index is None:
        return data.images, data.labels
    return data.images[index], (data.labels[index] if data.labels is not None else None)


def cached_real_features(
    net: nn.Module, net_hash: str, images: torch.Tensor, options: dict[str, Any]
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
