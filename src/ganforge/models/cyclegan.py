"""``cyclegan``: unpaired image-to-image translation (Zhu et al. 2017), as
junyanz/pytorch-CycleGAN-and-pix2pix trains it.

Two generators, ``G_AB`` (A -> B) and ``G_BA`` (B -> A), and two PatchGAN discriminators,
``D_A`` (real A images against ``G_BA``'s) and ``D_B`` (real B against ``G_AB``'s); the
reference calls them G_A, G_B, D_B and D_A, naming each D after the generator it judges.
G's loss is both adversarial terms, the cycle losses ``lambda_a |G_BA(G_AB(a)) - a|`` and
``lambda_b |G_AB(G_BA(b)) - b|``, and the identity losses ``lambda_identity * lambda_a
|G_BA(a) - a|`` (and for b), which keep a generator from changing what is already in its
target domain (the paper's section 5.2: colour).  Each D's loss is halved, and D sees a
generated image drawn from a pool of the last `pool_size` ones half of the time (Shrivastava et
al. 2017), which damps oscillation.

The pools are buffers of the model (``pool_a.images``, ``pool_a.count``, ...), so they travel in
``model.safetensors``, and their coin flips come from the global torch RNG, which the engine
saves and restores: a resumed run continues exactly as the uninterrupted one, pools included.
Under several processes each one keeps its own pool; a resumed multi-process run starts every
process from rank 0's pools.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataSpec
from ..errors import UserError, check
from ..nn import init_normal
from ..registry import MODELS
from .base import Batch, GANModel, Losses, LRSchedule, OptimSpec, Phase, Task
from .imagenets import (
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

G_ARCHS = ("resnet", "unet")
DIRECTIONS = ("a2b", "b2a")


@dataclass
class Config:
    """The paper's settings (256 px); `CycleGAN.PRESETS` scale them for small data."""

    resolution: int = 256
    g_arch: str = "resnet"  # resnet (the paper's) | unet (pix2pix's, depth log2(resolution))
    ngf: int = 64  # G's channels after the first convolution
    ndf: int = 64  # D's channels after the first convolution
    n_blocks: int | None = None  # ResNet blocks; None: 9 above 128 px, 6 at 128 px and below
    d_layers: int | None = None  # PatchGAN stride-2 layers; None: patch_layers_for(resolution)
    gan_loss: str = "lsgan"  # lsgan (squared error to 1/0, the paper's) | vanilla (BCE)
    lambda_a: float = 10.0  # cycle loss A -> B -> A
    lambda_b: float = 10.0  # cycle loss B -> A -> B
    lambda_identity: float = 0.5  # identity loss weight, times lambda_a/lambda_b; 0: off
    pool_size: int = 50  # generated images kept per D; 0: D sees only the newest
    lr: float = 2e-4  # Adam, both players
    betas: tuple[float, float] = (0.5, 0.999)
    # the rate: constant for lr_decay_start steps, then linear to zero over lr_decay_steps
    # (0: constant throughout); the paper's 100 + 100 epochs of ~1,000 images at batch 1
    lr_decay_start: int = 100_000
    lr_decay_steps: int = 100_000

    def validate(self) -> None:
        r = self.resolution
        check(self.g_arch in G_ARCHS, "g_arch", self.g_arch, "use resnet or unet")
        check(r >= 16 and r % 4 == 0, "resolution", r, "use a multiple of 4, at least 16")
        if self.g_arch == "unet":
            check(r & (r - 1) == 0, "resolution", r, "g_arch=unet needs a power of two")
        check_translation_options(self)
        for name in ("lambda_a", "lambda_b", "lambda_identity"):
            value = getattr(self, name)
            check(value >= 0, name, value, "use 0 (off) or more")
        check(self.pool_size >= 0, "pool_size", self.pool_size, "use 0 (no pool) or more")

    @property
    def blocks(self) -> int:
        return self.n_blocks if self.n_blocks is not None else (9 if self.resolution > 128 else 6)

    @property
    def patch_layers(self) -> int:
        return self.d_layers if self.d_layers is not None else patch_layers_for(self.resolution)


class ImagePool(nn.Module):
    """The last ``size`` generated images a D has been shown (Shrivastava et al. 2017).

    `query` returns as many images as it is given: while the pool fills, the images
    themselves (each stored); once full, each image is returned as it is with probability
    1/2, and otherwise stored in place of a uniformly chosen stored image, which is returned
    instead.  ``images [size, C, R, R]`` and ``count`` are buffers, so checkpoints hold them."""

    def __init__(self, size: int, channels: int, resolution: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, channels, resolution, resolution))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """``images [N, C, R, R]`` -> ``[N, C, R, R]``, some swapped for stored ones."""
        if self.size == 0:
            return images
        n = images.shape[0]
        # one coin and one slot per image, drawn whatever the pool holds, so the global RNG
        # advances by the same amount in every step (the draws of a filling pool go unused)
        swap = torch.rand(n) < 0.5
        slots = torch.randint(self.size, (n,))
        out = images.detach().float().clone()
        count = int(self.count)
        for i in range(n):
            if count < self.size:
                self.images[count] = out[i]
                count += 1
            elif swap[i]:
                slot = int(slots[i])
                stored = self.images[slot].clone()
                self.images[slot] = out[i]
                out[i] = stored
        self.count.fill_(count)
        return out

    def extra_repr(self) -> str:
        return f"size={self.size}"


@MODELS.register(
    "cyclegan", doc="CycleGAN (Zhu 2017): unpaired A <-> B, two G and two D, cycle + identity"
)
class CycleGAN(GANModel):
    """``translate(images, direction="a2b")`` maps domain A to B with ``G_AB``; ``"b2a"``
    maps B to A with ``G_BA``.  Any image size is taken (padded for the network, cropped
    back)."""

    Config = Config
    TASK = Task("unpaired")
    EMA = ()  # the reference keeps no average of its generators
    DEFAULT_PRESET = "fmnist32"
    PRESETS = {
        # the paper's: 256 px, batch 1, 100 + 100 epochs of a ~1,000-image domain (horse2zebra
        # has 1,067 and 1,334) at 1,000 steps an epoch; give --dataset cyclegan:PATH
        "zhu": {
            "resolution": 256,
            "data.name": "fmnist-shoes",
            "train.batch_size": 1,
            "train.steps": 200_000,
            "lr_decay_start": 100_000,
            "lr_decay_steps": 100_000,
            "train.sample_every": 5_000,
            "train.checkpoint_every": 5_000,
            "train.grid_size": 24,
        },
        # sneakers <-> ankle boots at 32 px on CPU: 6,000 images a domain, batch 8 (750 steps
        # an epoch); about 11 steps/s on 2 CPU cores, so 8,000 steps (~10.7 epochs) take some
        # 12 minutes; the rate decays over the second half of the run
        "fmnist32": {
            "resolution": 32,
            "data.name": "fmnist-shoes",
            "ngf": 16,
            "ndf": 32,
            "n_blocks": 6,
            "train.batch_size": 8,
            "train.steps": 8_000,
            "lr_decay_start": 4_000,
            "lr_decay_steps": 4_000,
            "train.sample_every": 1_000,
            "train.checkpoint_every": 2_000,
            "train.grid_size": 48,
        },
        "tiny": {
            "resolution": 16,
            "data.name": "fmnist-shoes",
            "ngf": 4,
            "ndf": 4,
            "n_blocks": 1,
            "pool_size": 4,
            "train.batch_size": 4,
            "lr_decay_start": 1_000,
            "lr_decay_steps": 1_000,
            "train.grid_size": 12,
        },
    }

    def __init__(self, cfg: Config, spec: DataSpec) -> None:
        super().__init__(cfg, spec)
        # generated images of domain A (shown to D_A) and of domain B (shown to D_B)
        self.pool_a = ImagePool(cfg.pool_size, spec.channels, cfg.resolution)
        self.pool_b = ImagePool(cfg.pool_size, spec.channels, cfg.resolution)

    # ----- construction ---------------------------------------------------------------------
    def build(self) -> dict[str, nn.Module]:
        return {
            "G_AB": self._generator(),
            "G_BA": self._generator(),
            "D_A": self._discriminator(),
            "D_B": self._discriminator(),
        }

    def _generator(self) -> nn.Module:
        c, ch = self.cfg, self.spec.channels
        if c.g_arch == "unet":
            depth = c.resolution.bit_length() - 1  # log2: down to a 1 x 1 bottleneck
            return UnetGenerator(ch, ch, depth, c.ngf, norm="instance")
        return ResnetGenerator(ch, ch, c.ngf, c.blocks, norm="instance")

    def _discriminator(self) -> nn.Module:
        return PatchDiscriminator(self.spec.channels, self.cfg.ndf, self.cfg.patch_layers)

    def initialize(self) -> None:
        init_normal(self)  # the reference's init_type=normal: N(0, 0.02), biases 0

    def summary_inputs(self) -> dict[str, tuple[Any, ...]]:
        images = torch.zeros(2, self.spec.channels, self.resolution, self.resolution)
        return {name: (images,) for name in self.networks()}

    # ----- training -------------------------------------------------------------------------
    def param_groups(self) -> dict[str, OptimSpec]:
        c = self.cfg
        schedule = (
            LRSchedule("linear", c.lr_decay_start, c.lr_decay_steps)
            if c.lr_decay_steps
            else LRSchedule()
        )
        kw = dict(lr=c.lr, betas=tuple(c.betas), schedule=schedule)
        return {
            "G": OptimSpec(itertools.chain(self.G_AB.parameters(), self.G_BA.parameters()), **kw),
            "D": OptimSpec(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), **kw),
        }

    def phases(self) -> list[Phase]:
        # D sees the real images of G's step and the fakes G made in it (through ctx)
        return [
            Phase("G", group="G", step=self.g_step),
            Phase("D", group="D", step=self.d_step, new_batch=False),
        ]

    def g_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        """Both generators' losses: ``adv_ab``/``adv_ba``, ``cycle_a``/``cycle_b`` and, unless
        ``lambda_identity`` is 0 (then those forward passes are skipped), ``idt_a``/``idt_b``."""
        c, mode = self.cfg, self.cfg.gan_loss
        real_a, real_b = batch["image_a"], batch["image_b"]
        fake_b, fake_a = self.G_AB(real_a), self.G_BA(real_b)
        losses = {
            "adv_ab": patch_loss(self.D_B(fake_b), True, mode),
            "adv_ba": patch_loss(self.D_A(fake_a), True, mode),
            "cycle_a": c.lambda_a * F.l1_loss(self.G_BA(fake_b), real_a),
            "cycle_b": c.lambda_b * F.l1_loss(self.G_AB(fake_a), real_b),
        }
        if c.lambda_identity:
            # a generator given an image of its own target domain should leave it as it is
            weight = c.lambda_identity
            losses["idt_a"] = weight * c.lambda_a * F.l1_loss(self.G_BA(real_a), real_a)
            losses["idt_b"] = weight * c.lambda_b * F.l1_loss(self.G_AB(real_b), real_b)
        ctx["fake_a"], ctx["fake_b"] = fake_a.detach(), fake_b.detach()
        return {"loss": sum(losses.values()), **losses}

    def d_step(self, batch: Batch, ctx: dict[str, Any]) -> Losses:
        """``d_a`` and ``d_b``, each ``(real + fake) / 2`` on pooled fakes, as the reference."""
        mode = self.cfg.gan_loss
        real_a, real_b = batch["image_a"], batch["image_b"]
        if "fake_a" in ctx:
            fake_a, fake_b = ctx.pop("fake_a"), ctx.pop("fake_b")
        else:  # a D step without a G step before it
            with torch.no_grad():
                fake_a, fake_b = self.G_BA(real_b), self.G_AB(real_a)
        fake_b = self.pool_b.query(fake_b)
        fake_a = self.pool_a.query(fake_a)
        d_b = 0.5 * (
            patch_loss(self.D_B(real_b), True, mode) + patch_loss(self.D_B(fake_b), False, mode)
        )
        d_a = 0.5 * (
            patch_loss(self.D_A(real_a), True, mode) + patch_loss(self.D_A(fake_a), False, mode)
        )
        return {"loss": d_a + d_b, "d_a": d_a, "d_b": d_b}

    # ----- using a trained model ------------------------------------------------------------
    def generator_inputs(
        self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None
    ) -> tuple[Any, ...]:
        raise UserError(
            "model 'cyclegan' makes images from images, not from noise; use "
            "translate(images, direction='a2b' or 'b2a') or 'ganforge translate RUN IMAGE...'"
        )

    @torch.no_grad()
    def translate(self, images: torch.Tensor, *, direction: str | None = "a2b") -> torch.Tensor:
        """``images [N, C, H, W]`` in [-1, 1] of domain A (``direction="a2b"``, the default,
        also for None) or B (``"b2a"``) -> their translations, the same shape, in [-1, 1].
        Any H and W: padded (mirrored) to a size the generator takes, cropped back."""
        direction = direction or "a2b"
        if direction not in DIRECTIONS:
            raise UserError(
                f"unknown direction {direction!r}; use a2b (A -> B, G_AB) or b2a (B -> A, G_BA)"
            )
        net = self.G_AB if direction == "a2b" else self.G_BA
        x = torch.as_tensor(images).float()
        if x.ndim != 4 or x.shape[1] != self.spec.channels:
            raise UserError(
                f"images have shape {list(x.shape)}; give [N, {self.spec.channels}, H, W] "
                f"in [-1, 1] ({self.spec.channels}-channel images, as the model was trained on)"
            )
        size = (x.shape[-2], x.shape[-1])
        padded = padded_size(*size, net.multiple, net.minimum)
        was_training = net.training
        net.eval()
        try:
            out = net(pad_to(x.to(self.device), padded))
        finally:
            net.train(was_training)
        return crop_from(out, size).float().clamp(-1, 1)

    def valid_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an ``height x width`` image is padded to before the generators see it."""
        return padded_size(height, width, self.G_AB.multiple, self.G_AB.minimum)

    @torch.no_grad()
    def preview(
        self, n: int, seed: int, batch: Batch | None = None
    ) -> tuple[torch.Tensor, int | None]:
        """Six rows of ``k = n // 6`` columns (at least 1, at most the batch): A, G_AB(A),
        G_BA(G_AB(A)), then B, G_BA(B), G_AB(G_BA(B)), for the fixed test batch."""
        if batch is None:
            raise ValueError("cyclegan previews a fixed batch of the test split; none was given")
        k = max(1, min(len(batch["image_a"]), n // 6))
        a, b = batch["image_a"][:k].to(self.device), batch["image_b"][:k].to(self.device)
        fake_b, fake_a = self.translate(a, direction="a2b"), self.translate(b, direction="b2a")
        rows = [
            a.float(),
            fake_b,
            self.translate(fake_b, direction="b2a"),
            b.float(),
            fake_a,
            self.translate(fake_a, direction="a2b"),
        ]
        return torch.cat(rows).clamp(-1, 1), k

    def image_outputs(self, batch: Batch) -> dict[str, torch.Tensor]:
        """What evaluation scores, both ways: ``image`` = G_AB(A) with its ``input`` A (what
        `metrics.image_tasks` reads; its targets are the batch's B images), and ``image_ba`` =
        G_BA(B) with ``input_b`` B, to score B -> A against the A images."""
        a, b = batch["image_a"], batch["image_b"]
        return {
            "image": self.translate(a, direction="a2b"),
            "input": a,
            "image_ba": self.translate(b, direction="b2a"),
            "input_b": b,
        }
