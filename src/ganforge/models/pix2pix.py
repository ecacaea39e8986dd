"""``pix2pix``: paired image-to-image translation (Isola et al. 2017), as
junyanz/pytorch-CycleGAN-and-pix2pix trains it.

G is a U-Net (`imagenets.UnetGenerator`, depth ``log2(resolution)`` so the bottleneck is 1 x 1,
BatchNorm, dropout 0.5 in the decoder blocks next to the bottleneck); D a PatchGAN that sees the
input and an output (real or generated) concatenated along the channels, so it judges whether
the output fits its input, not only whether it looks real.  G's loss is the vanilla GAN term on
D's patch scores plus ``lambda_l1 = 100`` times the L1 distance to the target; D's loss is
halved (``(real + fake) / 2``, the reference's ``backward_D``).  Adam 2e-4, betas (0.5, 0.999),
a constant rate for ``lr_decay_start`` steps, then linear to zero over ``lr_decay_steps`` (the
paper's 100 + 100 epochs, counted in steps).

As in the paper, dropout stays on when the model is used (it is G's only source of noise), so an
output depends on ``seed``; `translate` draws the dropout masks from ``seed`` with the global
RNG left alone, so the same call gives the same images.

Where we depart from the reference, and why:

- Order in an iteration: the reference computes ``fake_B = G(A)``, updates D on it, then G
  through the updated D; we update G first and D on the fake G just made (the order of
  CycleGAN's reference), so G is run forward once an iteration (the engine freezes the other
  group during a phase, so a D-first step could not share its fake with G).  The alternation
  is the same, shifted by half an iteration.
- Dropout blocks: the reference drops out in the ``depth - 5`` decoder blocks whose both sides
  have ``8 ngf`` channels (3 at 256 px), which leaves a U-Net of depth 5 or less (32 px and
  below) without any; we keep at least one (`dropout_blocks`, None: ``max(1, depth - 5)``), so
  small models keep the paper's noise.
- BatchNorm at test time: the reference (without ``--eval``) normalizes with the statistics of
  the test batch, which at its batch size of 1 means each image by its own.  ``test_norm =
  "image"`` does exactly that (each image normalized by itself, the running statistics left
  untouched), the `isola` preset's setting; the default ``"running"`` uses the running
  statistics (eval mode), which matches training at batch sizes above 1 and makes an image's
  output independent of the others in its batch.
- `PatchDiscriminator` depth: 3 layers (70 px patches) at 256 px, fewer for small images
  (`imagenets.patch_layers_for`).
- ``lambda_gan`` (1; not in the reference) weighs the adversarial term; 0 trains the same G with
  L1 alone and builds no D, the paper's "L1 only" ablation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError, check
from ..nn import init_normal
from ..registry import MODELS
from .base import Batch, GANModel, Losses, LRSchedule, OptimSpec, Phase, Task
from .imagenets import (
    NORMS,
    PatchDiscriminator,
    ResnetGenerator,
    UnetGenerator,
    check_translation_options,
    crop_from,
    pad_to,
    padded_size,
    patch_layers_for,
    patch_loss,
)

G_ARCHS = ("unet", "resnet")
TEST_NORMS = ("running", "image")


@dataclass
class Config:
    """The paper's settings (256 px, facades); `Pix2Pix.PRESETS` scale them for small data."""

    resolution: int = 256
    g_arch: str = "unet"  # unet (the paper's, depth log2(resolution)) | resnet (CycleGAN's)
    ngf: int = 64  # G's channels after the first convolution
    ndf: int = 64  # D's channels after the first convolution
    norm: str = "batch"  # batch (the paper's) | instance | none
    dropout: float = 0.5  # in G's decoder blocks next to the bottleneck (resnet: every block)
    dropout_blocks: int | None = None  # unet decoder blocks with dropout; None: max(1, depth - 5)
    n_blocks: int | None = None  # resnet blocks; None: 9 above 128 px, 6 at 128 px and below
    d_layers: int | None = None  # PatchGAN stride-2 layers; None: patch_layers_for(resolution)
    gan_loss: str = "vanilla"  # vanilla (BCE, the paper's) | lsgan
    lambda_l1: float = 100.0  # weight of |G(x) - y|
    lambda_gan: float = 1.0  # weight of the adversarial term; 0: L1 alone, no D is built
    lr: float = 2e-4  # Adam, both players
    betas: tuple[float, float] = (0.5, 0.999)
    # constant for lr_decay_start steps, then linear to zero over lr_decay_steps (0: constant)
    lr_decay_start: int = 40_000
    lr_decay_steps: int = 40_000
    test_dropout: bool = True  # keep dropout on when the model is used, as the paper does
    test_norm: str = "running"  # running (eval-mode BN) | image (each image's own statistics)

    def validate(self) -> None:
        r = self.resolution
        check(self.g_arch in G_ARCHS, "g_arch", self.g_arch, "use unet or resnet")
        check(r >= 16, "resolution", r, "use 16 or more")
        if self.g_arch == "unet":
            check(r & (r - 1) == 0, "resolution", r, "g_arch=unet needs a power of two")
        else:
            check(r % 4 == 0, "resolution", r, "g_arch=resnet needs a multiple of 4")
        check_translation_options(self)
        check(self.norm in NORMS, "norm", self.norm, "use batch, instance or none")
        check(0 <= self.dropout < 1, "dropout", self.dropout, "use a rate in [0, 1)")
        if self.dropout_blocks is not None:
            most = self.depth - 1
            check(
                0 <= self.dropout_blocks <= most,
                "dropout_blocks",
                self.dropout_blocks,
                f"use 0 to {most} at {r} px (or none: {max(1, self.depth - 5)})",
            )
        check(self.lambda_l1 >= 0, "lambda_l1", self.lambda_l1, "use 0 (off) or more")
        check(self.lambda_gan >= 0, "lambda_gan", self.lambda_gan, "use 0 (L1 alone) or more")
        check(
            self.lambda_l1 > 0 or self.lambda_gan > 0,
            "lambda_l1/lambda_gan",
            (self.lambda_l1, self.lambda_gan),
            "at least one loss must have a weight above 0",
        )
        check(self.test_norm in TEST_NORMS, "test_norm", self.test_norm, "use running or image")

    @property
    def depth(self) -> int:
        """U-Net depth: log2(resolution), down to a 1 x 1 bottleneck."""
        return self.resolution.bit_length() - 1

    @property
    def blocks(self) -> int:
        return self.n_blocks if self.n_blocks is not None else (9 if self.resolution > 128 else 6)

    @property
    def patch_layers(self) -> int:
        return self.d_layers if self.d_layers is not None else patch_layers_for(self.resolution)

    @property
    def adversarial(self) -> bool:
        return self.lambda_gan > 0


@MODELS.register("pix2pix", doc="pix2pix (Isola 2017): paired image -> image, U-Net G, PatchGAN D")
class Pix2Pix(GANModel):
    """``translate(images)`` maps inputs of the paired task (``cond_image``: an edge map, a
    label map...) to outputs like its targets; any image size is taken (padded for the
    network, cropped back)."""

    Config = Config
    TASK = Task("paired")
    EMA = ()  # the reference keeps no average of G
    DEFAULT_PRESET = "fmnist32"
    PRESETS = {
        # the paper's facades: 400 training pairs at 256 px, batch 1, 100 epochs at a constant
        # rate then 100 decaying to zero; give --dataset pix2pix:PATH for the real facades
        "isola": {
            "resolution": 256,
            "data.name": "fmnist-edges",
            "test_norm": "image",
            "train.batch_size": 1,
            "train.steps": 80_000,
            "lr_decay_start": 40_000,
            "lr_decay_steps": 40_000,
            "train.sample_every": 2_000,
            "train.checkpoint_every": 4_000,
            "train.grid_size": 24,
        },
        # Fashion-MNIST edge maps -> garments at 32 px on CPU, batch 16 (3,750 steps an
        # epoch): about 26 steps/s on 2 cores, so 20,000 steps (5.3 epochs) take some 13
        # minutes; the rate decays over the second half
        "fmnist32": {
            "resolution": 32,
            "data.name": "fmnist-edges",
            "ngf": 32,
            "ndf": 32,
            "train.batch_size": 16,
            "train.steps": 20_000,
            "lr_decay_start": 10_000,
            "lr_decay_steps": 10_000,
            "train.sample_every": 1_000,
            "train.checkpoint_every": 2_000,
            "train.grid_size": 16,
        },
        "tiny": {
            "resolution": 16,
            "data.name": "fmnist-edges",
            "ngf": 4,
            "ndf": 4,
            "train.batch_size": 4,
            "lr_decay_start": 1_000,
            "lr_decay_steps": 1_000,
            "train.grid_size": 12,
        },
    }

    @property
    def in_channels(self) -> int:
        return self.spec.cond_channels or self.spec.channels

    # ----- construction ---------------------------------------------------------------------
    def build(self) -> dict[str, nn.Module]:
        c, cin, cout = self.cfg, self.in_channels, self.spec.channels
        if c.g_arch == "unet":
            blocks = c.dropout_blocks if c.dropout_blocks is not None else max(1, c.depth - 5)
            g: nn.Module = UnetGenerator(
                cin, cout, c.depth, c.ngf, norm=c.norm, dropout=c.dropout, dropout_blocks=blocks
            )
        else:
            g = ResnetGenerator(cin, cout, c.ngf, c.blocks, norm=c.norm, dropout=c.dropout)
        nets = {"G": g}
        if c.adversarial:
            nets["D"] = PatchDiscriminator(cin + cout, c.ndf, c.patch_layers, norm=c.norm)
        return nets

    def initialize(self) -> None:
        init_normal(self)  # the reference's init_type=normal: N(0, 0.02), BN scale N(1, 0.02)

    def summary_inputs(self) -> dict[str, tuple[Any, ...]]:
        r = self.resolution
        x = torch.zeros(2, self.in_channels, r, r)
        inputs: dict[str, tuple[Any, ...]] = {"G": (x,)}
        if self.cfg.adversarial:
            inputs["D"] = (torch.zeros(2, self.in_channels + self.spec.channels, r, r),)
        return inputs

    # ----- training -------------------------------------------------------------------------
    def param_groups(self) -> dict[str, OptimSpec]:
        c = self.cfg
        schedule = (
            LRSchedule("linear", c.lr_decay_start, c.lr_decay_steps)
            if c.lr_decay_steps
            else LRSchedule()
        )
        kw = dict(lr=c.lr, betas=tuple(c.betas), schedule=schedule)
        groups = {"G": OptimSpec(self.G.parameters(), **kw)}
        if c.adversarial:
            groups["D"] = OptimSpec(self.D.parameters(), **kw)
        return groups

    def phases(self) -> list[Phase]:
        phases = [Phase("G", group="G", step=self.g_step)]
        if self.cfg.adversarial:  # D judges this batch's pairs and the fakes G just made
            phases.append(Phase("D", group="D", step=self.d_step, new_batch=False))
        return phases

    def g_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        """``l1`` (weighted by lambda_l1) and, with a D, ``adv`` (weighted by lambda_gan)."""
        c = self.cfg
        x, y = batch["cond_image"], batch["image"]
        fake = self.G(x)
        losses = {"l1": c.lambda_l1 * F.l1_loss(fake.float(), y.float())}
        if c.adversarial:
            scores = self.D(torch.cat([x, fake], 1))
            losses["adv"] = c.lambda_gan * patch_loss(scores, True, c.gan_loss)
            ctx["fake"] = fake.detach()
        return {"loss": sum(losses.values()), **losses}

    def d_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        """``d_real`` and ``d_fake`` on (input, output) pairs; the loss is their mean."""
        mode = self.cfg.gan_loss
        x, y = batch["cond_image"], batch["image"]
        fake = ctx.pop("fake", None)
        if fake is None:  # a D step without a G step before it
            with torch.no_grad():
                fake = self.G(x)
        d_real = patch_loss(self.D(torch.cat([x, y], 1)), True, mode)
        d_fake = patch_loss(self.D(torch.cat([x, fake], 1)), False, mode)
        return {"loss": 0.5 * (d_real + d_fake), "d_real": d_real, "d_fake": d_fake}

    # ----- using a trained model ------------------------------------------------------------
    def generator_inputs(
        self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None
    ) -> tuple[Any, ...]:
        raise UserError(
            "model 'pix2pix' makes images from images, not from noise; use translate(images) "
            "or 'ganforge translate RUN IMAGE...'"
        )

    def valid_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an ``height x width`` input is padded to before G sees it."""
        return padded_size(height, width, self.G.multiple, self.G.minimum)

    @torch.no_grad()
    def translate(
        self, images: torch.Tensor, *, direction: str | None = None, seed: int = 0
    ) -> torch.Tensor:
        """``images [N, Ci, H, W]`` in [-1, 1] (inputs of the paired task) -> outputs ``[N, C,
        H, W]`` in [-1, 1].  Any H and W: padded (mirrored) to a size G takes, cropped back.
        Dropout (``test_dropout``) draws its masks from ``seed``: the same call, the same
        images; the global RNG is left as it was."""
        if direction is not None:
            raise UserError(
                f"direction {direction!r} is for models that translate both ways (cyclegan); "
                "pix2pix translates one way only, drop it"
            )
        x = torch.as_tensor(images).float()
        cin = self.in_channels
        if x.ndim != 4 or x.shape[1] != cin:
            raise UserError(
                f"images have shape {list(x.shape)}; give [N, {cin}, H, W] in [-1, 1] "
                f"({cin}-channel inputs, as the model was trained on)"
            )
        size = (x.shape[-2], x.shape[-1])
        x = pad_to(x.to(self.device), self.valid_size(*size))
        net, c = self.G, self.cfg
        was_training = net.training
        net.eval()
        for m in net.modules():
            if isinstance(m, nn.Dropout):
                m.train(c.test_dropout)
        devices = [x.device.index or 0] if x.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                if c.test_norm == "image":
                    out = torch.cat([_own_statistics(net, x[i : i + 1]) for i in range(len(x))])
                else:
                    out = net(x)
        finally:
            net.train(was_training)
        return crop_from(out, size).float().clamp(-1, 1)


def _own_statistics(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` with every BatchNorm normalizing by the statistics of ``x`` itself (train
    mode), its running statistics left as they were (momentum 0, the counter restored)."""
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    try:
        for m in norms:
            m.train(True)
            m.momentum = 0.0
        return net(x)
    finally:
        for m, (momentum, count) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)
            m.train(False)
