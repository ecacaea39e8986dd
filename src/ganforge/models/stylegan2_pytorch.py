"""``stylegan2-pytorch``: the StyleGAN2 of lucidrains' ``stylegan2_pytorch`` package (PyPI
``stylegan2_pytorch``, github.com/lucidrains/stylegan2-pytorch), rebuilt so that its checkpoints
import and give the package's images (`ganforge.tools.stylegan2_pytorch`).

It is not NVIDIA's StyleGAN2 (`stylegan2`): no equalized learning rate outside the mapping
network, plain ``nn.Linear`` styles, one noise *image* per sample shared by every layer, and
bilinear upsampling followed by a [1, 2, 1] blur.

G = mapping network (z normalised to unit length, then ``mapping_layers`` linear layers whose
weights and biases are scaled by ``lr_mlp`` at run time, each with a leaky ReLU) giving one w
per block; a learned 4x4 constant (or, with ``no_const``, a transposed convolution of the mean
w) and a plain 3x3 convolution; then per resolution a block of two modulated 3x3 convolutions
(weights times ``style + 1``, demodulated) each followed by its noise (a per-channel linear map
of the noise image, top-left cropped to the block's size and transposed, as the package does)
and a leaky ReLU, and a 1x1 modulated RGB convolution (not demodulated) added to the upsampled
and blurred image so far.  Optional linear attention with a feed-forward layer runs before the
blocks named in ``attn_layers`` (1 is the last block).  D = residual blocks (two 3x3 convs, a
blurred stride-2 conv, a 1x1 stride-2 shortcut, scaled by 1/sqrt(2)) down to 2x2, attention
after the blocks named in ``attn_layers`` (1 is the first), a 3x3 conv and a linear logit.

The parameter names are the package's, so its state dicts load strictly.  Two things differ at
the networks' boundaries, and both are exact conversions: the package's images are in [0, 1]
and GANForge's in [-1, 1] (G returns ``2 rgb - 1``; D reads ``(x + 1) / 2``), and the package's
D scores *fakeness* (its hinge loss pushes real logits below -1, fakes above +1, and G
minimises ``D(fake)``), so D here returns ``-logit``, the sign GANForge's losses expect.

Training (minimal: the point of the family is using imported networks): the package's hinge
loss; its gradient penalty on real and fake images every 4 D steps as R1 and R2 with gamma 20
(the package's ``10 |grad|^2`` in [0, 1] pixels, taken in [-1, 1] pixels and per lazy step);
Adam (0.5, 0.9) at 2e-4 for G and 3e-4 for D (its CLI's ``ttur_mult`` 1.5); style mixing with
probability ``mixed_prob``; a fresh uniform noise image per batch.  Departures: no path-length
regularization, top-k training, contrastive or dual-contrastive losses, augmentation of D's
inputs (GANForge's ``augment`` is there instead) or vector quantization; the EMA is the
engine's; and the mean w that truncation pulls towards is tracked in training (decay
``w_avg_beta``) instead of being re-estimated from 2,000 random latents every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError, check
from ..registry import MODELS
from .adversarial import Objective, RegConfig, TwoPlayerModel
from .base import Task
from .stylenets import check_sampling

#: the package's attention width (8 heads of 64), whatever the channels
ATTN_HEADS, ATTN_DIM_HEAD = 8, 64


@dataclass
class Config(Objective):
    resolution: int = 32  # a power of two (the package's image_size)
    z_dim: int = 512  # the package's latent_dim: z and w have this size
    mapping_layers: int = 8  # the package's style_depth
    lr_mlp: float = 0.1  # run-time scale of the mapping network's weights and biases
    network_capacity: int = 16  # G's widths: capacity * 2, 4, 8, ... from the last block back
    fmap_max: int = 512  # no layer wider than this
    d_network_capacity: int = 0  # D's widths: capacity * 4, 8, ... (0 = network_capacity)
    d_fmap_max: int = 0  # 0 = fmap_max
    attn_layers: list[int] = field(default_factory=list)  # 1 = G's last block, D's first
    no_const: bool = False  # G starts from a transposed conv of the mean w, not a constant
    attn_norm_legacy: bool = False  # attention's norm as in package 1.8.0-1.8.7: / (std + eps)
    mixed_prob: float = 0.9  # probability of style mixing in training
    w_avg_beta: float = 0.995  # decay of the tracked mean w (truncation's centre)
    # the package's objective: hinge loss, penalties on real and fake every 4 D steps
    loss: str = "hinge"
    reg: RegConfig = field(default_factory=lambda: RegConfig(r1=20.0, r2=20.0, every=4))
    lr_g: float = 2e-4
    lr_d: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.9)

    @property
    def num_layers(self) -> int:
        """Blocks of G (one per resolution from 4x4); D has one more."""
        return int(math.log2(self.resolution)) - 1

    def validate(self) -> None:
        super().validate()
        r = self.resolution
        check(r >= 4 and r & (r - 1) == 0, "resolution", r, "use a power of two, 4 or more")
        for name in ("z_dim", "mapping_layers", "network_capacity", "fmap_max"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "use 1 or more")
        for name in ("d_network_capacity", "d_fmap_max"):
            check(getattr(self, name) >= 0, name, getattr(self, name), "use 0 (as G) or more")
        check(self.lr_mlp > 0, "lr_mlp", self.lr_mlp, "use a positive scale (0.1 is usual)")
        check(0 <= self.mixed_prob <= 1, "mixed_prob", self.mixed_prob, "use 0..1")
        check(0 <= self.w_avg_beta < 1, "w_avg_beta", self.w_avg_beta, "use a value in [0, 1)")
        top = self.num_layers + 1
        for layer in self.attn_layers:
            check(1 <= layer <= top, "attn_layers", list(self.attn_layers), f"use 1..{top}")

    def g_widths(self) -> list[int]:
        """Channels of the 4x4 start and of each G block's output, first to last."""
        widths = [min(self.network_capacity * 2 ** (i + 1), self.fmap_max) for i in range(32)]
        widths = widths[: self.num_layers][::-1]
        return [widths[0], *widths]

    def d_widths(self, channels: int) -> list[int]:
        """Channels of D's input and of each D block's output, first to last."""
        capacity = self.d_network_capacity or self.network_capacity
        top = self.d_fmap_max or self.fmap_max
        widths = [min(capacity * 4 * 2**i, top) for i in range(self.num_layers + 1)]
        return [channels, *widths]


# ----- layers ---------------------------------------------------------------------------------
def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2)


class Blur(nn.Module):
    """The package's blur: the normalised [1, 2, 1] x [1, 2, 1] filter per channel, with the
    border reflected (kornia's ``filter2d`` default)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("f", torch.tensor([1.0, 2.0, 1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = torch.outer(self.f, self.f)
        kernel = (kernel / kernel.abs().sum()).to(x.dtype)
        channels = x.shape[1]
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, kernel.expand(channels, 1, 3, 3), groups=channels)


def _upsample() -> nn.Module:
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)


class ScaledLinear(nn.Module):
    """A linear layer whose weight and bias are multiplied by ``lr_mul`` at run time (the
    package's ``EqualLinear``: no 1/sqrt(fan_in) gain, so not an equalized learning rate)."""

    def __init__(self, features: int, lr_mul: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(features, features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.lr_mul, self.bias * self.lr_mul)


class Mapping(nn.Module):
    """z ``[N, D]`` -> w ``[N, D]``: unit-length z through ``depth`` scaled linear layers."""

    def __init__(self, features: int, depth: int, lr_mul: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [ScaledLinear(features, lr_mul), _lrelu()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(F.normalize(z, dim=1))


class ModulatedConv(nn.Module):
    """Convolution whose weights are scaled per sample by ``style + 1`` along the input
    channels and, with ``demod``, renormalised per output channel ('same' zero padding)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, demod: bool = True) -> None:
        super().__init__()
        self.out_ch, self.kernel, self.demod, self.eps = out_ch, kernel, demod, 1e-8
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, kernel, kernel))
        nn.init.kaiming_normal_(self.weight, a=0, mode="fan_in", nonlinearity="leaky_relu")

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        weight = self.weight.unsqueeze(0) * (style[:, None, :, None, None] + 1)
        if self.demod:
            weight = weight * torch.rsqrt(
                weight.square().sum(dim=(2, 3, 4), keepdim=True) + self.eps
            )
        weight = weight.reshape(n * self.out_ch, c, self.kernel, self.kernel)
        out = F.conv2d(x.reshape(1, n * c, h, w), weight, padding=(self.kernel - 1) // 2, groups=n)
        return out.reshape(n, self.out_ch, h, w)


class RGBBlock(nn.Module):
    """The block's image: a 1x1 modulated conv of its features plus the image so far, then
    (all but the last block) upsampled and blurred for the next one."""

    def __init__(self, w_dim: int, in_ch: int, channels: int, *, upsample: bool) -> None:
        super().__init__()
        self.to_style = nn.Linear(w_dim, in_ch)
        self.conv = ModulatedConv(in_ch, channels, 1, demod=False)
        self.upsample = nn.Sequential(_upsample(), Blur()) if upsample else None

    def forward(self, x: torch.Tensor, prev_rgb: torch.Tensor | None, w: torch.Tensor):
        rgb = self.conv(x, self.to_style(w))
        if prev_rgb is not None:
            rgb = rgb + prev_rgb
        return self.upsample(rgb) if self.upsample is not None else rgb


class GeneratorBlock(nn.Module):
    """(2x bilinear up) two modulated 3x3 convs, each + noise and a leaky ReLU, and the RGB."""

    def __init__(
        self, w_dim: int, in_ch: int, out_ch: int, channels: int, *, first: bool, last: bool
    ):
        super().__init__()
        self.upsample = None if first else _upsample()
        self.to_style1 = nn.Linear(w_dim, in_ch)
        self.to_noise1 = nn.Linear(1, out_ch)
        self.conv1 = ModulatedConv(in_ch, out_ch, 3)
        self.to_style2 = nn.Linear(w_dim, out_ch)
        self.to_noise2 = nn.Linear(1, out_ch)
        self.conv2 = ModulatedConv(out_ch, out_ch, 3)
        self.activation = _lrelu()
        self.to_rgb = RGBBlock(w_dim, out_ch, channels, upsample=not last)

    def forward(self, x, prev_rgb, w, noise):
        if self.upsample is not None:
            x = self.upsample(x)
        # the noise image [N, S, S, 1], cropped to this size; the package's permute (0, 3, 2, 1)
        # also swaps the image's rows and columns
        crop = noise[:, : x.shape[2], : x.shape[3], :]
        noise1 = self.to_noise1(crop).permute(0, 3, 2, 1)
        noise2 = self.to_noise2(crop).permute(0, 3, 2, 1)
        x = self.activation(self.conv1(x, self.to_style1(w)) + noise1)
        x = self.activation(self.conv2(x, self.to_style2(w)) + noise2)
        return x, self.to_rgb(x, prev_rgb, w)


# ----- attention (the package's linear attention and feed-forward, pre-normalised) ------------
class ChannelNorm(nn.Module):
    """Normalise each pixel across channels, then a per-channel gain ``g`` and bias ``b``."""

    def __init__(self, dim: int, *, legacy: bool = False, eps: float = 1e-5) -> None:
        super().__init__()
        self.legacy, self.eps = legacy, eps
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.b = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = torch.var(x, dim=1, unbiased=False, keepdim=True)
        mean = torch.mean(x, dim=1, keepdim=True)
        scale = 1 / (var.sqrt() + self.eps) if self.legacy else torch.rsqrt(var + self.eps)
        return (x - mean) * scale * self.g + self.b


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module, *, legacy: bool) -> None:
        super().__init__()
        self.fn, self.norm = fn, ChannelNorm(dim, legacy=legacy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


class DepthwiseSeparable(nn.Module):
    """A depthwise 3x3 conv, then a 1x1 conv to ``out_ch`` (no biases)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch, bias=False),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LinearAttention(nn.Module):
    """Linear attention over the pixels: queries softmaxed over their channels, keys over the
    pixels, 8 heads of 64 whatever the width, then GELU and a 1x1 conv back."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        inner = ATTN_HEADS * ATTN_DIM_HEAD
        self.nonlin = nn.GELU()
        self.to_q = nn.Conv2d(dim, inner, 1, bias=False)
        self.to_kv = DepthwiseSeparable(dim, inner * 2)
        self.to_out = nn.Conv2d(inner, dim, 1)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        b, _, x, y = fmap.shape
        h = ATTN_HEADS

        def heads(t: torch.Tensor) -> torch.Tensor:  # [b, h*c, x, y] -> [b*h, x*y, c]
            return t.reshape(b * h, -1, x * y).transpose(1, 2)

        k, v = self.to_kv(fmap).chunk(2, dim=1)
        q, k, v = heads(self.to_q(fmap)), heads(k), heads(v)
        q = q.softmax(dim=-1) * ATTN_DIM_HEAD**-0.5
        k = k.softmax(dim=-2)
        context = k.transpose(1, 2) @ v  # [b*h, c, c]
        out = (q @ context).transpose(1, 2).reshape(b, -1, x, y)
        return self.to_out(self.nonlin(out))


def attention_block(dim: int, *, legacy: bool) -> nn.Sequential:
    """Attention then a 1x1 feed-forward (x2 width), each residual and pre-normalised."""
    ff = nn.Sequential(nn.Conv2d(dim, dim * 2, 1), _lrelu(), nn.Conv2d(dim * 2, dim, 1))
    return nn.Sequential(
        Residual(PreNorm(dim, LinearAttention(dim), legacy=legacy)),
        Residual(PreNorm(dim, ff, legacy=legacy)),
    )


# ----- generator ------------------------------------------------------------------------------
class Synthesis(nn.Module):
    """ws ``[N, num_ws, D]`` (one w per block) and a noise image ``[N, S, S, 1]`` -> images
    ``[N, C, S, S]`` in [-1, 1] (the package's [0, 1] output times 2, minus 1)."""

    def __init__(self, cfg: Config, channels: int) -> None:
        super().__init__()
        self.resolution, self.no_const = cfg.resolution, cfg.no_const
        widths = cfg.g_widths()
        if cfg.no_const:
            self.to_initial_block = nn.ConvTranspose2d(cfg.z_dim, widths[0], 4, 1, 0, bias=False)
        else:
            self.initial_block = nn.Parameter(torch.randn(1, widths[0], 4, 4))
        self.initial_conv = nn.Conv2d(widths[0], widths[0], 3, padding=1)
        n = cfg.num_layers
        blocks, attns = [], []
        for i, (in_ch, out_ch) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layer = n - i  # the package counts G's layers from the last block
            legacy = cfg.attn_norm_legacy
            attns.append(
                attention_block(in_ch, legacy=legacy) if layer in cfg.attn_layers else None
            )
            blocks.append(
                GeneratorBlock(cfg.z_dim, in_ch, out_ch, channels, first=i == 0, last=i == n - 1)
            )
        self.blocks = nn.ModuleList(blocks)
        self.attns = nn.ModuleList(attns)
        # the stored noise image of noise_mode="const" (drawn again, from a seed, on import)
        self.register_buffer("noise_image", torch.rand(1, cfg.resolution, cfg.resolution, 1))

    def noise(self, n: int, mode: str, device: torch.device) -> torch.Tensor:
        """A noise image per sample: fresh uniform draws, the stored one, or zeros."""
        check_sampling(noise_mode=mode)
        size = (n, self.resolution, self.resolution, 1)
        if mode == "random":
            return torch.rand(size, device=device)
        if mode == "const":
            return self.noise_image.expand(size)
        return torch.zeros(size, device=device)

    def forward(
        self, ws: torch.Tensor, *, noise_mode: str = "random", noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        ws = ws.float()
        if noise is None:
            noise = self.noise(ws.shape[0], noise_mode, ws.device)
        if self.no_const:
            x = self.to_initial_block(ws.mean(dim=1)[:, :, None, None])
        else:
            x = self.initial_block.expand(ws.shape[0], -1, -1, -1)
        x = self.initial_conv(x)
        rgb = None
        for i, (block, attn) in enumerate(zip(self.blocks, self.attns, strict=True)):
            if attn is not None:
                x = attn(x)
            x, rgb = block(x, rgb, ws[:, i], noise)
        return rgb * 2 - 1


class Generator(nn.Module):
    """``G(z)``: z ``[N, z_dim]`` -> images ``[N, C, R, R]`` in [-1, 1] (unclamped).  In
    training mode, with probability ``mixed_prob`` the blocks from a random one on take the w of
    a second z (the package's mixed latents), and the mean w is tracked."""

    def __init__(self, cfg: Config, channels: int) -> None:
        super().__init__()
        self.z_dim = self.w_dim = cfg.z_dim
        self.c_dim = 0
        self.num_ws = cfg.num_layers
        self.mixed_prob, self.w_avg_beta = cfg.mixed_prob, cfg.w_avg_beta
        self.mapping = Mapping(cfg.z_dim, cfg.mapping_layers, cfg.lr_mlp)
        self.synthesis = Synthesis(cfg, channels)
        self.register_buffer("w_avg", torch.zeros(cfg.z_dim))

    def map(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        truncation: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """z -> ws ``[N, num_ws, w_dim]``: ``w_avg + psi (w - w_avg)`` on the first
        ``truncation_cutoff`` blocks (all when None), with style mixing in training mode."""
        if labels is not None:
            raise UserError("this generator is unconditional; drop the labels")
        w = self.mapping(z)
        if self.training:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            # the package's order of operations: psi * (w - mean) + mean
            ws[:, :cut] = truncation * (ws[:, :cut] - self.w_avg) + self.w_avg
        if self.training and self.mixed_prob > 0 and float(torch.rand([])) < self.mixed_prob:
            split = int(float(torch.rand([])) * self.num_ws)
            other = self.mapping(torch.randn_like(z))
            ws = torch.cat(
                [ws[:, :split], other.unsqueeze(1).expand(-1, self.num_ws - split, -1)], 1
            )
        return ws

    def forward(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        truncation: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        ws = self.map(z, labels, truncation=truncation, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, noise=noise)

    @torch.no_grad()
    def mean_w(self, samples: int = 2000, seed: int = 0, batch: int = 500) -> torch.Tensor:
        """The mean w of ``samples`` mapped z drawn from ``seed`` (the package's truncation
        centre, 2,000 latents, made repeatable)."""
        gen = torch.Generator().manual_seed(seed)
        device = self.w_avg.device
        total = torch.zeros(self.w_dim, dtype=torch.float64, device=device)
        for lo in range(0, samples, batch):
            z = torch.randn(min(batch, samples - lo), self.z_dim, generator=gen).to(device)
            total += self.mapping(z).double().sum(0)
        return (total / samples).float()


# ----- discriminator --------------------------------------------------------------------------
class DiscriminatorBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, *, downsample: bool) -> None:
        super().__init__()
        self.conv_res = nn.Conv2d(in_ch, out_ch, 1, stride=2 if downsample else 1)
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, padding=1),
            _lrelu(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1),
            _lrelu(),
        )
        self.downsample = (
            nn.Sequential(Blur(), nn.Conv2d(out_ch, out_ch, 3, padding=1, stride=2))
            if downsample
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.conv_res(x)
        x = self.net(x)
        if self.downsample is not None:
            x = self.downsample(x)
        return (x + res) * (1 / math.sqrt(2))


class Discriminator(nn.Module):
    """Images ``[N, C, R, R]`` in [-1, 1] -> realness logits ``[N]`` (the package's logit of
    the same image in [0, 1], negated)."""

    def __init__(self, cfg: Config, channels: int) -> None:
        super().__init__()
        widths = cfg.d_widths(channels)
        pairs = list(zip(widths[:-1], widths[1:], strict=True))
        legacy = cfg.attn_norm_legacy
        self.blocks = nn.ModuleList(
            [
                DiscriminatorBlock(i, o, downsample=k < len(pairs) - 1)
                for k, (i, o) in enumerate(pairs)
            ]
        )
        self.attn_blocks = nn.ModuleList(
            [
                attention_block(o, legacy=legacy) if k + 1 in cfg.attn_layers else None
                for k, (_, o) in enumerate(pairs)
            ]
        )
        last = widths[-1]
        self.final_conv = nn.Conv2d(last, last, 3, padding=1)
        self.to_logit = nn.Linear(2 * 2 * last, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images + 1) / 2
        for block, attn in zip(self.blocks, self.attn_blocks, strict=True):
            x = block(x)
            if attn is not None:
                x = attn(x)
        x = self.final_conv(x)
        return -self.to_logit(x.reshape(x.shape[0], -1)).flatten()


# ----- the family -----------------------------------------------------------------------------
@MODELS.register(
    "stylegan2-pytorch",
    doc="lucidrains' stylegan2_pytorch: its G (noise image, bilinear+blur) and D; imports it",
)
class StyleGAN2PyTorch(TwoPlayerModel):
    """The networks of the ``stylegan2_pytorch`` package; ``ganforge import stylegan2-pytorch``
    turns its ``models/NAME/model_N.pt`` into a run of this family."""

    Config = Config
    TASK = Task("noise", styles=True)
    DEFAULT_PRESET = "fmnist32"
    PRESETS: dict[str, dict[str, Any]] = {
        # the package's CLI defaults at 32x32 (batch 5 x 6 accumulated ~ 32); not tuned here
        "fmnist32": {"resolution": 32, "train.batch_size": 32, "train.steps": 20000},
        "tiny": {
            "resolution": 16,
            "z_dim": 16,
            "mapping_layers": 2,
            # a 16-wide mapping scales |w| by about lr_mlp * sqrt(16) a layer: 0.25 keeps it,
            # so the images depend on z at initialisation (0.1: a spread of 0.04-0.07 across z)
            "lr_mlp": 0.25,
            "network_capacity": 2,
            "train.batch_size": 8,
            "train.grid_size": 8,
        },
    }

    def build(self) -> dict[str, nn.Module]:
        return {
            "G": Generator(self.cfg, self.spec.channels),
            "D": Discriminator(self.cfg, self.spec.channels),
        }

    def initialize(self) -> None:
        """The package's: He-normal (fan in, leaky ReLU gain) for every plain conv and linear
        layer, the noise maps' linear layers at zero (the rest keep their constructors')."""
        for net in (self.G, self.D):
            for m in net.modules():
                if type(m) in (nn.Conv2d, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in", nonlinearity="leaky_relu")
        for block in self.G.synthesis.blocks:
            for layer in (block.to_noise1, block.to_noise2):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    # ----- using it -------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        n: int | None = None,
        labels: torch.Tensor | list[int] | int | None = None,
        *,
        z: torch.Tensor | None = None,
        seed: int | None = None,
        truncation: float | None = None,
        noise_mode: str = "const",
        ema: bool = True,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`GANModel.generate`, plus ``noise``: the noise image ``[n, R, R, 1]`` in the
        package's own layout (its ``image_noise``: uniform in [0, 1]); ``n`` may then be
        omitted.  Without it each image gets one drawn by ``noise_mode``: ``const`` (default)
        draws it from ``seed`` after the latents, so a seed always gives the same image (the
        package draws a fresh one per call), or from the global RNG when no seed is given;
        ``random`` from the global RNG; ``none`` is zeros (the noise layers then add only their
        biases).  ``truncation``: psi around the stored mean w ``w_avg``.  (The networks'
        own ``const`` mode, which the latent tools use, is the stored ``noise_image``.)"""
        if noise is not None:
            count = n if n is not None else (len(z) if z is not None else None)
            noise = self._check_noise(noise, count)
            n = len(noise) if count is None else n
        self._given_noise = noise
        try:
            return super().generate(
                n, labels, z=z, seed=seed, truncation=truncation, noise_mode=noise_mode, ema=ema
            )
        finally:
            self._given_noise = None

    def _check_noise(self, noise: Any, n: int | None) -> torch.Tensor:
        noise = torch.as_tensor(noise, dtype=torch.float32)
        r = self.resolution
        if noise.ndim != 4 or noise.shape[1:] != (r, r, 1) or (n is not None and len(noise) != n):
            want = f"[{n if n is not None else 'n'}, {r}, {r}, 1]"
            raise UserError(
                f"noise has shape {list(noise.shape)}; give {want}, one noise image per image "
                "in the package's layout"
            )
        if not torch.isfinite(noise).all():
            raise UserError("noise holds NaN or infinite values; give finite noise images")
        return noise

    def synthesize(
        self,
        net: nn.Module,
        args: tuple[Any, ...],
        *,
        truncation: float | None,
        noise_mode: str,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Truncation around ``w_avg``, with the given noise image or one per image drawn by
        ``noise_mode`` (``const``: from ``generator`` when given, see `generate`)."""
        psi = check_sampling(truncation=truncation, noise_mode=noise_mode)
        z = args[0]
        noise = getattr(self, "_given_noise", None)
        if noise is None and noise_mode == "const":
            size = (z.shape[0], self.resolution, self.resolution, 1)
            noise = torch.rand(size, generator=generator) if generator is not None else None
            noise_mode = "random" if noise is None else noise_mode
        if noise is not None:
            noise = noise.to(z.device)
        return net(z, truncation=psi, noise_mode=noise_mode, noise=noise)
