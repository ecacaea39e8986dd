"""VGG19 up to ``relu5_4``, with torchvision's ImageNet weights from a file the user supplies:
the content network of SRGAN's VGG54 loss (Ledig et al. 2017) and of perceptual losses.

Our own module, no torchvision dependency: ``features`` is an ``nn.Sequential`` with
torchvision's layer indices (convolution ``features.0`` ... ``features.34``, each followed by an
in-place ReLU; max pools at 4, 9, 18 and 27), so the state dict of torchvision's
``vgg19-dcbb9e9d.pth`` loads into it by name.  It stops at index 35, ``relu5_4``: "the feature
map obtained by the 4th convolution (after activation) before the 5th max-pooling layer" (the
paper's phi_5,4).  The file's ``classifier.*`` tensors are not used and are dropped unread.

Weights are never downloaded: the user gives the file, whose SHA-256 is checked, and it is read
with ``torch.load(weights_only=True)``, which executes no code.  torchvision publishes only the
first 8 hex digits of the file's SHA-256 (in its name, the torch.hub convention), and torch.hub's
own ``check_hash`` compares exactly that prefix; we check the same prefix.

Inputs are images ``[N, 1 or 3, H, W]`` in [-1, 1]; they are mapped to [0, 1] and normalized by
ImageNet's mean and standard deviation, the input the weights were trained on (as BasicSR's
``VGGFeatureExtractor`` does); grayscale is repeated to 3 channels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .inception import file_sha256

WEIGHTS_FILE = "vgg19-dcbb9e9d.pth"
WEIGHTS_URL = "https://download.pytorch.org/models/" + WEIGHTS_FILE
#: The SHA-256 prefix torchvision publishes in the file's name (what torch.hub checks).
WEIGHTS_SHA256_PREFIX = "dcbb9e9d"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: VGG19's configuration "E": output channels of each 3x3 convolution, "M" a 2x2 max pool.
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M")
VGG19_LAYOUT += (512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def layer_names() -> list[str]:
    """The names of torchvision's ``features`` modules by index: ``conv1_1``, ``relu1_1``,
    ``conv1_2``, ``relu1_2``, ``pool1``, ... ``relu5_4`` (35), ``pool5`` (36)."""
    names, block, conv = [], 1, 1
    for item in VGG19_LAYOUT:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


def layer_index(name: str) -> int:
    """Index of layer ``name`` in torchvision's ``vgg19().features`` (``relu5_4`` -> 35)."""
    names = layer_names()
    if name not in names:
        raise UserError(f"unknown VGG19 layer {name!r}; use one of {', '.join(names)}")
    return names.index(name)


class VGG19Features(nn.Module):
    """VGG19's convolutional layers up to and including ``layer`` (default ``relu5_4``).

    ``forward(images [N, 1 or 3, H, W] in [-1, 1])`` -> feature maps ``[N, 512, H/16, W/16]``
    at relu5_4 (four max pools before it)."""

    def __init__(self, layer: str = "relu5_4") -> None:
        super().__init__()
        stop = layer_index(layer) + 1
        modules: list[nn.Module] = []
        channels = 3
        for item in VGG19_LAYOUT:
            if item == "M":
                modules.append(nn.MaxPool2d(2, 2))
            else:
                modules += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
                channels = int(item)
        self.layer = layer
        self.features = nn.Sequential(*modules[:stop])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        x = ((images + 1) / 2 - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        return self.features(x)


def how_to_get(option: str = "vgg19_weights") -> str:
    """Where the weights come from and which option takes them (for one-line errors)."""
    return (
        f"download torchvision's {WEIGHTS_FILE} (about 548 MB) from {WEIGHTS_URL} and set "
        f"{option}=PATH"
    )


def check_vgg19_file(
    path: str | os.PathLike[str] | None,
    *,
    sha256_prefix: str | None = None,
    option: str = "vgg19_weights",
) -> tuple[Path, str]:
    """The weights file and its SHA-256, or a one-line `UserError`: not given, missing, or not
    torchvision's file (its SHA-256 must start with ``sha256_prefix``, default
    `WEIGHTS_SHA256_PREFIX`, read when called)."""
    expected = sha256_prefix or WEIGHTS_SHA256_PREFIX
    if path is None or str(path) == "":
        raise UserError(f"the VGG19 content network needs its weights: {how_to_get(option)}")
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"VGG19 weights not found at {file}: {how_to_get(option)}")
    digest = file_sha256(file)
    if not digest.startswith(expected):
        raise UserError(
            f"{file} is not torchvision's {WEIGHTS_FILE}: its sha256 is {digest}, expected one "
            f"starting {expected}; download it again from {WEIGHTS_URL}"
        )
    return file, digest


def load_vgg19(
    path: str | os.PathLike[str] | None,
    *,
    layer: str = "relu5_4",
    sha256_prefix: str | None = None,
    option: str = "vgg19_weights",
) -> tuple[VGG19Features, str]:
    """VGG19 up to ``layer`` with the weights of torchvision's file at ``path`` (checked by
    `check_vgg19_file`), frozen and in eval mode, and the file's SHA-256.  The global RNG is
    left as it was (building the empty network draws from it)."""
    file, digest = check_vgg19_file(path, sha256_prefix=sha256_prefix, option=option)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or non-tensor file: report it, never run it
        raise UserError(f"cannot read {file} as tensors: {' '.join(str(e).split())[:300]}") from e
    with torch.random.fork_rng(devices=[]):
        net = VGG19Features(layer)
    _load_features(net, state, file)
    return net.eval().requires_grad_(False), digest


def _load_features(net: VGG19Features, state: Any, file: Path) -> None:
    """Load the ``features.*`` tensors of torchvision's state dict up to the network's last
    layer; one-line errors for a file whose tensors do not fit."""
    if not isinstance(state, dict):
        raise UserError(f"{file} holds a {type(state).__name__}, not a state dict")
    expected = net.features.state_dict()
    unknown = sorted(k for k in state if not k.startswith(("features.", "classifier.")))
    given = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    missing = sorted(f"features.{k}" for k in expected if k not in given)
    wrong = sorted(
        f"features.{k}"
        for k in expected
        if k in given
        and (not isinstance(given[k], torch.Tensor) or given[k].shape != expected[k].shape)
    )
    for what, keys in (("unexpected", unknown), ("missing", missing), ("misshapen", wrong)):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            raise UserError(
                f"{file} does not fit VGG19: {what} tensors {', '.join(keys[:3])}{more}"
            )
    # tensors of layers past ours (none for relu5_4: conv5_4 is the last convolution)
    net.features.load_state_dict({k: given[k] for k in expected}, strict=True)
