"""Typed run configuration, YAML round trip, presets and strict dotted overrides.

A run's config is one flat namespace: the family's own settings (``z_dim``, ``lr_g``, ...) sit at
the top level beside three reserved sections, ``data``, ``train`` and ``eval``.  So
``--set lr_g=1e-4 --set train.batch_size=32`` both work, and a family can never shadow a section.

Values are resolved in this order, later wins: the family's ``Config`` defaults and the section
defaults, the preset's overrides, a YAML file, the CLI's own flags, then ``--set key=value``.
Unknown keys and values of the wrong type are refused with the closest valid names, so a typo
never silently trains the wrong thing (as nanoGPT's configurator does).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

# `check` lives in errors; families still import it from here until they switch
from .errors import UserError, check, did_you_mean

if TYPE_CHECKING:
    from .data.core import TaskOptions

SECTIONS = ("data", "train", "eval")
RUN_KEYS = ("model", "preset")


@dataclass
class DataConfig:
    """Where the training images come from."""

    # fmnist | mnist | digits | folder:PATH, or task data: masked:SOURCE, lowres:SOURCE,
    # fmnist-edges, pix2pix:PATH, pairs:PATH, fmnist-shoes, cyclegan:PATH, fmnist-captions,
    # captions:PATH (`ganforge list datasets`)
    name: str = "fmnist"
    dir: str | None = None  # a folder holding the data set's files (else the search path)
    split: str = "train"
    channels: int | None = None  # None: the data set's own
    download: bool = True  # where the network allows and the files are missing
    # Task options (ganforge.data.TaskOptions); None = the task's default.  Setting one for a
    # data set that does not read it is refused when the data loads.
    mask: str | None = None  # masked:SOURCE: center (default) | boxes | strokes | random
    factor: int | None = None  # lowres:SOURCE: 2 | 4 (default): low-res side = resolution / factor
    direction: str | None = None  # paired data: AtoB (default: A is the input) | BtoA
    max_tokens: int | None = None  # captioned data: tokens per caption (default: the longest)
    # lowres:SOURCE: load images at this side and train on random resolution-px crops of them
    load_size: int | None = None

    def validate(self) -> None:
        from .data.core import DIRECTIONS, LOWRES_FACTORS, MASK_KINDS

        check(self.split in ("train", "test"), "data.split", self.split, "use 'train' or 'test'")
        if self.channels is not None:
            check(self.channels in (1, 3), "data.channels", self.channels, "use 1 or 3")
        if self.mask is not None:
            check(
                self.mask in MASK_KINDS,
                "data.mask",
                self.mask,
                "use center, boxes, strokes or random",
            )
        if self.factor is not None:
            check(self.factor in LOWRES_FACTORS, "data.factor", self.factor, "use 2 or 4")
        if self.load_size is not None:
            check(self.load_size >= 1, "data.load_size", self.load_size, "use a side in pixels")
        if self.direction is not None:
            check(
                self.direction in DIRECTIONS, "data.direction", self.direction, "use AtoB or BtoA"
            )
        if self.max_tokens is not None:
            check(self.max_tokens >= 1, "data.max_tokens", self.max_tokens, "use 1 or more")

    def task_options(self) -> TaskOptions:
        """These options as the `ganforge.data.TaskOptions` that `load_dataset` takes."""
        from .data.core import TaskOptions

        return TaskOptions(
            mask=self.mask,
            factor=self.factor,
            direction=self.direction,
            max_tokens=self.max_tokens,
            load_size=self.load_size,
        )


@dataclass
class TrainConfig:
    """How long and how the engine trains; the same for every family."""

    steps: int = 2000  # total generator steps of the run (a resumed run continues to this)
    batch_size: int = 64  # global: split across processes under torchrun
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 on capable GPUs, else fp32) | fp32 | bf16 | fp16
    ema_beta: float = 0.999  # EMA of G per step (ramped up early); 0 disables it
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    grid_size: int = 64  # images in each sample grid
    tensorboard: bool = True
    progress: bool = True  # tqdm bar; without a terminal, a plain line per logging interval
    # stop after this many seconds of training (0: no limit), saving samples and a checkpoint
    # at the step reached; resuming continues towards train.steps
    time_budget: float = 0.0
    # NHWC activations and conv weights: oneDNN on CPU and tensor cores on GPUs run convolutions
    # faster in this layout (measured in benchmarks/throughput.py); it changes no result.
    channels_last: bool = True

    def validate(self) -> None:
        for name in ("steps", "batch_size", "log_every", "sample_every", "checkpoint_every"):
            value = getattr(self, name)
            check(value > 0, f"train.{name}", value, "it must be a positive integer")
        check(
            self.keep_checkpoints >= 1,
            "train.keep_checkpoints",
            self.keep_checkpoints,
            "keep at least 1",
        )
        check(self.grid_size >= 1, "train.grid_size", self.grid_size, "it must be >= 1")
        # evaluation seeds numpy (32 bits) with it and torch with seed * 100_003 + chunk
        check(0 <= self.seed < 2**32, "train.seed", self.seed, "use a seed from 0 to 2^32 - 1")
        check(
            self.time_budget >= 0,
            "train.time_budget",
            self.time_budget,
            "use 0 (no limit) or a number of seconds",
        )
        check(
            0.0 <= self.ema_beta < 1.0,
            "train.ema_beta",
            self.ema_beta,
            "use a value in [0, 1); 0 disables EMA",
        )
        check(
            self.precision in ("auto", "fp32", "bf16", "fp16"),
            "train.precision",
            self.precision,
            "use auto, fp32, bf16 or fp16",
        )


@dataclass
class EvalConfig:
    """Periodic evaluation during training, with the same code as `ganforge eval` (0 = off)."""

    every: int = 0  # steps between evaluations; 0 disables them
    metrics: str = "fid"  # comma-separated, as for ganforge eval --metrics
    n: int = 5000  # generated images per evaluation (and real ones at most)
    split: str = "test"
    best: str = "fid"  # keep checkpoints/best by this figure ("" keeps none)

    def validate(self) -> None:
        check(self.every >= 0, "eval.every", self.every, "use 0 (off) or a positive interval")
        if self.every:
            from .metrics import parse_metrics, produced_by

            names = parse_metrics(self.metrics)
            check(self.n >= 2, "eval.n", self.n, "use at least 2 images")
            check(self.split in ("train", "test"), "eval.split", self.split, "use test or train")
            produced = produced_by(names)
            check(
                not self.best or self.best in produced,
                "eval.best",
                self.best,
                f"pick a figure the metrics produce ({', '.join(produced)}) or '' for none",
            )


@dataclass
class RunConfig:
    """Everything a run needs: which family and preset, its settings, data and training."""

    model: str
    preset: str
    family: Any  # the family's Config dataclass instance
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "preset": self.preset}
        out.update(_plain(dataclasses.asdict(self.family)))
        for name in SECTIONS:
            out[name] = _plain(dataclasses.asdict(getattr(self, name)))
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def validate(self) -> None:
        for name in SECTIONS:
            getattr(self, name).validate()
        check = getattr(self.family, "validate", None)
        if check is not None:
            check()

    def get(self, key: str) -> Any:
        target, leaf = self._locate(key)
        return getattr(target, leaf)

    def set(self, key: str, value: Any) -> None:
        """Set a dotted key, coercing ``value`` (CLI text or YAML data) to the key's type."""
        target, leaf = self._locate(key)
        hint = typing.get_type_hints(type(target))[leaf]
        setattr(target, leaf, coerce(value, hint, key))

    def _locate(self, key: str) -> tuple[Any, str]:
        parts = key.split(".")
        if parts[0] in RUN_KEYS:
            raise UserError(f"'{key}' cannot be overridden; pass the model or preset by name")
        target: Any = getattr(self, parts[0]) if parts[0] in SECTIONS else self.family
        path = parts[1:] if parts[0] in SECTIONS else parts
        if not path:
            raise UserError(f"'{key}' is a section; set one of its keys, e.g. '{key}.<name>'")
        for i, part in enumerate(path):
            names = [f.name for f in dataclasses.fields(target)]
            if part not in names:
                prefix = ".".join(parts[: len(parts) - len(path) + i])
                valid = [f"{prefix}.{n}" if prefix else n for n in names]
                if target is self.family and not prefix:
                    valid += [
                        f"{s}.{f.name}"
                        for s in SECTIONS
                        for f in dataclasses.fields(getattr(self, s))
                    ]
                raise UserError(
                    f"unknown config key '{key}' for model '{self.model}'{did_you_mean(key, valid)}"
                )
            if i < len(path) - 1:
                target = getattr(target, part)
                if not dataclasses.is_dataclass(target):
                    raise UserError(f"config key '{key}': '{part}' has no sub-keys")
        return target, path[-1]


def _plain(value: Any) -> Any:
    """Tuples -> lists so that YAML stays free of Python tags."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Turn ``value`` into the type ``hint`` or raise a one-line `UserError`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except UserError as err:
                errors.append(str(err))
        raise UserError(errors[0] if errors else f"invalid value {value!r} for {key}")
    if origin in (tuple, list):
        items = value
        if isinstance(value, str):
            text = value.strip()
            items = _yaml_list(text, value, key) if text.startswith("[") else text.split(",")
            if not isinstance(items, list):
                raise UserError(f"invalid value {value!r} for {key}: expected a list like [1, 2]")
        if not isinstance(items, list | tuple):
            raise UserError(f"invalid value {value!r} for {key}: expected a list like [1, 2]")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise UserError(f"invalid value {value!r} for {key}: expected {len(args)} values")
            return tuple(coerce(v, a, key) for v, a in zip(items, args, strict=True))
        item_type = args[0] if args else Any
        converted = [coerce(v, item_type, key) for v in items]
        return tuple(converted) if origin is tuple else converted
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise UserError(f"invalid value {value!r} for {key}: expected true or false")
    if hint is int:
        if isinstance(value, bool):
            raise UserError(f"invalid value {value!r} for {key}: expected an integer")
        if isinstance(value, int):
            return value
        try:
            as_float = float(str(value).replace("_", ""))
        except ValueError:
            raise UserError(f"invalid value {value!r} for {key}: expected an integer") from None
        if not as_float.is_integer():
            raise UserError(f"invalid value {value!r} for {key}: expected an integer")
        return int(as_float)
    if hint is float:
        if isinstance(value, bool):
            raise UserError(f"invalid value {value!r} for {key}: expected a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"invalid value {value!r} for {key}: expected a number") from None
    if hint is str:
        if isinstance(value, dict | list):
            raise UserError(f"invalid value {value!r} for {key}: expected text")
        return str(value)
    if dataclasses.is_dataclass(hint):
        raise UserError(f"'{key}' is a group of settings; set one of its keys, e.g. '{key}.<name>'")
    raise TypeError(f"config type {hint!r} of {key} is not supported")


def flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested YAML mapping -> dotted (key, value) pairs."""
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.extend(flatten(value, dotted + "."))
        else:
            out.append((dotted, value))
    return out


def _yaml_list(text: str, value: Any, key: str) -> Any:
    """``[0.5, 0.999]`` as YAML; malformed YAML (``[0.5,``) is the user's mistake."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise UserError(
            f"invalid value {value!r} for {key}: not a well-formed list; write it like [1, 2]"
        ) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, or raise a one-line error saying what is wrong with the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file '{path}' does not exist") from None
    except IsADirectoryError:
        raise UserError(f"--config '{path}' is a folder; name a YAML file of settings") from None
    except UnicodeDecodeError:
        raise UserError(
            f"config file '{path}' is not text (not UTF-8); name a YAML file of settings"
        ) from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise UserError(
            f"config file '{path}' is not valid YAML{line}; fix it or "
            "write it again with 'ganforge train ... --set' options"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file '{path}' must hold a mapping of keys to values")
    return data


def build_config(
    model: str,
    preset: str | None = None,
    *,
    file_data: dict[str, Any] | None = None,
    overrides: list[tuple[str, Any]] | None = None,
) -> RunConfig:
    """Resolve a run's config: defaults, preset, a YAML mapping, then overrides; validated."""
    from .models import get_family

    family_cls = get_family(model)
    preset = preset or family_cls.DEFAULT_PRESET
    if preset not in family_cls.PRESETS:
        raise UserError(
            f"unknown preset {preset!r} for model '{model}'"
            + did_you_mean(preset, family_cls.PRESETS)
        )
    cfg = RunConfig(model=model, preset=preset, family=family_cls.Config())
    for key, value in family_cls.PRESETS[preset].items():
        cfg.set(key, value)
    for key, value in flatten(file_data or {}):
        if key in RUN_KEYS:
            continue
        cfg.set(key, value)
    for key, value in overrides or []:
        cfg.set(key, value)
    cfg.validate()
    if cfg.eval.every:
        from .metrics import metrics_needing, parse_metrics

        metrics = parse_metrics(cfg.eval.metrics)
        asked = [m for m in metrics if m in metrics_needing("labels")]
        task = family_cls.task_for(cfg.family)
        if asked and not task.labels:
            raise UserError(
                f"eval.metrics has {', '.join(asked)}, which need a class-conditional "
                f"model; '{model}' is unconditional (drop them, or use cgan/acgan)"
            )
        asked = [m for m in metrics if m in metrics_needing("styles")]
        if asked and not task.styles:
            raise UserError(
                f"eval.metrics has {', '.join(asked)}, which needs a style-based generator "
                f"(stylegan, stylegan2); '{model}' has none (drop it)"
            )
    return cfg


def parse_override(text: str) -> tuple[str, str]:
    """'a.b=1' -> ('a.b', '1')."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set expects key=value, got {text!r}; e.g. --set train.batch_size=32")
    return key.strip(), value.strip()
