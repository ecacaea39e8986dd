"""``progan``: Progressive Growing of GANs (Karras et al. 2018).

G and D start at 4x4 and grow a resolution at a time up to the data's.  A new resolution is
faded in: G's output is ``lerp(upsample(toRGB(previous block)), toRGB(new block), alpha)`` and
D's input side mirrors it, ``lerp(fromRGB(downsample(image)), new block(fromRGB(image)),
alpha)``, with alpha going linearly from 0 to 1; then the new resolution trains on its own for
a while.  G normalizes z and every feature vector to unit length per pixel (PixelNorm), D ends
with a minibatch standard-deviation feature, every layer has an equalized learning rate (the
`ganforge.nn.style` layers: weights stored as N(0, 1) and scaled by 1/sqrt(fan-in) at run time;
their sqrt(2) gain after the leaky ReLU instead of before it only rescales the bias), and the
loss is WGAN-GP with the drift term ``0.001 * E[D(real)^2]`` (``reg.drift``).

The growth schedule is data: ``stages`` holds one ``[fade, stable]`` pair of step counts per
resolution, 4x4 first (it has nothing to fade in from, so its fade is 0).  Laid end to end they
make the stage table (`GrowthSchedule`), and the stage and alpha of an iteration are a pure
function of its step.  The engine announces each iteration (`begin_iteration`), the model sets
the stage and alpha buffers of G, G_ema and D from the table, and a resumed run is therefore in
the very state the uninterrupted one was, in the middle of a fade-in too.  The counts are in
steps, the unit of ``train.steps``; the paper counts images (its 600k-800k per fade and per
stable period), which is steps times ``train.batch_size``.  Past the table's end training goes
on at the full resolution.

As in the paper's code, Adam's state is cleared whenever a fade-in or a stable period begins:
moments gathered for the old network are wrong for the new one.  All parameters are in the
optimizers from the start; the layers a stage does not use get a zero gradient (not none), so
the optimizer state always covers the same set, and Adam, whose moments then stay at zero,
leaves those layers exactly where they are.

The networks run at the stage's resolution (G's output and D's input are r x r, which keeps the
early stages cheap); real images are average-pooled to it and, during a fade-in, blended with
their 2x-pooled-and-upsampled version by the same alpha, so D sees real images with just the
detail G can give at that moment.  `generate` upsamples (nearest) to the final resolution, so
sample grids and metrics work at any point of training.  One consequence: the gradient penalty
is measured on r x r images, where the paper's code measured it on the nearest-upsampled full
resolution image, which allows a critic R/r times steeper at r x r.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataSpec
from ..errors import UserError, check
from ..nn.style import Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer, normalize_2nd_moment
from ..registry import MODELS
from .adversarial import Objective, RegConfig, TwoPlayerModel
from .base import Batch, Losses


def _paper_stages(n: int, steps: int) -> list[list[int]]:
    """``n`` resolutions, each faded in and then trained alone for ``steps``."""
    return [[0 if i == 0 else steps, steps] for i in range(n)]


@dataclass
class Config(Objective):
    resolution: int = 32  # a power of two; Fashion-MNIST's 28x28 is padded to it
    z_dim: int = 128
    channel_base: int = 8192  # channels at resolution r: min(channel_base / r, channel_max)
    channel_max: int = 128
    mbstd_group_size: int = 4  # minibatch-stddev group (the batch a multiple); 0 = the batch
    # [fade, stable] steps per resolution 4, 8, ..., resolution; see the module docstring
    stages: list[list[int]] = field(default_factory=lambda: _paper_stages(4, 25_000))
    # the objective's defaults, set to the paper's: WGAN-GP with the drift term, Adam 1e-3
    loss: str = "wasserstein"
    reg: RegConfig = field(default_factory=lambda: RegConfig(gp=10.0, drift=0.001))
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.99)

    def validate(self) -> None:
        super().validate()
        r = self.resolution
        check(r >= 4 and r & (r - 1) == 0, "resolution", r, "use a power of two, 4 or more")
        for name in ("z_dim", "channel_base", "channel_max"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "use 1 or more")
        check(
            self.mbstd_group_size >= 0,
            "mbstd_group_size",
            self.mbstd_group_size,
            "use 0 (the whole batch) or a group size",
        )
        self._validate_stages()
        self.refuse_plain_layer_options("progan")

    def _validate_stages(self) -> None:
        resolutions = [4 << i for i in range(int(math.log2(self.resolution)) - 1)]
        pairs = self.stages
        names = ", ".join(str(r) for r in resolutions)
        check(
            len(pairs) == len(resolutions) and all(len(p) == 2 for p in pairs),
            "stages",
            pairs,
            f"resolution {self.resolution} grows through {names}, so give "
            f"{len(resolutions)} [fade, stable] step pairs, one per resolution",
        )
        check(
            all(n >= 0 for p in pairs for n in p),
            "stages",
            pairs,
            "step counts cannot be negative; use 0 to skip a fade or a stable period",
        )
        check(
            pairs[0][0] == 0,
            "stages",
            pairs,
            "4x4, the first resolution, has nothing to fade in from; make its fade 0",
        )

    def channels(self, res: int) -> int:
        return min(self.channel_base // res, self.channel_max)


# ----- the schedule ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """Steps ``start`` to ``end`` (exclusive) of the stage table: stage ``stage`` (resolution
    ``4 << stage``) fading in, or training on its own."""

    start: int
    end: float  # math.inf for the open-ended last period
    stage: int
    fading: bool

    @property
    def resolution(self) -> int:
        return 4 << self.stage


class GrowthSchedule:
    """The stage table: ``stages`` (``[fade, stable]`` steps per resolution) laid end to end.

    Empty periods are dropped, and the final resolution's stable period never ends, so that
    training may run past the table."""

    def __init__(self, stages: Sequence[Sequence[int]]) -> None:
        self.final_stage = len(stages) - 1
        periods: list[Period] = []
        step = 0
        for stage, (fade, stable) in enumerate(stages):
            for fading, length in ((True, fade), (False, stable)):
                if length > 0:
                    periods.append(Period(step, step + length, stage, fading))
                    step += length
        self.length = step  # steps until the final resolution is reached and trained on
        last = periods[-1] if periods else None
        if last is not None and last.stage == self.final_stage and not last.fading:
            periods[-1] = Period(last.start, math.inf, last.stage, False)
        else:
            periods.append(Period(step, math.inf, self.final_stage, False))
        self.periods = periods
        self._ends = [p.end for p in periods]

    def period_index(self, step: int) -> int:
        """Index of the period holding ``step`` (a step >= 0)."""
        return bisect.bisect_right(self._ends, step)

    def at(self, step: int) -> tuple[int, float]:
        """(stage, alpha) of iteration ``step``: alpha rises from 0 at a fade-in's first step
        by ``1 / fade`` per step, and is 1 outside fade-ins."""
        p = self.periods[self.period_index(step)]
        if not p.fading:
            return p.stage, 1.0
        return p.stage, (step - p.start) / (p.end - p.start)

    def starts_period(self, step: int) -> bool:
        """Whether iteration ``step`` (> 0) is the first of a fade-in or of a stable period."""
        return step > 0 and self.period_index(step) != self.period_index(step - 1)


# ----- networks -------------------------------------------------------------------------------
def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """Each pixel's feature vector ``[N, C, ...]`` to unit root-mean-square over C."""
    return normalize_2nd_moment(x, dim=1)


def upsample(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour upsampling, the paper's (each pixel becomes a factor x factor square)."""
    return x if factor == 1 else F.interpolate(x, scale_factor=factor, mode="nearest")


class GrowingNetwork(nn.Module):
    """Blocks ``b4``, ``b8``, ... with an RGB layer each (``rgb_layer`` names it) and the
    growth state as buffers, so that it is saved with the weights and G_ema gets G's."""

    rgb_layer: str

    def _init_growth(self, num_stages: int) -> None:
        self.num_stages = num_stages
        # a fresh network is fully grown: `ganforge summary` shows it all, and training sets
        # the stage it starts at before the first step
        self.register_buffer("stage", torch.tensor(num_stages - 1))
        self.register_buffer("alpha", torch.tensor(1.0))

    def block(self, stage: int) -> nn.Module:
        return getattr(self, f"b{4 << stage}")

    def set_growth(self, stage: int, alpha: float) -> None:
        if not 0 <= stage < self.num_stages or not 0 <= alpha <= 1:
            raise UserError(
                f"growth stage {stage} with alpha {alpha} is out of range; use a stage in "
                f"0..{self.num_stages - 1} and alpha in [0, 1]"
            )
        self.stage.fill_(stage)
        self.alpha.fill_(alpha)

    def growth(self) -> tuple[int, float]:
        """(stage, alpha); a fade-in needs ``alpha < 1`` and a previous stage."""
        return int(self.stage), float(self.alpha)

    def fading(self) -> bool:
        stage, alpha = self.growth()
        return stage > 0 and alpha < 1

    def idle_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the current stage does not use: the blocks beyond it and the RGB layers
        other than its own (and the previous stage's while fading in)."""
        stage, _ = self.growth()
        used_rgb = {stage, stage - 1} if self.fading() else {stage}
        for i in range(self.num_stages):
            if i > stage:
                yield from self.block(i).parameters()
            elif i not in used_rgb:
                yield from getattr(self.block(i), self.rgb_layer).parameters()


class GeneratorBlock(nn.Module):
    """One resolution of G: 2x upsampling and two 3x3 convs, each followed by PixelNorm (the
    4x4 block starts from z with a dense layer instead of the first conv), and its toRGB."""

    def __init__(self, in_features: int, out_channels: int, image_channels: int, first: bool):
        super().__init__()
        self.first = first
        if first:
            self.dense = FullyConnectedLayer(in_features, out_channels * 16, activation="lrelu")
        else:
            self.conv0 = Conv2dLayer(in_features, out_channels, 3, activation="lrelu")
        self.conv1 = Conv2dLayer(out_channels, out_channels, 3, activation="lrelu")
        self.torgb = Conv2dLayer(out_channels, image_channels, 1)  # linear, as in the paper

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.first:
            x = self.dense(x).reshape(x.shape[0], -1, 4, 4)
        else:
            x = self.conv0(upsample(x))
        return pixel_norm(self.conv1(pixel_norm(x)))


class Generator(GrowingNetwork):
    """``G(z)``: z ``[N, z_dim]`` -> images ``[N, C, r, r]`` at the current stage's resolution
    r (not squashed: the paper's toRGB is linear; `generate` clamps to [-1, 1])."""

    rgb_layer = "torgb"

    def __init__(self, cfg: Config, image_channels: int) -> None:
        super().__init__()
        self.z_dim = cfg.z_dim
        resolutions = [4 << i for i in range(int(math.log2(cfg.resolution)) - 1)]
        for i, res in enumerate(resolutions):
            in_features = cfg.z_dim if i == 0 else cfg.channels(res // 2)
            block = GeneratorBlock(in_features, cfg.channels(res), image_channels, first=i == 0)
            setattr(self, f"b{res}", block)
        self._init_growth(len(resolutions))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        stage, alpha = self.growth()
        x = pixel_norm(z)  # z on the sphere: its length carries no information
        for i in range(stage):
            x = self.block(i)(x)
        previous = x
        x = self.block(stage)(x)
        image = self.block(stage).torgb(x)
        if self.fading():
            old = upsample(self.block(stage - 1).torgb(previous))
            image = torch.lerp(old, image, alpha)
        return image


class DiscriminatorBlock(nn.Module):
    """One resolution r > 4 of D: two 3x3 convs and 2x2 average pooling, and its fromRGB for
    when r is the input resolution."""

    def __init__(self, in_channels: int, out_channels: int, image_channels: int) -> None:
        super().__init__()
        self.fromrgb = Conv2dLayer(image_channels, in_channels, 1, activation="lrelu")
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, activation="lrelu")
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv1(self.conv0(x)))


class DiscriminatorEpilogue(nn.Module):
    """D at 4x4: minibatch stddev, a 3x3 conv, a dense layer and the linear score."""

    def __init__(self, channels: int, image_channels: int, group_size: int) -> None:
        super().__init__()
        self.fromrgb = Conv2dLayer(image_channels, channels, 1, activation="lrelu")
        self.mbstd = MinibatchStdLayer(group_size or None, 1)
        self.conv = Conv2dLayer(channels + 1, channels, 3, activation="lrelu")
        self.fc = FullyConnectedLayer(channels * 16, channels, activation="lrelu")
        self.out = FullyConnectedLayer(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.fc(self.conv(self.mbstd(x)).flatten(1)))


class Discriminator(GrowingNetwork):
    """``D(images)``: images ``[N, C, r, r]`` at the current stage's resolution -> scores
    ``[N]``."""

    rgb_layer = "fromrgb"

    def __init__(self, cfg: Config, image_channels: int) -> None:
        super().__init__()
        self.group_size = cfg.mbstd_group_size
        resolutions = [4 << i for i in range(int(math.log2(cfg.resolution)) - 1)]
        self.b4 = DiscriminatorEpilogue(cfg.channels(4), image_channels, cfg.mbstd_group_size)
        for res in resolutions[1:]:
            block = DiscriminatorBlock(cfg.channels(res), cfg.channels(res // 2), image_channels)
            setattr(self, f"b{res}", block)
        self._init_growth(len(resolutions))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        stage, alpha = self.growth()
        n, r = images.shape[0], 4 << stage
        if images.shape[-2:] != (r, r):
            raise ValueError(f"D is at {r}x{r} now; got images {list(images.shape)}")
        g = min(self.group_size or n, n)
        if n % g:
            raise UserError(
                f"a batch of {n} images does not split into minibatch-stddev groups of {g}; "
                f"use a batch size (per process) that is a multiple of {g}, or change "
                "mbstd_group_size"
            )
        x = self.block(stage).fromrgb(images)
        if stage > 0:
            x = self.block(stage)(x)
            if self.fading():
                old = self.block(stage - 1).fromrgb(F.avg_pool2d(images, 2))
                x = torch.lerp(old, x, alpha)
        for i in range(stage - 1, 0, -1):
            x = self.block(i)(x)
        return self.b4(x).flatten()


# ----- the family -----------------------------------------------------------------------------
@MODELS.register(
    "progan", doc="Progressive GAN (Karras 2018): grows 4x4 -> full size with fade-ins, WGAN-GP"
)
class ProGAN(TwoPlayerModel):
    """Progressive growing with the paper's networks and objective; see the module docstring
    for the schedule."""

    Config = Config
    DEFAULT_PRESET = "fmnist32"
    PRESETS: dict[str, dict[str, Any]] = {
        # sized for 2 CPU cores: 128 channels at 4x4 halving to 16 at 32x32, the paper's batch
        # of 16, 1,500 steps (24k images) per period and 3,500 at 32x32.  Measured in the
        # quality benchmark: 32x32 fully faded in after 6.3 minutes, the schedule done after 10.4
        # (the benchmark's 15 minutes then train on at 32x32, to 16,157 steps, FID 10.1)
        "fmnist32": {
            "z_dim": 128,
            "channel_base": 512,
            "channel_max": 128,
            "stages": [[0, 1500], [1500, 1500], [1500, 1500], [1500, 3500]],
            "train.batch_size": 16,
            "train.steps": 12_500,
            "train.ema_beta": 0.998,
            "train.sample_every": 500,
        },
        # the paper's own 32x32 setup (its CIFAR-10 runs, a data set of Fashion-MNIST's size):
        # 128 channels at every resolution, z of 128, batch 16, 400k images per fade-in and per
        # stable period = 25,000 steps; the table ends at 175,000 steps and the run 25,000
        # later (the paper trained on to 20M images).  Its CIFAR-10 gradient penalty target of
        # 750 instead of 1 is not available here.
        "paper": {
            "z_dim": 128,
            "channel_base": 8192,
            "channel_max": 128,
            "mbstd_group_size": 4,
            "stages": _paper_stages(4, 25_000),
            "loss": "wasserstein",
            "reg.gp": 10.0,
            "reg.drift": 0.001,
            "n_critic": 1,
            "lr_g": 1e-3,
            "lr_d": 1e-3,
            "betas": (0.0, 0.99),
            "train.batch_size": 16,
            "train.ema_beta": 0.999,
            "train.steps": 200_000,
            "train.sample_every": 5000,
        },
        # two steps per period: a few dozen steps cross both fade-ins of 4 -> 8 -> 16
        "tiny": {
            "resolution": 16,
            "z_dim": 16,
            "channel_base": 128,
            "channel_max": 16,
            "stages": [[0, 2], [2, 2], [2, 2]],
            "train.batch_size": 8,
            "train.grid_size": 8,
        },
    }

    def check_data(self, spec: DataSpec) -> None:
        super().check_data(spec)
        if spec.resolution != self.cfg.resolution:
            raise UserError(
                f"data set '{spec.name}' is {spec.resolution}x{spec.resolution} but progan is "
                f"set up for resolution {self.cfg.resolution}; load the data at that resolution"
            )

    def build(self) -> dict[str, nn.Module]:
        self.schedule = GrowthSchedule(self.cfg.stages)
        channels = self.spec.channels
        return {"G": Generator(self.cfg, channels), "D": Discriminator(self.cfg, channels)}

    # ----- growth -----------------------------------------------------------------------------
    def begin_iteration(self, step: int) -> tuple[str, ...]:
        """Stage and alpha from the table; Adam's state cleared when a period begins."""
        self.set_growth(*self.schedule.at(step))
        return ("G", "D") if self.schedule.starts_period(step) else ()

    def set_growth(self, stage: int, alpha: float) -> None:
        """Put G, G_ema and D at ``stage`` (resolution ``4 << stage``) with fade-in ``alpha``."""
        for net in (self.G, self.G_ema, self.D):
            net.set_growth(stage, alpha)

    def stage_reals(self, images: torch.Tensor) -> torch.Tensor:
        """Real images ``[N, C, R, R]`` as D sees them now: average-pooled to the stage's
        resolution r and, during a fade-in, blended by alpha with their 2x-pooled-and-upsampled
        version, which is the detail G's faded output can have."""
        stage, alpha = self.D.growth()
        r = 4 << stage
        if images.shape[-1] != r:
            images = F.avg_pool2d(images, images.shape[-1] // r)
        if self.D.fading():
            images = torch.lerp(upsample(F.avg_pool2d(images, 2)), images, alpha)
        return images

    def _staged(self, batch: Batch) -> Batch:
        return {**batch, "image": self.stage_reals(batch["image"])}

    # ----- phases -----------------------------------------------------------------------------
    # The blocks of stages not yet (or no longer) in use get zero gradients from the engine,
    # not none, so every process's optimizer and all-reduce see the same parameters.
    def g_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        losses = super().g_step(batch, ctx)
        stage, alpha = self.G.growth()
        losses["resolution"] = torch.tensor(float(4 << stage))
        losses["alpha"] = torch.tensor(alpha)
        return losses

    def d_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        return super().d_step(self._staged(batch), ctx)

    def d_reg_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        return super().d_reg_step(self._staged(batch), ctx)

    # ----- using it ---------------------------------------------------------------------------
    def synthesize(
        self,
        net: nn.Module,
        args: tuple[Any, ...],
        *,
        truncation: float | None,
        noise_mode: str,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """G's output at the final resolution: during training the current stage's image,
        upsampled (nearest) as the paper shows it."""
        images = net(*self.truncated_inputs(args, truncation, generator))
        return upsample(images, self.resolution // images.shape[-1])

    def truncated_inputs(
        self, args: tuple[Any, ...], truncation: float | None, generator: torch.Generator | None
    ) -> tuple[Any, ...]:
        if truncation is not None and truncation != 1.0:
            raise UserError(
                "progan normalizes z to unit length (PixelNorm), so truncation in z has no "
                "effect; use truncation 1"
            )
        return args

    def summary_inputs(self) -> dict[str, tuple[Any, ...]]:
        r = 4 << self.D.growth()[0]
        fake = torch.zeros(2, self.spec.channels, r, r)
        return {"G": self.generator_inputs(2, None, None), "D": (fake,)}
