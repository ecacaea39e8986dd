"""``srgan``: photo-realistic single-image super-resolution (Ledig et al. 2017, arXiv 1609.04802).

G is SRResNet (the paper's figure 4): a 9x9 convolution to ``ngf`` channels and PReLU,
``n_blocks`` residual blocks (3x3 conv, BN, PReLU, 3x3 conv, BN, plus the block's input), a 3x3
conv and BN added to the first layer's output (the long skip), one sub-pixel stage per factor 2
(3x3 conv to ``4 ngf`` channels, pixel shuffle x2, PReLU; two for x4) and a 9x9 convolution to
the image's channels.  The low-resolution input is mapped from [-1, 1] to [0, 1] inside G, the
paper's input range; the output is on the high-resolution images' [-1, 1] scale, unbounded in
training (the paper's figure has no output nonlinearity) and clamped by `upscale`.  D is the
paper's 8-conv network: 3x3 convolutions of ``ndf, ndf, 2ndf, 2ndf, 4ndf, 4ndf, 8ndf, 8ndf``
channels, strides 1, 2, 1, 2, ..., BN after all but the first, LeakyReLU 0.2, then a dense
layer of ``d_dense`` (1024) units, LeakyReLU and a dense logit.  Its four stride-2 convolutions
(padding 1) take an R-pixel side to ``ceil(R / 16)`` (96 -> 6, 28 -> 2), so the first dense
layer has ``8 ndf ceil(R / 16)^2`` inputs: D takes the training resolution only.

Training follows the paper's two runs in one: for ``pretrain_steps`` iterations the phase
``G_mse`` trains G alone on the pixel MSE (SRResNet-MSE, the paper's 10^6 steps); then ``G``
(content loss + ``adv_weight = 1e-3`` times ``-log D(G(x))``) and ``D`` (BCE on real and
generated images) alternate, G first, with the rate falling tenfold every ``lr_step`` steps of
that phase (the paper's 10^5 steps at 1e-4, then 10^5 at 1e-5).  Adam, beta1 0.9, lr 1e-4, batch
16.  G's Adam state is cleared at the switch (`begin_iteration`), as the paper's SRGAN run
started a fresh optimizer from the SRResNet weights.  With ``pretrain_steps >= train.steps``
the run is SRResNet alone: D is built but never stepped.

The content loss (``content``):

- ``vgg54``: the MSE between VGG19 ``relu5_4`` feature maps of G's output and of the target
  (`ganforge.features.vgg`: torchvision's ``vgg19-dcbb9e9d.pth``, SHA-256 checked, read
  ``weights_only``; ImageNet normalization, gray repeated to RGB), the features multiplied by
  ``content_scale = 1/12.75`` (the paper's rescaling: the loss times ~0.006);
- ``domain``: the same on a domain classifier trained on the data set itself
  (`ganforge.features.domain`, seed 1 and width 24, where the evaluation's features use seed 0
  and width 32, so the metric is not the training target); its block-2 conv features: the ReLU
  after the fourth convolution, before the second max pool, ``[N, 48, R/2, R/2]`` (the analogue
  of VGG54: the last conv block before the last pool), ``content_scale`` 1 by default: on the
  bicubic upscales of 2,000 Fashion-MNIST test images (x4) its feature MSE is 0.238 against a
  pixel MSE of 0.108, the same order, which is what the paper's 1/12.75 does for VGG;
- ``mse``: pixel MSE (the paper's SRGAN-MSE);
- ``auto`` (default): ``vgg54`` when ``vgg19_weights`` is given, else ``domain`` (offline).

The content network is built on the first adversarial step, frozen and in eval mode, and is no
submodule: it is not in the state dict, is never trained, and a trained model is loaded and used
without it.  `content_description` names it for reports; the ``ganforge`` logger says which one
when it is built.

Where we depart from the paper, and why:

- Convolutions followed by BN have no bias (BN's shift does the job); PReLU has one slope per
  channel (He et al.'s channel-wise form; the paper does not say which).
- Data: the paper trains on 96 px random crops of 350k ImageNet images, bicubic-downsampled;
  `ledig` takes random 96 px crops of the images loaded at 128 px (``data.load_size``), and
  GANForge's lowres task box-filters them (its evaluation uses the centre crops).
- The LR decay is a step schedule (times 0.1 every ``lr_step`` adversarial steps) of both
  networks; the paper stops after one decay.
- VGG weights: torchvision publishes only the first 8 hex digits of the file's SHA-256, which
  is what torch.hub checks and what we check.

`upscale` takes images of any size (SRResNet is fully convolutional; BN runs in eval mode, a
per-pixel affine map) and runs those with a side over ``tile`` low-resolution pixels in
overlapping tiles (`models.tiling`) with an overlap of G's receptive-field radius
(`SRResNet.receptive_radius`: ``2 n_blocks + 8`` input pixels, 40 for the paper's G), so the
result equals the untiled one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataSpec
from ..errors import UserError, check
from ..features.vgg import WEIGHTS_FILE, check_vgg19_file, how_to_get, load_vgg19
from ..registry import MODELS
from .base import Batch, GANModel, Losses, LRSchedule, OptimSpec, Phase, Task
from .tiling import tiled

log = logging.getLogger("ganforge")

CONTENTS = ("auto", "vgg54", "domain", "mse")
FACTORS = (2, 4)
VGG_SCALE = 1 / 12.75  # the paper's rescaling of the VGG feature maps
#: The content classifier's settings: another seed and width than the evaluation's
#: (DomainSettings(): seed 0, width 32), so the metric's network is not the training target.
CONTENT_DOMAIN_SEED, CONTENT_DOMAIN_WIDTH = 1, 24
#: DomainClassifier.body[:13] ends with the ReLU after its 4th convolution (before the 2nd pool).
DOMAIN_FEATURE_LAYERS = 13


@dataclass
class Config:
    """The paper's settings (96 px HR crops, x4); `SRGAN.PRESETS` scale them for small data."""

    resolution: int = 96  # side of the high-resolution images (G's output, D's input)
    factor: int | None = None  # 2 or 4; None: the data's (resolution / low-res side)
    ngf: int = 64  # G's channels
    n_blocks: int = 16  # G's residual blocks
    ndf: int = 64  # D's first convolution's channels (doubling to 8 ndf)
    d_dense: int = 1024  # units of D's hidden dense layer
    content: str = "auto"  # auto | vgg54 | domain | mse (see the module docstring)
    vgg19_weights: str | None = None  # torchvision's vgg19-dcbb9e9d.pth, for content=vgg54
    content_scale: float | None = None  # features times this; None: 1/12.75 (vgg54), 1 (domain)
    adv_weight: float = 1e-3  # weight of -log D(G(x)) beside the content loss
    lr: float = 1e-4  # Adam, both networks
    betas: tuple[float, float] = (0.9, 0.999)
    pretrain_steps: int = 1_000_000  # MSE-only steps (SRResNet) before the adversarial phase
    lr_step: int = 100_000  # adversarial steps between tenfold LR decays (0: constant)
    tile: int = 128  # upscale runs inputs with a side over this many pixels in tiles (0: never)

    def validate(self) -> None:
        r = self.resolution
        check(r >= 8, "resolution", r, "use 8 or more pixels")
        if self.factor is not None:
            check(self.factor in FACTORS, "factor", self.factor, "use 2 or 4 (or none: the data's)")
            check(r % self.factor == 0, "resolution", r, f"use a multiple of factor {self.factor}")
        for name in ("ngf", "ndf", "d_dense"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "use 1 or more")
        check(self.n_blocks >= 0, "n_blocks", self.n_blocks, "use 0 or more")
        check(self.content in CONTENTS, "content", self.content, "use auto, vgg54, domain or mse")
        if self.content == "vgg54" and not self.vgg19_weights:
            raise UserError(f"content=vgg54 needs the VGG19 weights: {how_to_get()}")
        if self.content in ("domain", "mse") and self.vgg19_weights:
            raise UserError(
                f"vgg19_weights is set but content={self.content} does not use it; drop "
                "vgg19_weights or use content=vgg54"
            )
        if self.content_scale is not None:
            check(
                self.content_scale > 0, "content_scale", self.content_scale, "use a positive number"
            )
        check(self.adv_weight >= 0, "adv_weight", self.adv_weight, "use 0 or more")
        check(self.lr > 0, "lr", self.lr, "learning rates must be positive")
        check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "betas",
            list(self.betas),
            "Adam's betas are two values in [0, 1), e.g. [0.9, 0.999]",
        )
        check(self.pretrain_steps >= 0, "pretrain_steps", self.pretrain_steps, "use 0 or more")
        check(self.lr_step >= 0, "lr_step", self.lr_step, "use 0 (constant) or more")
        check(self.tile >= 0, "tile", self.tile, "use 0 (never tile) or a side in pixels")

    @property
    def content_kind(self) -> str:
        """The content loss ``auto`` resolves to: vgg54 with weights given, else domain."""
        if self.content == "auto":
            return "vgg54" if self.vgg19_weights else "domain"
        return self.content


# ----------------------------------------------------------------------------- networks


class ResidualBlock(nn.Module):
    """``x + (conv3x3, BN, PReLU, conv3x3, BN)(x)``, the paper's B residual blocks."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """Low-resolution images ``[N, C, h, w]`` in [-1, 1] -> ``[N, C, f h, f w]`` on the [-1, 1]
    scale (unclamped), for any h, w >= 1 (zero padding keeps every size)."""

    def __init__(self, channels: int, ngf: int = 64, n_blocks: int = 16, factor: int = 4) -> None:
        super().__init__()
        if factor not in FACTORS:
            raise ValueError(f"factor must be one of {FACTORS}, got {factor!r}")
        self.factor, self.n_blocks = factor, n_blocks
        self.head = nn.Sequential(nn.Conv2d(channels, ngf, 9, padding=4), nn.PReLU(ngf))
        self.blocks = nn.Sequential(*[ResidualBlock(ngf) for _ in range(n_blocks)])
        self.fuse = nn.Sequential(
            nn.Conv2d(ngf, ngf, 3, padding=1, bias=False), nn.BatchNorm2d(ngf)
        )
        stages: list[nn.Module] = []
        for _ in range(int(math.log2(factor))):  # sub-pixel convolution (Shi et al. 2016)
            stages += [nn.Conv2d(ngf, 4 * ngf, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(ngf)]
        self.upsample = nn.Sequential(*stages)
        self.tail = nn.Conv2d(ngf, channels, 9, padding=4)

    @property
    def receptive_radius(self) -> int:
        """How far (in input pixels) an output pixel sees: 4 (9x9 head) + 2 per residual block
        + 1 (fuse) + 1 (the first sub-pixel conv, at the input's scale) + 1/2 for a second one
        (at twice it) + 4 / factor (the 9x9 tail at the output's scale), rounded up: ``2
        n_blocks + 8`` for x2 and x4."""
        stages = int(math.log2(self.factor))
        radius = 4 + 2 * self.n_blocks + 1 + sum(0.5**k for k in range(stages)) + 4 / self.factor
        return math.ceil(radius)

    def forward(self, lowres: torch.Tensor) -> torch.Tensor:
        x = self.head((lowres + 1) / 2)  # the paper's LR range, [0, 1]
        x = x + self.fuse(self.blocks(x))
        return self.tail(self.upsample(x))


def d_side(resolution: int) -> int:
    """The side of D's last feature map: four stride-2 3x3 convolutions with padding 1 take
    ``n`` to ``ceil(n / 2)`` each (96 -> 6, 28 -> 2)."""
    side = resolution
    for _ in range(4):
        side = -(-side // 2)
    return side


class SRDiscriminator(nn.Module):
    """Images ``[N, C, R, R]`` (R: ``resolution``) -> logits ``[N]``."""

    def __init__(self, channels: int, resolution: int, ndf: int = 64, dense: int = 1024) -> None:
        super().__init__()
        self.resolution = resolution
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 3, padding=1), nn.LeakyReLU(0.2)]
        widths = (ndf, 2 * ndf, 2 * ndf, 4 * ndf, 4 * ndf, 8 * ndf, 8 * ndf)
        prev = ndf
        for i, width in enumerate(widths):
            stride = 2 if i % 2 == 0 else 1
            layers += [
                nn.Conv2d(prev, width, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.LeakyReLU(0.2),
            ]
            prev = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(8 * ndf * d_side(resolution) ** 2, dense),
            nn.LeakyReLU(0.2),
            nn.Linear(dense, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images)).squeeze(1)


# ----------------------------------------------------------------------------- content loss


class DomainFeatures(nn.Module):
    """A domain classifier's block-2 conv features of images at its own size (resized when the
    run's resolution differs from the data set's native one)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.resolution = classifier.resolution
        self.body = classifier.body[:DOMAIN_FEATURE_LAYERS]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.resolution, self.resolution):
            images = F.interpolate(
                images, size=(self.resolution,) * 2, mode="bilinear", align_corners=False
            )
        return self.body(images)


class ContentLoss:
    """The content term: MSE between ``scale`` times the features of G's output and of the
    target, or pixel MSE when ``net`` is None.  A plain object, not a module: the network it
    holds is no part of the model (not in the state dict, never trained, never saved)."""

    def __init__(self, net: nn.Module | None, scale: float, description: str) -> None:
        self.net, self.scale, self.description = net, scale, description

    def __call__(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            return F.mse_loss(fake, real)
        self.net.to(fake.device)
        with torch.no_grad():
            target = self.net(real) * self.scale
        return F.mse_loss(self.net(fake) * self.scale, target)


# ----------------------------------------------------------------------------- the family


@MODELS.register(
    "srgan", doc="SRGAN (Ledig 2017): SRResNet G (x4/x2), MSE, then content + 1e-3 adversarial"
)
class SRGAN(GANModel):
    """``upscale(images)`` makes images ``factor`` times larger with G."""

    Config = Config
    TASK = Task("lowres")
    EMA = ()  # the paper keeps no average of G
    DEFAULT_PRESET = "fmnist"
    PRESETS = {
        # the paper's: 96 px HR, x4, batch 16; SRResNet 10^6 steps, then SRGAN 10^5 + 10^5;
        # give --dataset lowres:folder:PATH (ImageNet-like photos) and, for the paper's VGG54
        # loss, vgg19_weights=PATH (without it: the domain content network, which needs labels)
        "ledig": {
            "resolution": 96,
            "data.name": "lowres:fmnist",
            "data.factor": 4,
            "data.load_size": 128,  # random 96 px HR crops of images loaded at 128 px
            "train.batch_size": 16,
            "pretrain_steps": 1_000_000,
            "lr_step": 100_000,
            "train.steps": 1_200_000,
            "train.sample_every": 10_000,
            "train.checkpoint_every": 10_000,
            "train.grid_size": 24,
        },
        # Fashion-MNIST 7 -> 28 px on CPU: the paper's 16 blocks at 32 channels; the MSE phase
        # for 40% of the steps, then the GAN phase (two LR levels) with the domain content
        # network (trained once, ~3 CPU minutes, then cached).  Measured on 2 cores: 26 ms an
        # MSE step, 55 ms a GAN step at batch 16, so 18,000 steps take some 13 minutes
        "fmnist": {
            "resolution": 28,
            "data.name": "lowres:fmnist",
            "data.factor": 4,
            "ngf": 32,
            "n_blocks": 16,
            "ndf": 16,
            "d_dense": 256,
            "train.batch_size": 16,
            "pretrain_steps": 7_200,
            "lr_step": 5_400,
            "train.steps": 18_000,
            "train.sample_every": 500,
            "train.checkpoint_every": 1_000,
            "train.grid_size": 24,
        },
        "tiny": {
            "resolution": 16,
            "data.name": "lowres:fmnist",
            "data.factor": 4,
            "ngf": 8,
            "n_blocks": 2,
            "ndf": 4,
            "d_dense": 16,
            "content": "mse",
            "train.batch_size": 4,
            "pretrain_steps": 2,
            "lr_step": 1_000,
            "train.grid_size": 12,
        },
    }

    def __init__(self, cfg: Config, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        self._content: ContentLoss | None = None  # built on the first adversarial step

    # ----- construction ---------------------------------------------------------------------
    def check_data(self, spec: DataSpec) -> None:
        super().check_data(spec)
        if not spec.cond_resolution:
            return  # no data yet (create_model without a spec): the config's factor, else 4
        data_factor = spec.resolution // spec.cond_resolution
        if data_factor * spec.cond_resolution != spec.resolution or data_factor not in FACTORS:
            raise UserError(
                f"low-resolution images of {spec.cond_resolution} px do not make "
                f"{spec.resolution} px ones 2 or 4 times larger; set data.factor to 2 or 4"
            )
        if self.cfg.factor is not None and self.cfg.factor != data_factor:
            raise UserError(
                f"factor is {self.cfg.factor} but data set '{spec.name}' is {data_factor} times "
                f"smaller (data.factor); set factor={data_factor} or data.factor={self.cfg.factor}"
            )

    @property
    def factor(self) -> int:
        """How many times larger G makes an image's side."""
        if self.cfg.factor is not None:
            return self.cfg.factor
        s = self.spec
        return s.resolution // s.cond_resolution if s.cond_resolution else 4

    def build(self) -> dict[str, nn.Module]:
        c, ch = self.cfg, self.spec.channels
        return {
            "G": SRResNet(ch, c.ngf, c.n_blocks, self.factor),
            "D": SRDiscriminator(ch, self.resolution, c.ndf, c.d_dense),
        }

    def summary_inputs(self) -> dict[str, tuple[Any, ...]]:
        ch, r = self.spec.channels, self.resolution
        return {
            "G": (torch.zeros(2, ch, r // self.factor, r // self.factor),),
            "D": (torch.zeros(2, ch, r, r),),
        }

    # ----- training -------------------------------------------------------------------------
    def param_groups(self) -> dict[str, OptimSpec]:
        c = self.cfg
        schedule = (
            LRSchedule("step", c.pretrain_steps, c.lr_step, 0.1) if c.lr_step else LRSchedule()
        )
        kw = dict(lr=c.lr, betas=tuple(c.betas), schedule=schedule)
        return {
            "G": OptimSpec(self.G.parameters(), **kw),
            "D": OptimSpec(self.D.parameters(), **kw),
        }

    def phases(self) -> list[Phase]:
        c = self.cfg
        if c.content_kind == "vgg54":  # a missing or wrong file stops the run before it starts
            check_vgg19_file(c.vgg19_weights)
        p = c.pretrain_steps
        return [
            Phase("G_mse", group="G", step=self.mse_step, stop=p),
            Phase("G", group="G", step=self.g_step, start=p),
            # D sees the real images of G's step and the output G made from them (through ctx)
            Phase("D", group="D", step=self.d_step, start=p, new_batch=False),
        ]

    def begin_iteration(self, step: int) -> tuple[str, ...]:
        """A fresh Adam for G when the adversarial phase begins (the paper's second run)."""
        return ("G",) if step == self.cfg.pretrain_steps > 0 else ()

    def mse_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        """SRResNet: ``mse`` between G's output and the target (both on [-1, 1])."""
        mse = F.mse_loss(self.G(batch["cond_image"]).float(), batch["image"].float())
        return {"loss": mse, "mse": mse}

    def g_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        """``content + adv_weight * adv``, ``adv = -log D(G(x))``; ``mse`` for reference."""
        real = batch["image"].float()
        fake = self.G(batch["cond_image"]).float()
        content = self.content_loss()(fake, real)
        adv = F.softplus(-self.D(fake).float()).mean()
        ctx["fake"] = fake.detach()
        return {
            "loss": content + self.cfg.adv_weight * adv,
            "content": content,
            "adv": adv,
            "mse": F.mse_loss(fake.detach(), real),
        }

    def d_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        """``-log D(x) - log(1 - D(G(x)))`` as ``real + fake``."""
        if "fake" in ctx:
            fake = ctx.pop("fake")
        else:  # a D step without a G step before it
            with torch.no_grad():
                fake = self.G(batch["cond_image"])
        real = F.softplus(-self.D(batch["image"]).float()).mean()
        fake_term = F.softplus(self.D(fake).float()).mean()
        return {"loss": real + fake_term, "real": real, "fake": fake_term}

    # ----- the content network ----------------------------------------------------------------
    def content_loss(self) -> ContentLoss:
        """The content term, its network built (or loaded) on first use."""
        if self._content is None:
            self._content = self._build_content()
            log.info(f"srgan content loss: {self._content.description}")
        return self._content

    def content_description(self) -> str:
        """Which content loss trains this model, for reports (with the network's hash once it
        is built)."""
        if self._content is not None:
            return self._content.description
        kind = self.cfg.content_kind
        if kind == "mse":
            return "pixel MSE (SRGAN-MSE; no feature network)"
        if kind == "vgg54":
            return f"VGG19 relu5_4 (torchvision {WEIGHTS_FILE} at {self.cfg.vgg19_weights})"
        return self._domain_text()

    def _domain_text(self, digest: str | None = None, scale: float | None = None) -> str:
        """The domain content network in words; its hash and scale once it is built."""
        name = self._domain_dataset() + (f" ({digest})" if digest else "")
        times = f" x {scale:.4g}" if scale is not None else ""
        return (
            f"domain classifier of {name}, seed {CONTENT_DOMAIN_SEED}, width "
            f"{CONTENT_DOMAIN_WIDTH}, block-2 conv features{times} (not the evaluation's: "
            "seed 0, width 32)"
        )

    def training_notes(self) -> dict[str, str]:
        """The content loss, named in the training summary and in evaluation reports."""
        start = self.cfg.pretrain_steps
        return {"content loss": f"{self.content_description()}; from step {start:,} on"}

    def _content_scale(self, default: float) -> float:
        return self.cfg.content_scale if self.cfg.content_scale is not None else default

    def _domain_dataset(self) -> str:
        name = self.spec.name
        return name.removeprefix("lowres:")

    def _build_content(self) -> ContentLoss:
        kind = self.cfg.content_kind
        if kind == "mse":
            return ContentLoss(None, 1.0, self.content_description())
        if kind == "vgg54":
            net, digest = load_vgg19(self.cfg.vgg19_weights)
            scale = self._content_scale(VGG_SCALE)
            return ContentLoss(
                net,
                scale,
                f"VGG19 relu5_4 (torchvision {WEIGHTS_FILE}, sha256 {digest}), features x "
                f"{scale:.4g}",
            )
        from ..features.domain import DomainSettings, build_domain_network

        settings = DomainSettings(seed=CONTENT_DOMAIN_SEED, width=CONTENT_DOMAIN_WIDTH)
        dataset = self._domain_dataset()
        try:
            classifier, record = build_domain_network(dataset, settings=settings)
        except UserError as err:
            raise UserError(
                f"content=domain: {err}; or use content=vgg54 with vgg19_weights=PATH, or "
                "content=mse"
            ) from None
        net = DomainFeatures(classifier).eval().requires_grad_(False)
        scale = self._content_scale(1.0)
        return ContentLoss(net, scale, self._domain_text(record.get("hash", "?"), scale))

    # ----- using a trained model ------------------------------------------------------------
    def generator_inputs(
        self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None
    ) -> tuple[Any, ...]:
        raise UserError(
            "model 'srgan' makes images from images, not from noise; use upscale(images) "
            "with low-resolution images [N, C, H, W] in [-1, 1]"
        )

    @torch.no_grad()
    def upscale(self, images: torch.Tensor, *, tile: int | None = None) -> torch.Tensor:
        """``images [N, C, H, W]`` in [-1, 1], any H and W -> ``[N, C, f H, f W]`` in [-1, 1].
        Inputs with a side over ``tile`` pixels (default: the config's ``tile``; 0: never) run
        in overlapping tiles, with the same result."""
        x = torch.as_tensor(images).float()
        ch = self.spec.channels
        if x.ndim != 4 or x.shape[1] != ch or min(x.shape[-2:]) < 1:
            raise UserError(
                f"images have shape {list(x.shape)}; give [N, {ch}, H, W] in [-1, 1] "
                f"({ch}-channel images, as the model was trained on)"
            )
        tile = self.cfg.tile if tile is None else tile
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 0:
            raise UserError(f"tile must be 0 (never tile) or a side in pixels, got {tile!r}")
        net = self.G
        was_training = net.training
        net.eval()
        try:
            out = tiled(
                net,
                x.to(self.device),
                scale=self.factor,
                tile=tile or max(x.shape[-2:]),
                overlap=net.receptive_radius,
            )
        finally:
            net.train(was_training)
        return out.float().clamp(-1, 1)

    def valid_size(self, height: int, width: int) -> tuple[int, int]:
        """Every size is valid: SRResNet needs no padding."""
        return height, width
