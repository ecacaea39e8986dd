"""``stylegan``: StyleGAN (Karras et al. 2019, "A Style-Based Generator Architecture for
Generative Adversarial Networks"), the first style-based generator.

G = mapping network (z normalized to unit root-mean-square, then 8 dense layers whose learning
rate is multiplied by 0.01, giving w; the mean w is tracked with decay 0.995 for truncation) +
synthesis network.  The synthesis network starts from a learned 4x4 constant and runs two
layers per resolution.  A layer is a 3x3 convolution (after a 2x nearest upsampling and followed
by a [1, 2, 1] blur in the first layer of each resolution above 4x4; the constant itself in the
very first layer), then per-pixel noise with a learned per-channel strength, a bias, leaky ReLU,
instance normalization and AdaIN with a style computed from that layer's w.  One 1x1
convolution turns the last features into the image.

This is the non-growing configuration.  The paper trained with ProGAN's progressive growing;
its reference code also builds the same networks without it (the "fixed" structure), and that
is what this family trains.  Growing mainly steadies and speeds up training at high
resolutions; at 32x32 the generator is four resolutions deep, so it would add fade-in stages
and a schedule for little benefit, and StyleGAN2 dropped it altogether.  ``progan`` covers
progressive growing.

D is the paper's, which is ProGAN's with blurred downsampling and minibatch stddev; GANForge
builds it with StyleGAN2's `ganforge.models.stylenets.Discriminator` in its ``orig``
architecture (``d_architecture``): fromRGB, then per resolution a 3x3 conv and a 3x3 conv that
halves the resolution, then minibatch stddev, a conv and two dense layers at 4x4.  The one
difference is its low-pass filter: StyleGAN2 filters with [1, 3, 3, 1] before a strided conv, v1
blurred with [1, 2, 1] and average-pooled 2x2 after the conv; [1, 3, 3, 1] is [1, 2, 1]
convolved with the pooling's [1, 1], so the two compute the same kind of function up to the
borders.

Training: the non-saturating logistic loss with R1 (gamma 10, the FFHQ setting) in every D step,
Adam with lr 0.001 and betas (0, 0.99), style mixing with probability 0.9, and an EMA of G with
a half-life counted in images.  Truncation pulls the first ``truncation_cutoff`` ws (8 in the
paper: the layers up to 32x32 of a 1024x1024 generator, i.e. all of them at 32x32) towards the
mean w.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataSpec
from ..errors import UserError, check
from ..nn.adain import AdaIN
from ..nn.style import Conv2dLayer, MappingNetwork
from ..nn.upfirdn import setup_filter, upfirdn2d
from ..registry import MODELS
from .adversarial import Objective, RegConfig, TwoPlayerModel
from .base import Task
from .stylenets import (
    ARCHITECTURES,
    Discriminator,
    DiscriminatorSpec,
    check_sampling,
    ema_half_life_beta,
)

#: He gain of the convolutions followed by leaky ReLU, as in the reference; the instance norm
#: after them removes the scale again, but it sets the noise's and bias's size relative to them
LRELU_GAIN = math.sqrt(2)


@dataclass
class Config(Objective):
    resolution: int = 32  # a power of two; Fashion-MNIST's 28x28 is padded to it
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_mult: float = 0.01  # the mapping network learns 100x slower
    w_avg_beta: float = 0.995  # decay of the tracked mean w (truncation's centre)
    # channels at resolution r: min(channel_base / r, channel_max); the reference's
    # fmap_base 8192 counts from stage 1, so it is 16384 here
    channel_base: int = 16384
    channel_max: int = 512
    use_noise: bool = True
    style_mixing: float = 0.9  # probability of mixing two w's at a random layer in training
    truncation_cutoff: int | None = 8  # generate()'s truncation moves the first N ws; null: all
    d_architecture: str = "orig"  # StyleGAN2's D: orig (v1's) | skip | resnet
    d_channel_base: int = 0  # 0 = channel_base
    d_channel_max: int = 0  # 0 = channel_max
    mbstd_group_size: int = 4  # minibatch-stddev group (the batch a multiple); 0 = the batch
    mbstd_channels: int = 1  # 0 disables minibatch stddev
    ema_kimg: float = 10.0  # half-life of G's EMA in thousands of images
    ema_rampup: float = 0.0  # half-life at most this fraction of the images seen; 0 = off
    # the objective's defaults, set to the paper's: logistic loss, R1 10 in every D step
    loss: str = "logistic"
    reg: RegConfig = field(default_factory=lambda: RegConfig(r1=10.0))
    lr_g: float = 0.001
    lr_d: float = 0.001
    betas: tuple[float, float] = (0.0, 0.99)

    def validate(self) -> None:
        super().validate()
        r = self.resolution
        check(r >= 8 and r & (r - 1) == 0, "resolution", r, "use a power of two, 8 or more")
        self.refuse_plain_layer_options("stylegan")
        for name in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "use 1 or more")
        check(0 < self.mapping_lr_mult, "mapping_lr_mult", self.mapping_lr_mult, "use > 0")
        check(0 <= self.w_avg_beta < 1, "w_avg_beta", self.w_avg_beta, "use a value in [0, 1)")
        check(0 <= self.style_mixing <= 1, "style_mixing", self.style_mixing, "use 0..1")
        cutoff = self.truncation_cutoff
        check(
            cutoff is None or cutoff >= 1,
            "truncation_cutoff",
            cutoff,
            "use a number of layers (1 or more), or null for every layer",
        )
        check(
            self.d_architecture in ARCHITECTURES,
            "d_architecture",
            self.d_architecture,
            f"use one of {', '.join(ARCHITECTURES)}",
        )
        check(self.ema_kimg >= 0, "ema_kimg", self.ema_kimg, "use 0 (no averaging) or more")
        check(self.ema_rampup >= 0, "ema_rampup", self.ema_rampup, "use 0 (off) or more")
        check(
            self.mbstd_group_size >= 0,
            "mbstd_group_size",
            self.mbstd_group_size,
            "use 0 (the whole batch) or a group size",
        )

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


def discriminator_spec(cfg: Config) -> DiscriminatorSpec:
    """StyleGAN2's discriminator settings for this family's D (unconditional)."""
    return DiscriminatorSpec(
        resolution=cfg.resolution,
        architecture=cfg.d_architecture,
        channel_base=cfg.d_channel_base or cfg.channel_base,
        channel_max=cfg.d_channel_max or cfg.channel_max,
        mbstd_group_size=cfg.mbstd_group_size,
        mbstd_channels=cfg.mbstd_channels,
    )


# ----- generator ------------------------------------------------------------------------------
class StyledActivation(nn.Module):
    """What follows each convolution (and the constant) in the synthesis network: per-pixel
    noise times a learned per-channel strength, a bias, leaky ReLU, then AdaIN with the
    layer's w.

    The noise is one map per sample shared by all channels, so each channel chooses only how
    much of it to use; the strengths start at zero, so a fresh generator is deterministic in
    z and learns where stochastic detail pays.  ``noise_const`` is a fixed map for repeatable
    images (``noise_mode='const'``)."""

    def __init__(self, channels: int, w_dim: int, resolution: int, *, use_noise: bool) -> None:
        super().__init__()
        self.resolution, self.use_noise = resolution, use_noise
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.adain = AdaIN(channels, w_dim)

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, noise_mode: str) -> torch.Tensor:
        """``x`` [N, C, res, res], ``w`` [N, w_dim] -> [N, C, res, res]."""
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                shape = (x.shape[0], 1, self.resolution, self.resolution)
                noise = torch.randn(shape, device=x.device, dtype=x.dtype)
            else:
                noise = self.noise_const.to(x.dtype)
            x = x + noise * self.noise_strength.to(x.dtype).reshape(1, -1, 1, 1)
        x = F.leaky_relu(x + self.bias.to(x.dtype).reshape(1, -1, 1, 1), 0.2)
        return self.adain(x, w)


class SynthesisBlock(nn.Module):
    """One resolution, two styled layers: the constant (4x4) or 2x nearest upsampling, a 3x3
    conv and the [1, 2, 1] blur; then a 3x3 conv.  The blur removes the blockiness of
    nearest upsampling (together they are the [1, 3, 3, 1] filter StyleGAN2 upsamples with)."""

    def __init__(self, cfg: Config, in_channels: int, out_channels: int, res: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        if in_channels == 0:
            # ones, as in the reference: the noise and the styles give it structure
            self.const = nn.Parameter(torch.ones(out_channels, res, res))
        else:
            self.conv0 = Conv2dLayer(in_channels, out_channels, 3, bias=False)
            self.register_buffer("blur_filter", setup_filter((1, 2, 1)))
        styled = dict(w_dim=cfg.w_dim, resolution=res, use_noise=cfg.use_noise)
        self.style0 = StyledActivation(out_channels, **styled)
        self.conv1 = Conv2dLayer(out_channels, out_channels, 3, bias=False)
        self.style1 = StyledActivation(out_channels, **styled)

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, *, noise_mode: str) -> torch.Tensor:
        """``x`` [N, in, res/2, res/2] (None at 4x4), ``ws`` [N, 2, w_dim] -> [N, out, res, res]."""
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        else:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = upfirdn2d(self.conv0(x, gain=LRELU_GAIN), self.blur_filter, padding=1)
        x = self.style0(x, ws[:, 0], noise_mode=noise_mode)
        return self.style1(self.conv1(x, gain=LRELU_GAIN), ws[:, 1], noise_mode=noise_mode)


class SynthesisNetwork(nn.Module):
    """ws ``[N, num_ws, w_dim]`` -> images ``[N, C, R, R]`` (not squashed: values near
    [-1, 1] after training); block ``b{r}`` works at resolution r and takes ws ``2i, 2i + 1``
    for the i-th resolution, so ``num_ws = 2 log2(R) - 2``."""

    def __init__(self, cfg: Config, channels: int) -> None:
        super().__init__()
        self.w_dim = cfg.w_dim
        self.resolutions = [2**i for i in range(2, int(math.log2(cfg.resolution)) + 1)]
        self.num_ws = 2 * len(self.resolutions)
        for res in self.resolutions:
            in_ch = cfg.channels(res // 2) if res > 4 else 0
            setattr(self, f"b{res}", SynthesisBlock(cfg, in_ch, cfg.channels(res), res))
        self.torgb = Conv2dLayer(cfg.channels(cfg.resolution), channels, 1)

    def forward(self, ws: torch.Tensor, *, noise_mode: str = "random") -> torch.Tensor:
        check_sampling(noise_mode=noise_mode)
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise UserError(
                f"ws has shape {list(ws.shape)}; this synthesis network takes "
                f"[N, {self.num_ws}, {self.w_dim}]"
            )
        x = None
        for i, res in enumerate(self.resolutions):
            x = getattr(self, f"b{res}")(x, ws[:, 2 * i : 2 * i + 2], noise_mode=noise_mode)
        return self.torgb(x)


class Generator(nn.Module):
    """``G(z)``: z ``[N, z_dim]`` -> images ``[N, C, R, R]``, the same interface as
    StyleGAN2's generator (``labels`` must stay None: this family is unconditional).

    ``truncation`` (psi) pulls the first ``truncation_cutoff`` ws (None: all) towards
    ``mapping.w_avg``; the family's `generate` passes the config's cutoff.  In training mode,
    with probability ``style_mixing`` the ws from a random layer on come from a second z."""

    def __init__(self, cfg: Config, spec: DataSpec) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.c_dim = cfg.z_dim, cfg.w_dim, 0
        self.style_mixing = cfg.style_mixing
        self.synthesis = SynthesisNetwork(cfg, spec.channels)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            cfg.z_dim,
            0,
            cfg.w_dim,
            self.num_ws,
            num_layers=cfg.mapping_layers,
            lr_multiplier=cfg.mapping_lr_mult,
            w_avg_beta=cfg.w_avg_beta,
        )

    def map(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        truncation: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """z ``[N, z_dim]`` -> ws ``[N, num_ws, w_dim]``: mixed in training mode, then
        truncated (mixing first, as in the reference, so both z's are truncated alike)."""
        if labels is not None:
            raise UserError("this StyleGAN generator is unconditional; drop the labels")
        ws = self.mapping(z, None)
        if self.training and self.style_mixing > 0 and self.num_ws > 1:
            if float(torch.rand([])) < self.style_mixing:
                cutoff = int(torch.randint(1, self.num_ws, []))
                other = self.mapping(torch.randn_like(z), None, update_w_avg=False)
                ws = torch.cat([ws[:, :cutoff], other[:, cutoff:]], dim=1)
        if truncation != 1:
            if truncation_cutoff is not None and truncation_cutoff < 0:
                raise UserError(f"truncation_cutoff {truncation_cutoff} is negative; use >= 0")
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            psi = torch.ones(self.num_ws, 1, device=ws.device)
            psi[:cutoff] = truncation
            ws = self.mapping.w_avg.lerp(ws, psi)
        return ws

    def forward(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        truncation: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
    ) -> torch.Tensor:
        ws = self.map(z, labels, truncation=truncation, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)


# ----- the family -----------------------------------------------------------------------------
@MODELS.register(
    "stylegan", doc="StyleGAN (Karras 2019): mapping net, AdaIN styles, noise, style mixing"
)
class StyleGAN(TwoPlayerModel):
    """StyleGAN v1 without progressive growing; D is StyleGAN2's ``orig`` discriminator."""

    Config = Config
    TASK = Task("noise", styles=True)
    DEFAULT_PRESET = "fmnist32"
    PRESETS: dict[str, dict[str, Any]] = {
        # StyleGAN2's fmnist32 widths (32 to 128 channels); 2,000 steps should take about a
        # quarter of an hour on 2 CPU cores (estimated from the CPU time of single steps)
        "fmnist32": {
            "z_dim": 128,
            "w_dim": 128,
            "channel_base": 1024,
            "channel_max": 128,
            "reg.r1": 0.1,
            "ema_kimg": 2.0,
            "ema_rampup": 0.05,
            "train.batch_size": 32,
            "train.steps": 2000,
            "train.sample_every": 500,
        },
        # the paper's networks (512 channels up to 32x32, then halving) at the data's resolution
        "paper": {
            "z_dim": 512,
            "w_dim": 512,
            "mapping_layers": 8,
            "channel_base": 16384,
            "channel_max": 512,
            "reg.r1": 10.0,
            "lr_g": 0.001,
            "lr_d": 0.001,
            "ema_kimg": 10.0,
            "ema_rampup": 0.0,
            "train.batch_size": 32,
        },
        "tiny": {
            "resolution": 16,
            "z_dim": 16,
            "w_dim": 16,
            "mapping_layers": 2,
            "channel_base": 128,
            "channel_max": 16,
            "truncation_cutoff": 4,
            "mbstd_group_size": 2,
            "train.batch_size": 8,
            "train.grid_size": 8,
        },
    }

    def build(self) -> dict[str, nn.Module]:
        G = Generator(self.cfg, self.spec)
        return {"G": G, "D": Discriminator(discriminator_spec(self.cfg), self.spec.channels)}

    def ema_beta(self, images_seen: int, batch_size: int) -> float:
        """The same EMA half-life in images as StyleGAN2 (the paper's G_smoothing_kimg)."""
        c = self.cfg
        return ema_half_life_beta(
            images_seen, batch_size, ema_kimg=c.ema_kimg, ema_rampup=c.ema_rampup
        )

    def synthesize(
        self,
        net: nn.Module,
        args: tuple[Any, ...],
        *,
        truncation: float | None,
        noise_mode: str,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Truncation around the tracked mean w on the first ``truncation_cutoff`` layers."""
        return net(
            *args,
            truncation=check_sampling(truncation=truncation, noise_mode=noise_mode),
            truncation_cutoff=self.cfg.truncation_cutoff,
            noise_mode=noise_mode,
        )
