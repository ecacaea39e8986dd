"""``stylegan3``: the alias-free generator of StyleGAN3 (Karras et al. 2021, "Alias-Free
Generative Adversarial Networks"), in the formulation of NVIDIA's StyleGAN3 release, so that its
published networks import and give the same images (`ganforge import stylegan3`).  It is here
to use published networks; it trains (the shared tests run it from ``tiny``), but training one
from scratch on a CPU is not what it is for.

G = mapping network (z and an embedded label -> w, the mean w tracked for truncation) +
synthesis network: Fourier features at a learned rotation and translation (and a user
transform, ``set_input_transform``) instead of a constant, then ``num_layers`` modulated
convolutions whose cutoff frequency grows geometrically from ``first_cutoff`` to half the
image resolution, each followed by the filtered leaky ReLU (`ganforge.nn.alias_free`), and a
modulated 1x1 ToRGB.  Every layer divides its input by the RMS it tracked in training
(``magnitude_ema``).  There are no per-pixel noise inputs.  ``stylegan3-t`` is the
translation-equivariant configuration; ``stylegan3-r`` (1x1 convolutions, radially symmetric
downsampling filters, twice the channels) is also rotation-equivariant.

D is StyleGAN2's (`stylenets.Discriminator`), as in the release.  Training: the non-saturating
logistic loss, lazy R1 every 16 steps, an EMA of G with a half-life counted in images; the
release's blur of D's inputs at the start of -R training is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataSpec
from ..errors import UserError, check
from ..nn.alias_free import design_lowpass_filter, filtered_lrelu, modulated_conv2d
from ..nn.style import FullyConnectedLayer, MappingNetwork
from ..registry import MODELS
from .adversarial import Objective, RegConfig, TwoPlayerModel
from .base import OptimSpec, Task
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
    resolution: int = 32  # a power of two (StyleGAN2's D halves it down to 4x4)
    conditional: bool = False  # labels embedded into the mapping network, projection in D
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 2
    mapping_lr_mult: float = 0.01  # the mapping network learns 100x slower
    w_avg_beta: float = 0.998  # decay of the tracked mean w (truncation's centre)
    channel_base: int = 32768  # channels of a layer with cutoff fc: min(channel_base / 2 / fc, max)
    channel_max: int = 512
    num_layers: int = 14  # synthesis layers, not counting the Fourier features and ToRGB
    num_critical: int = 2  # critically sampled layers at the end
    first_cutoff: float = 2.0  # cutoff frequency of the first layer
    first_stopband: float = 2**2.1  # minimum stopband of the first layer
    last_stopband_rel: float = 2**0.3  # minimum stopband of the last layer, relative to its cutoff
    margin_size: int = 10  # pixels computed outside the image on each side
    output_scale: float = 0.25  # the image is ToRGB's output times this
    conv_kernel: int = 3  # 1 in stylegan3-r
    filter_size: int = 6  # low-pass taps per unit of the lower of the two sampling rates
    lrelu_upsampling: int = 2  # the leaky ReLU runs at this many times the sampling rate
    use_radial_filters: bool = False  # radially symmetric downsampling filters (stylegan3-r)
    conv_clamp: float = 256.0  # clamp G's layer outputs to +-this; 0 = off
    magnitude_ema_beta: float = 0.999  # decay of each layer's tracked input magnitude
    d_architecture: str = "resnet"  # orig | skip | resnet
    d_channel_base: int = 0  # 0 = channel_base
    d_channel_max: int = 0  # 0 = channel_max
    d_conv_clamp: float = 256.0  # the release's D default; 0 = off
    mbstd_group_size: int = 4  # minibatch-stddev group (the batch a multiple); 0 = the batch
    mbstd_channels: int = 1  # 0 disables minibatch stddev
    d_cmap_dim: int = 0  # conditional D's projection width; 0 = D's channels at 4x4
    d_mapping_layers: int = 8  # conditional D's label mapping depth
    ema_kimg: float = 10.0  # half-life of G's EMA in thousands of images
    ema_rampup: float = 0.05  # half-life at most this fraction of the images seen; 0 = off
    loss: str = "logistic"
    reg: RegConfig = field(default_factory=lambda: RegConfig(r1=2.0, every=16))
    lr_g: float = 0.0025
    lr_d: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)

    def validate(self) -> None:
        super().validate()
        r = self.resolution
        check(r >= 4 and r & (r - 1) == 0, "resolution", r, "use a power of two, 4 or more")
        self.refuse_plain_layer_options("stylegan3")
        check(
            self.d_architecture in ARCHITECTURES,
            "d_architecture",
            self.d_architecture,
            f"use one of {', '.join(ARCHITECTURES)}",
        )
        for name in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "use 1 or more")
        for name in ("conv_kernel", "filter_size", "lrelu_upsampling"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "use 1 or more")
        check(self.num_layers >= 1, "num_layers", self.num_layers, "use 1 or more")
        check(
            0 <= self.num_critical < self.num_layers,
            "num_critical",
            self.num_critical,
            f"use 0 to num_layers - 1 ({self.num_layers - 1})",
        )
        check(
            0 < self.first_cutoff < r / 2,
            "first_cutoff",
            self.first_cutoff,
            f"use a frequency above 0 and below half the resolution ({r / 2:g})",
        )
        check(self.margin_size >= 0, "margin_size", self.margin_size, "use 0 or more")
        check(
            0 <= self.magnitude_ema_beta < 1,
            "magnitude_ema_beta",
            self.magnitude_ema_beta,
            "use a decay in [0, 1)",
        )
        check(self.ema_kimg >= 0, "ema_kimg", self.ema_kimg, "use 0 (no averaging) or more")
        check(self.mbstd_group_size >= 0, "mbstd_group_size", self.mbstd_group_size, "use >= 0")

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


# ----- the layer plan -------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerPlan:
    """What one synthesis layer works with: its input and output sampling rate, cutoff,
    transition half-width, size (pixels, margin included) and channels."""

    in_rate: int
    out_rate: int
    in_cutoff: float
    out_cutoff: float
    in_half_width: float
    out_half_width: float
    in_size: int
    out_size: int
    in_channels: int
    out_channels: int
    is_torgb: bool
    is_critical: bool


def layer_plan(cfg: Config, channels: int) -> tuple[dict[str, float], list[LayerPlan]]:
    """The Fourier features' (channels, size, sampling rate, bandwidth) and each layer's plan.

    Cutoffs and minimum stopbands grow geometrically from the first layer's to the last
    layer's (half the resolution, and that times ``last_stopband_rel``), reaching them
    ``num_critical`` layers before the end; a layer samples at the smallest power of two
    above twice its stopband (at most the resolution).  Computed in float64, the release's
    arithmetic, so the filters and sizes are its own."""
    n, res = cfg.num_layers, cfg.resolution
    last_cutoff = res / 2
    last_stopband = last_cutoff * cfg.last_stopband_rel
    exponents = np.minimum(np.arange(n + 1) / (n - cfg.num_critical), 1)
    cutoffs = cfg.first_cutoff * (last_cutoff / cfg.first_cutoff) ** exponents
    stopbands = cfg.first_stopband * (last_stopband / cfg.first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, res))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + cfg.margin_size * 2
    sizes[-2:] = res
    widths = np.rint(np.minimum((cfg.channel_base / 2) / cutoffs, cfg.channel_max))
    widths[-1] = channels
    plans = []
    for i in range(n + 1):
        p = max(i - 1, 0)
        plans.append(
            LayerPlan(
                in_rate=int(rates[p]),
                out_rate=int(rates[i]),
                in_cutoff=float(cutoffs[p]),
                out_cutoff=float(cutoffs[i]),
                in_half_width=float(half_widths[p]),
                out_half_width=float(half_widths[i]),
                in_size=int(sizes[p]),
                out_size=int(sizes[i]),
                in_channels=int(widths[p]),
                out_channels=int(widths[i]),
                is_torgb=i == n,
                is_critical=i >= n - cfg.num_critical,
            )
        )
    features = dict(
        channels=int(widths[0]),
        size=int(sizes[0]),
        sampling_rate=float(rates[0]),
        bandwidth=float(cutoffs[0]),
    )
    return features, plans


# ----- generator ------------------------------------------------------------------------------
class SynthesisInput(nn.Module):
    """Fourier features: ``channels`` sinusoids of random frequencies (uniform in the disc of
    radius ``bandwidth``) and phases, sampled on a ``size`` x ``size`` grid at
    ``sampling_rate``, rotated and translated by an affine map of w (and by the user's
    ``transform``, the inverse of the wanted image transform), then mixed by a learned
    ``channels`` x ``channels`` matrix."""

    def __init__(
        self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float
    ) -> None:
        super().__init__()
        self.channels, self.size = channels, size
        self.sampling_rate, self.bandwidth = sampling_rate, bandwidth
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)
        freqs *= bandwidth
        phases = torch.rand([channels]) - 0.5
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():  # starts as the identity: no rotation, no translation
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        n = w.shape[0]
        t = self.affine(w)  # (cos, sin, tx, ty) up to scale
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        cos, sin, tx, ty = t.unbind(dim=1)
        zero, one = torch.zeros_like(cos), torch.ones_like(cos)
        rotate = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], 1)
        shift = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], 1)
        transforms = rotate.reshape(n, 3, 3) @ shift.reshape(n, 3, 3) @ self.transform
        freqs = self.freqs.unsqueeze(0)
        phases = self.phases.unsqueeze(0) + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        freqs = freqs @ transforms[:, :2, :2]  # [N, C, 2]
        # fade out frequencies the user transform pushed past the band limit
        room = self.sampling_rate / 2 - self.bandwidth
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / room).clamp(0, 1)
        # pixel centres of the grid, in units of 1 / sampling_rate, centred on 0
        scale = 0.5 * self.size / self.sampling_rate
        theta = torch.tensor([[scale, 0, 0], [0, scale, 0]], device=w.device).unsqueeze(0)
        grid = F.affine_grid(theta, [1, 1, self.size, self.size], align_corners=False)
        x = (grid.unsqueeze(3) @ freqs.transpose(1, 2)[:, None, None]).squeeze(3)  # [N, H, W, C]
        x = torch.sin((x + phases[:, None, None]) * (2 * np.pi)) * amplitudes[:, None, None]
        x = x @ (self.weight / np.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)


class SynthesisLayer(nn.Module):
    """A modulated convolution followed by the filtered leaky ReLU that takes the signal from
    the input's sampling rate to the output's; the last layer (ToRGB) is a 1x1 modulated
    convolution without demodulation, nonlinearity or resampling."""

    def __init__(self, cfg: Config, plan: LayerPlan) -> None:
        super().__init__()
        self.plan, self.is_torgb = plan, plan.is_torgb
        self.conv_kernel = 1 if plan.is_torgb else cfg.conv_kernel
        self.conv_clamp = cfg.conv_clamp if cfg.conv_clamp > 0 else None
        self.magnitude_ema_beta = cfg.magnitude_ema_beta
        self.affine = FullyConnectedLayer(cfg.w_dim, plan.in_channels, bias_init=1)
        k = self.conv_kernel
        self.weight = nn.Parameter(torch.randn([plan.out_channels, plan.in_channels, k, k]))
        self.bias = nn.Parameter(torch.zeros([plan.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))
        tmp_rate = max(plan.in_rate, plan.out_rate) * (1 if plan.is_torgb else cfg.lrelu_upsampling)
        self.up_factor = int(np.rint(tmp_rate / plan.in_rate))
        self.down_factor = int(np.rint(tmp_rate / plan.out_rate))
        resample = not self.is_torgb  # ToRGB keeps its rate and filters nothing
        up_taps = cfg.filter_size * self.up_factor if resample and self.up_factor > 1 else 1
        down = self.down_factor
        down_taps = cfg.filter_size * down if resample and down > 1 else 1
        radial = cfg.use_radial_filters and not plan.is_critical
        self.register_buffer(
            "up_filter",
            design_lowpass_filter(up_taps, plan.in_cutoff, plan.in_half_width * 2, tmp_rate),
        )
        self.register_buffer(
            "down_filter",
            design_lowpass_filter(
                down_taps, plan.out_cutoff, plan.out_half_width * 2, tmp_rate, radial=radial
            ),
        )
        # crop so that the output has out_size pixels, with the sample points placed
        # symmetrically (the paper's Appendix C.3)
        total = (plan.out_size - 1) * self.down_factor + 1
        total -= (plan.in_size + k - 1) * self.up_factor
        total += up_taps + down_taps - 2
        low = (total + self.up_factor) // 2
        self.padding = [low, total - low, low, total - low]

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.training:  # track the input's mean square, as the release's update_emas does
            with torch.no_grad():
                now = x.detach().float().square().mean()
                self.magnitude_ema.copy_(now.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / np.sqrt(self.plan.in_channels * self.conv_kernel**2))
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            demodulate=not self.is_torgb,
            padding=self.conv_kernel - 1,
            input_gain=self.magnitude_ema.rsqrt(),
        )
        return filtered_lrelu(
            x,
            self.up_filter,
            self.down_filter,
            self.bias,
            up=self.up_factor,
            down=self.down_factor,
            padding=self.padding,
            gain=1.0 if self.is_torgb else math.sqrt(2),
            slope=1.0 if self.is_torgb else 0.2,
            clamp=self.conv_clamp,
        )


class SynthesisNetwork(nn.Module):
    """ws ``[N, num_ws, w_dim]`` -> images; ws[:, 0] drives the Fourier features, ws[:, i]
    layer ``L{i-1}_{size}_{channels}`` (the release's names, so its state dicts load)."""

    def __init__(self, cfg: Config, channels: int) -> None:
        super().__init__()
        self.w_dim, self.num_ws = cfg.w_dim, cfg.num_layers + 2
        self.output_scale = cfg.output_scale
        features, plans = layer_plan(cfg, channels)
        self.input = SynthesisInput(cfg.w_dim, **features)
        self.layer_names = []
        for i, plan in enumerate(plans):
            name = f"L{i}_{plan.out_size}_{plan.out_channels}"
            setattr(self, name, SynthesisLayer(cfg, plan))
            self.layer_names.append(name)

    def forward(self, ws: torch.Tensor, *, noise_mode: str = "const") -> torch.Tensor:
        """``noise_mode`` is accepted for the latent tools' sake: StyleGAN3 has no noise."""
        ws = ws.float().unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:], strict=True):
            x = getattr(self, name)(x, w)
        # on CPU the layers run channels-last (nn/alias_free.py); the images come out NCHW
        x = x.contiguous()
        return x * self.output_scale if self.output_scale != 1 else x


class Generator(nn.Module):
    """``G(z, labels)``: z ``[N, z_dim]``, labels ``[N]`` class indices or ``[N, c_dim]``
    one-hot (conditional only) -> images ``[N, C, R, R]``.  In training mode the mean w and
    every layer's input magnitude are tracked."""

    def __init__(self, cfg: Config, spec: DataSpec) -> None:
        super().__init__()
        self.z_dim, self.w_dim = cfg.z_dim, cfg.w_dim
        self.c_dim = spec.num_classes if cfg.conditional else 0
        self.synthesis = SynthesisNetwork(cfg, spec.channels)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            cfg.z_dim,
            self.c_dim,
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
        """z -> ws ``[N, num_ws, w_dim]``, truncated towards the mean w by ``truncation``."""
        c = class_vector(labels, self.c_dim)
        return self.mapping(z, c, truncation_psi=truncation, truncation_cutoff=truncation_cutoff)

    def forward(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        truncation: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
    ) -> torch.Tensor:
        ws = self.map(z, labels, truncation=truncation, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)


def input_transform(translate: tuple[float, float] = (0.0, 0.0), rotate: float = 0.0):
    """The matrix StyleGAN3's Fourier features take for an image translated by ``translate``
    (in image widths: the Fourier features span one unit across the image) and rotated by
    ``rotate`` degrees, what the release's gen_images.py makes of ``--translate`` and
    ``--rotate``: the inverse of that image transform, float64 ``[3, 3]``."""
    angle = rotate / 360.0 * 2 * np.pi
    s, c = np.sin(angle), np.cos(angle)
    m = np.array([[c, s, translate[0]], [-s, c, translate[1]], [0.0, 0.0, 1.0]])
    return np.linalg.inv(m)


# ----- the family -----------------------------------------------------------------------------
@MODELS.register(
    "stylegan3",
    doc="StyleGAN3 (Karras 2021): alias-free G (Fourier features, filtered lrelu), for imports",
)
class StyleGAN3(TwoPlayerModel):
    """StyleGAN3-T/-R with StyleGAN2's D; import published pickles with `ganforge import
    stylegan3`.  ``conditional=true`` for class labels."""

    Config = Config
    DEFAULT_PRESET = "stylegan3-t"
    PRESETS: dict[str, dict[str, Any]] = {
        # the release's --cfg=stylegan3-t defaults (r1 gamma depends on the data set)
        "stylegan3-t": {"train.batch_size": 32, "ema_kimg": 10.0},
        # --cfg=stylegan3-r: 1x1 convs, radial filters, twice G's channels
        "stylegan3-r": {
            "conv_kernel": 1,
            "use_radial_filters": True,
            "channel_base": 65536,
            "channel_max": 1024,
            "d_channel_base": 32768,
            "d_channel_max": 512,
            "train.batch_size": 32,
            "ema_kimg": 10.0,
        },
        "tiny": {
            "resolution": 16,
            "z_dim": 16,
            "w_dim": 16,
            "channel_base": 64,
            "channel_max": 8,
            "num_layers": 4,
            "margin_size": 2,
            "filter_size": 4,
            "magnitude_ema_beta": 0.9,
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
        return {"G": G, "D": D}

    def param_groups(self) -> dict[str, OptimSpec]:
        """Adam; D's rate and betas scaled by k / (k + 1) for its lazy R1 every k steps."""
        c = self.cfg
        every = c.reg.every if (c.reg.r1 or c.reg.r2) else 1
        ratio = every / (every + 1) if every > 1 else 1.0
        d_betas = tuple(b**ratio for b in c.betas)
        return {
            "G": OptimSpec(self.G.parameters(), lr=c.lr_g, kind=c.optimizer, betas=c.betas),
            "D": OptimSpec(self.D.parameters(), lr=c.lr_d * ratio, kind=c.optimizer, betas=d_betas),
        }

    def ema_beta(self, images_seen: int, batch_size: int) -> float:
        """Half-life of ``ema_kimg`` thousand images, at most ``ema_rampup`` of those seen."""
        c = self.cfg
        return ema_half_life_beta(
            images_seen, batch_size, ema_kimg=c.ema_kimg, ema_rampup=c.ema_rampup
        )

    def set_input_transform(
        self, translate: tuple[float, float] = (0.0, 0.0), rotate: float = 0.0
    ) -> None:
        """Translate (``(tx, ty)``, the release's ``--translate``) and rotate (degrees) the
        images of G and its average, as the release's gen_images.py does: through the
        Fourier features' ``transform`` buffer, which the checkpoint keeps."""
        values = [float(v) for v in (*translate, rotate)]
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            raise UserError(
                f"translate {tuple(translate)!r} and rotate {rotate!r} must be two finite "
                "numbers (tx, ty) and one angle in degrees"
            )
        matrix = torch.from_numpy(input_transform((values[0], values[1]), values[2]))
        for net in (self.G, *self.ema_networks().values()):
            net.synthesis.input.transform.copy_(matrix)

    def synthesize(
        self,
        net: nn.Module,
        args: tuple[Any, ...],
        *,
        truncation: float | None,
        noise_mode: str,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Truncation around the tracked mean w (not in z); there is no noise to choose."""
        return net(*args, truncation=check_sampling(truncation=truncation, noise_mode=noise_mode))
