"""``stackgan``: StackGAN (Zhang et al. 2017), text to image in two stages, after the networks
of hanzhanggit/StackGAN-Pytorch (``code/model.py``, ``code/trainer.py``, ``code/miscc/``) and
the TF release's birds configs.

Text in: a caption's words become a sentence embedding through a frozen text encoder
(`ganforge.nn.text`): ``damsm`` (the default; a bidirectional GRU trained once per data set on
its own captions against its images, `ganforge.features.text`, cached by a hash and loaded
into G when training starts; never inside ``load()``, where its weights come from the
checkpoint), ``hashed`` (a hashed bag of words through a fixed projection: nothing trained,
for ``tiny`` and tests), or ``precomputed`` (the original data's char-CNN-RNN embeddings,
chosen by itself when the data set carries them: `DataSpec.text_embedding_dim`).

Conditioning augmentation (CA): a linear layer gives ``mu`` and ``logvar`` (condition dim
128), ``c = mu + sigma * eps``, and G's loss adds ``kl_weight`` (2.0) x KL(N(mu, sigma) ||
N(0, I)).  Each stage has its own CA on the same sentence embedding.

Stage-I G: [z, c] -> linear -> BN -> ReLU to ``8 * g1_ch`` x 4 x 4, then upsampling blocks
(nearest x2, 3x3 conv, BN, ReLU; channels halving) to ``stage1_resolution``, a 3x3 conv and
tanh.  Stage-I D: stride-2 4x4 convs (LeakyReLU 0.2, BN after the first) down to 4 x 4 with
``8 * d1_ch`` channels; its conditional logit joins ``mu`` replicated over the 4 x 4 map (3x3
conv, BN, LeakyReLU, 4x4 conv to one logit).  Stage-II G: the Stage-I image (frozen, no
gradient) encoded by a 3x3 conv and ``encoder_downs`` stride-2 convs, joined with c replicated
spatially (3x3 conv, BN, ReLU), ``res_blocks`` residual blocks, then upsampling blocks to
``resolution`` (4x or 2x the Stage-I size).  Stage-II D: the same kind of encoder down to 4 x 4
(3x3 convs back to ``8 * d2_ch`` channels, as the reference's 256 px D), a conditional and an
unconditional logit.

Losses (the reference's ``compute_discriminator_loss``/``compute_generator_loss``, BCE):
matching-aware D with real + right text, fake + right text and real + wrong text (the real
images against the conditions of the batch shifted by one): Stage-I ``real + (fake + wrong) /
2``; Stage-II ``(real + real_uncond) / 2 + (fake + wrong + fake_uncond) / 3``.  G: the fake's
conditional (+ unconditional) BCE plus the KL term.  D is conditioned on ``mu``, detached.
Adam 2e-4, betas (0.5, 0.999); the rates halve every ``lr_decay_steps`` (100 epochs in the
paper) from each stage's start.  Stage-I trains for ``stage1_steps``, then Stage-II with
Stage-I frozen, in one run: the phases' windows and the schedules are pure functions of the
step, so a run resumes exactly anywhere, across the switch included.

Sampling: ``generate(n, text=[...])`` (one caption for all or one per image), ``stage=1`` for
the Stage-I images; without text, captions drawn from a bank of the training captions that the
run keeps (``bank_size``; the conditions' prior N(0, I) before there is one); ``embedding=``
gives sentence embeddings directly (the only text input of a precomputed run).

Departures from the reference, and why:
- BCE on logits instead of a sigmoid then BCE (the same function, stable in float32).
- G steps first and hands its fakes to D (one G forward per iteration, as the reference; its
  G loss then meets D before D's update of the same iteration rather than after).
- CA follows the TF release (LeakyReLU 0.2 on the linear layer) rather than the PyTorch one's
  ReLU, which keeps mu >= 0 and sigma >= 1; the second half is read as log-variance (PyTorch).
- In Stage-II the frozen Stage-I runs in eval mode (its batch-norm statistics fixed), so what
  Stage-II learns to refine is what sampling feeds it; the reference leaves it in train mode.
- Sizes other than 64 -> 256 generalise the layer counts (``encoder_downs``; D's tails); at 64
  -> 256 they are the reference's.  The image has the data's channels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataSpec
from ..data.captions import tokenize, words
from ..errors import UserError, check
from ..features.text import TextEncoderSettings, build_text_encoder, new_encoders
from ..nn.text import ConditioningAugmentation, HashedBagOfWords, kl_divergence
from ..registry import MODELS
from .base import Batch, GANModel, Losses, LRSchedule, OptimSpec, Phase, Task

TEXT_ENCODERS = ("auto", "damsm", "hashed", "precomputed")
#: Caltech-UCSD Birds: 8,855 training images at batch 64 -> 138 steps an epoch
BIRDS_STEPS_PER_EPOCH = 8855 // 64


@dataclass
class Config:
    resolution: int = 256  # Stage-II (the data's) side
    stage1_resolution: int = 64
    z_dim: int = 100
    cond_dim: int = 128  # CA's condition size (GAN.CONDITION_DIM)
    kl_weight: float = 2.0  # TRAIN.COEFF.KL
    g1_ch: int = 128  # Stage-I G: 8 * g1_ch channels at 4 x 4 (GAN.GF_DIM)
    d1_ch: int = 64  # GAN.DF_DIM
    g2_ch: int = 128
    d2_ch: int = 64
    res_blocks: int = 4  # Stage-II residual blocks (GAN.R_NUM)
    encoder_downs: int = 2  # stride-2 convs encoding the Stage-I image in Stage-II G
    text_encoder: str = "auto"  # auto (precomputed if the data has it, else damsm) | ...
    text_dim: int = 128  # sentence embedding of the damsm / hashed encoders
    text_epochs: int = 3  # damsm's training epochs
    stage1_steps: int = 600 * BIRDS_STEPS_PER_EPOCH
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_decay_steps: int = 100 * BIRDS_STEPS_PER_EPOCH  # halve every this many steps of a stage
    bank_size: int = 1000  # training captions kept for sampling without text

    def validate(self) -> None:
        for key in ("resolution", "stage1_resolution"):
            side = getattr(self, key)
            check(side >= 8 and side & (side - 1) == 0, key, side, "use a power of two >= 8")
        factor = self.resolution // self.stage1_resolution
        check(
            factor in (2, 4) and factor * self.stage1_resolution == self.resolution,
            "stage1_resolution",
            self.stage1_resolution,
            f"Stage-II makes 2x or 4x the Stage-I side; use {self.resolution // 4} or "
            f"{self.resolution // 2} for resolution {self.resolution}",
        )
        check(
            1 <= self.encoder_downs and self.stage1_resolution >> self.encoder_downs >= 4,
            "encoder_downs",
            self.encoder_downs,
            f"use 1 to {int(math.log2(self.stage1_resolution)) - 2}",
        )
        ups = self.encoder_downs + int(math.log2(factor))
        check(
            self.g2_ch << self.encoder_downs >= 1 << ups,
            "g2_ch",
            self.g2_ch,
            f"Stage-II halves its channels {ups} times; use {1 << (ups - self.encoder_downs)}+",
        )
        for key in ("z_dim", "cond_dim", "g1_ch", "d1_ch", "d2_ch", "bank_size"):
            check(getattr(self, key) >= 1, key, getattr(self, key), "use a positive size")
        check(self.res_blocks >= 0, "res_blocks", self.res_blocks, "use 0 or more")
        check(self.kl_weight >= 0, "kl_weight", self.kl_weight, "use 0 or more")
        check(self.stage1_steps >= 1, "stage1_steps", self.stage1_steps, "use 1 or more")
        check(self.lr_decay_steps >= 1, "lr_decay_steps", self.lr_decay_steps, "use 1+")
        check(
            self.text_encoder in TEXT_ENCODERS,
            "text_encoder",
            self.text_encoder,
            f"use one of {', '.join(TEXT_ENCODERS)}",
        )
        check(
            self.text_dim >= 2 and self.text_dim % 2 == 0,
            "text_dim",
            self.text_dim,
            "use an even size",
        )
        check(self.text_epochs >= 1, "text_epochs", self.text_epochs, "use 1 or more")


# ----- networks ----------------------------------------------------------------------------
def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=False)


def up_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        conv3x3(cin, cout),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            conv3x3(ch, ch), nn.BatchNorm2d(ch), nn.ReLU(), conv3x3(ch, ch), nn.BatchNorm2d(ch)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.block(x))


def _replicate(c: torch.Tensor, size: int) -> torch.Tensor:
    """``c`` [N, D] as a [N, D, size, size] map (the condition beside image features)."""
    return c[:, :, None, None].expand(-1, -1, size, size)


class Stage1Generator(nn.Module):
    """``forward(z [N, z_dim], c [N, cond_dim]) -> [N, C, s1, s1]`` in [-1, 1]; ``ca`` turns
    a sentence embedding into c."""

    def __init__(self, cfg: Config, channels: int, embed_dim: int) -> None:
        super().__init__()
        self.ca = ConditioningAugmentation(embed_dim, cfg.cond_dim)
        ngf = 8 * cfg.g1_ch
        self.ngf = ngf
        self.fc = nn.Sequential(
            nn.Linear(cfg.z_dim + cfg.cond_dim, ngf * 16, bias=False),
            nn.BatchNorm1d(ngf * 16),
            nn.ReLU(),
        )
        blocks = int(math.log2(cfg.stage1_resolution // 4))
        self.ups = nn.Sequential(*[up_block(ngf >> k, ngf >> (k + 1)) for k in range(blocks)])
        self.img = nn.Sequential(conv3x3(ngf >> blocks, channels), nn.Tanh())

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, c], 1)).view(z.shape[0], self.ngf, 4, 4)
        return self.img(self.ups(h))


class Stage2Generator(nn.Module):
    """``forward(low [N, C, s1, s1], c [N, cond_dim]) -> [N, C, R, R]`` in [-1, 1]."""

    def __init__(self, cfg: Config, channels: int, embed_dim: int) -> None:
        super().__init__()
        self.ca = ConditioningAugmentation(embed_dim, cfg.cond_dim)
        g, d = cfg.g2_ch, cfg.encoder_downs
        layers: list[nn.Module] = [conv3x3(channels, g), nn.ReLU()]
        for k in range(d):
            layers += [nn.Conv2d(g << k, g << (k + 1), 4, 2, 1, bias=False)]
            layers += [nn.BatchNorm2d(g << (k + 1)), nn.ReLU()]
        self.encoder = nn.Sequential(*layers)
        width = g << d
        self.size = cfg.stage1_resolution >> d
        self.joint = nn.Sequential(
            conv3x3(width + cfg.cond_dim, width), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.residual = nn.Sequential(*[ResBlock(width) for _ in range(cfg.res_blocks)])
        ups = d + int(math.log2(cfg.resolution // cfg.stage1_resolution))
        self.ups = nn.Sequential(*[up_block(width >> k, width >> (k + 1)) for k in range(ups)])
        self.img = nn.Sequential(conv3x3(width >> ups, channels), nn.Tanh())

    def forward(self, low: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.encoder(low), _replicate(c, self.size)], 1)
        return self.img(self.ups(self.residual(self.joint(h))))


class StackGenerator(nn.Module):
    """Both stages and the frozen text encoder.

    ``forward(z, text=None, eps=None, conditions=None, stage=2)``: ``text`` int64 tokens
    [N, T] (encoded by ``text``) or float sentence embeddings [N, E]; ``eps`` [N, 2, cond_dim]
    the CA noise of Stage-I and Stage-II (None: drawn); ``conditions`` [N, 2, cond_dim] the
    conditions c themselves (CA skipped); neither text nor conditions: c = eps, the prior.
    Returns Stage-II images [N, C, R, R], or Stage-I ones [N, C, s1, s1] with ``stage=1``.
    Buffers ``bank`` and ``bank_count`` hold training captions (tokens, or embeddings for a
    precomputed run) for sampling without text."""

    def __init__(self, cfg: Config, spec: DataSpec, kind: str) -> None:
        super().__init__()
        self.kind, self.cond_dim = kind, cfg.cond_dim
        if kind == "precomputed":
            self.text: nn.Module = nn.Identity()
            embed_dim = spec.text_embedding_dim
            bank = torch.zeros(cfg.bank_size, embed_dim)
        else:
            if kind == "hashed":
                self.text = HashedBagOfWords(spec.vocab, cfg.text_dim)
            else:
                self.text = new_encoders(spec, text_settings(cfg))[0]
            embed_dim = cfg.text_dim
            bank = torch.zeros(cfg.bank_size, spec.max_tokens, dtype=torch.int64)
        self.text.requires_grad_(False)  # frozen: no optimizer group holds it
        self.stage1 = Stage1Generator(cfg, spec.channels, embed_dim)
        self.stage2 = Stage2Generator(cfg, spec.channels, embed_dim)
        self.register_buffer("bank", bank)
        self.register_buffer("bank_count", torch.zeros((), dtype=torch.int64))

    def embed(self, text: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings [N, E] of tokens (or embeddings, passed through)."""
        return text if text.is_floating_point() else self.text(text)

    def forward(
        self,
        z: torch.Tensor,
        text: torch.Tensor | None = None,
        eps: torch.Tensor | None = None,
        conditions: torch.Tensor | None = None,
        stage: int = 2,
    ) -> torch.Tensor:
        n = z.shape[0]
        if eps is None:
            eps = torch.randn(n, 2, self.cond_dim, device=z.device)
        if conditions is None:
            if text is None:
                conditions = eps
            else:
                e = self.embed(text)
                conditions = torch.stack(
                    [self.stage1.ca(e, eps[:, 0])[0], self.stage2.ca(e, eps[:, 1])[0]], 1
                )
        low = self.stage1(z, conditions[:, 0])
        return low if stage == 1 else self.stage2(low, conditions[:, 1])


class Discriminator(nn.Module):
    """``encode(x [N, C, S, S]) -> h [N, 8 * ch, 4, 4]``; ``cond_logits(h, c)`` [N] with c
    replicated over h; ``uncond_logits(h)`` [N] (Stage-II); ``forward(x, c)``: the conditional
    logits."""

    def __init__(self, channels: int, size: int, ch: int, cond_dim: int, uncond: bool) -> None:
        super().__init__()
        downs = int(math.log2(size // 4))
        layers: list[nn.Module] = [nn.Conv2d(channels, ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
        for k in range(1, downs):
            layers += [nn.Conv2d(ch << (k - 1), ch << k, 4, 2, 1, bias=False)]
            layers += [nn.BatchNorm2d(ch << k), nn.LeakyReLU(0.2)]
        width, target = ch << (downs - 1), 8 * ch
        while width != target:  # back to 8 * ch: halving 3x3 convs (256 px), or one (small)
            nxt = max(width // 2, target) if width > target else target
            layers += [conv3x3(width, nxt), nn.BatchNorm2d(nxt), nn.LeakyReLU(0.2)]
            width = nxt
        self.encode = nn.Sequential(*layers)
        self.cond = nn.Sequential(
            conv3x3(target + cond_dim, target),
            nn.BatchNorm2d(target),
            nn.LeakyReLU(0.2),
            nn.Conv2d(target, 1, 4, 4),
        )
        self.uncond = nn.Conv2d(target, 1, 4, 4) if uncond else None

    def cond_logits(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.cond(torch.cat([h, _replicate(c, 4)], 1)).flatten()

    def uncond_logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.uncond(h).flatten()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.cond_logits(self.encode(x), c)


def text_settings(cfg: Config) -> TextEncoderSettings:
    """The damsm encoder's settings of a config (its cache key)."""
    return TextEncoderSettings(dim=cfg.text_dim, word_dim=cfg.text_dim // 2, epochs=cfg.text_epochs)


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


# ----- the family --------------------------------------------------------------------------
@MODELS.register(
    "stackgan",
    doc="StackGAN (Zhang 2017): text to image in two stages, conditioning augmentation, "
    "matching-aware D; frozen text encoder (damsm trained on the captions, or precomputed)",
)
class StackGAN(GANModel):
    """Text-to-image: ``generate(n, text=["a dark pullover"])``; ``stage=1`` for Stage-I."""

    Config = Config
    DEFAULT_PRESET = "fmnist"
    TASK = Task("noise", text=True)
    EMA = ()
    PRESETS = {
        # the paper's birds (CUB) settings, as the TF release's cfg/birds.yml: 64 -> 256 px,
        # batch 64, Stage-I 600 epochs, then Stage-II 600 more, rates halved every 100 epochs
        "zhang": {
            "resolution": 256,
            "stage1_resolution": 64,
            "z_dim": 100,
            "g1_ch": 128,
            "d1_ch": 64,
            "g2_ch": 128,
            "d2_ch": 64,
            "res_blocks": 4,
            "encoder_downs": 2,
            "stage1_steps": 600 * BIRDS_STEPS_PER_EPOCH,
            "lr_decay_steps": 100 * BIRDS_STEPS_PER_EPOCH,
            "text_dim": 256,
            "train.batch_size": 64,
            "train.steps": 1200 * BIRDS_STEPS_PER_EPOCH,
            "train.sample_every": 2000,
            "train.checkpoint_every": 2000,
        },
        # ours, for 2 x 15 CPU minutes on Fashion-MNIST captions: Stage-I at 16 px (the
        # garment's shape and shade), Stage-II at 32 px (the padded 28 px data: edges and
        # texture); narrow networks; the switch and the decay in steps (see the README)
        "fmnist": {
            "data.name": "fmnist-captions",
            "resolution": 32,
            "stage1_resolution": 16,
            "z_dim": 100,
            "g1_ch": 16,
            "d1_ch": 16,
            "g2_ch": 32,
            "d2_ch": 16,
            "res_blocks": 2,
            "encoder_downs": 1,
            "text_dim": 128,
            "text_epochs": 3,
            "stage1_steps": 22000,
            "lr_decay_steps": 11000,
            "train.batch_size": 64,
            "train.steps": 34500,
            "train.grid_size": 64,
            "train.sample_every": 1000,
        },
        "tiny": {
            "resolution": 16,
            "stage1_resolution": 8,
            "z_dim": 8,
            "cond_dim": 8,
            "g1_ch": 2,
            "d1_ch": 2,
            "g2_ch": 16,
            "d2_ch": 2,
            "res_blocks": 1,
            "encoder_downs": 1,
            "text_encoder": "hashed",
            "text_dim": 16,
            "stage1_steps": 2,
            "lr_decay_steps": 2,
            "bank_size": 16,
            "train.batch_size": 8,
            "train.grid_size": 16,
        },
    }

    # ----- construction -------------------------------------------------------------------
    @property
    def encoder_kind(self) -> str:
        """The text encoder in use: damsm, hashed or precomputed (``auto`` resolved)."""
        precomputed = getattr(self.spec, "text_embedding_dim", 0) > 0
        kind = self.cfg.text_encoder
        if kind == "auto":
            return "precomputed" if precomputed else "damsm"
        return kind

    def check_data(self, spec: DataSpec) -> None:
        dim = getattr(spec, "text_embedding_dim", 0)
        kind = self.cfg.text_encoder
        if dim > 0 and kind not in ("auto", "precomputed"):
            raise UserError(
                f"data set '{spec.name}' carries precomputed sentence embeddings, so the text "
                f"encoder is 'precomputed'; drop text_encoder={kind}"
            )
        if dim == 0 and kind == "precomputed":
            raise UserError(
                f"text_encoder=precomputed needs a data set with sentence embeddings (birds:PATH, "
                f"flowers:PATH); '{spec.name}' has none; use text_encoder=damsm or hashed"
            )
        if dim == 0 and len(spec.vocab) <= 2:
            raise UserError(
                f"data set '{spec.name}' has no caption words; stackgan needs captioned data "
                "(fmnist-captions, captions:PATH, birds:PATH, flowers:PATH)"
            )

    def build(self) -> dict[str, nn.Module]:
        c, s = self.cfg, self.spec
        return {
            "G": StackGenerator(c, s, self.encoder_kind),
            "D1": Discriminator(s.channels, c.stage1_resolution, c.d1_ch, c.cond_dim, False),
            "D2": Discriminator(s.channels, c.resolution, c.d2_ch, c.cond_dim, True),
        }

    def initialize(self) -> None:
        """The reference's ``weights_init``: conv and linear N(0, 0.02) (biases 0), batch
        norm gains N(1, 0.02); the text encoder keeps its own."""
        for net in (self.G.stage1, self.G.stage2, self.D1, self.D2):
            for m in net.modules():
                if isinstance(m, nn.Conv2d | nn.Linear):
                    nn.init.normal_(m.weight, 0.0, 0.02)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                    nn.init.normal_(m.weight, 1.0, 0.02)
                    nn.init.zeros_(m.bias)

    def prepare(self, data: Any) -> None:
        """On a fresh training start: the damsm encoder from the cache (trained there on first
        use) into G, and the caption bank from the training data."""
        if self.encoder_kind == "damsm":
            text, _, record = build_text_encoder(data, text_settings(self.cfg))
            self.G.text.load_state_dict(text.state_dict())
            self._text_record = record
        count = min(len(data), self.cfg.bank_size)
        gen = torch.Generator().manual_seed(0)
        index = torch.randperm(len(data), generator=gen)[:count]
        items = data.batch(index)
        key = "embedding" if self.encoder_kind == "precomputed" else "text"
        with torch.no_grad():
            self.G.bank.zero_()
            self.G.bank[:count] = items[key].to(self.G.bank)
            self.G.bank_count.fill_(count)

    def training_notes(self) -> dict[str, str]:
        record = getattr(self, "_text_record", None)
        if record is None:
            return {"text encoder": self.encoder_kind}
        return {
            "text encoder": f"damsm {record['hash']} (train R-precision "
            f"{record['train_r_precision']:.3f}; {record['file']})"
        }

    def param_groups(self) -> dict[str, OptimSpec]:
        c = self.cfg
        first = LRSchedule("step", start=0, length=c.lr_decay_steps, gamma=0.5)
        second = LRSchedule("step", start=c.stage1_steps, length=c.lr_decay_steps, gamma=0.5)
        kw = dict(betas=tuple(c.betas))
        return {
            "G1": OptimSpec(self.G.stage1.parameters(), lr=c.lr_g, schedule=first, **kw),
            "D1": OptimSpec(self.D1.parameters(), lr=c.lr_d, schedule=first, **kw),
            "G2": OptimSpec(self.G.stage2.parameters(), lr=c.lr_g, schedule=second, **kw),
            "D2": OptimSpec(self.D2.parameters(), lr=c.lr_d, schedule=second, **kw),
        }

    def phases(self) -> list[Phase]:
        switch = self.cfg.stage1_steps
        return [
            Phase("G1", "G1", self._g_step(1), stop=switch),
            Phase("D1", "D1", self._d_step(1), new_batch=False, stop=switch),
            Phase("G2", "G2", self._g_step(2), start=switch),
            Phase("D2", "D2", self._d_step(2), new_batch=False, start=switch),
        ]

    # ----- training -----------------------------------------------------------------------
    def _embedding(self, batch: Batch) -> torch.Tensor:
        with torch.no_grad():  # the encoder is frozen
            if self.encoder_kind == "precomputed":
                return batch["embedding"].float()
            return self.G.text(batch["text"])

    def _real(self, batch: Batch, stage: int) -> torch.Tensor:
        real = batch["image"]
        if stage == 2:
            return real
        s = self.cfg.stage1_resolution
        return F.interpolate(real, size=(s, s), mode="bilinear", antialias=True)

    def _fakes(self, batch: Batch, stage: int) -> tuple[torch.Tensor, ...]:
        """(fakes, mu, logvar) of this stage for the batch's captions, from fresh z and eps."""
        e = self._embedding(batch)
        n = e.shape[0]
        z = torch.randn(n, self.cfg.z_dim, device=e.device)
        eps = torch.randn(n, 2, self.cfg.cond_dim, device=e.device)
        G = self.G
        if stage == 1:
            c, mu, logvar = G.stage1.ca(e, eps[:, 0])
            return G.stage1(z, c), mu, logvar
        with torch.no_grad():  # Stage-I is frozen, and in eval mode (see the docstring)
            was = G.stage1.training
            G.stage1.eval()
            try:
                low = G.stage1(z, G.stage1.ca(e, eps[:, 0])[0])
            finally:
                G.stage1.train(was)
        c, mu, logvar = G.stage2.ca(e, eps[:, 1])
        return G.stage2(low, c), mu, logvar

    def _g_step(self, stage: int):
        D = self.D1 if stage == 1 else self.D2

        def step(batch: Batch, ctx: dict[str, Any]) -> Losses:
            fake, mu, logvar = self._fakes(batch, stage)
            ctx[f"fake{stage}"], ctx[f"mu{stage}"] = fake.detach(), mu.detach()
            h = D.encode(fake)
            adv = _bce(D.cond_logits(h, mu.detach()), 1.0)
            if D.uncond is not None:
                adv = adv + _bce(D.uncond_logits(h), 1.0)
            kl = kl_divergence(mu, logvar)
            return {"loss": adv + self.cfg.kl_weight * kl, "adv": adv, "kl": kl}

        return step

    def _d_step(self, stage: int):
        D = self.D1 if stage == 1 else self.D2

        def step(batch: Batch, ctx: dict[str, Any]) -> Losses:
            if f"fake{stage}" not in ctx:  # no G step before this one in the iteration
                with torch.no_grad():
                    fake, mu, _ = self._fakes(batch, stage)
            else:
                fake, mu = ctx[f"fake{stage}"], ctx[f"mu{stage}"]
            h_real, h_fake = D.encode(self._real(batch, stage)), D.encode(fake)
            real = _bce(D.cond_logits(h_real, mu), 1.0)
            wrong = _bce(D.cond_logits(h_real[:-1], mu[1:]), 0.0)  # real images, shifted text
            fake_loss = _bce(D.cond_logits(h_fake, mu), 0.0)
            if D.uncond is None:
                loss = real + 0.5 * (fake_loss + wrong)
                return {"loss": loss, "real": real, "wrong": wrong, "fake": fake_loss}
            real_u = _bce(D.uncond_logits(h_real), 1.0)
            fake_u = _bce(D.uncond_logits(h_fake), 0.0)
            loss = (real + real_u) / 2 + (fake_loss + wrong + fake_u) / 3
            return {"loss": loss, "real": real, "wrong": wrong, "fake": fake_loss,
                    "real_uncond": real_u, "fake_uncond": fake_u}  # fmt: skip

        return step

    # ----- sampling -----------------------------------------------------------------------
    def summary_inputs(self) -> dict[str, tuple[Any, ...]]:
        c, ch = self.cfg, self.spec.channels
        cond = torch.zeros(2, c.cond_dim)
        return {
            "G": self.generator_inputs(2, None, None),
            "D1": (torch.zeros(2, ch, c.stage1_resolution, c.stage1_resolution), cond),
            "D2": (torch.zeros(2, ch, c.resolution, c.resolution), cond),
        }

    def generator_inputs(
        self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None
    ) -> tuple[Any, ...]:
        """``(z, text, eps)``: the text given to `generate`, else ``n`` captions drawn from
        the bank (None while the bank is empty: the prior)."""
        z = self.sample_latent(n, generator=generator)
        eps = torch.randn(n, 2, self.cfg.cond_dim, generator=generator).to(self.device)
        text = getattr(self, "_given", None)
        count = int(self.G.bank_count)
        if text is None and count > 0:
            text = self.G.bank[torch.randint(count, (n,), generator=generator).to(self.device)]
        return z, text, eps

    def synthesize(self, net, args, *, truncation, noise_mode, generator=None) -> torch.Tensor:
        args = self.truncated_inputs(args, truncation, generator)
        return net(*args, stage=getattr(self, "_stage", 2))

    @torch.no_grad()
    def generate(
        self,
        n: int | None = None,
        labels: Any = None,
        *,
        text: str | list[str] | None = None,
        embedding: torch.Tensor | None = None,
        stage: int = 2,
        z: torch.Tensor | None = None,
        seed: int | None = None,
        truncation: float | None = None,
        noise_mode: str = "const",
        ema: bool = True,
    ) -> torch.Tensor:
        """Images for captions: ``text`` (one caption for all ``n`` or one per image; n may
        then be omitted) or sentence ``embedding`` [n, E]; neither: captions from the bank.
        ``stage`` 1 gives the Stage-I images (``stage1_resolution``), 2 the Stage-II ones."""
        if stage not in (1, 2):
            raise UserError(f"--stage {stage!r}: use 1 (Stage-I images) or 2 (Stage-II)")
        given = None
        if text is not None and embedding is not None:
            raise UserError("give text or embedding, not both")
        if text is not None:
            given = self.tokens(text)
        elif embedding is not None:
            given = self._embeddings(embedding)
        if given is not None:
            if n is None:
                n = len(given) if z is None else len(z)
            if len(given) == 1:
                given = given.expand(n, *given.shape[1:])
            elif len(given) != n:
                raise UserError(f"got {len(given)} captions for {n} images; give 1 or {n}")
        self._given, self._stage = (None if given is None else given.to(self.device)), stage
        try:
            return super().generate(
                n, labels, z=z, seed=seed, truncation=truncation, noise_mode=noise_mode, ema=ema
            )
        finally:
            self._given, self._stage = None, 2

    def tokens(self, text: str | list[str] | tuple[str, ...]) -> torch.Tensor:
        """Captions as token rows [N, max_tokens] of this model's vocabulary; words outside it
        are named in a warning and read as the unknown word; a caption without any known
        word is a `UserError`."""
        if self.encoder_kind == "precomputed":
            raise UserError(
                f"this model was trained on the precomputed (char-CNN-RNN) sentence embeddings "
                f"of '{self.spec.name}', which GANForge cannot compute for new text; sample "
                "without --text (the test split's captions), or pass embedding=[n, D]"
            )
        texts = [text] if isinstance(text, str) else list(text)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise UserError(f"text must be a caption or a list of captions, got {text!r}")
        known = set(self.spec.vocab[2:])
        unknown: list[str] = []
        for caption in texts:
            found = words(caption)
            if not found:
                raise UserError(f"caption {caption!r} has no words; write a caption")
            if not known.intersection(found):
                raise UserError(
                    f"caption {caption!r} has no word this model knows; use words of its "
                    f"training captions (e.g. {', '.join(sorted(known)[:6])})"
                )
            unknown += [w for w in found if w not in known and w not in unknown]
            if len(found) > self.spec.max_tokens:
                warnings.warn(
                    f"caption {caption!r} has {len(found)} words; only the first "
                    f"{self.spec.max_tokens} are read",
                    stacklevel=3,
                )
        if unknown:
            warnings.warn(
                f"words outside this model's vocabulary, read as <unk>: {', '.join(unknown)}",
                stacklevel=3,
            )
        return tokenize(texts, self.spec.vocab, self.spec.max_tokens).to(self.device)

    def _embeddings(self, embedding: Any) -> torch.Tensor:
        e = torch.as_tensor(embedding, dtype=torch.float32)
        e = e[None] if e.ndim == 1 else e
        dim = getattr(self.spec, "text_embedding_dim", 0) or self.cfg.text_dim
        if e.ndim != 2 or e.shape[1] != dim or not torch.isfinite(e).all():
            raise UserError(f"embedding must be finite [n, {dim}], got shape {list(e.shape)}")
        return e

    def conditions(self, text: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        """The conditions c [N, 2, cond_dim] of both stages for tokens or embeddings ``text``
        (``eps`` None: the means mu, the centre of each caption's condition)."""
        G = self.generator()
        e = G.embed(text.to(self.device))
        cas = (G.stage1.ca, G.stage2.ca)
        if eps is None:
            return torch.stack([ca.moments(e)[0] for ca in cas], 1)
        return torch.stack([ca(e, eps[:, k])[0] for k, ca in enumerate(cas)], 1)

    def walk_inputs(self, z, start, end, t) -> tuple[Any, ...]:
        """Frames between two seeds: z as given, and the conditions c of both ends (their
        captions through CA with their eps) blended linearly."""

        def conds(ends) -> torch.Tensor:
            parts = []
            for args in ends:
                _, text, eps = args
                parts.append(eps if text is None else self.conditions(text, eps))
            return torch.cat(parts)

        a, b = conds(start), conds(end)
        return z, None, None, torch.lerp(a, b, t.reshape(-1, 1, 1).to(a))

    @torch.no_grad()
    def text_walk(
        self, texts: list[str], frames: int, *, seed: int = 0, stage: int = 2
    ) -> torch.Tensor:
        """Frames [frames, C, H, W] walking through the condition space from caption to
        caption (the CA means, blended linearly), z fixed by ``seed``; every caption falls on
        a frame."""
        if len(texts) < 2:
            raise UserError(f"a walk needs at least 2 captions, got {len(texts)}")
        if frames < len(texts):
            raise UserError(f"--frames {frames} is fewer than the {len(texts)} captions")
        if stage not in (1, 2):
            raise UserError(f"--stage {stage!r}: use 1 (Stage-I images) or 2 (Stage-II)")
        means = self.conditions(self.tokens(texts))  # [K, 2, cond_dim]
        pos = torch.linspace(0, len(texts) - 1, frames)
        a = pos.floor().long().clamp(max=len(texts) - 2)
        t = (pos - a).reshape(-1, 1, 1).to(means)
        conds = torch.lerp(means[a], means[a + 1], t)
        gen = torch.Generator().manual_seed(seed)
        z = self.sample_latent(1, generator=gen).expand(frames, -1)
        G = self.generator()
        was = G.training
        G.eval()
        try:
            return G(z, conditions=conds, stage=stage).float().clamp(-1, 1)
        finally:
            G.train(was)
