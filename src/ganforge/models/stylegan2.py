"""``stylegan2``: StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"), in the formulation of StyleGAN2-ADA's PyTorch code, so that its published networks
import and give the same images (`ganforge import stylegan2`).

G = mapping network (z, and an embedded label when conditional -> w, with the mean w tracked
for truncation) + synthesis network (a learned 4x4 constant, then per resolution two modulated
3x3 convolutions with weight demodulation and per-pixel noise; ``skip``: every resolution adds
its RGB to the upsampled image so far, ``orig``: only the last one draws, ``resnet``: residual
blocks).  D = blocks halving the resolution (``resnet`` by default, ``skip`` or ``orig``), then
minibatch stddev, a conv and two dense layers; conditional D projects its output on a mapped
label.  Training: the non-saturating logistic loss, lazy R1 every 16 steps, path-length
regularization every 4, style mixing, and an EMA of G with a half-life counted in images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data import DataSpec
from ..errors import check
from ..nn.style import Conv2dLayer, MappingNetwork, SynthesisLayer, ToRGBLayer
from ..nn.upfirdn import setup_filter, upsample2d
from ..registry import MODELS
from .adversarial import Objective, RegConfig, TwoPlayerModel
from .base import Batch, Losses, OptimSpec, Phase, Task
from .stylenets import (
    ARCHITECTURES,
    Discriminator,
    DiscriminatorSpec,
    check_sampling,
    class_vector,
    ema_half_life_beta,
)


@dataclass
class Config(Objective):
    resolution: int = 32  # a power of two; Fashion-MNIST's 28x28 is padded to it
    conditional: bool = False  # labels embedded into the mapping network, projection in D
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_mult: float = 0.01  # the mapping network learns 100x slower
    mapping_embed_features: int = 0  # label embedding width; 0 = w_dim
    mapping_layer_features: int = 0  # hidden width of the mapping network; 0 = w_dim
    w_avg_beta: float = 0.995  # decay of the tracked mean w (truncation's centre)
    channel_base: int = 32768  # channels at resolution r: min(channel_base / r, channel_max)
    channel_max: int = 512
    g_architecture: str = "skip"  # orig | skip | resnet
    d_architecture: str = "resnet"  # orig | skip | resnet
    d_channel_base: int = 0  # 0 = channel_base
    d_channel_max: int = 0  # 0 = channel_max
    conv_clamp: float = 0.0  # clamp G's conv outputs to +-this; 0 = off (256 with fp16)
    d_conv_clamp: float = 0.0  # the same for D
    use_noise: bool = True
    mbstd_group_size: int = 4  # minibatch-stddev group (the batch a multiple); 0 = the batch
    mbstd_channels: int = 1  # 0 disables minibatch stddev
    d_cmap_dim: int = 0  # conditional D's projection width; 0 = D's channels at 4x4
    d_mapping_layers: int = 8  # conditional D's label mapping depth
    style_mixing: float = 0.9  # probability of mixing two w's at a random layer in training
    pl_weight: float = 2.0  # path-length regularization weight; 0 = off
    pl_every: int = 4  # lazy interval of the path-length term
    pl_decay: float = 0.01  # decay of the running mean path length
    pl_batch_shrink: int = 2  # the path-length step uses batch / this
    ema_kimg: float = 10.0  # half-life of G's EMA in thousands of images
    ema_rampup: float = 0.05  # half-life at most this fraction of the images seen; 0 = off
    # the objective's defaults, set to StyleGAN2's: non-saturating logistic loss, lazy R1
    loss: str = "logistic"
    reg: RegConfig = field(default_factory=lambda: RegConfig(r1=10.0, every=16))
    lr_g: float = 0.0025
    lr_d: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)

    def validate(self) -> None:
        super().validate()
        r = self.resolution
        check(r >= 4 and r & (r - 1) == 0, "resolution", r, "use a power of two, 4 or more")
        self.refuse_plain_layer_options("stylegan2")
        for name in ("g_architecture", "d_architecture"):
            value = getattr(self, name)
            check(value in ARCHITECTURES, name, value, f"use one of {', '.join(ARCHITECTURES)}")
        for name in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "use 1 or more")
        check(0 <= self.style_mixing <= 1, "style_mixing", self.style_mixing, "use 0..1")
        check(self.pl_every >= 1, "pl_every", self.pl_every, "use 1 or more")
        check(self.pl_batch_shrink >= 1, "pl_batch_shrink", self.pl_batch_shrink, "use >= 1")
        check(self.ema_kimg >= 0, "ema_kimg", self.ema_kimg, "use 0 (no averaging) or more")
        check(
            self.mbstd_group_size >= 0,
            "mbstd_group_size",
            self.mbstd_group_size,
            "use 0 (the whole batch) or a group size",
        )

    # the two networks' channel settings
    def channels(self, res: int, *, d: bool = False) -> int:
        base = (self.d_channel_base or self.channel_base) if d else self.channel_base
        top = (self.d_channel_max or self.channel_max) if d else self.channel_max
        return min(base // res, top)

    def discriminator(self, num_classes: int) -> DiscriminatorSpec:
        """D's settings (``num_classes`` of the data; used when conditional)."""
        return DiscriminatorSpec(
            resolution=self.resolution,
            architecture=self.d_architecture,
            channel_base=self.d_channel_base or self.channel_base,
            channel_max=self.d_channel_max or self.channel_max,
            conv_clamp=self.d_conv_clamp,
            mbstd_group_size=self.mbstd_group_size,
            mbstd_channels=self.mbstd_channels,
            c_dim=num_classes if self.conditional else 0,
            cmap_dim=self.d_cmap_dim,
            mapping_layers=self.d_mapping_layers,
        )


def _clamp(value: float) -> float | None:
    return value if value > 0 else None


# ----- generator ------------------------------------------------------------------------------
class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (2x up) two modulated convs, and its RGB."""

    def __init__(
        self, cfg: Config, in_channels: int, out_channels: int, res: int, channels: int
    ) -> None:
        super().__init__()
        self.in_channels, self.resolution = in_channels, res
        self.architecture = cfg.g_architecture
        self.is_last = res == cfg.resolution
        self.register_buffer("resample_filter", setup_filter((1, 3, 3, 1)))
        clamp = _clamp(cfg.conv_clamp)
        layer = dict(w_dim=cfg.w_dim, resolution=res, use_noise=cfg.use_noise, conv_clamp=clamp)
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, res, res))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **layer)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer)
        self.num_conv += 1
        if self.is_last or self.architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, channels, cfg.w_dim, conv_clamp=clamp)
            self.num_torgb += 1
        if in_channels and self.architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, up=2)

    def forward(self, x, img, ws, *, noise_mode: str, fused: bool):
        w = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, next(w), noise_mode=noise_mode, fused=fused)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w), noise_mode=noise_mode, fused=fused)
            x = self.conv1(x, next(w), noise_mode=noise_mode, fused=fused, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv0(x, next(w), noise_mode=noise_mode, fused=fused)
            x = self.conv1(x, next(w), noise_mode=noise_mode, fused=fused)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w), fused=fused).float()
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws ``[N, num_ws, w_dim]`` -> image; block ``b{r}`` works at resolution r."""

    def __init__(self, cfg: Config, channels: int) -> None:
        super().__init__()
        self.w_dim = cfg.w_dim
        self.resolutions = [2**i for i in range(2, int(math.log2(cfg.resolution)) + 1)]
        self.num_ws = 0
        for res in self.resolutions:
            in_ch = cfg.channels(res // 2) if res > 4 else 0
            block = SynthesisBlock(cfg, in_ch, cfg.channels(res), res, channels)
            self.num_ws += block.num_conv + (block.num_torgb if block.is_last else 0)
            setattr(self, f"b{res}", block)

    def forward(
        self, ws: torch.Tensor, *, noise_mode: str = "random", fused: bool | None = None
    ) -> torch.Tensor:
        """``fused``: the modulation as one grouped convolution with per-sample weights (the
        reference's inference form) or on the activations before one shared convolution
        (training's); both compute the same images.  By default the fused form runs at
        inference on CUDA only: on CPU the grouped convolution is slower at every size
        measured (fmnist32 networks: 1.2x at 32 px and 1.4x at 128 px for one image, 2.3x
        for 16 at 128 px, 7x for 32 at 32 px)."""
        ws = ws.float()
        if fused is None:
            fused = not self.training and ws.device.type != "cpu"
        x = img = None
        i = 0
        for res in self.resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, i, block.num_conv + block.num_torgb)
            i += block.num_conv
            x, img = block(x, img, block_ws, noise_mode=noise_mode, fused=fused)
        return img


class Generator(nn.Module):
    """``G(z, labels)``: z ``[N, z_dim]``, labels ``[N]`` class indices or ``[N, c_dim]``
    one-hot (conditional only) -> images ``[N, C, R, R]``.  In training mode, with probability
    ``style_mixing`` the ws after a random layer come from a second z."""

    def __init__(self, cfg: Config, spec: DataSpec) -> None:
        super().__init__()
        self.z_dim, self.w_dim = cfg.z_dim, cfg.w_dim
        self.c_dim = spec.num_classes if cfg.conditional else 0
        self.style_mixing = cfg.style_mixing
        self.synthesis = SynthesisNetwork(cfg, spec.channels)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            cfg.z_dim,
            self.c_dim,
            cfg.w_dim,
            self.num_ws,
            num_layers=cfg.mapping_layers,
            embed_features=cfg.mapping_embed_features or None,
            layer_features=cfg.mapping_layer_features or None,
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
        """z -> ws ``[N, num_ws, w_dim]``, with style mixing in training mode."""
        c = class_vector(labels, self.c_dim)
        ws = self.mapping(z, c, truncation_psi=truncation, truncation_cutoff=truncation_cutoff)
        if self.training and self.style_mixing > 0:
            cutoff = int(torch.empty([], dtype=torch.int64).random_(1, self.num_ws))
            if float(torch.rand([])) >= self.style_mixing:
                cutoff = self.num_ws
            if cutoff < self.num_ws:
                other = self.mapping(torch.randn_like(z), c, update_w_avg=False)
                ws = torch.cat([ws[:, :cutoff], other[:, cutoff:]], dim=1)
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
    "stylegan2", doc="StyleGAN2 (Karras 2020): modulated convs, skip G, residual D, lazy R1, PL"
)
class StyleGAN2(TwoPlayerModel):
    """StyleGAN2 with the paper's regularizers; ``conditional=true`` for class labels."""

    Config = Config
    DEFAULT_PRESET = "fmnist32"
    PRESETS: dict[str, dict[str, Any]] = {
        # small enough to train on 2 CPU cores (about 0.2 GFLOP per generated image), with
        # StyleGAN2-ADA's own 32x32 (CIFAR-10) choices: a 2-layer mapping network, no path
        # length or style mixing, orig D, minibatch stddev over 32, R1 gamma 0.01.  Its EMA
        # half-life is scaled down to a CPU budget (2k images instead of 500k).  In 3-minute
        # trials this beat the issue-default settings on FID (49-52 against 54-64, n=2,000)
        # and ran 25% more steps.
        "fmnist32": {
            "z_dim": 128,
            "w_dim": 128,
            "mapping_layers": 2,
            "channel_base": 1024,
            "channel_max": 128,
            "d_architecture": "orig",
            "mbstd_group_size": 32,
            "pl_weight": 0.0,
            "style_mixing": 0.0,
            "reg.r1": 0.01,
            "ema_kimg": 2.0,
            "lr_g": 0.0025,
            "lr_d": 0.0025,
            "train.batch_size": 32,
            "train.steps": 20000,
            "train.sample_every": 1000,
        },
        # the paper's config F at the data's resolution (StyleGAN2-ADA's "paper" setup)
        "paper": {
            "channel_base": 32768,
            "channel_max": 512,
            "reg.r1": 10.0,
            "lr_g": 0.002,
            "lr_d": 0.002,
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
            "mbstd_group_size": 2,
            "train.batch_size": 8,
            "train.grid_size": 8,
        },
    }

    @classmethod
    def task_for(cls, cfg: Config) -> Task:
        return Task("noise", labels=cfg.conditional, styles=True)

    def build(self) -> dict[str, nn.Module]:
        G = Generator(self.cfg, self.spec)
        D = Discriminator(self.cfg.discriminator(self.spec.num_classes), self.spec.channels)
        self.register_buffer("pl_mean", torch.zeros([]))  # the path-length target's running mean
        return {"G": G, "D": D}

    # ----- optimization ---------------------------------------------------------------------
    def param_groups(self) -> dict[str, OptimSpec]:
        """Adam with StyleGAN2's lazy-regularization correction: with a regularizer every k
        steps, the learning rate and betas are scaled by k / (k + 1)."""
        c = self.cfg

        def spec(params, lr, every):
            ratio = every / (every + 1) if every > 1 else 1.0
            betas = tuple(b**ratio for b in c.betas)
            return OptimSpec(params, lr=lr * ratio, kind=c.optimizer, betas=betas)

        lazy_r = c.reg.every if (c.reg.r1 or c.reg.r2) else 1
        return {
            "G": spec(self.G.parameters(), c.lr_g, c.pl_every if c.pl_weight else 1),
            "D": spec(self.D.parameters(), c.lr_d, lazy_r),
        }

    def phases(self) -> list[Phase]:
        phases = super().phases()
        if self.cfg.pl_weight:
            phases.insert(1, Phase("G_reg", group="G", step=self.pl_step, every=self.cfg.pl_every))
        return phases

    def ema_beta(self, images_seen: int, batch_size: int) -> float:
        """Half-life of ``ema_kimg`` thousand images, at most ``ema_rampup`` of those seen."""
        c = self.cfg
        return ema_half_life_beta(
            images_seen, batch_size, ema_kimg=c.ema_kimg, ema_rampup=c.ema_rampup
        )

    def pl_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        """Path-length regularization: ``(|J_w^T y| - a)^2``, ``y`` random image-space
        directions scaled by 1/sqrt(pixels), ``a`` the running mean length."""
        c = self.cfg
        n = max(batch["image"].shape[0] // c.pl_batch_shrink, 1)
        labels = batch["label"][:n] if self.task.labels else None
        inputs = self.generator_inputs(n, labels, None)
        ws = self.G.map(*inputs)
        img = self.G.synthesis(ws)
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grad.square().sum(2).mean(1).sqrt()
        with torch.no_grad():
            self.pl_mean.copy_(self.pl_mean.lerp(lengths.mean(), c.pl_decay))
        penalty = (lengths - self.pl_mean).square().mean() * c.pl_weight
        # the mapping's label embedding and other parameters the penalty misses get a zero
        # gradient from the engine (as the reference's + 0 * img), not none
        loss = penalty * c.pl_every
        return {"loss": loss, "pl_penalty": penalty, "pl_length": lengths.mean()}

    # ----- using it -------------------------------------------------------------------------
    def synthesize(
        self,
        net: nn.Module,
        args: tuple[Any, ...],
        *,
        truncation: float | None,
        noise_mode: str,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Truncation around the tracked mean w (not in z), with the chosen noise."""
        psi = check_sampling(truncation=truncation, noise_mode=noise_mode)
        return net(*args, truncation=psi, noise_mode=noise_mode)
