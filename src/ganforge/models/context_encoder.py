"""``context-encoder``: inpainting with an encoder-decoder trained on L2 + adversarial loss
(Pathak et al. 2016), as pathak22/context-encoder's ``train.lua`` trains it.

G encodes the context (the image with its hole filled with the data's mean pixel) through
stride-2 4x4 convolutions (BatchNorm after all but the first, LeakyReLU 0.2) down to 4x4, a
4x4 convolution to a ``bottleneck``-channel 1x1 code (4000 in the reference's runs) with
BatchNorm and LeakyReLU, and decodes it with 4x4 transposed convolutions (BatchNorm, ReLU) to
an image, tanh.  D is train.lua's DCGAN discriminator on the predicted region: stride-2 4x4
convolutions (BatchNorm after all but the first), LeakyReLU 0.2, a 4x4 convolution to one
score.

Loss, as train.lua with ``wtl2 = 0.999, overlapPred = 4``: G minimises ``adv_weight`` (the
reference's ``1 - wtl2 = 0.001``) times the non-saturating BCE on D's score of its prediction,
plus the mean over the predicted region of ``w (G(x) - x)^2``, where ``w`` is ``l2_weight``
(0.999) in the hole and ``l2_weight * overlap_weight`` (10x) on the overlap ring; D minimises
BCE on the real region (label 1) plus BCE on G's (label 0), not halved.  Adam with beta1 0.5;
G's rate is ten times D's (train.lua: ``lr * 10`` for G whenever ``0 < wtl2 < 1``, ``lr`` =
2e-4 for D), so ``lr_g = 2e-3``, ``lr_d = 2e-4``.  ``adv_weight = 0`` is the L2-only
ablation: no D is built and G's loss is the weighted L2 alone (same network, same rates).

The mask (``[N, 1, H, W]``, 1 = hole) marks the unknown pixels.  The predicted region is the
hole grown by ``overlap`` px (a square dilation): the ring around the hole is known context
that G predicts too, weighted 10x so the prediction joins its border.  At inference the
prediction is pasted into the hole only; every known pixel is returned as it was.

Where we differ from the reference, and why:

- The reference's 128 px centre run fills a 56 px square with the mean pixel and predicts the
  64 px square around it (the 4 px ring is known and predicted).  Our data's centre hole is
  the 64 px square itself (``data.mask=center``: half the side), so the ring lies outside it
  and the predicted region is 72 px.  Pixels marked as hole are never shown to G.
- G predicts the whole image (train_random.lua's network: one more transposed convolution
  than train.lua's, which stops at the 64 px centre), and the region is cut from it, so any
  mask kind works and G is fully convolutional: images whose sides are multiples of
  ``2 ** (log2(R) - 2)`` and at least R give outputs of their own size (`valid_size`); other
  sizes are padded (mirrored) to one and cropped back.
- D judges the predicted region, the reference's default: with ``adv_input=center`` (for
  centre holes) the centre square of side ``R / 2 + 2 overlap``, cut from G's output pasted
  into the real image over the region (for a centre hole the whole square is G's); with
  ``adv_input=image`` (boxes, strokes, random masks) the whole pasted image, with one more
  stride-2 layer (train_random.lua's D at 128 px).  Where D's last 4x4 convolution leaves
  more than one score (a 72 px region gives 4x4 -> 1; small presets give 2x2), they are
  averaged.  train_random.lua's own D sees G's whole output, L2 over every pixel; ours keeps
  the known pixels real, so D judges only what G filled in.
- The reference zeroes every convolution's bias before each step, so its convolutions act
  without biases: ours have none.  D ends in a sigmoid there, here its score is a logit and
  the BCE takes logits (the same loss, numerically stable).
- The reference runs D's step, then G's on the same batch, reusing D's forward pass of the
  fakes; here G steps first and D then sees those fakes (one G forward per iteration either
  way), as the other two-player families of GANForge do.
- The hole is filled with the mean pixel of the training images (the DataSpec's
  ``mean_pixel``; the reference's is ImageNet's, ``2 * (117, 104, 123) / 255 - 1``); a spec
  without one (a model built from a bare spec) fills with 0, the middle of [-1, 1], the value
  masked data leaves in the hole of ``cond_image``.
- ``overlap`` scales with the image: 4 px at 128 (pathak), 2 px at 32 (fmnist32: 1/8 of the
  16 px hole rather than the reference's 1/16, so the ring stays half a 4x4 kernel wide), 1 px
  in the tiny preset.  The random masks are drawn per image (the reference uses one per
  batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataSpec
from ..errors import UserError, check
from ..nn import init_normal
from ..registry import MODELS
from .base import Batch, GANModel, Losses, OptimSpec, Phase, Task
from .imagenets import crop_from, pad_to, padded_size

ADV_INPUTS = ("center", "image")


@dataclass
class Config:
    """The reference's settings (128 px, ``nBottleneck=4000 wtl2=0.999 overlapPred=4``)."""

    resolution: int = 128
    bottleneck: int = 4000  # channels of the 1x1 code (nBottleneck; train.lua's default 100)
    nef: int = 64  # encoder channels after the first convolution
    ngf: int = 64  # decoder channels before the last convolution
    ndf: int = 64  # D's channels after the first convolution
    overlap: int = 4  # px of known context around the hole that G predicts (overlapPred)
    overlap_weight: float = 10.0  # L2 weight of that ring, times l2_weight (overlapL2Weight)
    l2_weight: float = 0.999  # L2 weight in the hole (wtl2)
    adv_weight: float = 0.001  # weight of G's adversarial loss (1 - wtl2); 0: L2 only, no D
    adv_input: str = "center"  # what D judges: center (square around a centre hole) | image
    lr_g: float = 2e-3  # Adam, G: ten times D's, as train.lua
    lr_d: float = 2e-4  # Adam, D
    betas: tuple[float, float] = (0.5, 0.999)

    def validate(self) -> None:
        r = self.resolution
        check(r >= 16 and r & (r - 1) == 0, "resolution", r, "use a power of two, at least 16")
        for name in ("bottleneck", "nef", "ngf", "ndf"):
            value = getattr(self, name)
            check(value >= 1, name, value, "use 1 or more channels")
        check(0 <= self.overlap <= r // 8, "overlap", self.overlap, f"use 0 to {r // 8} at {r} px")
        for name in ("overlap_weight", "l2_weight", "adv_weight"):
            value = getattr(self, name)
            check(value >= 0, name, value, "use 0 or more")
        check(
            self.l2_weight > 0 or self.adv_weight > 0,
            "l2_weight/adv_weight",
            (self.l2_weight, self.adv_weight),
            "at least one of them must be positive",
        )
        check(self.adv_input in ADV_INPUTS, "adv_input", self.adv_input, "use center or image")
        check(self.lr_g > 0 and self.lr_d > 0, "lr_g/lr_d", (self.lr_g, self.lr_d), "use > 0")
        check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "betas",
            list(self.betas),
            "Adam's betas are two values in [0, 1), e.g. [0.5, 0.999]",
        )

    @property
    def region_side(self) -> int:
        """Side of the square D judges with ``adv_input=center``: the centre hole (R / 2) and
        its ring."""
        return self.resolution // 2 + 2 * self.overlap


def _widths(base: int, n: int) -> list[int]:
    """Channels of ``n`` stride-2 layers as the reference widens them: ``base`` until four
    layers remain, then ``base, 2 base, 4 base, 8 base`` (128 px: 64, 64, 128, 256, 512)."""
    return [base * 2 ** max(0, min(3, i - max(0, n - 4))) for i in range(n)]


class ContextGenerator(nn.Module):
    """The context encoder and its decoder: ``[N, C, H, W]`` (the hole mean-filled) ->
    ``[N, C, H, W]`` in [-1, 1].  ``log2(R) - 2`` stride-2 4x4 convolutions bring R to 4 px,
    a 4x4 convolution makes the 1x1 code, a 4x4 transposed convolution brings it back to 4 px
    and as many stride-2 ones up to R.  Fully convolutional: a side of ``multiple * k``, k >=
    4, gives a ``(k - 3)``-pixel code and an output of the input's size."""

    def __init__(self, channels: int, resolution: int, nef: int, ngf: int, bottleneck: int):
        super().__init__()
        n = int(math.log2(resolution)) - 2
        self.multiple, self.minimum = 2**n, resolution
        enc, dec = _widths(nef, n), _widths(ngf, n)[::-1]
        layers: list[nn.Module] = [nn.Conv2d(channels, enc[0], 4, 2, 1, bias=False)]
        layers.append(nn.LeakyReLU(0.2, True))
        for cin, cout in zip(enc, enc[1:], strict=False):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout)]
            layers.append(nn.LeakyReLU(0.2, True))
        layers += [nn.Conv2d(enc[-1], bottleneck, 4, bias=False), nn.BatchNorm2d(bottleneck)]
        layers.append(nn.LeakyReLU(0.2, True))
        layers += [nn.ConvTranspose2d(bottleneck, dec[0], 4, bias=False), nn.BatchNorm2d(dec[0])]
        layers.append(nn.ReLU(True))
        for cin, cout in zip(dec, dec[1:], strict=False):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout)]
            layers.append(nn.ReLU(True))
        layers += [nn.ConvTranspose2d(dec[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        return self.model(context)


class RegionDiscriminator(nn.Module):
    """train.lua's D: ``n_layers`` stride-2 4x4 convolutions (BatchNorm after all but the
    first, LeakyReLU 0.2), a 4x4 convolution to one channel; ``[N, C, S, S]`` -> logits
    ``[N]``, the mean of the score map (one score when S is ``4 * 2 ** n_layers``)."""

    def __init__(self, channels: int, ndf: int, n_layers: int) -> None:
        super().__init__()
        widths = _widths(ndf, n_layers)
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False)]
        layers.append(nn.LeakyReLU(0.2, True))
        for cin, cout in zip(widths, widths[1:], strict=False):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout)]
            layers.append(nn.LeakyReLU(0.2, True))
        layers.append(nn.Conv2d(widths[-1], 1, 4, bias=False))
        self.model = nn.Sequential(*layers)

    def forward(self, region: torch.Tensor) -> torch.Tensor:
        return self.model(region).flatten(1).mean(1)


def grow(masks: torch.Tensor, px: int) -> torch.Tensor:
    """``masks [N, 1, H, W]`` in {0, 1} grown by ``px`` pixels (a square dilation)."""
    if px == 0:
        return masks
    return F.max_pool2d(masks, 2 * px + 1, stride=1, padding=px)


def l2_weights(
    masks: torch.Tensor, overlap: int, l2_weight: float, overlap_weight: float
) -> torch.Tensor:
    """The L2 weight of each pixel ``[N, 1, H, W]``: ``l2_weight`` in the hole, ``l2_weight *
    overlap_weight`` on the ring of ``overlap`` px around it, 0 elsewhere (train.lua's
    ``wtl2Matrix``)."""
    hole = masks.float()
    ring = grow(hole, overlap) - hole
    return l2_weight * hole + l2_weight * overlap_weight * ring


def centre_crop(images: torch.Tensor, side: int) -> torch.Tensor:
    h, w = images.shape[-2:]
    top, left = (h - side) // 2, (w - side) // 2
    return images[..., top : top + side, left : left + side]


@MODELS.register(
    "context-encoder",
    doc="Context Encoder (Pathak 2016): inpainting encoder-decoder, L2 + adversarial loss",
)
class ContextEncoder(GANModel):
    """``inpaint(images, masks)`` fills the holes (``masks`` 1) of ``images`` and keeps every
    other pixel as it was; images of any size are padded for G and cropped back."""

    Config = Config
    TASK = Task("masked")
    EMA = ()  # the reference keeps no average of G
    DEFAULT_PRESET = "fmnist32"
    PRESETS = {
        # the paper's centre inpainting: 128 px RGB, batch 64, 500 epochs (README's niter=500)
        # of Paris StreetView's 14,900 training images (233 steps an epoch); give
        # --dataset masked:folder:PATH
        "pathak": {
            "resolution": 128,
            "data.name": "masked:fmnist",
            "train.batch_size": 64,
            "train.steps": 116_500,
            "train.sample_every": 2_000,
            "train.checkpoint_every": 5_000,
            "train.grid_size": 24,
        },
        # 16 px centre holes in Fashion-MNIST at 32 px on CPU: G 2.43 M parameters (a 512-
        # channel code), D 135 k on the 20 px region (the reference's G:D is 26:1, this 18:1);
        # about 25 steps/s on 2 cores, so 18,000 steps (19 epochs) take some 12 minutes
        "fmnist32": {
            "resolution": 32,
            "data.name": "masked:fmnist",
            "bottleneck": 512,
            "nef": 32,
            "ngf": 32,
            "ndf": 64,
            "overlap": 2,
            "train.batch_size": 64,
            "train.steps": 18_000,
            "train.sample_every": 1_000,
            "train.checkpoint_every": 2_000,
            "train.grid_size": 16,
        },
        "tiny": {
            "resolution": 16,
            "data.name": "masked:fmnist",
            "bottleneck": 8,
            "nef": 4,
            "ngf": 4,
            "ndf": 4,
            "overlap": 1,
            "train.batch_size": 4,
            "train.grid_size": 12,
        },
    }

    def __init__(self, cfg: Config, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        mean = spec.mean_pixel if spec.mean_pixel is not None else (0.0,) * spec.channels
        # the hole's fill, [1, C, 1, 1]; from the spec, so not saved with the weights
        fill = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("fill", fill, persistent=False)

    # ----- construction ---------------------------------------------------------------------
    def build(self) -> dict[str, nn.Module]:
        c, ch = self.cfg, self.spec.channels
        nets: dict[str, nn.Module] = {
            "G": ContextGenerator(ch, c.resolution, c.nef, c.ngf, c.bottleneck)
        }
        if c.adv_weight > 0:
            side = c.resolution // 2 if c.adv_input == "center" else c.resolution
            nets["D"] = RegionDiscriminator(ch, c.ndf, int(math.log2(side)) - 2)
        return nets

    def initialize(self) -> None:
        init_normal(self)  # the reference's weights_init: N(0, 0.02), BN scale N(1, 0.02)

    def summary_inputs(self) -> dict[str, tuple[Any, ...]]:
        images = torch.zeros(2, self.spec.channels, self.resolution, self.resolution)
        out: dict[str, tuple[Any, ...]] = {"G": (images,)}
        if "D" in self.networks():
            out["D"] = (self._d_input(images),)
        return out

    # ----- training -------------------------------------------------------------------------
    def param_groups(self) -> dict[str, OptimSpec]:
        c = self.cfg
        groups = {"G": OptimSpec(self.G.parameters(), lr=c.lr_g, betas=tuple(c.betas))}
        if "D" in self.networks():
            groups["D"] = OptimSpec(self.D.parameters(), lr=c.lr_d, betas=tuple(c.betas))
        return groups

    def phases(self) -> list[Phase]:
        phases = [Phase("G", group="G", step=self.g_step)]
        if "D" in self.networks():  # D sees the real images of G's step and G's fakes of it
            phases.append(Phase("D", group="D", step=self.d_step, new_batch=False))
        return phases

    def context(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """G's input: ``images`` with the hole (``masks`` 1) set to the mean pixel."""
        return torch.where(masks.bool(), self.fill.to(images.dtype), images)

    def _d_input(self, images: torch.Tensor) -> torch.Tensor:
        if self.cfg.adv_input == "center":
            return centre_crop(images, self.cfg.region_side)
        return images

    def _check_centre(self, masks: torch.Tensor) -> None:
        r = self.resolution
        outside = masks.clone()
        outside[..., r // 4 : r // 4 + r // 2, r // 4 : r // 4 + r // 2] = 0
        if outside.any():
            raise UserError(
                "adv_input=center judges the centre square, but holes of this batch reach "
                "outside it (data.mask boxes, strokes or random?); use --set adv_input=image"
            )

    def g_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        """``l2`` (the weighted L2 over the predicted region) and, with a D, ``adv``."""
        c = self.cfg
        real, masks = batch["image"], batch["mask"]
        if len(real) < 2:  # BatchNorm over a 1x1 code has one value per channel
            raise UserError(
                "context-encoder needs 2 or more images per batch (and per process): its "
                "BatchNorm normalises a 1x1 code over the batch; raise train.batch_size"
            )
        fake = self.G(self.context(batch["cond_image"], masks))
        weights = l2_weights(masks, c.overlap, c.l2_weight, c.overlap_weight)
        region = grow(masks.float(), c.overlap)
        # the mean over the region's elements, as the reference's MSECriterion over its patch
        count = region.sum().clamp_min(1) * real.shape[1]
        l2 = (weights * (fake.float() - real.float()).square()).sum() / count
        losses = {"l2": l2}
        if "D" in self.networks():
            if c.adv_input == "center":
                self._check_centre(masks)
            pasted = torch.where(region.bool(), fake, real)
            fake_region = self._d_input(pasted)
            logits = self.D(fake_region)
            losses["adv"] = F.binary_cross_entropy_with_logits(
                logits.float(), torch.ones_like(logits, dtype=torch.float32)
            )
            ctx["fake_region"] = fake_region.detach()
            losses["loss"] = c.adv_weight * losses["adv"] + l2
        else:
            losses["loss"] = l2
        return {"loss": losses.pop("loss"), **losses}

    def d_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        """``d_real`` + ``d_fake``: BCE on the real region (1) and on G's (0), summed."""
        real = batch["image"]
        if "fake_region" in ctx:
            fake_region = ctx.pop("fake_region")
        else:  # a D step without a G step before it
            masks = batch["mask"]
            with torch.no_grad():
                fake = self.G(self.context(batch["cond_image"], masks))
            region = grow(masks.float(), self.cfg.overlap).bool()
            fake_region = self._d_input(torch.where(region, fake, real))
        real_logits, fake_logits = self.D(self._d_input(real)), self.D(fake_region)
        d_real = F.binary_cross_entropy_with_logits(
            real_logits.float(), torch.ones_like(real_logits, dtype=torch.float32)
        )
        d_fake = F.binary_cross_entropy_with_logits(
            fake_logits.float(), torch.zeros_like(fake_logits, dtype=torch.float32)
        )
        return {"loss": d_real + d_fake, "d_real": d_real, "d_fake": d_fake}

    # ----- using a trained model ------------------------------------------------------------
    def generator_inputs(
        self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None
    ) -> tuple[Any, ...]:
        raise UserError(
            "model 'context-encoder' fills holes in images, not images from noise; use "
            "inpaint(images, masks)"
        )

    def _checked(self, images: Any, masks: Any) -> tuple[torch.Tensor, torch.Tensor]:
        ch = self.spec.channels
        x, m = torch.as_tensor(images).float(), torch.as_tensor(masks).float()
        if x.ndim != 4 or x.shape[1] != ch:
            raise UserError(
                f"images have shape {list(x.shape)}; give [N, {ch}, H, W] in [-1, 1] "
                f"({ch}-channel images, as the model was trained on)"
            )
        if m.ndim != 4 or m.shape[0] != x.shape[0] or m.shape[1] != 1 or m.shape[2:] != x.shape[2:]:
            n, _, h, w = x.shape
            raise UserError(
                f"masks have shape {list(m.shape)} for images {list(x.shape)}; give one mask "
                f"per image, [{n}, 1, {h}, {w}], 1 = hole"
            )
        if not torch.isfinite(x).all():
            raise UserError("images hold NaN or infinite values; give finite values in [-1, 1]")
        if not ((m == 0) | (m == 1)).all():
            raise UserError("masks must hold only 0 (known) and 1 (hole); threshold them first")
        covered = m.flatten(1).sum(1)
        empty = (covered == 0).nonzero().flatten()
        if len(empty):
            raise UserError(f"mask {empty[0].item()} has no hole; mark the pixels to fill with 1")
        full = (covered == m[0].numel()).nonzero().flatten()
        if len(full):
            raise UserError(
                f"mask {full[0].item()} covers the whole image; leave some known pixels (0)"
            )
        return x, m

    @torch.no_grad()
    def inpaint(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """``images [N, C, H, W]`` in [-1, 1] with the holes of ``masks [N, 1, H, W]`` (1 =
        hole; the values under it are ignored) filled from G's prediction; every known pixel
        is returned exactly.  Any H and W: padded (mirrored) to `valid_size`, cropped back."""
        x, m = self._checked(images, masks)
        x, m = x.to(self.device), m.to(self.device)
        size = (x.shape[-2], x.shape[-1])
        padded = self.valid_size(*size)
        was_training = self.G.training
        self.G.eval()
        try:
            pred = crop_from(self.G(pad_to(self.context(x, m), padded)), size).float()
        finally:
            self.G.train(was_training)
        return torch.where(m.bool(), pred.clamp(-1, 1), x)

    def valid_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an ``height x width`` image is padded to before G sees it."""
        return padded_size(height, width, self.G.multiple, self.G.minimum)
