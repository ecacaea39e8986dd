"""The standard FID feature network: the 2015-12-05 TensorFlow Inception-v3 ported to PyTorch.

FID, KID and the Inception Score are only comparable across papers when they use this exact
network: the graph of ``inception-2015-12-05.tgz`` that the original FID code (TTUR) loads, which
differs from torchvision's Inception-v3 in three places: 1008 classes, average pools in the A, C
and first E blocks that do not count the zero padding, and a *max* pool in the last E block.

Numbers follow torch-fidelity (``torch_fidelity/feature_extractor_inceptionv3.py``), the pure-torch
port that reproduces the TensorFlow graph's input path as well: images quantised to uint8, resized
to 299x299 with TensorFlow 1.x's bilinear resize (no half-pixel centres), scaled by
``(x - 128) / 128``.  pytorch-fid uses the same network and weights but ``F.interpolate`` for the
resize, so its features differ slightly from these whenever an image is not already 299x299.

Weights are never downloaded: the user supplies the file (``--inception-weights PATH`` or
``GANFORGE_INCEPTION_WEIGHTS``), its SHA-256 is checked, and it is read with
``torch.load(weights_only=True)``, which executes no code.  Parameter names are those of
pytorch-fid's file (torchvision's Inception3 names); torch-fidelity uses the same names.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

#: Published by pytorch-fid.  Neither reference states the full SHA-256 (torch.hub's naming puts
#: its first 8 hex digits, ``6726825d``, in the file name); the full hash and size below are the
#: ones third-party projects pin for this URL, e.g. genforce/genforce ``metrics/inception.py``.
WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_FILE
)
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
WEIGHTS_BYTES = 95_628_359
#: torch-fidelity's copy.  Projects that pin it report the same SHA-256 as pytorch-fid's file,
#: so it is the same bytes and needs no key mapping.
TORCH_FIDELITY_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth"
)
#: SHA-256 -> what the file is.  ``load_inception`` accepts exactly these files.
KNOWN_WEIGHTS: dict[str, str] = {
    WEIGHTS_SHA256: f"{WEIGHTS_FILE} (pytorch-fid; torch-fidelity's "
    "weights-inception-2015-12-05-6726825d.pth is the same file)",
}
ENV_VAR = "GANFORGE_INCEPTION_WEIGHTS"
INPUT_SIZE = 299
POOL_DIM = 2048
NUM_CLASSES = 1008


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, as in the TF graph) -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int | tuple[int, int], **conv: Any):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, bias=False, **conv)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Always the stored statistics: a metric's feature network must give the same features
        # whatever mode a caller leaves it in, and must never update its running averages.
        bn = self.bn
        x = F.batch_norm(
            self.conv(x), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps
        )
        return F.relu(x)


def _avg_pool_tf(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's SAME average pool divides by the number of real pixels under the window.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _chain(x: torch.Tensor, *layers: nn.Module) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x


class BlockA(nn.Module):
    """35x35 block (Mixed_5b/c/d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg-pool-1x1."""

    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 64, 1)
        self.branch5x5_1 = ConvBN(c_in, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(c_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                _chain(x, self.branch5x5_1, self.branch5x5_2),
                _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                self.branch_pool(_avg_pool_tf(x)),
            ],
            1,
        )


class BlockB(nn.Module):
    """35x35 -> 17x17 reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | max-pool/2."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),
                F.max_pool2d(x, 3, stride=2),
            ],
            1,
        )


class BlockC(nn.Module):
    """17x17 block (Mixed_6b..e) with factorised 7x7 convolutions and a TF average pool."""

    def __init__(self, c_in: int, c7: int):
        super().__init__()
        row, col = {"padding": (0, 3)}, {"padding": (3, 0)}
        self.branch1x1 = ConvBN(c_in, 192, 1)
        self.branch7x7_1 = ConvBN(c_in, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), **row)
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), **col)
        self.branch7x7dbl_1 = ConvBN(c_in, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), **col)
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), **row)
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), **col)
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), **row)
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        double = [getattr(self, f"branch7x7dbl_{i}") for i in range(1, 6)]
        return torch.cat(
            [
                self.branch1x1(x),
                _chain(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
                _chain(x, *double),
                self.branch_pool(_avg_pool_tf(x)),
            ],
            1,
        )


class BlockD(nn.Module):
    """17x17 -> 8x8 reduction (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max-pool/2."""

    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(c_in, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tower = [getattr(self, f"branch7x7x3_{i}") for i in range(1, 5)]
        return torch.cat(
            [
                _chain(x, self.branch3x3_1, self.branch3x3_2),
                _chain(x, *tower),
                F.max_pool2d(x, 3, stride=2),
            ],
            1,
        )


class BlockE(nn.Module):
    """8x8 block (Mixed_7b/c) with split 1x3/3x1 heads.  ``max_pool`` selects the pool branch:
    the TF graph has an average pool in Mixed_7b but a max pool in Mixed_7c."""

    def __init__(self, c_in: int, *, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        row, col = {"padding": (0, 1)}, {"padding": (1, 0)}
        self.branch1x1 = ConvBN(c_in, 320, 1)
        self.branch3x3_1 = ConvBN(c_in, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), **row)
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), **col)
        self.branch3x3dbl_1 = ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), **row)
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), **col)
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = self.branch3x3_1(x)
        double = _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool_tf(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(single),
                self.branch3x3_2b(single),
                self.branch3x3dbl_3a(double),
                self.branch3x3dbl_3b(double),
                self.branch_pool(pooled),
            ],
            1,
        )


def quantize_to_pixels(images: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` in [-1, 1] -> float32 pixel values, integers in [0, 255].

    The reference takes uint8 images; rounding here makes an image that came from uint8 (as
    ``u / 127.5 - 1``) reach the network exactly as the reference sees it, and treats generated
    images as if they had been saved as 8-bit files."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round()


def _resize_axis_tf1(x: torch.Tensor, dim: int, out_size: int) -> torch.Tensor:
    """Linear interpolation of one axis as TF 1.x ``resize_bilinear`` (align_corners=False):
    output pixel ``i`` samples input position ``i * in / out`` (no half-pixel offset); the
    neighbour on the right is clamped to the border."""
    in_size = x.shape[dim]
    # float32 positions from a float32 scale, as the reference computes them.
    scale = torch.tensor(in_size / out_size, dtype=torch.float32, device=x.device)
    pos = torch.arange(out_size, dtype=torch.float32, device=x.device) * scale
    lo = pos.long()
    hi = (lo + 1).clamp(max=in_size - 1)
    shape = [1] * x.dim()
    shape[dim] = out_size
    frac = (pos - lo.float()).view(shape)
    left = x.index_select(dim, lo)
    return left + (x.index_select(dim, hi) - left) * frac


def resize_tf1(pixels: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Bilinear resize of float ``[N, C, H, W]`` to ``[N, C, size, size]`` as TensorFlow 1.x does
    it: width first, then height, which gives the reference's numbers bit for bit."""
    return _resize_axis_tf1(_resize_axis_tf1(pixels, 3, size), 2, size)


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3.  Build it empty and load the published file with
    ``load_inception``; ``load_state_dict(strict=True)`` takes that file as it is.

    ``forward(images)`` with images ``[N, 1 or 3, H, W]`` in [-1, 1] returns a dict:
    ``pool`` ``[N, 2048]`` (the pool3 features FID and KID use), ``logits`` ``[N, 1008]`` (the
    classifier output) and ``logits_unbiased`` ``[N, 1008]`` (the same without the bias: what
    the original Inception Score code and torch-fidelity's IS apply the softmax to)."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = BlockA(192, pool_features=32)
        self.Mixed_5c = BlockA(256, pool_features=64)
        self.Mixed_5d = BlockA(288, pool_features=64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, c7=128)
        self.Mixed_6c = BlockC(768, c7=160)
        self.Mixed_6d = BlockC(768, c7=160)
        self.Mixed_6e = BlockC(768, c7=192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, max_pool=False)
        self.Mixed_7c = BlockE(2048, max_pool=True)
        self.fc = nn.Linear(POOL_DIM, NUM_CLASSES)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 1 or 3, H, W]`` in [-1, 1] -> the network input ``[N, 3, 299, 299]``, roughly
        in [-1, 1]: uint8 quantisation, TF1 bilinear resize, ``(x - 128) / 128``."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                f"expected images [N, 1 or 3, H, W] in [-1, 1], got shape {tuple(images.shape)}"
            )
        x = quantize_to_pixels(images)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = resize_tf1(x, INPUT_SIZE)
        return (x - 128) / 128

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """pool3 features ``[N, 2048]`` of images ``[N, 1 or 3, H, W]`` in [-1, 1]."""
        x = self.preprocess(images)  # 3 x 299x299
        x = _chain(x, self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3)  # 64 x 147x147
        x = F.max_pool2d(x, 3, stride=2)  # 64 x 73x73
        x = _chain(x, self.Conv2d_3b_1x1, self.Conv2d_4a_3x3)  # 192 x 71x71
        x = F.max_pool2d(x, 3, stride=2)  # 192 x 35x35
        x = _chain(x, self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a)  # 768 x 17x17
        x = _chain(x, self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e)
        x = _chain(x, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c)  # 2048 x 8x8
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def head(self, pool: torch.Tensor) -> torch.Tensor:
        """The Inception Score's class scores ``[N, 1008]`` from pool3 features: the classifier
        without its bias, as the original IS code (and torch-fidelity's default) computes them."""
        return pool.mm(self.fc.weight.T)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        pool = self.features(images)
        unbiased = self.head(pool)
        return {"pool": pool, "logits": unbiased + self.fc.bias, "logits_unbiased": unbiased}


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _how_to_get() -> str:
    return (
        f"download {WEIGHTS_FILE} (sha256 {WEIGHTS_SHA256}) from {WEIGHTS_URL} "
        f"(or torch-fidelity's identical copy, {TORCH_FIDELITY_WEIGHTS_URL}) and pass "
        f"--inception-weights PATH or set {ENV_VAR}=PATH; or use --features domain, "
        "which works offline"
    )


def load_inception(path: str | os.PathLike[str] | None = None) -> FIDInceptionV3:
    """The FID Inception-v3 with the published weights, in eval mode and without gradients.

    ``path`` defaults to ``$GANFORGE_INCEPTION_WEIGHTS``.  The file must have a known SHA-256
    (``KNOWN_WEIGHTS``); it is read with ``weights_only=True``.  Nothing is downloaded."""
    given = path or os.environ.get(ENV_VAR) or None
    if given is None:
        raise UserError(f"the FID Inception-v3 weights were not given: {_how_to_get()}")
    file = Path(given).expanduser()
    if not file.is_file():
        raise UserError(f"FID Inception-v3 weights not found at {file}: {_how_to_get()}")
    digest = file_sha256(file)
    if digest not in KNOWN_WEIGHTS:
        raise UserError(
            f"{file} is not the FID Inception-v3 weight file: expected sha256 {WEIGHTS_SHA256} "
            f"({WEIGHTS_FILE}, {WEIGHTS_BYTES} bytes), found sha256 {digest} "
            f"({file.stat().st_size} bytes); download it again from {WEIGHTS_URL}"
        )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or non-tensor file: report it, never run it
        raise UserError(f"cannot read {file} as tensors: {_one_line(e)}") from e
    net = FIDInceptionV3()
    _check_keys(state, net, file)
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False)


def _check_keys(state: Any, net: nn.Module, file: Path) -> None:
    """One-line errors for a file whose tensors do not fit the network."""
    if not isinstance(state, dict):
        raise UserError(f"{file} holds a {type(state).__name__}, not a state dict")
    expected = net.state_dict()
    # torch fills in a missing BatchNorm counter itself (files saved before torch 0.4.1 lack it)
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        k
        for k in set(state) & set(expected)
        if not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape
    )
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("misshapen", wrong)):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            raise UserError(
                f"{file} does not fit the FID Inception-v3: {what} tensors "
                f"{', '.join(keys[:3])}{more}"
            )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]
