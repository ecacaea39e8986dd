"""Import NVIDIA StyleGAN3 (alias-free) network pickles without running anything stored in them.

The StyleGAN3 release (NVlabs/stylegan3) pickles its networks the way StyleGAN2-ADA does
(``torch_utils.persistence``: each network is its class name, its ``__dict__`` and the source
code of its module), so the restricted unpickler of `stylegan2_pickle` reads them: nothing in
the file is executed, ``module_src`` is never looked at.  Here the records of
``training/networks_stylegan3.py``'s Generator become GANForge's ``stylegan3`` config (from the
init kwargs persistence stored, with the release's defaults, checked against the layers' own
attributes) and state dicts with the release's names (``synthesis.L3_36_16.weight``...); the
discriminator is StyleGAN2's (``training/networks_stylegan2.py``), read by `stylegan2_pickle`
with the defaults of the StyleGAN3 release.

``import_stylegan3(path_or_url, out)`` writes the run folder (``ganforge import stylegan3``).  The
Fourier features' ``transform`` buffer (the image translation/rotation gen_images.py sets) is
imported with the rest, and `StyleGAN3.set_input_transform` changes it later.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import build_config
from ..data import DataSpec
from ..errors import UserError
from ..models import get_family
from .downloads import fetch_network, is_url
from .imports import _check_out, _dataset_name, _write_run
from .imports import _load as _load_strictly
from .stylegan2_pickle import (
    SG3,
    PersistentRecord,
    _attr,
    _Bad,
    _child,
    _discriminator,
    _init_kwargs,
    _load,
    _plain,
    _state_dict,
)

log = logging.getLogger("ganforge")

FORMAT = "stylegan3"
STYLEGAN2 = "this is a StyleGAN2 network; use ganforge import stylegan2"
SUPPORTED = "only StyleGAN3 network pickles of NVlabs/stylegan3 (stylegan3-t/-r) are supported"

_REQUIRED = object()
# Official init kwarg -> our config name (a leading _ : read, but only recorded), with the
# default of training/networks_stylegan3.py.  Generator(z_dim, c_dim, w_dim, img_resolution,
# img_channels, mapping_kwargs, **synthesis_kwargs): SynthesisNetwork's options and, through its
# **layer_kwargs, SynthesisLayer's sit at the top level.
_G_TABLE = (
    ("resolution", "img_resolution", _REQUIRED, int),
    ("channels", "img_channels", _REQUIRED, int),
    ("num_classes", "c_dim", _REQUIRED, int),
    ("z_dim", "z_dim", _REQUIRED, int),
    ("w_dim", "w_dim", _REQUIRED, int),
    # MappingNetwork
    ("mapping_layers", "mapping_kwargs.num_layers", 2, int),
    ("mapping_lr_mult", "mapping_kwargs.lr_multiplier", 0.01, float),
    ("w_avg_beta", "mapping_kwargs.w_avg_beta", 0.998, float),
    # SynthesisNetwork
    ("channel_base", "channel_base", 32768, int),
    ("channel_max", "channel_max", 512, int),
    ("num_layers", "num_layers", 14, int),
    ("num_critical", "num_critical", 2, int),
    ("first_cutoff", "first_cutoff", 2, float),
    ("first_stopband", "first_stopband", 2**2.1, float),
    ("last_stopband_rel", "last_stopband_rel", 2**0.3, float),
    ("margin_size", "margin_size", 10, int),
    ("output_scale", "output_scale", 0.25, float),
    ("_num_fp16_res", "num_fp16_res", 4, int),  # half precision on CUDA only: recorded
    # SynthesisLayer
    ("conv_kernel", "conv_kernel", 3, int),
    ("filter_size", "filter_size", 6, int),
    ("lrelu_upsampling", "lrelu_upsampling", 2, int),
    ("use_radial_filters", "use_radial_filters", False, bool),
    ("conv_clamp", "conv_clamp", 256, float),  # None = off, our 0
    ("magnitude_ema_beta", "magnitude_ema_beta", 0.999, float),
)
# Generator's positional parameters, to name any _init_args
_G_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")


@dataclass
class ImportedStyleGAN3:
    """What `read_stylegan3_pickle` returns: ``config`` in GANForge's ``stylegan3`` names
    (with ``resolution``, ``channels``, ``num_classes``; the ``d_*``/``mbstd_*`` keys only
    when D is present), the state dicts by the release's names, the options only recorded
    (``num_fp16_res``), the run's ``training_set_kwargs``, the source file, and what G_ema's
    layers store about their sampling (`geometry`, checked against the rebuilt model)."""

    config: dict[str, Any]
    G_ema: dict[str, torch.Tensor]
    G: dict[str, torch.Tensor] | None
    D: dict[str, torch.Tensor] | None
    recorded: dict[str, Any]
    training_set_kwargs: dict | None
    source: str
    geometry: dict[str, dict[str, Any]] = field(default_factory=dict)


def _foreign(detail: str) -> _Bad:
    return _Bad(f"not a StyleGAN3 network pickle: {detail}; {SUPPORTED}")


def _read_kwargs(kwargs: dict, what: str) -> tuple[dict, dict]:
    """Our config and the recorded options from G's init kwargs, defaults filled in."""
    known = {path for _, path, _, _ in _G_TABLE}
    mapping = kwargs.get("mapping_kwargs") or {}
    unknown = [k for k in kwargs if k not in known and k != "mapping_kwargs"]
    unknown += [f"mapping_kwargs.{k}" for k in mapping if f"mapping_kwargs.{k}" not in known]
    if unknown:
        raise _Bad(f"{what} has option(s) {unknown} that GANForge's stylegan3 does not support")
    config, recorded = {}, {}
    for name, path, default, kind in _G_TABLE:
        sub, leaf = (mapping, path.split(".")[1]) if "." in path else (kwargs, path)
        value = sub.get(leaf, default)
        if value is _REQUIRED:
            raise _Bad(f"{what} init kwargs lack {path}")
        if value is None and name == "conv_clamp":
            value = 0.0
        if value is None or (kind is not bool and isinstance(value, bool)):
            raise _Bad(f"{what} {path} is {value!r}; GANForge's stylegan3 needs a number")
        value = kind(value)
        if name.startswith("_"):
            recorded[name[1:]] = value
        else:
            config[name] = value
    return config, recorded


def _check_attributes(rec: PersistentRecord, config: dict, what: str) -> None:
    """The layers' own attributes against the config read (a wrong default would show)."""
    synthesis = _child(rec, "synthesis")
    names = _attr(synthesis, "layer_names", None)
    first = _child(synthesis, names[0]) if isinstance(names, list) and names else None
    clamp = _attr(first, "conv_clamp", config["conv_clamp"] or None)
    facts = {
        "num_layers": _attr(synthesis, "num_layers", config["num_layers"]),
        "margin_size": _attr(synthesis, "margin_size", config["margin_size"]),
        "output_scale": _attr(synthesis, "output_scale", config["output_scale"]),
        "conv_kernel": _attr(first, "conv_kernel", config["conv_kernel"]),
        "conv_clamp": float(clamp or 0.0),
        "magnitude_ema_beta": _attr(first, "magnitude_ema_beta", config["magnitude_ema_beta"]),
        "w_avg_beta": _attr(_child(rec, "mapping"), "w_avg_beta", config["w_avg_beta"]),
        "mapping_lr_mult": _attr(
            _child(rec, "mapping.fc0"), "bias_gain", config["mapping_lr_mult"]
        ),
        "first_cutoff": _attr(_child(synthesis, "input"), "bandwidth", config["first_cutoff"]),
    }
    for key, value in facts.items():
        if value != config[key]:
            raise _Bad(f"{what} init kwargs give {key}={config[key]!r} but its layers {value!r}")


def _dim(sd: dict[str, torch.Tensor], key: str, dim: int) -> int | None:
    return sd[key].shape[dim] if key in sd and sd[key].ndim > dim else None


def _generator(rec: PersistentRecord, what: str) -> tuple[dict, dict, dict[str, torch.Tensor]]:
    """G's config and recorded options (from its init kwargs, checked) and its state dict."""
    sd = _state_dict(rec)
    if "synthesis.input.freqs" not in sd:
        if "synthesis.b4.const" in sd:
            raise _Bad(STYLEGAN2)
        raise _foreign(f"its {what} Generator has no Fourier-feature input (synthesis.input)")
    kwargs = _init_kwargs(rec, _G_ARGS)
    if kwargs is None:
        raise _foreign(f"its {what} holds no init kwargs (training_loop.py always stores them)")
    config, recorded = _read_kwargs(kwargs, what)
    _check_attributes(rec, config, what)
    embed = _dim(sd, "mapping.embed.weight", 1)
    found = dict(
        channels=_dim(sd, f"synthesis.{_last_layer(rec)}.weight", 0),
        z_dim=(_dim(sd, "mapping.fc0.weight", 1) or 0) - (config["w_dim"] if embed else 0),
        w_dim=_dim(sd, "mapping.w_avg", 0),
        num_classes=embed or 0,
    )
    for key, value in found.items():
        if value != config[key]:
            raise _Bad(f"{what} init kwargs give {key}={config[key]!r} but its tensors {value!r}")
    return config, recorded, sd


#: what each layer of the release stores about its sampling (our layers have the same)
_GEOMETRY = ("padding", "up_factor", "down_factor")
_INPUT_GEOMETRY = ("sampling_rate", "bandwidth", "size")


def _number(value: object) -> object:
    """Stored numbers and numpy arrays (the release's sizes) as plain Python values."""
    return value.tolist() if hasattr(value, "tolist") else value


def _geometry(rec: PersistentRecord) -> dict[str, dict[str, Any]]:
    """G's stored sampling facts: the Fourier features' rate, bandwidth and size, and each
    layer's padding and up/down factors."""
    synthesis = _child(rec, "synthesis")
    out = {
        "input": {k: _number(_attr(_child(synthesis, "input"), k, None)) for k in _INPUT_GEOMETRY}
    }
    for name in _attr(synthesis, "layer_names", None) or ():
        layer = _child(synthesis, name)
        out[name] = {k: _number(_attr(layer, k, None)) for k in _GEOMETRY}
    return out


def check_geometry(G: torch.nn.Module, geometry: dict[str, dict[str, Any]], source: str) -> None:
    """The rebuilt generator samples where the release's did (a config that named the same
    tensors but placed them differently would give other images)."""
    ours = {
        "input": {
            "sampling_rate": G.synthesis.input.sampling_rate,
            "bandwidth": G.synthesis.input.bandwidth,
            "size": [G.synthesis.input.size] * 2,
        }
    }
    for name in G.synthesis.layer_names:
        ours[name] = {k: getattr(getattr(G.synthesis, name), k) for k in _GEOMETRY}
    for name, facts in geometry.items():
        for key, value in facts.items():
            mine = ours.get(name, {}).get(key)
            if value is not None and value != mine:
                raise UserError(
                    f"{source}: its layer {name} has {key}={value!r} where GANForge's stylegan3 "
                    f"computes {mine!r} from the stored options; this network is not supported"
                )


def _last_layer(rec: PersistentRecord) -> str:
    names = _attr(_child(rec, "synthesis"), "layer_names", None)
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise _foreign("its synthesis network lists no layer_names")
    return names[-1]


def _network(data: dict, key: str, class_name: str) -> PersistentRecord | None:
    rec = data.get(key)
    if rec is not None and (not isinstance(rec, PersistentRecord) or rec.class_name != class_name):
        held = rec.class_name if isinstance(rec, PersistentRecord) else type(rec).__name__
        raise _foreign(f"its {key} is a {held}")
    return rec


def _import(data: object, source: str) -> ImportedStyleGAN3:
    if not isinstance(data, dict) or not isinstance(data.get("G_ema"), PersistentRecord):
        held = type(data).__name__
        if isinstance(data, dict):
            held = ", ".join(map(str, data)) or "an empty dict"
        raise _foreign(f"it holds {held} and no G_ema Generator")
    g_ema_rec = _network(data, "G_ema", "Generator")
    config, recorded, g_ema = _generator(g_ema_rec, "G_ema")
    g = d = None
    if (g_rec := _network(data, "G", "Generator")) is not None:
        g_config, _, g = _generator(g_rec, "G")
        if g_config != config:
            raise _Bad(f"G and G_ema differ: {g_config} vs {config}")
    if (d_rec := _network(data, "D", "Discriminator")) is not None:
        d_config, d = _discriminator(d_rec, SG3)  # StyleGAN2's D, the StyleGAN3 release's defaults
        for key in ("resolution", "channels", "num_classes"):
            if d_config.pop(key) != config[key]:
                raise _Bad(f"D and G_ema differ in {key}")
        config.update(d_config)
    kwargs = data.get("training_set_kwargs")
    kwargs = _plain(kwargs) if isinstance(kwargs, dict) else None
    return ImportedStyleGAN3(config, g_ema, g, d, recorded, kwargs, source, _geometry(g_ema_rec))


def read_stylegan3_pickle(path: str | Path) -> ImportedStyleGAN3:
    """Read a StyleGAN3 network pickle (``network-snapshot-*.pkl``, ``stylegan3-t-*.pkl``,
    ``stylegan3-r-*.pkl``) without executing anything stored in it.  Raises `UserError` for a
    StyleGAN2 network (use ``ganforge import stylegan2``), a truncated or foreign file, anything
    that would need code to load, or an option GANForge's ``stylegan3`` does not have."""
    path = Path(path)
    try:
        return _import(_load(path), str(path))
    except _Bad as err:
        raise UserError(f"{path}: {err}") from None


def import_stylegan3(pickle_path: str | Path, out: str | Path) -> Path:
    """Import a StyleGAN3 network pickle, a file or an http(s) URL (downloaded once into the
    cache, `downloads.fetch_network`), into the new run folder ``out``; returns it."""
    out = Path(out)
    _check_out(out)  # before any download
    source = str(pickle_path)
    pickle_path = fetch_network(pickle_path)
    if not pickle_path.is_file():
        raise UserError(f"network pickle '{pickle_path}' does not exist")
    log.info(f"reading the networks in {pickle_path} (nothing stored in it is executed)")
    nets = read_stylegan3_pickle(pickle_path)
    arch = dict(nets.config)
    spec = DataSpec(
        channels=arch.pop("channels"),
        resolution=arch["resolution"],
        num_classes=arch.pop("num_classes"),
        name=_dataset_name(nets.training_set_kwargs),
    )
    if spec.channels not in (1, 3):
        raise UserError(f"{pickle_path}: {spec.channels}-channel networks are not supported")
    arch["conditional"] = spec.num_classes > 0
    radial = arch["conv_kernel"] == 1 and arch["use_radial_filters"]
    overrides = [(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in arch.items()]
    cfg = build_config(FORMAT, "stylegan3-r" if radial else "stylegan3-t", overrides=overrides)
    model = get_family(FORMAT)(cfg.family, spec)
    networks, averages = model.networks(), model.ema_networks()
    check_geometry(averages["G"], nets.geometry, str(pickle_path))
    _load_strictly(averages["G"], nets.G_ema, "G_ema", pickle_path, FORMAT)
    _load_strictly(
        networks["G"], nets.G if nets.G is not None else nets.G_ema, "G", pickle_path, FORMAT
    )
    if nets.D is not None:
        _load_strictly(networks["D"], nets.D, "D", pickle_path, FORMAT)
    imported = {
        "format": "stylegan3",
        **({"url": source} if is_url(source) else {}),
        "has_G": nets.G is not None,
        "has_D": nets.D is not None,
        "training_set_kwargs": nets.training_set_kwargs,
        **nets.recorded,
    }
    return _write_run(out, cfg, spec, model, pickle_path, imported)
