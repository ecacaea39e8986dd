"""Small leaf layers shared by families.  Imports only torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

# Row/column taps of a 3x3 kernel seen through a 2x nearest upsampling: output phase 0 of each
# axis reads input rows (i-1, i) with kernel rows (0, 1+2); phase 1 reads (i, i+1) with (0+1, 2).
_PHASE_TAPS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])


class UpsampleConv2d(nn.Conv2d):
    """``Upsample(scale_factor=2, mode="nearest")`` then ``Conv2d(k=3, stride=1, padding=1)``,
    computed without materialising the upsampled image.

    Each of the four output phases of a nearest-upsampled 3x3 convolution sees only a 2x2
    neighbourhood of the input, so the pair equals one 2x2 convolution with 4x the output
    channels and summed weights, followed by interleaving.  That is 16 multiply-adds per output
    pair instead of 36: the same function (to float rounding) at well under half the cost, and the
    parameters keep the plain ``Conv2d`` layout, so checkpoints match the unfused layers.
    No library provides this fused form, hence written here.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_conv2d(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, up=2 (nearest), kernel_size=3"


def upsample_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``conv2d(interpolate(x, scale_factor=2), weight, bias, padding=1)`` for a 3x3
    ``weight`` [O, I, 3, 3], computed as `UpsampleConv2d` does (four 2x2 phase kernels), for
    layers that hold their weight otherwise (BigGAN's spectrally normalised convolutions)."""
    n, _, h, w = x.shape
    o = weight.shape[0]
    taps = _PHASE_TAPS.to(device=weight.device, dtype=weight.dtype)
    # kernel[py, px, o, i, a, b]: phase (py, px), tap (a, b) of the 2x2 window
    kernel = torch.einsum("pak,qbl,oikl->pqoiab", taps, taps, weight)
    y = F.conv2d(F.pad(x, (1, 1, 1, 1)), kernel.reshape(4 * o, -1, 2, 2))
    y = y.view(n, 2, 2, o, h + 1, w + 1)
    rows = [
        torch.stack([y[:, py, px, :, py : py + h, px : px + w] for px in (0, 1)], dim=-1)
        for py in (0, 1)
    ]
    out = torch.stack(rows, dim=3).reshape(n, o, 2 * h, 2 * w)  # [N, O, H, 2, W, 2] -> 2H, 2W
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


class Reshape(nn.Module):
    """Reshape the features of each sample: ``[N, ...] -> [N, *shape]``."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.shape))


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN initialisation (Radford et al. 2015): conv/linear N(0, 0.02), BN scale N(1, 0.02).

    Embeddings keep PyTorch's N(0, 1): a label embedding that multiplies z must not shrink it,
    or G's input loses almost all of its variation and G collapses to one image.  A layer
    under a weight parametrization (spectral norm) has its original weight initialised."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            weight = (
                m.parametrizations.weight.original
                if parametrize.is_parametrized(m, "weight")
                else m.weight
            )
            nn.init.normal_(weight, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
