"""The model interface every family implements; the engine knows families only through it.

A family is a `GANModel` subclass registered with ``@MODELS.register(name)``.  It owns its
networks (``G``, ``D``, ...), says how each is optimized (`param_groups`), and lists its training
phases as data (`phases`), so n-critic loops and lazy regularizers are numbers, not branches in
the engine.  Models never write files or print: phases return dicts of named losses.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..data import DataSpec
from ..errors import UserError

Batch = dict[str, torch.Tensor]
Losses = dict[str, torch.Tensor]


@dataclass
class Phase:
    """One kind of optimizer step in a training iteration.

    ``step(batch, ctx)`` returns named losses; ``losses["loss"]`` is back-propagated into the
    parameters of optimizer ``group`` (all other parameters are frozen meanwhile).  ``ctx`` is a
    dict shared by the phases of one iteration, so a phase may reuse what an earlier one computed
    (the fakes of the G step, for instance).  The phase runs on iterations where
    ``step_index % every == 0``, ``repeat`` times in a row (n_critic); ``new_batch`` draws a fresh
    real batch for each call; otherwise the first call sees the previous phase's batch (and the
    repeats after it draw fresh ones).
    """

    name: str
    group: str
    step: Callable[[Batch, dict[str, Any]], Losses]
    every: int = 1
    repeat: int = 1
    new_batch: bool = True
    after: Callable[[], None] | None = None  # runs after the optimizer step (weight clipping)


@dataclass
class OptimSpec:
    """How one parameter group is optimized."""

    params: Iterable[nn.Parameter]
    lr: float
    kind: str = "adam"  # adam | rmsprop
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8

    def build(self) -> torch.optim.Optimizer:
        params = [p for p in self.params if p.requires_grad]
        if self.kind == "adam":
            return torch.optim.Adam(params, lr=self.lr, betas=self.betas, eps=self.eps)
        if self.kind == "rmsprop":
            return torch.optim.RMSprop(params, lr=self.lr, eps=self.eps)
        raise UserError(f"unknown optimizer {self.kind!r}; use adam or rmsprop")


class GANModel(nn.Module):
    """Base of every family.  Subclasses set `Config`, `PRESETS`, `DEFAULT_PRESET` and build
    ``self.G`` and ``self.D`` in ``__init__``; ``self.G_ema`` is made by `init_ema`."""

    Config: ClassVar[type]
    PRESETS: ClassVar[dict[str, dict[str, Any]]]
    DEFAULT_PRESET: ClassVar[str]
    #: True when the family needs class labels (a labeled data set).
    conditional: ClassVar[bool] = False
    #: True when G maps z to per-layer styles w (G.map / G.synthesis): latent tools, ppl.
    style_based: ClassVar[bool] = False
    #: Resolution used by the family when the config does not fix one.
    resolution: int

    def __init__(self, cfg: Any, spec: DataSpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        if self.conditional and spec.num_classes < 2:
            raise UserError(
                f"model '{type(self).__name__.lower()}' is class-conditional but data set "
                f"'{spec.name}' has no labels; use a labeled data set (fmnist, mnist, digits, or "
                "a folder with one subfolder per class)"
            )

    # ----- construction helpers -------------------------------------------------------------
    def init_ema(self) -> None:
        """Make ``G_ema``, a frozen copy of ``G`` that the engine averages and samples from."""
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)

    @classmethod
    def is_conditional(cls, cfg: Any) -> bool:
        """Whether a model with family config ``cfg`` needs labels (a config option for
        families with a conditional variant)."""
        return cls.conditional

    def ema_beta(self, images_seen: int, batch_size: int) -> float | None:
        """The EMA decay for this step, for families that set it themselves (a half-life in
        images); None: the engine's ``train.ema_beta`` with its ramp-up."""
        return None

    def begin_iteration(self, step: int) -> tuple[str, ...]:
        """Called by the engine before training iteration ``step`` (0-based).  Families whose
        networks change as training goes on (ProGAN's growth) set that state here, as a pure
        function of ``step``, so a resumed run is in the state the uninterrupted one was.
        Returns the optimizer groups whose state (Adam's moments) the engine clears before
        this iteration's steps; none by default."""
        return ()

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(source, average) pairs the engine keeps an exponential moving average of."""
        return [(self.G, self.G_ema)] if hasattr(self, "G_ema") else []

    # ----- what families provide ------------------------------------------------------------
    def param_groups(self) -> dict[str, OptimSpec]:
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latent codes ``[n, z_dim]`` for G, from ``generator`` (or the global RNG)."""
        return torch.randn(n, self.cfg.z_dim, generator=generator, device="cpu").to(self.device)

    def generator_inputs(
        self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None
    ) -> tuple[Any, ...]:
        """Arguments for ``G`` to make ``n`` images: ``(z,)``, or ``(z, labels)`` for conditional
        families, whose labels default to cycling through the classes (one per grid column)."""
        z = self.sample_latent(n, generator=generator)
        if not self.conditional:
            return (z,)
        if labels is None:
            labels = (torch.arange(n) % self.spec.num_classes).to(self.device)
        return z, labels

    def summary_inputs(self) -> dict[str, tuple[Any, ...]]:
        """Example arguments for each network, for `ganforge summary` (batch of 2)."""
        fake = torch.zeros(2, self.spec.channels, self.resolution, self.resolution)
        return {"G": self.generator_inputs(2, None, None), "D": (fake,)}

    # ----- using a trained model -------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def generate(
        self,
        n: int | None = None,
        labels: torch.Tensor | list[int] | int | None = None,
        *,
        z: torch.Tensor | None = None,
        seed: int | None = None,
        truncation: float = 1.0,
        noise_mode: str = "const",
        ema: bool = True,
    ) -> torch.Tensor:
        """Make ``n`` images, ``[n, C, H, W]`` floats in ``[-1, 1]``.

        ``labels`` (conditional families): one class for all, or one per image; default cycles
        through the classes.  ``z``: explicit latents ``[n, z_dim]`` instead of drawing them
        (``n`` may then be omitted).  ``seed`` makes the drawn latents repeatable without
        touching the global RNG.  ``truncation`` (psi) < 1 pulls the latents towards their
        mean.  ``noise_mode`` (families with per-pixel noise): ``const`` (the stored noise,
        repeatable), ``random`` or ``none``.
        """
        if z is not None:
            z = torch.as_tensor(z, dtype=torch.float32)
            if z.ndim != 2 or (n is not None and z.shape[0] != n):
                raise UserError(
                    f"z has shape {list(z.shape)}; give [n, z_dim] latents, one row per image"
                )
            n = z.shape[0]
        if n is None or n < 1:
            raise UserError(f"cannot generate {n} images; ask for at least 1")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        net = self.G_ema if ema and hasattr(self, "G_ema") else self.G
        was_training = net.training
        net.eval()
        try:
            args = self.generator_inputs(n, self._labels(n, labels), gen)
            if z is not None:
                if z.shape[1] != args[0].shape[1]:
                    raise UserError(
                        f"z has {z.shape[1]} columns; this generator takes {args[0].shape[1]}"
                    )
                args = (z.to(self.device), *args[1:])
            images = self.synthesize(net, args, truncation=truncation, noise_mode=noise_mode)
        finally:
            net.train(was_training)
        return images.float().clamp(-1, 1)

    def synthesize(
        self, net: nn.Module, args: tuple[Any, ...], *, truncation: float, noise_mode: str
    ) -> torch.Tensor:
        """Run generator ``net`` on ``args`` (from `generator_inputs`) with truncation; families
        with their own truncation or noise inputs override this."""
        if truncation != 1.0:
            args = (self.truncate(args[0], truncation), *args[1:])
        return net(*args)

    def truncate(self, z: torch.Tensor, psi: float) -> torch.Tensor:
        """Truncation in z: ``mean + psi (z - mean)`` with the prior's mean 0, the same rule
        style-based families apply around their tracked mean w."""
        if not 0 < psi <= 1:
            raise UserError(f"truncation must be in (0, 1], got {psi}")
        return z * psi

    def _labels(self, n: int, labels: Any) -> torch.Tensor | None:
        if not self.conditional:
            if labels is not None:
                raise UserError(
                    f"model '{type(self).__name__.lower()}' is unconditional; drop the class/labels"
                )
            return None
        k = self.spec.num_classes
        if labels is None:
            out = torch.arange(n) % k
        elif isinstance(labels, int):
            out = torch.full((n,), labels)
        else:
            out = torch.as_tensor(labels).long().flatten()
            if out.numel() != n:
                raise UserError(f"got {out.numel()} labels for {n} images; give one per image")
        if out.numel() and (out.min() < 0 or out.max() >= k):
            bad = out[(out < 0) | (out >= k)][0].item()
            raise UserError(f"class {bad} is out of range; this model has classes 0..{k - 1}")
        return out.long().to(self.device)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)
