"""The model interface every family implements; the engine knows families only through it.

A family is a `GANModel` subclass registered with ``@MODELS.register(name)``.  It says once what
it is (`TASK`, or `task_for` when a config option changes it), builds its networks by name
(`build`), says which of them keep an EMA copy (`EMA`), how each group is optimized
(`param_groups`, with a learning-rate schedule), and lists its training phases as data
(`phases`), so n-critic loops, lazy regularizers and stage windows are numbers, not branches in
the engine.  The base class builds every family in one fixed order (networks, layer options,
initialisation, EMA copies), so no family repeats that ritual.  Models never write files or
print: phases return dicts of named losses.
"""

from __future__ import annotations

import copy
import numbers
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..data import DataSpec
from ..errors import UserError

Batch = dict[str, torch.Tensor]
Losses = dict[str, torch.Tensor]

#: What goes in and comes out of a family's generator.
TASK_KINDS = ("noise", "paired", "masked", "lowres", "unpaired")
#: The data task (`ganforge.data.tasks`) each kind trains on.
DATA_TASKS = {
    "noise": "plain",
    "paired": "paired",
    "masked": "masked",
    "lowres": "lowres",
    "unpaired": "unpaired",
}


@dataclass(frozen=True)
class Task:
    """The one answer to "what does this family take and give".

    ``kind``: ``noise`` (z, optionally labels or text -> image), ``paired`` (image -> image),
    ``masked`` (image + mask -> filled image), ``lowres`` (image -> larger image) or
    ``unpaired`` (domain A <-> domain B).  ``labels``: G takes class labels (class-conditional).
    ``text``: G takes caption tokens.  ``styles``: G maps z to per-layer styles w through
    ``map``/``synthesis`` (the latent tools and ppl work on it)."""

    kind: str = "noise"
    labels: bool = False
    text: bool = False
    styles: bool = False

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"Task.kind must be one of {TASK_KINDS}, got {self.kind!r}")

    @property
    def data(self) -> str:
        """The data task this family trains on (``captioned`` for text-to-image)."""
        return "captioned" if self.text else DATA_TASKS[self.kind]


@dataclass
class Phase:
    """One kind of optimizer step in a training iteration.

    ``step(batch, ctx)`` returns named losses; ``losses["loss"]`` is back-propagated into the
    parameters of optimizer ``group`` (all other parameters are frozen meanwhile; parameters of
    the group that the loss does not reach get a zero gradient from the engine).  ``ctx`` is a
    dict shared by the phases of one iteration, so a phase may reuse what an earlier one computed
    (the fakes of the G step, for instance).  The phase runs on iterations where
    ``step_index % every == 0`` and ``start <= step_index < stop`` (``stop`` None: to the end;
    a window lets a family train one stage, then another), ``repeat`` times in a row (n_critic);
    ``new_batch`` draws a fresh real batch for each call; otherwise the first call sees the
    previous phase's batch (and the repeats after it draw fresh ones).
    """

    name: str
    group: str
    step: Callable[[Batch, dict[str, Any]], Losses]
    every: int = 1
    repeat: int = 1
    new_batch: bool = True
    after: Callable[[], None] | None = None  # runs after the optimizer step (weight clipping)
    start: int = 0
    stop: int | None = None

    def runs_at(self, step: int) -> bool:
        """Whether this phase runs in training iteration ``step`` (0-based)."""
        in_window = step >= self.start and (self.stop is None or step < self.stop)
        return in_window and step % self.every == 0


SCHEDULES = ("constant", "linear", "step")


@dataclass(frozen=True)
class LRSchedule:
    """A learning-rate factor as a pure function of the step, so resuming anywhere (mid-decay
    included) gives the rate the uninterrupted run had.

    ``constant``: 1.  ``linear``: 1 for ``start`` steps, then falling linearly to 0 over
    ``length`` steps (pix2pix's and CycleGAN's 100 + 100 epochs, in steps).  ``step``: times
    ``gamma`` every ``length`` steps after ``start`` (SRGAN's decay)."""

    kind: str = "constant"
    start: int = 0
    length: int = 0
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"LRSchedule.kind must be one of {SCHEDULES}, got {self.kind!r}")

    def factor(self, step: int) -> float:
        if self.kind == "constant" or step < self.start:
            return 1.0
        done = step - self.start
        if self.kind == "linear":
            return max(0.0, 1.0 - done / self.length)
        return self.gamma ** (done // self.length)


@dataclass
class OptimSpec:
    """How one parameter group is optimized."""

    params: Iterable[nn.Parameter]
    lr: float
    kind: str = "adam"  # adam | rmsprop
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = 1e-8
    schedule: LRSchedule = LRSchedule()

    def build(self) -> torch.optim.Optimizer:
        params = [p for p in self.params if p.requires_grad]
        if self.kind == "adam":
            return torch.optim.Adam(params, lr=self.lr, betas=self.betas, eps=self.eps)
        if self.kind == "rmsprop":
            return torch.optim.RMSprop(params, lr=self.lr, eps=self.eps)
        raise UserError(f"unknown optimizer {self.kind!r}; use adam or rmsprop")


NOISE_MODES = ("const", "random", "none")
FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_sampling_args(n: Any, labels: Any, noise_mode: Any) -> None:
    """One line for a ``generate`` argument of the wrong kind (the checks of their values,
    such as n >= 1 or a class in range, follow in `GANModel.generate`)."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral)):
        raise UserError(f"n must be a whole number of images, got {n!r}")
    if isinstance(labels, bool | str | float):
        raise UserError(f"labels must be a class index or one per image, got {labels!r}")
    if isinstance(labels, list | tuple) and not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in labels
    ):
        raise UserError(f"labels must be class indices (whole numbers), got {list(labels)!r}")
    if noise_mode not in NOISE_MODES:
        raise UserError(f"unknown noise mode {noise_mode!r}; use {', '.join(NOISE_MODES)}")


class GANModel(nn.Module):
    """Base of every family.

    A subclass sets `Config`, `PRESETS`, `DEFAULT_PRESET`, its `TASK` (or `task_for`) and `EMA`,
    and supplies the parts the base class assembles in this order when it is constructed:
    `build` (the networks, by name), `apply_layer_options` (spectral norm and the like, before
    anything records parameter names), `initialize` (weights), then an EMA copy ``<name>_ema``
    of each network named in `EMA`.  A family never repeats that ritual, so it cannot forget a
    step of it."""

    Config: ClassVar[type]
    PRESETS: ClassVar[dict[str, dict[str, Any]]]
    DEFAULT_PRESET: ClassVar[str]
    #: What the family takes and gives; `task_for` answers per config where an option changes it.
    TASK: ClassVar[Task] = Task()
    #: What ``truncation`` means for this family: ``psi`` (pull towards the mean latent, 1 is
    #: none) or ``threshold`` (BigGAN: z from a normal truncated at it).
    TRUNCATION: ClassVar[str] = "psi"
    #: The networks that keep an exponential moving average (``G`` -> ``G_ema``).
    EMA: ClassVar[tuple[str, ...]] = ("G",)
    #: Resolution of the family's images (set from the config; a family may refine it in build).
    resolution: int

    def __init__(self, cfg: Any, spec: DataSpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = spec
        self.task = type(self).task_for(cfg)
        self.check_data(spec)
        if hasattr(cfg, "resolution"):
            self.resolution = cfg.resolution
        self._check_fits()
        try:
            networks = self.build()
        except RuntimeError as err:  # a size of the config the machine cannot allocate
            if "allocate" not in str(err):
                raise
            wanted = re.search(r"allocate (\d+) bytes", str(err))
            size = f"one tensor alone needs {int(wanted[1]) / 2**30:,.0f} GiB" if wanted else err
            raise UserError(
                f"the networks of model '{type(self).__name__.lower()}' do not fit in memory "
                f"with this config ({size}); lower z_dim, the widths or the resolution"
            ) from None
        for name, net in networks.items():
            setattr(self, name, net)
        self._network_names = tuple(networks)
        self.apply_layer_options()
        self.initialize()
        for name in self.EMA:
            ema = copy.deepcopy(getattr(self, name)).eval().requires_grad_(False)
            setattr(self, f"{name}_ema", ema)

    def _check_fits(self) -> None:
        """Refuse, before anything is allocated, networks whose weights alone exceed the
        memory the machine has available (a z_dim of 1e9 would otherwise be allocated lazily
        and fill memory as it is initialised).  The networks are first built on the meta
        device, which allocates nothing; families whose build cannot run there skip this."""
        available = _available_memory()
        if available is None or torch.get_default_device().type != "cpu":
            return
        try:
            with torch.device("meta"):
                nets = self.build()
            weights = sum(
                t.numel() * t.element_size()
                for net in nets.values()
                for t in [*net.parameters(), *net.buffers()]
            )
        except Exception:  # noqa: BLE001 - the real build below reports any real error
            return
        if weights > available:
            raise UserError(
                f"the networks of model '{type(self).__name__.lower()}' hold "
                f"{weights / 2**30:,.1f} GiB of weights with this config, more than the "
                f"{available / 2**30:,.1f} GiB of memory available; lower z_dim, the widths or "
                "the resolution"
            )

    @classmethod
    def task_for(cls, cfg: Any) -> Task:
        """The family's task under config ``cfg`` (families with a conditional option override)."""
        return cls.TASK

    def check_data(self, spec: DataSpec) -> None:
        """Refuse data the family cannot train on, before anything is built."""
        if self.task.labels and spec.num_classes < 2:
            raise UserError(
                f"model '{type(self).__name__.lower()}' is class-conditional but data set "
                f"'{spec.name}' has no labels; use a labeled data set (fmnist, mnist, digits, or "
                "a folder with one subfolder per class)"
            )

    # ----- what families provide: construction ---------------------------------------------
    def build(self) -> dict[str, nn.Module]:
        """The trained networks by name (``{"G": ..., "D": ...}``)."""
        raise NotImplementedError

    def apply_layer_options(self) -> None:
        """Layer options of the config applied to the built networks (spectral norm...)."""

    def initialize(self) -> None:
        """Initial weights, after the layer options (modules keep PyTorch's defaults if not)."""

    # ----- the declared networks --------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        """The trained networks by name, in the order the family built them."""
        return {name: getattr(self, name) for name in self._network_names}

    def ema_networks(self) -> dict[str, nn.Module]:
        """The EMA copies, by the name of the network each one averages."""
        return {name: getattr(self, f"{name}_ema") for name in self.EMA}

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(source, average) pairs the engine keeps an exponential moving average of."""
        return [(getattr(self, name), avg) for name, avg in self.ema_networks().items()]

    def generator(self, ema: bool = True) -> nn.Module:
        """The network images come from: the first network's EMA copy when kept, else itself."""
        first = self._network_names[0]
        averages = self.ema_networks()
        return averages[first] if ema and first in averages else getattr(self, first)

    def training_notes(self) -> dict[str, str]:
        """What a report of this model must say about how it was trained beyond its config
        (srgan: which network its content loss used); the summary and evaluation reports
        print these.  None by default."""
        return {}

    # ----- what families provide: training --------------------------------------------------
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

    def prepare(self, data: Any) -> None:
        """Called by the engine once, when a run starts afresh (never on resume, never by
        `ganforge.load`), with the training data: a family that builds something from the
        data before the first step (StackGAN's text encoder, from its cache) does it here.
        What it builds must live in the state dict, so resumed and loaded runs take it from
        the checkpoint.  Nothing by default."""

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
        if not self.task.labels:
            return (z,)
        if labels is None:
            labels = (torch.arange(n) % self.spec.num_classes).to(self.device)
        return z, labels

    def summary_inputs(self) -> dict[str, tuple[Any, ...]]:
        """Example arguments for each network, for `ganforge summary` (batch of 2)."""
        fake = torch.zeros(2, self.spec.channels, self.resolution, self.resolution)
        labels = torch.zeros(2, dtype=torch.long) if self.task.labels else None
        return {"G": self.generator_inputs(2, labels, None), "D": (fake,)}

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
        truncation: float | None = None,
        noise_mode: str = "const",
        ema: bool = True,
    ) -> torch.Tensor:
        """Make ``n`` images, ``[n, C, H, W]`` floats in ``[-1, 1]``.

        ``labels`` (conditional families): one class for all, or one per image; default cycles
        through the classes.  ``z``: explicit latents ``[n, z_dim]`` instead of drawing them
        (``n`` may then be omitted).  ``seed`` makes the drawn latents repeatable without
        touching the global RNG.  ``truncation``: the family's truncation knob (`TRUNCATION`;
        None: none): psi < 1 pulls the latents towards their mean, BigGAN's threshold draws z
        from a truncated normal.  ``noise_mode`` (families with per-pixel noise): ``const``
        (the stored noise, repeatable), ``random`` or ``none``.
        """
        _check_sampling_args(n, labels, noise_mode)
        if z is not None:
            z = torch.as_tensor(z, dtype=torch.float32)
            if z.ndim != 2 or (n is not None and z.shape[0] != n):
                raise UserError(
                    f"z has shape {list(z.shape)}; give [n, z_dim] latents, one row per image"
                )
            if not torch.isfinite(z).all():
                raise UserError("z holds NaN or infinite values; give finite latents")
            n = z.shape[0]
        if n is None or n < 1:
            raise UserError(f"cannot generate {n} images; ask for at least 1")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        net = self.generator(ema)
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
            images = self.synthesize(
                net, args, truncation=truncation, noise_mode=noise_mode, generator=gen
            )
        finally:
            net.train(was_training)
        return images.float().clamp(-1, 1)

    def synthesize(
        self,
        net: nn.Module,
        args: tuple[Any, ...],
        *,
        truncation: float | None,
        noise_mode: str,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Run generator ``net`` on ``args`` (from `generator_inputs`) with truncation
        (`truncated_inputs`; ``generator`` is the RNG the latents came from); families with
        their own truncation or noise inputs override this."""
        return net(*self.truncated_inputs(args, truncation, generator))

    def truncated_inputs(
        self, args: tuple[Any, ...], truncation: float | None, generator: torch.Generator | None
    ) -> tuple[Any, ...]:
        """G's inputs with the family's truncation applied.  Here psi in z: ``mean + psi
        (z - mean)`` with the prior's mean 0, the rule style-based families apply around their
        tracked mean w; None or 1: none."""
        if truncation is None or truncation == 1.0:
            return args
        if not 0 < truncation <= 1:
            raise UserError(f"truncation must be in (0, 1], got {truncation}")
        return (args[0] * truncation, *args[1:])

    def walk_inputs(
        self, z: torch.Tensor, start: list[tuple[Any, ...]], end: list[tuple[Any, ...]], t
    ) -> tuple[Any, ...]:
        """G's inputs for frames of a walk in z (``ganforge interpolate``): ``z`` [M, z_dim]
        already interpolated; ``start``/``end``: each frame's two seeds' inputs; ``t`` [M]
        the position between them.  Here the other inputs (labels, codes) switch half-way."""
        near = [a if ti < 0.5 else b for a, b, ti in zip(start, end, t.tolist(), strict=True)]
        rest = [torch.cat(parts) for parts in zip(*[args[1:] for args in near], strict=True)]
        return (z, *rest)

    def _labels(self, n: int, labels: Any) -> torch.Tensor | None:
        if not self.task.labels:
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
            out = torch.as_tensor(labels)
            if out.dtype in (torch.bool, *FLOAT_TYPES):
                raise UserError(
                    f"labels must be class indices (whole numbers), got {out.dtype} values"
                )
            out = out.long().flatten()
            if out.numel() != n:
                raise UserError(f"got {out.numel()} labels for {n} images; give one per image")
        if out.numel() and (out.min() < 0 or out.max() >= k):
            bad = out[(out < 0) | (out >= k)][0].item()
            raise UserError(f"class {bad} is out of range; this model has classes 0..{k - 1}")
        return out.long().to(self.device)

    # ----- what the engine shows and scores -------------------------------------------------
    def preview(
        self, n: int, seed: int, batch: Batch | None = None
    ) -> tuple[torch.Tensor, int | None]:
        """The images of a sample grid ``[M, C, H, W]`` in [-1, 1] and its row length (None:
        square).  Noise families: ``n`` images from fixed noise (``seed``), one column per class
        when conditional.  Image families: rows of input | output | target for the fixed
        ``batch`` of the test split (`eval_outputs` of it)."""
        if self.task.kind == "noise":
            nrow = self.spec.num_classes if self.task.labels else None
            return self.generate(n, seed=seed), nrow
        if batch is None:
            raise ValueError(f"a {self.task.kind} family previews a fixed batch; none was given")
        out = self.eval_outputs(batch, seed=seed)
        rows = [out["input"], out["image"]] + ([out["target"]] if "target" in out else [])
        rows = [_as_channels(r.to(self.device).float(), self.spec.channels) for r in rows]
        size = rows[1].shape[-1]
        rows = [_fit(r, size) for r in rows]
        # one row per role: [input_0..input_k-1, output_0.., target_0..]
        return torch.cat(rows).clamp(-1, 1), rows[0].shape[0]

    @torch.no_grad()
    def eval_outputs(
        self, batch: Batch, *, seed: int, truncation: float | None = None
    ) -> dict[str, torch.Tensor]:
        """What evaluation scores for one chunk.

        Noise families: ``batch = {"index": int64 [m]}`` (positions in the evaluation set);
        returns ``{"image": [m, C, H, W]}`` drawn with ``seed`` (plus ``"label"``, cycling
        through the classes by position, when conditional).  Style-based generators draw fresh
        per-pixel noise for every image, as StyleGAN2-ADA's metrics do (a constant noise map
        would be one more thing all images share), from ``seed + 1``, leaving the global RNG
        alone.  Image families: ``batch`` is a chunk of the evaluation split; returns the
        outputs as ``"image"`` with ``"target"``, ``"input"`` (and ``"mask"``)."""
        if self.task.kind != "noise":
            return self.image_outputs(batch)
        index = batch["index"]
        labels = (index % self.spec.num_classes) if self.task.labels else None
        kwargs: dict[str, Any] = {"truncation": truncation} if truncation is not None else {}
        style = self.task.styles
        if style:
            kwargs["noise_mode"] = "random"
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices, enabled=style):
            if style:
                torch.manual_seed(seed + 1)  # the noise; the latents use seed
            images = self.generate(len(index), labels=labels, seed=seed, **kwargs)
        out = {"image": images}
        if labels is not None:
            out["label"] = labels
        return out

    def image_outputs(self, batch: Batch) -> dict[str, torch.Tensor]:
        """An image family's outputs for a batch of its data task (see `eval_outputs`)."""
        kind = self.task.kind
        if kind == "unpaired":
            x = batch["image_a"]
            return {"image": self.translate(x, direction="a2b"), "input": x}
        x = batch["cond_image"]
        out = {"input": x, "target": batch["image"]}
        if kind == "masked":
            out["image"] = self.inpaint(x, batch["mask"])
            out["mask"] = batch["mask"]
        elif kind == "lowres":
            out["image"] = self.upscale(x)
        else:
            out["image"] = self.translate(x)
        return out

    def translate(self, images: torch.Tensor, *, direction: str | None = None) -> torch.Tensor:
        """Image-to-image families: outputs ``[N, C, H, W]`` in [-1, 1] for inputs ``images``."""
        raise UserError(f"model '{type(self).__name__.lower()}' does not translate images")

    def inpaint(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Inpainting families: ``images`` with the holes (``masks`` [N, 1, H, W], 1 = hole)
        filled."""
        raise UserError(f"model '{type(self).__name__.lower()}' does not inpaint images")

    def upscale(self, images: torch.Tensor) -> torch.Tensor:
        """Super-resolution families: ``images`` at the family's larger size."""
        raise UserError(f"model '{type(self).__name__.lower()}' does not upscale images")


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def _as_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grayscale rows beside RGB ones (an edge map beside a photo) are repeated to 3 channels."""
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1:
        return images.expand(-1, channels, -1, -1)
    return images.mean(1, keepdim=True)


def _fit(images: torch.Tensor, size: int) -> torch.Tensor:
    """Rows of another size (a low-res input) shown at the output's size, nearest-upsampled."""
    if images.shape[-1] == size:
        return images
    return torch.nn.functional.interpolate(images, size=(size, size), mode="nearest")
