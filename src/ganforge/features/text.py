"""The ``damsm`` text encoder: a sentence encoder trained by GANForge on a captioned data set's
own captions against its images, then frozen (as StackGAN freezes its char-CNN-RNN embeddings),
and R-precision, the retrieval measure AttnGAN scores text-image agreement with.

Training is AttnGAN's DAMSM sentence loss (Xu et al. 2018, section 3.4) in small: a
bidirectional GRU over the caption's words (`ganforge.nn.text.GRUSentenceEncoder`) and a small
CNN image encoder trained jointly from scratch (`ImageEncoder`) map a batch of M pairs into one
space; the cosine similarities, times ``gamma`` (AttnGAN's gamma3 = 10), are the logits of a
softmax over the batch in both directions (caption -> its image, image -> its caption).  Pairs
whose captions are the very same words are masked out of each other's softmax, as AttnGAN masks
pairs of one class: on data whose captions repeat (fmnist-captions), they are not wrong pairs.
Departures from AttnGAN: no word-level attention loss, and the image encoder is a small CNN
trained from scratch (AttnGAN fine-tunes the last layers of an Inception-v3), so that it works
offline and on any captioned data, labeled or not.

It is trained deterministically (fixed seed, fixed data order, the caption of each item chosen
by a seeded generator) and cached in the user cache folder under a name that holds a hash of
the data (images, labels, vocabulary and every caption) and the settings, like the domain
features (`ganforge.features.domain`).  Building it says so first, with a progress line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..data.core import mix64
from ..errors import UserError
from ..nn.text import GRUSentenceEncoder
from .domain import cache_dir

log = logging.getLogger("ganforge")

FORMAT_VERSION = 1
#: captions each image is ranked against in R-precision (AttnGAN: the right one and 99 others)
R_CANDIDATES = 100


@dataclass(frozen=True)
class TextEncoderSettings:
    """What the text encoder is and how it is trained (all part of its cache hash)."""

    dim: int = 128  # sentence embedding size: 2 x the GRU's hidden size
    word_dim: int = 64
    image_width: int = 32  # channels of the image encoder's first conv (then 2x, 4x)
    image_size: int = 64  # images larger than this are downsampled to it for the encoder
    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    gamma: float = 10.0  # AttnGAN's gamma3: the softmax's inverse temperature
    seed: int = 0

    def validate(self) -> None:
        if self.dim < 2 or self.dim % 2:
            raise UserError(f"invalid value {self.dim!r} for text_dim: use an even size >= 2")
        if self.epochs < 1:
            raise UserError(f"invalid value {self.epochs!r} for text_epochs: use 1 or more")


class ImageEncoder(nn.Module):
    """``forward(images [N, C, R, R] in [-1, 1]) -> [N, dim]``: three stride-2 convs
    (LeakyReLU, batch norm after the first), global average pooling and a linear layer;
    images larger than ``size`` are first downsampled to it."""

    def __init__(self, channels: int, dim: int, width: int, size: int) -> None:
        super().__init__()
        self.size = size
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * w, dim),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] > self.size:
            images = F.interpolate(
                images, size=(self.size, self.size), mode="bilinear", antialias=True
            )
        return self.body(images)


def sentence_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, same: torch.Tensor, gamma: float
) -> torch.Tensor:
    """DAMSM's sentence loss: cross-entropy of ``gamma`` x cosine similarity over the batch,
    image -> caption plus caption -> image.  ``same`` bool [M, M]: pairs whose captions are the
    same words, masked out except the diagonal (the right pair)."""
    logits = gamma * F.normalize(image_emb, dim=1) @ F.normalize(text_emb, dim=1).T
    m = logits.shape[0]
    eye = torch.eye(m, dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    target = torch.arange(m, device=logits.device)
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)


def same_captions(tokens: torch.Tensor) -> torch.Tensor:
    """bool [M, M]: whether rows i and j of ``tokens`` [M, T] are the same caption."""
    return (tokens[:, None, :] == tokens[None, :, :]).all(-1)


def fingerprint(data: Any) -> str:
    """SHA-256 of a captioned data set: images, labels, vocabulary, token length and every
    caption of every item."""
    h = hashlib.sha256()
    h.update(data.images.numpy().tobytes())
    if data.labels is not None:
        h.update(data.labels.numpy().tobytes())
    s = data.spec
    key = [s.name, s.channels, s.resolution, list(s.vocab), s.max_tokens]
    h.update(json.dumps(key).encode())
    captions = data.captions
    for i in range(len(data)):
        h.update("\x1e".join(captions.text(i, j) for j in range(captions.count(i))).encode())
        h.update(b"\x1f")
    return h.hexdigest()


def encoder_hash(data: Any, settings: TextEncoderSettings) -> str:
    key = json.dumps(
        {"data": fingerprint(data), "settings": asdict(settings), "format": FORMAT_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def new_encoders(spec: Any, settings: TextEncoderSettings) -> tuple[nn.Module, ImageEncoder]:
    """Untrained (text encoder, image encoder) for a captioned data spec."""
    text = GRUSentenceEncoder(len(spec.vocab), settings.word_dim, settings.dim // 2)
    image = ImageEncoder(spec.channels, settings.dim, settings.image_width, settings.image_size)
    return text, image


def train_encoders(
    data: Any, settings: TextEncoderSettings, *, progress: bool = True
) -> tuple[GRUSentenceEncoder, ImageEncoder, float]:
    """Train both encoders on ``data`` (captioned) with Adam; returns them (eval mode) and the
    mean loss of the last epoch.  The global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        text, image = new_encoders(data.spec, settings)
        params = [*text.parameters(), *image.parameters()]
        opt = torch.optim.Adam(params, lr=settings.lr, betas=(0.5, 0.999))
        batch = min(settings.batch_size, len(data))
        steps = len(data) // batch
        gen = torch.Generator().manual_seed(settings.seed)
        bar = _bar(settings.epochs * steps) if progress else None
        last: list[float] = []
        for epoch in range(settings.epochs):
            order = torch.randperm(len(data), generator=gen)
            last = []
            for i in range(steps):
                index = order[i * batch : (i + 1) * batch]
                items = data.batch(index, key=mix64(0x74657874, settings.seed, epoch, i))
                tokens = items["text"]
                loss = sentence_loss(
                    image(items["image"]), text(tokens), same_captions(tokens), settings.gamma
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                last.append(loss.item())
                if bar is not None:
                    bar.update()
        if bar is not None:
            bar.close()
    return text.eval(), image.eval(), float(np.mean(last)) if last else float("nan")


def _bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", file=sys.stderr, disable=None, desc="text encoder")


def _files(data: Any, settings: TextEncoderSettings) -> tuple[str, str, Path, Path]:
    digest = encoder_hash(data, settings)
    name = f"text-{data.spec.name.replace(':', '_').replace('/', '_')}-{digest}"
    return name, digest, cache_dir() / f"{name}.safetensors", cache_dir() / f"{name}.json"


def cached_text_encoder(
    data: Any, settings: TextEncoderSettings
) -> tuple[GRUSentenceEncoder, ImageEncoder, dict] | None:
    """The encoders of ``data`` and ``settings`` if they are in the cache, else None (never
    trains)."""
    _, _, weights_file, record_file = _files(data, settings)
    if not (weights_file.exists() and record_file.exists()):
        return None
    with torch.random.fork_rng(devices=[]):  # building the empty networks draws from the RNG
        text, image = new_encoders(data.spec, settings)
    tensors = load_file(str(weights_file))
    text.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("text.")})
    image.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("image.")})
    record = {**json.loads(record_file.read_text()), "file": str(weights_file)}
    return text.eval(), image.eval(), record


def build_text_encoder(
    data: Any, settings: TextEncoderSettings, *, progress: bool = True, rebuild: bool = False
) -> tuple[GRUSentenceEncoder, ImageEncoder, dict]:
    """The text encoder of captioned training data ``data`` and its jointly trained image
    encoder, from the cache, or trained on first use (announced on the ``ganforge`` logger).
    Returns both (eval mode) and the record: hash, settings, final loss, R-precision on up to
    1,000 of the training items, file."""
    settings.validate()
    found = None if rebuild else cached_text_encoder(data, settings)
    if found is not None:
        return found
    name, digest, weights_file, record_file = _files(data, settings)
    log.info(
        f"building the text encoder of {data.spec.name}: a bidirectional GRU trained against "
        f"a small image encoder on {len(data):,} captioned images for {settings.epochs} "
        f"epochs (once; cached in {weights_file})"
    )
    text, image, loss = train_encoders(data, settings, progress=progress)
    index = torch.arange(min(1000, len(data)))
    record = {
        "name": name,
        "hash": digest,
        "dataset": data.spec.name,
        "train_images": len(data),
        "settings": asdict(settings),
        "final_loss": round(loss, 4),
        "train_r_precision": round(dataset_r_precision(text, image, data, index), 4),
    }
    weights_file.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"text.{k}": v for k, v in text.state_dict().items()}
    tensors |= {f"image.{k}": v for k, v in image.state_dict().items()}
    tmp = weights_file.with_name(f".{weights_file.name}.tmp-{os.getpid()}")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, weights_file)  # the weights land before the record that vouches for them
    record_file.write_text(json.dumps(record, indent=2) + "\n")
    return text, image, {**record, "file": str(weights_file)}


# ----- R-precision -------------------------------------------------------------------------
def r_precision(image_emb: torch.Tensor, caption_emb: torch.Tensor) -> float:
    """AttnGAN's R-precision with R = 1: the share of images whose right caption (column 0 of
    ``caption_emb`` [N, K, E]) is more similar (cosine) to the image (``image_emb`` [N, E])
    than each of the K - 1 others; a tie counts as a miss.  Chance is 1 / K."""
    sims = F.cosine_similarity(image_emb[:, None, :], caption_emb, dim=-1)  # [N, K]
    return float((sims[:, 0] > sims[:, 1:].max(1).values).double().mean())


def mismatched(texts: list[str], k: int, seed: int = 0) -> torch.Tensor:
    """int64 [N, k]: for each of ``texts``, ``k`` positions of other items whose caption is a
    different text (drawn at random from ``seed``; with repeats when few texts differ)."""
    ids = torch.from_numpy(np.unique(np.asarray(texts, dtype=object), return_inverse=True)[1])
    n = len(texts)
    if len(torch.unique(ids)) < 2:
        raise UserError("R-precision needs captions that differ; these are all the same text")
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(n, k, dtype=torch.int64)
    for row in range(n):
        chosen: list[int] = []
        while len(chosen) < k:
            draw = torch.randint(n, (2 * k,), generator=gen)
            chosen += draw[ids[draw] != ids[row]].tolist()
        out[row] = torch.tensor(chosen[:k])
    return out


@torch.no_grad()
def embed(net: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """``net`` over ``x`` in chunks (eval mode), float32 [N, E]."""
    net.eval()
    return torch.cat([net(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)])


def caption_r_precision(
    text_enc: nn.Module,
    image_enc: nn.Module,
    images: torch.Tensor,
    tokens: torch.Tensor,
    texts: list[str],
    seed: int = 0,
) -> float:
    """R-precision of ``images`` (float [N, C, R, R] in [-1, 1]) against their captions
    (``tokens`` [N, T], the words ``texts``), each ranked among R_CANDIDATES - 1 captions of
    other items with other words."""
    wrong = mismatched(texts, R_CANDIDATES - 1, seed)
    text_emb, image_emb = embed(text_enc, tokens), embed(image_enc, images)
    hits = 0.0
    for lo in range(0, len(texts), 1000):  # [1000, 100, E] at a time, not [N, 100, E]
        part = slice(lo, lo + 1000)
        candidates = torch.cat([text_emb[part, None], text_emb[wrong[part]]], 1)
        hits += r_precision(image_emb[part], candidates) * len(candidates)
    return hits / len(texts)


def dataset_r_precision(
    text_enc: nn.Module, image_enc: nn.Module, data: Any, index: torch.Tensor, seed: int = 0
) -> float:
    """`caption_r_precision` of items ``index`` of a captioned data set, each with the caption
    it gets with key None."""
    items = data.batch(index)
    return caption_r_precision(
        text_enc, image_enc, items["image"], items["text"], data.texts(index), seed
    )
