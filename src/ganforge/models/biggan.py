"""``biggan``: BigGAN (Brock et al. 2019), the networks of BigGAN-PyTorch's ``BigGAN.py``.

G: a linear layer from z (its first chunk, with the hierarchical latent) to a 4x4 map, then one
residual up-block per doubling (BN-ReLU-up-conv-BN-ReLU-conv, a 1x1 shortcut) whose two
batch norms are class-conditional: each takes its gain ``1 + W_g y`` and bias ``W_b y`` from
``y`` = the shared class embedding (128) joined with the block's own chunk of z.  Then BN, ReLU,
a 3x3 conv to the image, tanh.  Self-attention (SAGAN's non-local block with a learned gain
that starts at 0) follows the block at the chosen resolutions.  D: residual down-blocks
(pre-activation after the first), attention likewise, ReLU, global sum pooling and a projection
head, ``linear(h) + <embed(y), h>``.  Every conv, linear and D's embedding is spectrally
normalised (`ganforge.nn.spectral`, BigGAN's own scheme, in G and D: ``spectral_norm_scope``);
G's embedding is not, as in the reference, which found it cripples G.

Training: hinge loss; Adam with betas (0, 0.999); orthogonal regularization on G in the
reference's fast form; an EMA of G that copies G until ``ema_start`` and then averages.
Sampling: the truncation trick as the paper defines it (``truncation`` is the threshold: the
entries of z beyond it are drawn again until all lie inside), and "standing statistics"
(`accumulate_standing_stats`: the batch norms' statistics re-estimated over many batches of G
before sampling or evaluating).

Departures from the reference, and why:
- The image has the data's channels (the reference always makes RGB).
- Fakes take the labels of the real batch they are judged beside (the reference draws them
  uniformly; the same distribution on balanced data, one draw fewer).
- D judges real and fake batches in two passes (the reference concatenates them), so each D
  step runs D's power iterations twice.  D has no batch norm, so nothing else differs.
- The EMA copies G's buffers (batch-norm statistics, spectral-norm vectors) where the reference
  averages them; `accumulate_standing_stats` is the remedy the reference also uses.
- ``z_dim`` must split evenly into the hierarchical chunks (the reference silently rounds it
  down); the importer reads the effective size from the tensors.
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
from ..nn.layers import upsample_conv2d
from ..nn.spectral import SNConv2d, SNEmbedding, SNLinear
from ..registry import MODELS
from .adversarial import Objective, RegConfig, TwoPlayerModel
from .base import OptimSpec, Task

#: Multipliers of ``ch`` for each G block's input and output, by resolution (BigGAN-PyTorch's
#: ``G_arch``; block k outputs resolution 8 * 2**k).
G_WIDTHS = {
    32: ([4, 4, 4], [4, 4, 4]),
    64: ([16, 16, 8, 4], [16, 8, 4, 2]),
    128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
    256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]),
    512: ([16, 16, 8, 8, 4, 2, 1], [16, 8, 8, 4, 2, 1, 1]),
}
#: D's blocks: output multipliers, whether each downsamples, and the resolution each block's
#: attention is named by (the reference's ``D_arch``; at 32 px every block counts as 16).
D_BLOCKS = {
    32: ([4, 4, 4, 4], [True, True, False, False], [16, 16, 16, 16]),
    64: ([1, 2, 4, 8, 16], [True] * 4 + [False], [32, 16, 8, 4, 4]),
    128: ([1, 2, 4, 8, 16, 16], [True] * 5 + [False], [64, 32, 16, 8, 4, 4]),
    256: ([1, 2, 4, 8, 8, 16, 16], [True] * 6 + [False], [128, 64, 32, 16, 8, 4, 4]),
    512: ([1, 1, 2, 4, 8, 8, 16, 16], [True] * 7 + [False], [256, 128, 64, 32, 16, 8, 4, 4]),
}
RESOLUTIONS = tuple(G_WIDTHS)
#: The ImageNet 128 networks of the paper and of BigGAN-PyTorch's release (ch 96, z 120 in 6
#: chunks of 20, a shared embedding of 128, attention at 64 in G and D).
IMAGENET128 = {
    "resolution": 128,
    "g_ch": 96,
    "d_ch": 96,
    "z_dim": 120,
    "shared_dim": 128,
    "g_attn": [64],
    "d_attn": [64],
    "ema_start": 20000,
    "ema_decay": 0.9999,
    "train.batch_size": 2048,
}
INITS = ("ortho", "N02", "xavier")


@dataclass
class Config(Objective):
    resolution: int = 32
    z_dim: int = 128
    shared: bool = True  # one class embedding shared by every block (else one table per BN)
    shared_dim: int = 128  # its size
    hier: bool = True  # z split into one chunk for the linear layer and one per G block
    g_ch: int = 64  # width multiplier of G (BigGAN-PyTorch's G_ch)
    d_ch: int = 64
    g_attn: list[int] = field(default_factory=lambda: [64])  # resolutions with attention in G
    d_attn: list[int] = field(default_factory=lambda: [64])
    d_wide: bool = True  # D blocks widen in their first conv (BigGAN, SAGAN) or second
    bn_eps: float = 1e-5
    sn_eps: float = 1e-6
    num_svs: int = 1  # singular values tracked per layer
    sn_itrs: int = 1  # power iterations per forward
    adam_eps: float = 1e-6
    init: str = "ortho"  # ortho | N02 | xavier (conv, linear and embedding weights)
    ema_start: int = 1000  # G steps before the EMA starts averaging (a copy until then)
    ema_decay: float = 0.999
    standing_batches: int = 16  # batches of G behind standing statistics
    # BigGAN's defaults for the shared objective
    loss: str = "hinge"
    spectral_norm: bool = True
    spectral_norm_scope: str = "both"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.999)
    n_critic: int = 2
    reg: RegConfig = field(default_factory=lambda: RegConfig(ortho=1e-4))

    def validate(self) -> None:
        super().validate()
        check(
            self.resolution in RESOLUTIONS,
            "resolution",
            self.resolution,
            f"BigGAN's networks exist at {', '.join(map(str, RESOLUTIONS))} px",
        )
        check(self.g_ch >= 1 and self.d_ch >= 1, "g_ch", self.g_ch, "use a positive width")
        check(self.g_ch * 4 >= 8 or not self.g_attn, "g_ch", self.g_ch, "attention needs 8+")
        check(self.shared_dim >= 1, "shared_dim", self.shared_dim, "use a positive size")
        check(self.init in INITS, "init", self.init, f"use one of {', '.join(INITS)}")
        check(self.num_svs >= 1, "num_svs", self.num_svs, "use 1 or more")
        check(self.sn_itrs >= 1, "sn_itrs", self.sn_itrs, "use 1 or more")
        check(0 <= self.ema_decay < 1, "ema_decay", self.ema_decay, "use a value in [0, 1)")
        check(self.ema_start >= 0, "ema_start", self.ema_start, "use 0 or more steps")
        check(self.standing_batches >= 1, "standing_batches", self.standing_batches, "use 1+")
        check(
            self.shared or not self.hier,
            "hier",
            self.hier,
            "the hierarchical z joins the shared embedding; set shared=true or hier=false",
        )
        blocks = len(G_WIDTHS[self.resolution][0])
        slots = blocks + 1 if self.hier else 1
        check(
            self.z_dim % slots == 0 and self.z_dim >= slots,
            "z_dim",
            self.z_dim,
            f"with hier=true at {self.resolution} px z splits into {slots} equal chunks; "
            f"use a multiple of {slots}",
        )
        g_res = [8 * 2**k for k in range(blocks)]
        for key, allowed in (("g_attn", g_res), ("d_attn", D_BLOCKS[self.resolution][2])):
            for r in getattr(self, key):
                check(r in allowed, key, r, f"use resolutions among {sorted(set(allowed))}")


# ----- layers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layers:
    """The conv and linear layers of one network: spectrally normalised or plain."""

    sn: bool
    num_svs: int = 1
    itrs: int = 1
    eps: float = 1e-6

    @classmethod
    def of(cls, cfg: Config, net: str) -> Layers:
        """The layers of network ``net`` ("G" or "D") under ``cfg``'s spectral-norm scope."""
        sn = cfg.spectral_norm and cfg.spectral_norm_scope in (net, "both")
        return cls(sn, cfg.num_svs, cfg.sn_itrs, cfg.sn_eps)

    def conv(self, cin: int, cout: int, k: int = 3, bias: bool = True) -> nn.Module:
        if self.sn:
            return SNConv2d(cin, cout, k, padding=k // 2, bias=bias, **self._sn_options)
        return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)

    def linear(self, cin: int, cout: int, bias: bool = True) -> nn.Module:
        if self.sn:
            return SNLinear(cin, cout, bias, **self._sn_options)
        return nn.Linear(cin, cout, bias)

    def embedding(self, classes: int, dim: int) -> nn.Module:
        if self.sn:
            return SNEmbedding(classes, dim, **self._sn_options)
        return nn.Embedding(classes, dim)

    @property
    def _sn_options(self) -> dict[str, Any]:
        return {"num_svs": self.num_svs, "num_itrs": self.itrs, "eps": self.eps}


class StoredBatchNorm(nn.Module):
    """Batch norm whose statistics are the buffers ``stored_mean``/``stored_var`` (the
    reference's names); ``momentum`` None averages cumulatively (standing statistics)."""

    def __init__(self, channels: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.momentum: float | None = 0.1
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))
        self.seen = 0  # batches averaged since the last reset (standing statistics only)

    def normalize(self, x: torch.Tensor, weight=None, bias=None) -> torch.Tensor:
        momentum = self.momentum
        if momentum is None and self.training:
            self.seen += 1
            momentum = 1.0 / self.seen
        return F.batch_norm(
            x,
            self.stored_mean,
            self.stored_var,
            weight,
            bias,
            self.training,
            momentum or 0.0,
            self.eps,
        )


class ConditionalBatchNorm(StoredBatchNorm):
    """BN whose per-sample gain ``1 + gain(y)`` and bias ``bias(y)`` come from the condition
    ``y``: bias-free linear layers of [shared embedding, z chunk], or, without a shared
    embedding, class tables (which also take soft one-hot rows [N, classes] for blends)."""

    def __init__(self, channels: int, cond: int, eps: float, layers: Layers | None) -> None:
        super().__init__(channels, eps)
        if layers is None:  # per-class tables
            self.gain, self.bias = nn.Embedding(cond, channels), nn.Embedding(cond, channels)
        else:
            self.gain, self.bias = (
                layers.linear(cond, channels, False),
                layers.linear(cond, channels, False),
            )

    def _project(self, layer: nn.Module, y: torch.Tensor) -> torch.Tensor:
        if isinstance(layer, nn.Embedding) and y.is_floating_point():
            return y @ layer.weight
        return layer(y)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gain = (1 + self._project(self.gain, y)).view(y.shape[0], -1, 1, 1)
        bias = self._project(self.bias, y).view(y.shape[0], -1, 1, 1)
        return self.normalize(x) * gain + bias


class OutputBatchNorm(StoredBatchNorm):
    """G's last, unconditional BN, with parameters ``gain`` and ``bias``."""

    def __init__(self, channels: int, eps: float) -> None:
        super().__init__(channels, eps)
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x, self.gain, self.bias)


class Attention(nn.Module):
    """SAGAN's self-attention: queries at every position, keys and values max-pooled 2x2,
    added to the input through the learned gain ``gamma`` (0 at the start)."""

    def __init__(self, ch: int, layers: Layers) -> None:
        super().__init__()
        self.ch = ch
        self.theta = layers.conv(ch, ch // 8, 1, bias=False)
        self.phi = layers.conv(ch, ch // 8, 1, bias=False)
        self.g = layers.conv(ch, ch // 2, 1, bias=False)
        self.o = layers.conv(ch // 2, ch, 1, bias=False)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        n, _, h, w = x.shape
        theta = self.theta(x).view(n, self.ch // 8, h * w)
        phi = F.max_pool2d(self.phi(x), 2).view(n, self.ch // 8, h * w // 4)
        g = F.max_pool2d(self.g(x), 2).view(n, self.ch // 2, h * w // 4)
        beta = torch.softmax(theta.transpose(1, 2) @ phi, -1)  # [N, HW, HW/4]
        out = self.o((g @ beta.transpose(1, 2)).view(n, self.ch // 2, h, w))
        return self.gamma * out + x


class GBlock(nn.Module):
    def __init__(self, cin: int, cout: int, layers: Layers, bn) -> None:
        super().__init__()
        self.conv1, self.conv2 = layers.conv(cin, cout), layers.conv(cout, cout)
        self.conv_sc = layers.conv(cin, cout, 1)  # every G block upsamples: always learned
        self.bn1, self.bn2 = bn(cin), bn(cout)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # the reference upsamples, then convolves; the same functions computed cheaper: the 3x3
        # conv of the upsampled map as four 2x2 phase kernels (16 instead of 36 multiply-adds
        # per output pair), and the 1x1 shortcut before the upsampling (it is pointwise)
        h = upsample_conv2d(F.relu(self.bn1(x, y)), _weight(self.conv1), self.conv1.bias)
        h = self.conv2(F.relu(self.bn2(h, y)))
        return h + F.interpolate(self.conv_sc(x), scale_factor=2)


def _weight(conv: nn.Conv2d) -> torch.Tensor:
    """The weight a conv layer applies: spectrally normalised when it is an `SNConv2d`."""
    return conv.normalized_weight() if isinstance(conv, SNConv2d) else conv.weight


class DBlock(nn.Module):
    def __init__(
        self, cin: int, cout: int, layers: Layers, *, wide: bool, preact: bool, down: bool
    ) -> None:
        super().__init__()
        hidden = cout if wide else cin
        self.conv1, self.conv2 = layers.conv(cin, hidden), layers.conv(hidden, cout)
        self.preact, self.down = preact, down
        self.learnable_sc = cin != cout or down
        if self.learnable_sc:
            self.conv_sc = layers.conv(cin, cout, 1)

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:  # conv then pool; the first block pools first
            x = self.conv_sc(x) if self.learnable_sc else x
            return F.avg_pool2d(x, 2) if self.down else x
        x = F.avg_pool2d(x, 2) if self.down else x
        return self.conv_sc(x) if self.learnable_sc else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preact else x  # out of place: the shortcut reads x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        return h + self._shortcut(x)


class Generator(nn.Module):
    """``G(z [N, z_dim], y)``: ``y`` is class indices [N] or, with a shared embedding, its
    vectors [N, shared_dim] (blends of classes); without one, soft one-hot rows [N, classes]."""

    def __init__(self, cfg: Config, spec: DataSpec) -> None:
        super().__init__()
        widths_in, widths_out = G_WIDTHS[cfg.resolution]
        blocks = len(widths_in)
        self.hier, self.num_slots = cfg.hier, blocks + 1 if cfg.hier else 1
        self.z_chunk = cfg.z_dim // self.num_slots if cfg.hier else 0
        self.z_dim, self.shared_dim = cfg.z_dim, cfg.shared_dim
        layers = Layers.of(cfg, "G")
        k = spec.num_classes
        self.shared = nn.Embedding(k, cfg.shared_dim) if cfg.shared else nn.Identity()
        cond = cfg.shared_dim + self.z_chunk if cfg.shared else k

        def bn(channels: int) -> ConditionalBatchNorm:
            return ConditionalBatchNorm(channels, cond, cfg.bn_eps, layers if cfg.shared else None)

        first = cfg.z_dim // self.num_slots
        self.linear = layers.linear(first, widths_in[0] * cfg.g_ch * 16)
        self.blocks = nn.ModuleList()
        for i, (a, b) in enumerate(zip(widths_in, widths_out, strict=True)):
            stage = nn.ModuleList([GBlock(a * cfg.g_ch, b * cfg.g_ch, layers, bn)])
            if 8 * 2**i in cfg.g_attn:
                stage.append(Attention(b * cfg.g_ch, layers))
            self.blocks.append(stage)
        last = widths_out[-1] * cfg.g_ch
        self.output_layer = nn.Sequential(
            OutputBatchNorm(last, cfg.bn_eps), nn.ReLU(), layers.conv(last, spec.channels)
        )

    def condition(self, y: torch.Tensor) -> torch.Tensor:
        """Class indices [N] to what the blocks take (the shared embedding's vectors)."""
        return self.shared(y) if not y.is_floating_point() else y

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = self.condition(y)
        if self.hier:
            chunks = torch.split(z, self.z_chunk, 1)
            z, ys = chunks[0], [torch.cat([y, c], 1) for c in chunks[1:]]
        else:
            ys = [y] * len(self.blocks)
        h = self.linear(z).view(z.shape[0], -1, 4, 4)
        for stage, y_k in zip(self.blocks, ys, strict=True):
            for block in stage:
                h = block(h, y_k)
        return torch.tanh(self.output_layer(h))


class Discriminator(nn.Module):
    """``D(x [N, C, R, R], labels [N]) -> [N]``: residual blocks, sum pooling, projection."""

    def __init__(self, cfg: Config, spec: DataSpec) -> None:
        super().__init__()
        widths, downs, names = D_BLOCKS[cfg.resolution]
        layers = Layers.of(cfg, "D")
        cin = spec.channels
        self.blocks = nn.ModuleList()
        for i, (m, down, name) in enumerate(zip(widths, downs, names, strict=True)):
            cout = m * cfg.d_ch
            block = DBlock(cin, cout, layers, wide=cfg.d_wide, preact=i > 0, down=down)
            stage = nn.ModuleList([block])
            if name in cfg.d_attn:
                stage.append(Attention(cout, layers))
            self.blocks.append(stage)
            cin = cout
        self.linear = layers.linear(cin, 1)
        self.embed = layers.embedding(spec.num_classes, cin)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = x
        for stage in self.blocks:
            for block in stage:
                h = block(h)
        h = F.relu(h).sum((2, 3))
        return (self.linear(h) + (self.embed(labels) * h).sum(1, keepdim=True)).flatten()


# ----- the family --------------------------------------------------------------------------
def _ortho_params(G: nn.Module) -> list[nn.Parameter]:
    """G's weights the orthogonal regularization acts on: every parameter of 2+ dimensions
    except the shared embedding (BigGAN-PyTorch's ``utils.ortho`` with its blacklist)."""
    skip = {id(p) for p in G.shared.parameters()}
    return [p for p in G.parameters() if p.ndim >= 2 and id(p) not in skip]


def orthogonal_penalty(params: list[nn.Parameter], strength: float) -> torch.Tensor:
    """``strength / 2 * sum ||W W^T * (1 - I)||_F^2`` (W viewed [out, -1]): its gradient
    ``strength * 2 (W W^T * (1 - I)) W`` is the one the reference's fast version adds to
    each weight's gradient (the paper's R_beta written with half the weight)."""
    total = torch.zeros((), device=params[0].device) if params else torch.zeros(())
    for p in params:
        w = p.reshape(p.shape[0], -1)
        gram = w @ w.T
        total = total + (gram - torch.diag_embed(torch.diagonal(gram))).square().sum()
    return 0.5 * strength * total


def truncated_normal_(
    z: torch.Tensor, threshold: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The truncation trick as the paper defines it: every entry of ``z`` whose magnitude
    exceeds ``threshold`` is drawn again from N(0, 1) (from ``generator``) until it lies
    inside; entries already inside are kept.  In place; returns ``z``."""
    if not threshold > 0 or not math.isfinite(threshold):
        raise UserError(f"truncation threshold {threshold} must be positive, e.g. 0.5")
    # rejection costs 1 / P(|x| <= t) draws per entry: 40 at t = 0.03; refuse to loop forever
    if threshold < 0.01:
        raise UserError(f"truncation threshold {threshold} is too small; use 0.01 or more")
    outside = z.abs() > threshold
    while outside.any():
        fresh = torch.randn(int(outside.sum()), generator=generator, device="cpu")
        z[outside] = fresh.to(z.device, z.dtype)
        outside = z.abs() > threshold
    return z


@MODELS.register(
    "biggan",
    doc="BigGAN (Brock 2019): shared embedding, hierarchical z, conditional BN, attention, "
    "spectral norm, projection D, hinge loss, truncation",
)
class BigGAN(TwoPlayerModel):
    """Class-conditional BigGAN; ``generate(n, labels=k, truncation=0.5)`` draws class k from
    z truncated at 0.5."""

    Config = Config
    DEFAULT_PRESET = "fmnist32"
    TASK = Task("noise", labels=True)
    TRUNCATION = "threshold"
    PRESETS = {
        # the paper's ImageNet 128 (section 3, appendix C): batch 2048, 2 D steps per G step
        "brock128": {**IMAGENET128, "lr_g": 5e-5, "lr_d": 2e-4, "n_critic": 2},
        # BigGAN-PyTorch's published ImageNet run (scripts/launch_BigGAN_bs256x8.sh: batch 256
        # with 8 accumulations)
        "pytorch128": {**IMAGENET128, "lr_g": 1e-4, "lr_d": 4e-4, "n_critic": 1},
        # scripts/launch_cifar_ema.sh: no shared embedding, no hierarchy, no attention,
        # 4 D steps, both rates 2e-4, N(0, 0.02) init, no orthogonal regularization
        "cifar": {
            "resolution": 32,
            "g_ch": 64,
            "d_ch": 64,
            "z_dim": 128,
            "shared": False,
            "hier": False,
            "g_attn": [],
            "d_attn": [],
            "lr_g": 2e-4,
            "lr_d": 2e-4,
            "n_critic": 4,
            "init": "N02",
            "reg.ortho": 0.0,
            "sn_eps": 1e-8,
            "adam_eps": 1e-8,
            "ema_start": 1000,
            "ema_decay": 0.9999,
            "train.batch_size": 50,
        },
        # ours, for a CPU budget: narrow networks (32 channels throughout), one D step, 2e-4
        # for both players and batch 32, so that 15 minutes on 2 cores make ~9,400 steps.  At
        # this budget the number of G steps decides: batch 64 made 4,926 steps (FID 6.98, label
        # agreement 0.83), batch 32 9,417 (4.74, 0.91), two D steps at batch 64 3,289 (12.2,
        # 0.76).  Over the full 15 minutes 2e-4 beat 3e-4 (7.2 / 0.81 against 10.5 / 0.79 at
        # batch 64), though 240 s pilots had ranked 3e-4 first; BigGAN-PyTorch's 1e-4 / 4e-4
        # was worse in the pilots.  Attention at 16 in both
        "fmnist32": {
            "resolution": 32,
            "g_ch": 8,
            "d_ch": 8,
            "z_dim": 128,
            "shared_dim": 64,
            "g_attn": [16],
            "d_attn": [16],
            "n_critic": 1,
            "train.batch_size": 32,
            "train.grid_size": 100,
            "train.steps": 8000,
            "train.sample_every": 1000,
        },
        "tiny": {
            "resolution": 32,
            "g_ch": 2,
            "d_ch": 2,
            "z_dim": 16,
            "shared_dim": 8,
            "g_attn": [16],
            "d_attn": [16],
            "ema_start": 2,
            "train.batch_size": 8,
            "train.grid_size": 20,
        },
    }

    def build(self) -> dict[str, nn.Module]:
        return {"G": Generator(self.cfg, self.spec), "D": Discriminator(self.cfg, self.spec)}

    def apply_layer_options(self) -> None:
        """BigGAN's spectral norm is built into its layers (`Layers`), not added afterwards."""

    def initialize(self) -> None:
        kind = self.cfg.init
        for net in (self.G, self.D):
            for m in net.modules():
                if isinstance(m, nn.Conv2d | nn.Linear | nn.Embedding):
                    if kind == "ortho":
                        nn.init.orthogonal_(m.weight)
                    elif kind == "N02":
                        nn.init.normal_(m.weight, 0.0, 0.02)
                    else:
                        nn.init.xavier_uniform_(m.weight)

    def param_groups(self) -> dict[str, OptimSpec]:
        c = self.cfg
        kw = dict(betas=tuple(c.betas), eps=c.adam_eps, schedule=c.lr_schedule_spec())
        return {
            "G": OptimSpec(self.G.parameters(), lr=c.lr_g, kind=c.optimizer, **kw),
            "D": OptimSpec(self.D.parameters(), lr=c.lr_d, kind=c.optimizer, **kw),
        }

    def ortho_penalty(self) -> torch.Tensor:
        return orthogonal_penalty(_ortho_params(self.G), self.cfg.reg.ortho)

    def ema_beta(self, images_seen: int, batch_size: int) -> float:
        """A copy of G until ``ema_start`` G steps, then a decay of ``ema_decay`` per step."""
        step = images_seen // batch_size - 1
        return 0.0 if step < self.cfg.ema_start else self.cfg.ema_decay

    def summary_inputs(self) -> dict[str, tuple[Any, ...]]:
        inputs = super().summary_inputs()
        return {**inputs, "D": (*inputs["D"], inputs["G"][1])}

    # ----- sampling -----------------------------------------------------------------------
    def truncated_inputs(
        self, args: tuple[Any, ...], truncation: float | None, generator: torch.Generator | None
    ) -> tuple[Any, ...]:
        """z drawn from the normal truncated at ``truncation`` (the entries outside redrawn
        from ``generator``); None: no truncation."""
        if truncation is None:
            return args
        return (truncated_normal_(args[0].clone(), truncation, generator), *args[1:])

    def walk_inputs(
        self, z: torch.Tensor, start: list[tuple[Any, ...]], end: list[tuple[Any, ...]], t
    ) -> tuple[Any, ...]:
        """Frames between two seeds: z as given, and the class condition blended linearly in
        the shared embedding (in the one-hot rows without one), so a walk may cross classes."""
        G = self.generator()
        a = torch.cat([s[1] for s in start])
        b = torch.cat([e[1] for e in end])
        if isinstance(G.shared, nn.Embedding):
            ya, yb = G.shared(a), G.shared(b)
        else:
            k = self.spec.num_classes
            ya, yb = F.one_hot(a, k).float(), F.one_hot(b, k).float()
        return z, torch.lerp(ya, yb, t.reshape(-1, 1).to(ya))

    @torch.no_grad()
    def accumulate_standing_stats(
        self,
        *,
        ema: bool = True,
        truncation: float | None = None,
        batches: int | None = None,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        """Standing statistics: the batch norms of the generator (the EMA copy by default)
        re-estimated as the plain average over ``batches`` (config ``standing_batches``)
        batches of G drawn with ``truncation`` and classes in turn, from ``seed``.  Only the
        BN statistics change: the spectral-norm vectors stay as they are."""
        net = self.generator(ema)
        norms = [m for m in net.modules() if isinstance(m, StoredBatchNorm)]
        gen = torch.Generator().manual_seed(seed)
        k, batches = self.spec.num_classes, batches or self.cfg.standing_batches
        was_training = net.training
        net.eval()
        for m in norms:
            m.stored_mean.zero_()
            m.stored_var.fill_(1.0)
            m.momentum, m.seen = None, 0
            m.training = True  # not .train(): the gain/bias layers inside keep SN in eval
        try:
            for i in range(batches):
                labels = (torch.arange(batch_size) + i * batch_size) % k
                args = self.generator_inputs(batch_size, labels.to(self.device), gen)
                net(*self.truncated_inputs(args, truncation, gen))
        finally:
            for m in norms:
                m.momentum = 0.1
            net.train(was_training)
        drawn = "" if truncation is None else f", z truncated at {truncation:g}"
        self._standing = f"re-estimated over {batches} batches of {batch_size}{drawn}, seed {seed}"

    def training_notes(self) -> dict[str, str]:
        standing = getattr(self, "_standing", None)
        return {"standing statistics": standing} if standing else {}
