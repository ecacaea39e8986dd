"""The training loop.  One explicit loop over the model's phases; everything a family does not
need to know about (optimizers, freezing, precision, data parallelism, EMA, samples, logs,
checkpoints and resume) lives here.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..config import RunConfig, build_config
from ..data import Dataset, batch_key, load_dataset
from ..errors import UserError
from ..images import check_grid_fits, make_grid, save_image
from ..models import get_family
from ..models.base import GANModel, LRSchedule, Phase, set_requires_grad
from . import distributed as dist
from .checkpoint import (
    Checkpoint,
    check_state,
    check_tensors,
    latest_good_checkpoint,
    list_checkpoints,
    save_checkpoint,
)
from .logger import LossMeter, RunLogger

# keys that may change when a run is resumed; anything else would make it a different run
RESUMABLE = {
    "train.steps",
    "train.device",
    "train.progress",
    "train.tensorboard",
    "train.log_every",
    "train.sample_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.time_budget",
}
# a logged loss this many times larger than its first logged size (at least 1) gets a warning
EXPLOSION_FACTOR = 1000.0


class TrainingDiverged(UserError):
    """Losses or weights stopped being finite numbers; training stops (exit code 2)."""


def flat_settings(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config mapping as ``{"train.steps": 500, "lr_g": 0.0002, ...}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_settings(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_settings(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The keys, other than the `RESUMABLE` ones, whose values differ between two configs."""
    a, b = flat_settings(before), flat_settings(after)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in RESUMABLE)


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when present (the local rank's GPU under torchrun), else cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank())
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"device {name!r} asked for, but no CUDA GPU is available; use --device cpu"
        )
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision setting, or None for plain float32."""
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if precision == "fp16" and device.type != "cuda":
        raise UserError("train.precision=fp16 needs a CUDA GPU; use bf16 or fp32 on CPU")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def zero_missing_gradients(params: list[torch.nn.Parameter]) -> None:
    """Give a zero gradient to each of ``params`` that the loss did not reach (an output bias
    under R1, a stage not yet grown, a label embedding under path length), so that every
    process's all-reduce and optimizer see the same set in every step of a phase: one rule
    here instead of ``+ 0 * x`` terms in the families."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)


class BatchStream:
    """The k-th batch of the run, as a pure function of (seed, k): a fresh seeded permutation each
    epoch, the global batch split across processes.  Resuming needs only the count k."""

    def __init__(
        self,
        data: Dataset,
        batch_size: int,
        seed: int,
        device: torch.device,
        *,
        rank: int | None = None,
        world: int | None = None,
        channels_last: bool = False,
    ) -> None:
        if rank is None or world is None:
            rank, world = dist.world()
        if batch_size % world:
            raise UserError(
                f"train.batch_size={batch_size} does not split over {world} processes; "
                f"use a multiple of {world}"
            )
        for domain, size in getattr(data, "domain_sizes", {}).items():  # unpaired data
            if batch_size > size:
                raise UserError(
                    f"train.batch_size={batch_size} is larger than domain {domain} of "
                    f"'{data.spec.name}' ({size} images); use a smaller batch or add images"
                )
        if batch_size > len(data):
            raise UserError(
                f"train.batch_size={batch_size} is larger than the data set "
                f"({len(data)} images); use a smaller batch"
            )
        self.data, self.batch, self.seed, self.device = data, batch_size, seed, device
        self.local = batch_size // world
        self.rank = rank
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        self.per_epoch = len(data) // batch_size
        self._epoch = -1
        self._perm = torch.empty(0, dtype=torch.long)

    def get(self, k: int) -> dict[str, torch.Tensor]:
        epoch, i = divmod(k, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
            self._perm = torch.randperm(len(self.data), generator=gen)
            self._epoch = epoch
        start = i * self.batch + self.rank * self.local
        # the random parts of a task's batch (masks, the second domain's draw) come from the
        # key of (seed, k), per item, so batch k is the same whenever and wherever it is drawn
        batch = self.data.batch(self._perm[start : start + self.local], key=batch_key(self.seed, k))
        return {
            k: v.to(self.device, non_blocking=True).contiguous(
                memory_format=self.layout if v.ndim == 4 else torch.contiguous_format
            )
            for k, v in batch.items()
        }


class Trainer:
    """Trains ``cfg`` into ``run_dir``; ``resume`` restores the newest good checkpoint first."""

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path,
        *,
        resume: bool = False,
        data: Dataset | None = None,
    ) -> None:
        self.cfg, self.run_dir = cfg, Path(run_dir)
        t = cfg.train
        check_grid_fits(t.grid_size, cfg.family.resolution, "train.grid_size")
        self.device = resolve_device(t.device)
        dist.init_from_env(self.device)
        self.rank, self.world = dist.world()
        self.main = self.rank == 0
        self.amp_dtype = autocast_dtype(t.precision, self.device)

        self.data = data if data is not None else self._load_data(cfg.data.split)
        torch.manual_seed(t.seed)  # same initial weights on every process
        family = get_family(cfg.model)
        task = family.task_for(cfg.family)
        if self.data.spec.task != task.data:
            raise UserError(
                f"model '{cfg.model}' trains on {task.data} data, but data set "
                f"'{cfg.data.name}' is {self.data.spec.task}; pick a {task.data} data set "
                "(ganforge list datasets)"
            )
        self.model: GANModel = family(cfg.family, self.data.spec).to(self.device)
        if not resume:  # a resumed run has what prepare builds from its checkpoint
            self.model.prepare(self.data)
        if t.channels_last:
            self.model.to(memory_format=torch.channels_last)
        dist.broadcast_module(self.model)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.params: dict[str, list[torch.nn.Parameter]] = {}
        self.schedules: dict[str, LRSchedule] = {}
        self.base_lrs: dict[str, list[float]] = {}
        for name, spec in self.model.param_groups().items():
            self.params[name] = [p for p in spec.params if p.requires_grad]
            spec.params = self.params[name]
            self.optimizers[name] = spec.build()
            # the rate of every step is base * schedule(step): a pure function of the step
            self.schedules[name] = spec.schedule
            self.base_lrs[name] = [g["lr"] for g in self.optimizers[name].param_groups]
        self.scalers = {
            name: torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
            for name in self.optimizers
        }
        self.phases: list[Phase] = self.model.phases()
        self.stream = BatchStream(
            self.data, t.batch_size, t.seed, self.device, channels_last=t.channels_last
        )
        self.preview_batch = self._preview_batch(data)
        # each process draws its own noise and dropout masks
        torch.manual_seed(t.seed + 1 + self.rank)
        self.step = 0
        self.batches_drawn = 0
        self.best: float | None = None  # best value of cfg.eval.best so far
        self._first_loss: dict[str, float] = {}  # the size each loss is watched against
        if resume:
            # _restore rejects (ValueError) a checkpoint whose contents do not fit the model
            latest_good_checkpoint(self.run_dir, warn=self._warn, accept=self._restore)

    def _load_data(self, split: str) -> Dataset:
        d = self.cfg.data
        return load_dataset(
            d.name,
            split=split,
            resolution=self.cfg.family.resolution,
            channels=d.channels,
            data_dir=d.dir,
            download=d.download,
            options=d.task_options(),
        )

    def _preview_batch(self, given: Dataset | None) -> dict[str, torch.Tensor] | None:
        """Image families' sample grids show the first images of the test split (of
        ``given``, the data a caller handed in, when there is one), the same at every step;
        noise families draw from fixed noise instead (None)."""
        if self.model.task.kind == "noise" or not self.main:
            return None
        test = given if given is not None else self._load_data("test")
        index = torch.arange(min(self.cfg.train.grid_size, len(test)))
        return {k: v.to(self.device) for k, v in test.batch(index).items()}

    # ----- the loop ---------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        t = self.cfg.train
        logger = RunLogger(
            self.run_dir,
            total=t.steps,
            start=self.step,
            tensorboard=t.tensorboard,
            progress=t.progress,
            enabled=self.main,
        )
        meter = LossMeter()
        last: dict[str, float] = {}
        start_step, start_time = self.step, time.perf_counter()
        tick_step, tick_time = self.step, start_time
        try:
            while self.step < t.steps:
                self._iteration(meter)
                self.step += 1
                logger.advance()
                final = self.step == t.steps or self._out_of_time(start_time)
                if self.step % t.log_every == 0 or final:
                    now = time.perf_counter()
                    last = meter.pop_means()
                    rate = (self.step - tick_step) * t.batch_size / max(now - tick_time, 1e-9)
                    logger.log(self.step, {**last, "images_per_s": rate})
                    tick_step, tick_time = self.step, now
                    self._watch_losses(last)
                if self.step % t.sample_every == 0 or final:
                    self._save_samples(logger)
                e = self.cfg.eval
                # evaluate before the step's checkpoint, so that it records the best so far
                if e.every and (self.step % e.every == 0 or final):
                    self._require_finite_weights()
                    self._evaluate(logger, last)
                if self.step % t.checkpoint_every == 0 or final:
                    self._save_checkpoint(last)
                if final:
                    break
        finally:
            logger.close()
        elapsed = time.perf_counter() - start_time
        steps_run = self.step - start_step
        return {
            "steps": self.step,
            "steps_this_session": steps_run,
            "seconds": elapsed,
            "images_per_s": steps_run * t.batch_size / max(elapsed, 1e-9),
            "losses": last,
        }

    def _watch_losses(self, losses: dict[str, float]) -> None:
        """Stop on a non-finite loss (rank 0 decides for all); warn once when a loss grows by
        orders of magnitude over its first logged size."""
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        if dist.broadcast_object(bad):
            raise self._diverged(f"{bad[0]} is {losses[bad[0]]}")
        for key, value in losses.items():
            if not key.endswith("loss"):
                continue
            scale = self._first_loss.setdefault(key, max(abs(value), 1.0))
            if scale > 0 and abs(value) > EXPLOSION_FACTOR * scale:
                self._warn(
                    f"warning: {key} is {value:.3g} at step {self.step}, over "
                    f"{EXPLOSION_FACTOR:.0f}x its first logged size ({scale:.3g}); training "
                    "may be diverging (a lower learning rate helps)"
                )
                self._first_loss[key] = -1.0  # warned once: watch this key no more

    def _require_finite_weights(self, total: float | None = None) -> None:
        """Refuse to evaluate or checkpoint non-finite weights: the run's last checkpoint
        stays its last finite one, and pruning never trades it for a diverged one."""
        if total is None:
            total = float(sum(p.detach().double().sum() for p in self.model.parameters()))
        if not math.isfinite(total):
            raise self._diverged("the weights are no longer finite numbers")

    def _diverged(self, what: str) -> TrainingDiverged:
        kept = list_checkpoints(self.run_dir)
        last = "no checkpoint was written"
        if kept:
            last = f"the last finite checkpoint, {kept[-1][1].name}, is kept"
        return TrainingDiverged(
            f"training diverged at step {self.step}: {what}; stopped ({last}); lower the "
            "learning rates (lr_g, lr_d) and start a new run"
        )

    def _out_of_time(self, start: float) -> bool:
        """train.time_budget reached (rank 0's clock decides for every process)."""
        budget = self.cfg.train.time_budget
        if not budget:
            return False
        return bool(dist.broadcast_object(time.perf_counter() - start >= budget))

    def _iteration(self, meter: LossMeter) -> None:
        ctx: dict[str, Any] = {}
        batch: dict[str, torch.Tensor] | None = None
        for group in self.model.begin_iteration(self.step):
            self.optimizers[group].state.clear()
        for phase in self.phases:
            if not phase.runs_at(self.step):
                continue
            for r in range(phase.repeat):
                if phase.new_batch or batch is None or r > 0:
                    batch = self.stream.get(self.batches_drawn)
                    self.batches_drawn += 1
                meter.add(phase.name, self._run_phase(phase, batch, ctx))
        self._update_ema()

    def _run_phase(
        self, phase: Phase, batch: dict[str, torch.Tensor], ctx: dict[str, Any]
    ) -> dict[str, torch.Tensor]:
        group, opt, scaler = phase.group, self.optimizers[phase.group], self.scalers[phase.group]
        # Only this group's parameters need gradients: the other network runs frozen, which
        # skips its weight gradients (D's in the G step, G's in the D step).
        set_requires_grad(self.model, False)
        for p in self.params[group]:
            p.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        amp = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype
            else contextlib.nullcontext()
        )
        with amp:
            losses = phase.step(batch, ctx)
        scaler.scale(losses["loss"]).backward()
        zero_missing_gradients(self.params[group])
        dist.average_gradients(self.params[group])
        factor = self.schedules[group].factor(self.step)
        for param_group, base_lr in zip(opt.param_groups, self.base_lrs[group], strict=True):
            param_group["lr"] = base_lr * factor
        scaler.step(opt)
        scaler.update()
        if phase.after is not None:
            phase.after()
        return losses

    @torch.no_grad()
    def _update_ema(self) -> None:
        batch = self.cfg.train.batch_size
        beta = self.model.ema_beta((self.step + 1) * batch, batch)
        if beta is None:
            beta = self.cfg.train.ema_beta
            # ramp-up: early averages would otherwise be dominated by the random initial weights
            beta = min(beta, (1 + self.step) / (10 + self.step))
        for source, average in self.model.ema_pairs():
            for p_avg, p in zip(average.parameters(), source.parameters(), strict=True):
                p_avg.lerp_(p, 1 - beta)
            for b_avg, b in zip(average.buffers(), source.buffers(), strict=True):
                b_avg.copy_(b)

    # ----- outputs ----------------------------------------------------------------------------
    def _save_samples(self, logger: RunLogger) -> None:
        if not self.main:
            return
        t = self.cfg.train
        images, nrow = self.model.preview(t.grid_size, t.seed, self.preview_batch)
        grid = make_grid(images, nrow=nrow)
        scale = max(1, 64 // images.shape[-1])
        save_image(grid, self.run_dir / "samples" / f"step-{self.step:06d}.png", scale=scale)
        logger.add_image("samples", grid, self.step)

    def _evaluate(self, logger: RunLogger, last_losses: dict[str, float]) -> None:
        """Evaluate the model as `ganforge eval` would; log it; keep checkpoints/best."""
        from ..metrics.evaluate import evaluate, lower_is_better

        if not self.main:
            return
        e, d = self.cfg.eval, self.cfg.data
        report = evaluate(
            model=self.model,
            dataset=d.name,
            data_dir=d.dir,
            task_options=d.task_options(),
            metrics=e.metrics,
            n=e.n,
            split=e.split,
            seed=self.cfg.train.seed,
            warn=self._warn,
        )
        figures = report["metrics"]
        logger.log(self.step, {f"eval/{k}": v for k, v in figures.items()})
        if not e.best or e.best not in figures:
            return
        value = figures[e.best]
        better = self.best is None or (
            value < self.best if lower_is_better(e.best) else value > self.best
        )
        if better:
            self.best = value
            self._save_checkpoint(last_losses, name="best", metrics=figures)

    def _save_checkpoint(
        self,
        last_losses: dict[str, float],
        *,
        name: str | None = None,
        metrics: dict[str, float] | None = None,
    ) -> None:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        params = float(sum(p.detach().double().sum() for p in self.model.parameters()))
        if name:  # written by rank 0 alone (after an evaluation); never resumed from
            rngs, param_sums = [rng], [params]
        else:
            rngs = dist.gather_objects(rng)
            # One number per process: equal sums show the replicas stayed in sync.
            param_sums = dist.gather_objects(params)
        # every process sees every sum, so all stop together
        self._require_finite_weights(sum(param_sums))
        if not self.main:
            return
        state = {
            "step": self.step,
            "batches_drawn": self.batches_drawn,
            "world_size": self.world,
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "rng": rngs,
            "best_metric": self.best,
        }
        meta = {
            "family": self.cfg.model,
            "preset": self.cfg.preset,
            "config": self.cfg.to_dict(),
            "data_spec": self.data.spec.to_dict(),
            "ganforge_version": __version__,
            "losses": last_losses,
            "world_size": self.world,
            "rank_param_sums": param_sums,
            "metrics": metrics or {},
        }
        save_checkpoint(
            self.run_dir,
            self.step,
            self.model.state_dict(),
            state,
            meta,
            keep=self.cfg.train.keep_checkpoints,
            name=name,
        )

    # ----- resume -----------------------------------------------------------------------------
    def _restore(self, ckpt: Checkpoint) -> None:
        """Continue from ``ckpt``; ValueError when its contents do not fit this model (the
        caller then falls back to an older checkpoint), UserError when the run's config.yaml
        no longer says what the checkpoint was trained with."""
        state = ckpt.state
        if state.get("imported"):
            raise UserError(
                f"'{ckpt.path}' holds imported networks without a training state; they can be "
                "sampled and evaluated, not resumed (train a new run instead)"
            )
        self._check_same_config(ckpt)
        check_tensors(ckpt.weights, self.model.state_dict())
        check_state(state, list(self.optimizers))
        self.model.load_state_dict(ckpt.weights)
        for name, opt in self.optimizers.items():
            try:
                opt.load_state_dict(state["optimizers"][name])
            except (ValueError, KeyError, TypeError) as err:  # groups or sizes disagree
                raise ValueError(f"the optimizer state of '{name}' does not fit ({err})") from None
        for name, scaler in self.scalers.items():
            if name in state.get("scalers", {}):
                scaler.load_state_dict(state["scalers"][name])
        self.step = int(state["step"])
        self.batches_drawn = int(state["batches_drawn"])
        self.best = state.get("best_metric")
        saved_world = int(state.get("world_size", 1))
        if saved_world == self.world:
            rng = state["rng"][self.rank]
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        else:
            self._warn(
                f"warning: the run was saved with {saved_world} processes and resumes with "
                f"{self.world}; training continues, but not bit-for-bit as it would have"
            )
        if self.main:
            print(
                f"resuming {self.run_dir} from {ckpt.path.name} (step {self.step})", file=sys.stderr
            )

    def _check_same_config(self, ckpt: Checkpoint) -> None:
        """A hand-edited config.yaml is refused like the same change by --set: the checkpoint
        records the config it was trained with, and only `RESUMABLE` keys may differ."""
        recorded = ckpt.meta["config"]
        try:
            trained = build_config(self.cfg.model, recorded.get("preset"), file_data=recorded)
        except UserError as err:
            raise ValueError(f"meta.json's config does not resolve ({err})") from None
        changed = changed_settings(trained.to_dict(), self.cfg.to_dict())
        if changed:
            k = changed[0]
            before, after = flat_settings(trained.to_dict()), flat_settings(self.cfg.to_dict())
            raise UserError(
                f"cannot change '{k}' when resuming: {ckpt.path.name} was trained with "
                f"{before.get(k)!r}, the run's config.yaml or options ask {after.get(k)!r}; "
                "put config.yaml back, or start a new run with another --out"
            )

    def _warn(self, message: str) -> None:
        if self.main:
            print(message, file=sys.stderr)
