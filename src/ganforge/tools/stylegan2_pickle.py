"""Read NVIDIA's StyleGAN2 network pickles without running anything stored in them.

Two releases write them: stylegan2-ada-pytorch (``training/networks.py``) and stylegan3, whose
``training/networks_stylegan2.py`` made its published ``stylegan2-*.pkl`` networks. Their pickles
(``network-snapshot-XXXXXX.pkl`` and the published ones) are made with
``torch_utils.persistence``: every network object pickles as a call to
``_reconstruct_persistent_obj(meta)``, where ``meta`` carries the *source code* of
``training/networks.py`` (``module_src``), the class name and the object's ``__dict__``. The
official loader ``exec()``s that source, so a plain ``pickle.load`` runs whatever code the file
holds (and fails with "No module named torch_utils" elsewhere).

Here a restricted unpickler resolves only an explicit allow-list of globals (``_ALLOWED``): the
persistent-object hook becomes a `PersistentRecord` (class name + state, ``module_src`` is never
looked at), ``dnnlib.EasyDict`` a plain dict, tensors are rebuilt by torch's own functions, and the
storage bytes (a ``torch.save`` blob) go through ``torch.load(..., weights_only=True)``. Any other
global is refused. The records are then flattened to the exact ``nn.Module.state_dict()`` names of
the official modules, and their init kwargs are turned into GANForge's StyleGAN2 config names.

The two releases compute the same networks (the same layers and equations); their pickles differ
in how the options are stored and in defaults (`_RELEASES`): stylegan3's Generator takes the
synthesis options at the top level of its init kwargs, not in ``synthesis_kwargs``; its defaults
are ``w_avg_beta=0.998``, ``num_fp16_res=4`` and ``conv_clamp=256`` (G and D) where
stylegan2-ada-pytorch has 0.995, 0 and None; and it adds ``fused_modconv_default`` (True, False
or 'inference_only': whether modulated convs run as one grouped conv; the same function either
way, so it is only recorded). The release is read from attributes only its code stores
(`_release`), and the layers' stored ``conv_clamp`` and the mapping's ``w_avg_beta`` are checked
against the config read, so a wrong default cannot pass unnoticed. StyleGAN3 (alias-free)
generators are refused with a pointer to ``ganforge import stylegan3``.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

SUPPORTED = (
    "only StyleGAN2 network pickles of NVlabs/stylegan2-ada-pytorch and NVlabs/stylegan3 "
    "(network-snapshot-*.pkl, stylegan2-*.pkl) are supported"
)
#: ImportedNetworks.format of the two releases
ADA, SG3 = "stylegan2-ada-pytorch", "stylegan3-release-stylegan2"
STYLEGAN3 = "this is a StyleGAN3 network; use ganforge import stylegan3"


class _Bad(Exception):
    """Something in the pickle we refuse; read_network_pickle turns it into a UserError."""


def _foreign(detail: str) -> _Bad:
    return _Bad(f"not a StyleGAN2-ADA network pickle: {detail}; {SUPPORTED}")


@dataclass(frozen=True)
class PersistentRecord:
    """One ``torch_utils.persistence`` object: its bare class name and its pickled ``__dict__``."""

    class_name: str
    state: dict


@dataclass
class ImportedNetworks:
    """What `read_network_pickle` returns.

    ``config`` is in GANForge's StyleGAN2 names (`_g_table`, `_d_table`). ``G_ema``, ``G`` and
    ``D`` map the official ``state_dict()`` names to contiguous CPU tensors. ``training_set_kwargs``
    are the run's dataset options (None in published pickles that lack them); ``source`` the file.
    ``format`` is the release that wrote it (`ADA` or `SG3`); ``recorded`` options that change
    nothing GANForge computes (stylegan3's ``fused_modconv_default``), kept for the record.
    """

    config: dict
    G_ema: dict[str, torch.Tensor]
    G: dict[str, torch.Tensor] | None
    D: dict[str, torch.Tensor] | None
    training_set_kwargs: dict | None
    source: str
    format: str = ADA
    recorded: dict = field(default_factory=dict)


class _EasyDict(dict):
    """Stands in for ``dnnlib.EasyDict``: a plain dict without its attribute access."""


def _reconstruct_persistent_obj(meta: object) -> PersistentRecord:
    # meta = dict(type='class', version=6, module_src=..., class_name='Generator', state=__dict__).
    # module_src is deliberately never read: the official loader exec()s it.
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise _foreign("it holds a persistent object that is not of type 'class'")
    name, state = meta.get("class_name"), meta.get("state")
    if not isinstance(name, str) or not isinstance(state, dict):
        raise _foreign("it holds a persistent object without a class name and a state dict")
    return PersistentRecord(name.rsplit(".", 1)[-1], dict(state))


def _load_storage(data: object) -> object:
    if not isinstance(data, bytes):
        raise _foreign("it holds a tensor storage that is not bytes")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # torch refuses anything but plain tensor data here
        why = f"it holds a tensor storage that torch.load(weights_only=True) refused ({err})"
        raise _foreign(why) from None


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, metadata=None):
    if not isinstance(storage, torch.storage.TypedStorage):
        raise _foreign("it holds a tensor without a storage")
    # Hooks are never restored and gradients are not needed: only the values matter here.
    meta = metadata if isinstance(metadata, dict) else None
    return torch._utils._rebuild_tensor_v2(
        storage, offset, size, stride, False, OrderedDict(), meta
    )


def _rebuild_parameter(data: object, requires_grad: object, hooks: object) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise _foreign("it holds a parameter without a tensor")
    return data  # state dicts hold values, not nn.Parameters


def _numpy_scalar(dtype: object, data: object = None) -> object:
    # Module attributes such as weight_gain = lr / np.sqrt(n) pickle as numpy float64 scalars.
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise _foreign("it holds a numpy scalar that is not plain numbers")
    return np.frombuffer(data, dtype=dtype, count=1)[0].item()


class _PlainArray(np.ndarray):
    """A ``numpy.ndarray`` rebuilt from a pickle (StyleGAN3 layers keep sizes as arrays); refuses
    object arrays, whose items could be anything."""

    def __setstate__(self, state: object) -> None:
        dtype = state[2] if isinstance(state, tuple) and len(state) == 5 else None
        if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(state[4], bytes):
            raise _foreign("it holds a numpy array that is not plain numbers")
        super().__setstate__(state)


def _numpy_reconstruct(cls: object, shape: object, dtype: object) -> np.ndarray:
    # protocol <= 4: _reconstruct(ndarray, (0,), b'b'), then __setstate__ with the data
    if cls is not _PlainArray:
        raise _foreign("it holds a numpy object that is not an ndarray")
    # numpy always writes an empty placeholder here and the data follows in __setstate__; any
    # other shape would make this allocate whatever size a crafted file asks for
    if not isinstance(shape, tuple) or shape != (0,):
        raise _foreign("it holds a numpy array of an unexpected layout")
    return _PlainArray(shape, dtype)


def _numpy_frombuffer(buf: object, dtype: object, shape: object, order: object) -> np.ndarray:
    # protocol 5: the data in-band as bytes or a bytearray
    if not isinstance(buf, bytes | bytearray) or not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise _foreign("it holds a numpy array that is not plain numbers")
    return np.frombuffer(bytes(buf), dtype=dtype).reshape(shape, order="F" if order == "F" else "C")


_ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,  # protocol 3 (Python 3.7) spells _non_persistent_buffers_set so
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,  # numpy 1.x
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,  # numpy 2.x
    ("numpy", "ndarray"): _PlainArray,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in ``_ALLOWED``; everything else is refused."""

    def __init__(self, file: io.BufferedIOBase, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> object:
        module = "builtins" if module == "__builtin__" else module  # protocol-2 spelling
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        if module == "dnnlib.tflib" or module.startswith("dnnlib.tflib."):
            raise UserError(
                f"{self.source} is a TensorFlow-era StyleGAN/StyleGAN2 pickle ({module}.{name}); "
                "only StyleGAN2-ADA PyTorch pickles are supported: convert it first with "
                "stylegan2-ada-pytorch's legacy.py (python legacy.py --source=OLD.pkl "
                "--dest=NEW.pkl, its convert_network_pickle entry)"
            )
        raise UserError(f"{self.source}: refusing to load global '{module}.{name}'; {SUPPORTED}")

    def persistent_load(self, pid: object) -> object:
        raise UserError(f"{self.source}: refusing a persistent id in the pickle; {SUPPORTED}")


# What a truncated or garbled pickle raises from pickle itself or from torch's rebuild functions.
_CORRUPT = (EOFError, pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError)
_CORRUPT += (AttributeError, RuntimeError, OverflowError)


def _load(path: Path) -> object:
    if not path.is_file():
        raise UserError(f"network pickle {path} not found; pass a network-snapshot-*.pkl file")
    with open(path, "rb") as f:
        zipped = f.read(2) == b"PK"
        f.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated")
                return _RestrictedUnpickler(f, str(path)).load()
        except _CORRUPT as err:
            hint = ", it is a zip file such as a torch.save checkpoint" if zipped else ""
            why = (str(err).splitlines() or [""])[0][:200]
            raise UserError(
                f"{path} is truncated or not a pickle ({type(err).__name__}: {why}{hint}); "
                "copy or download it again"
            ) from None
        except OSError as err:
            raise UserError(f"cannot read network pickle {path}: {err.strerror}") from None


def _plain(value: object) -> object:
    """EasyDicts, OrderedDicts and tuples as plain dicts and lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _state_dict(record: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """The names and tensors ``nn.Module.state_dict()`` of the official module would give."""
    state, out = record.state, {}
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for kind in ("_parameters", "_buffers"):
        for name, tensor in (state.get(kind) or {}).items():
            if tensor is None or (kind == "_buffers" and name in skip):
                continue
            if not isinstance(tensor, torch.Tensor):
                raise _foreign(f"a {type(tensor).__name__} as tensor {prefix}{name}")
            out[prefix + name] = tensor.detach().contiguous()
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise _foreign(f"a {type(child).__name__} as layer {prefix}{name}")
        out.update(_state_dict(child, f"{prefix}{name}."))
    return out


def _child(record: PersistentRecord | None, path: str) -> PersistentRecord | None:
    for name in path.split("."):
        record = (record.state.get("_modules") or {}).get(name) if record else None
    return record if isinstance(record, PersistentRecord) else None


def _attr(record: PersistentRecord | None, name: str, default: object) -> object:
    return record.state.get(name, default) if record else default


def _init_kwargs(record: PersistentRecord, arg_names: tuple[str, ...]) -> dict | None:
    """The constructor arguments persistence stored (``_init_args``, ``_init_kwargs``) by name."""
    if "_init_kwargs" not in record.state:
        return None
    kwargs = dict(zip(arg_names, record.state.get("_init_args") or (), strict=False))
    return _plain(kwargs | dict(record.state["_init_kwargs"] or {}))


_REQUIRED, _ANY = object(), object()


@dataclass(frozen=True)
class _Release:
    """Where one release's Generator keeps its synthesis options, and its defaults."""

    synthesis: str  # prefix of the synthesis options in G's init kwargs
    w_avg_beta: float
    num_fp16_res: int
    conv_clamp: int | None  # G's and D's


_RELEASES = {
    ADA: _Release("synthesis_kwargs.", 0.995, 0, None),  # training/networks.py
    SG3: _Release("", 0.998, 4, 256),  # training/networks_stylegan2.py of stylegan3
}


def _g_table(release: str) -> tuple:
    """Official init kwarg -> our config name: (our name, kwarg path, official default).

    A None name marks a kwarg GANForge supports only at its official default (or at _ANY value);
    a name starting with ``_`` one that is read but not a config key.
    """
    r, s = _RELEASES[release], _RELEASES[release].synthesis
    rows = (
        ("resolution", "img_resolution", _REQUIRED),
        ("channels", "img_channels", _REQUIRED),
        ("num_classes", "c_dim", _REQUIRED),
        ("z_dim", "z_dim", _REQUIRED),
        ("w_dim", "w_dim", _REQUIRED),
        # MappingNetwork.__init__
        ("mapping_layers", "mapping_kwargs.num_layers", 8),
        ("mapping_lr_mult", "mapping_kwargs.lr_multiplier", 0.01),
        ("mapping_embed_features", "mapping_kwargs.embed_features", None),  # None = w_dim
        ("mapping_layer_features", "mapping_kwargs.layer_features", None),  # None = w_dim
        ("w_avg_beta", "mapping_kwargs.w_avg_beta", r.w_avg_beta),
        (None, "mapping_kwargs.activation", "lrelu"),
        # SynthesisNetwork, then SynthesisBlock, then SynthesisLayer
        ("channel_base", s + "channel_base", 32768),
        ("channel_max", s + "channel_max", 512),
        ("num_fp16_res", s + "num_fp16_res", r.num_fp16_res),
        ("g_architecture", s + "architecture", "skip"),
        ("conv_clamp", s + "conv_clamp", r.conv_clamp),
        (None, s + "resample_filter", [1, 3, 3, 1]),
        (None, s + "fp16_channels_last", _ANY),  # memory layout only: any value
        ("use_noise", s + "use_noise", True),
        (None, s + "kernel_size", 3),
        (None, s + "activation", "lrelu"),
    )
    if release == SG3:  # grouped or plain convolution: the same function, so any value
        rows += (("_fused_modconv_default", "fused_modconv_default", True),)
    return rows


def _d_table(release: str) -> tuple:
    """The same for the Discriminator (whose init signature both releases share)."""
    return (
        ("resolution", "img_resolution", _REQUIRED),
        ("channels", "img_channels", _REQUIRED),
        ("num_classes", "c_dim", _REQUIRED),
        ("d_architecture", "architecture", "resnet"),
        ("d_channel_base", "channel_base", 32768),
        ("d_channel_max", "channel_max", 512),
        (None, "num_fp16_res", _ANY),  # mixed precision only: any value
        ("d_conv_clamp", "conv_clamp", _RELEASES[release].conv_clamp),
        ("d_cmap_dim", "cmap_dim", None),  # None = channels at 4x4
        # DiscriminatorBlock
        (None, "block_kwargs.activation", "lrelu"),
        (None, "block_kwargs.resample_filter", [1, 3, 3, 1]),
        (None, "block_kwargs.fp16_channels_last", _ANY),
        (None, "block_kwargs.freeze_layers", _ANY),  # frozen layers keep their names
        # MappingNetwork (used only when c_dim > 0; Discriminator sets w_avg_beta=None itself)
        ("d_mapping_layers", "mapping_kwargs.num_layers", 8),
        ("_embed", "mapping_kwargs.embed_features", None),
        ("_layer", "mapping_kwargs.layer_features", None),
        ("_lr_mult", "mapping_kwargs.lr_multiplier", 0.01),
        (None, "mapping_kwargs.activation", "lrelu"),
        # DiscriminatorEpilogue
        ("mbstd_group_size", "epilogue_kwargs.mbstd_group_size", 4),  # None = whole minibatch
        ("mbstd_channels", "epilogue_kwargs.mbstd_num_channels", 1),
        (None, "epilogue_kwargs.activation", "lrelu"),
    )


#: the synthesis options stylegan3's Generator takes at the top level of its init kwargs
_SG3_TOP = {path for _, path, _ in _g_table(SG3)} - {path for _, path, _ in _g_table(ADA)}

# The constructors' positional parameters, to name any _init_args.
_G_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")
_G_ARGS += ("synthesis_kwargs",)
_D_ARGS = ("c_dim", "img_resolution", "img_channels", "architecture", "channel_base")
_D_ARGS += ("channel_max", "num_fp16_res", "conv_clamp", "cmap_dim", "block_kwargs")
_D_ARGS += ("mapping_kwargs", "epilogue_kwargs")


def _unknown(kwargs: dict, known: set[str], prefix: str = "") -> list[str]:
    out = []
    for key, value in kwargs.items():
        path = prefix + key
        if isinstance(value, dict) and any(k.startswith(path + ".") for k in known):
            out += _unknown(value, known, path + ".")
        elif path not in known:
            out.append(path)
    return out


def _read_table(kwargs: dict, table: tuple, what: str) -> dict:
    """Our config names from official init kwargs, with the official defaults filled in."""
    if unknown := _unknown(kwargs, {path for _, path, _ in table}):
        raise _Bad(f"{what} has option(s) {unknown} that GANForge's StyleGAN2 does not support")
    out = {}
    for name, path, default in table:
        *parents, leaf = path.split(".")
        sub = kwargs
        for parent in parents:
            sub = sub.get(parent) or {}
        value = sub.get(leaf, default)
        if name is not None:
            if value is _REQUIRED:
                raise _Bad(f"{what} init kwargs lack {path}")
            out[name] = value
        elif default is not _ANY and value != default:
            raise _Bad(
                f"{what} {path} is {value!r}; GANForge's StyleGAN2 supports only {default!r}"
            )
    return out


def _check_facts(config: dict, facts: dict, what: str, seen: str = "its tensors") -> None:
    for key, value in facts.items():
        if value is not None and config[key] != value:
            raise _Bad(f"{what} init kwargs give {key}={config[key]!r} but {seen} {value!r}")


def _check_channels(found: dict[int, int], base: int, cap: int, what: str) -> None:
    wanted = {res: min(base // res, cap) for res in found}
    if wanted != found:
        raise _Bad(
            f"{what} channels per resolution {found} do not follow channel_base={base}, "
            f"channel_max={cap} {wanted}"
        )


def _blocks(sd: dict, pattern: str) -> list[int]:
    return sorted(int(m[1]) for key in sd if (m := re.fullmatch(pattern, key)))


def _shape(sd: dict, key: str, dim: int) -> int | None:
    return sd[key].shape[dim] if key in sd else None


def _filter_fact(sd: dict, key: str) -> list | None:
    """[1, 3, 3, 1] when the resample_filter buffer is that filter (as setup_filter made it)."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    filt = sd.get(key)
    if filt is None:
        return None
    return [1, 3, 3, 1] if torch.equal(filt, torch.outer(taps, taps) / 64) else filt.tolist()


def _generator_facts(sd: dict, what: str) -> tuple[dict, dict[int, int]]:
    """What G's tensors say about its config, and its channels per resolution."""
    if "synthesis.b4.const" not in sd or "mapping.fc0.weight" not in sd:
        raise _foreign(
            f"its {what} Generator has no synthesis.b4.const or mapping.fc0.weight "
            "(other variants are not supported)"
        )
    blocks = _blocks(sd, r"synthesis\.b(\d+)\.conv1\.weight")
    res = blocks[-1]
    if blocks != [2**i for i in range(2, res.bit_length())]:
        raise _Bad(f"{what} synthesis blocks {blocks} are not 4, 8, ..., {res}")
    arch = "skip" if "synthesis.b4.torgb.weight" in sd else "orig"
    facts = dict(
        resolution=res,
        channels=sd[f"synthesis.b{res}.torgb.weight"].shape[0],
        num_classes=_shape(sd, "mapping.embed.weight", 1) or 0,
        z_dim=sd["mapping.fc0.weight"].shape[1] - (_shape(sd, "mapping.embed.weight", 0) or 0),
        w_dim=sd["synthesis.b4.conv1.affine.weight"].shape[1],
        mapping_layers=len(_blocks(sd, r"mapping\.fc(\d+)\.weight")),
        use_noise="synthesis.b4.conv1.noise_strength" in sd,
        # A single 4x4 block looks the same in all three architectures.
        g_architecture=None if res == 4 else "resnet" if "synthesis.b8.skip.weight" in sd else arch,
        resample_filter=_filter_fact(sd, "synthesis.b4.resample_filter"),
    )
    return facts, {r: sd[f"synthesis.b{r}.conv1.weight"].shape[0] for r in blocks}


def _generator_kwargs_from_state(rec: PersistentRecord, sd: dict, facts: dict, chans: dict) -> dict:
    """Generator init kwargs for a record stored without them: from shapes and layer attributes."""
    fc0, conv = _child(rec, "mapping.fc0"), _child(rec, "synthesis.b4.conv1")
    fp16 = [_attr(_child(rec, f"synthesis.b{r}"), "use_fp16", False) for r in chans]
    mapping = dict(
        num_layers=facts["mapping_layers"],
        embed_features=_shape(sd, "mapping.embed.weight", 0),
        layer_features=sd["mapping.fc0.weight"].shape[0],
        lr_multiplier=_attr(fc0, "bias_gain", 0.01),  # FullyConnectedLayer's name for it
        w_avg_beta=_attr(_child(rec, "mapping"), "w_avg_beta", 0.995),
        activation=_attr(fc0, "activation", "lrelu"),
    )
    synthesis = dict(
        channel_base=max(c * r for r, c in chans.items()),  # the smallest that fits
        channel_max=max(chans.values()),
        num_fp16_res=sum(map(bool, fp16)),
        architecture=facts["g_architecture"] or "skip",
        conv_clamp=_attr(conv, "conv_clamp", None),
        use_noise=facts["use_noise"],
        activation=_attr(conv, "activation", "lrelu"),
    )
    names = ("img_resolution", "img_channels", "c_dim", "z_dim", "w_dim")
    kwargs = dict(zip(names, list(facts.values())[:5], strict=True))
    return kwargs | dict(mapping_kwargs=mapping, synthesis_kwargs=synthesis)


def _release(rec: PersistentRecord, kwargs: dict | None) -> str:
    """Which code wrote this Generator: stylegan3's networks_stylegan2 stores attributes that
    stylegan2-ada-pytorch's networks do not (``num_fp16_res`` on the synthesis network,
    ``fused_modconv_default`` on its blocks), and takes its synthesis options at the top level."""
    if _attr(_child(rec, "synthesis"), "num_fp16_res", None) is not None:
        return SG3
    if _attr(_child(rec, "synthesis.b4"), "fused_modconv_default", None) is not None:
        return SG3
    if kwargs is not None and "synthesis_kwargs" not in kwargs and _SG3_TOP & set(kwargs):
        return SG3
    return ADA


def _stored_facts(rec: PersistentRecord, clamp_layer: str) -> dict:
    """What the layers' own attributes say: conv_clamp (None = 0), and the W average's decay."""
    facts = {}
    layer = _child(rec, clamp_layer)
    if layer is not None and "conv_clamp" in layer.state:
        facts["conv_clamp"] = float(layer.state["conv_clamp"] or 0.0)
    if (beta := _attr(_child(rec, "mapping"), "w_avg_beta", None)) is not None:
        facts["w_avg_beta"] = float(beta)
    return facts


def _generator(rec: PersistentRecord, what: str) -> tuple[dict, dict, str, dict]:
    """G's config (from its init kwargs, checked against its tensors and layer attributes), its
    state dict, the release that wrote it and the options only recorded."""
    sd = _state_dict(rec)
    facts, chans = _generator_facts(sd, what)
    kwargs = _init_kwargs(rec, _G_ARGS)
    release = _release(rec, kwargs)
    if kwargs is None:  # these kwargs are in stylegan2-ada-pytorch's layout
        kwargs = _generator_kwargs_from_state(rec, sd, facts, chans)
        config = _read_table(kwargs, _g_table(ADA), what)
    else:
        config = _read_table(kwargs, _g_table(release), what)
    stored = _attr(_child(rec, "synthesis.b4"), "fused_modconv_default", True)
    fused = config.pop("_fused_modconv_default", stored)
    recorded = {"fused_modconv_default": fused} if release == SG3 else {}
    config |= dict(resample_filter=[1, 3, 3, 1])
    w_dim, layers = config["w_dim"], config["mapping_layers"]
    if layers < 1 or config["w_avg_beta"] is None:
        raise _Bad(f"{what} has {layers} mapping layers or no W average; GANForge needs both")
    if config["num_classes"] == 0 or config["mapping_embed_features"] in (None, w_dim):
        config["mapping_embed_features"] = 0
    if layers == 1 or config["mapping_layer_features"] in (None, w_dim):
        config["mapping_layer_features"] = 0
    config.update(
        mapping_lr_mult=float(config["mapping_lr_mult"]),
        w_avg_beta=float(config["w_avg_beta"]),
        conv_clamp=float(config["conv_clamp"] or 0.0),
        use_noise=bool(config["use_noise"]),
        activation="lrelu",
    )
    _check_facts(config, facts, what)
    _check_channels(chans, config["channel_base"], config["channel_max"], what)
    _check_facts(config, _stored_facts(rec, "synthesis.b4.conv1"), what, "its layers")
    return config, sd, release, recorded


def _discriminator_facts(sd: dict) -> tuple[dict, dict[int, int]]:
    """What D's tensors say about its config, and its channels per resolution."""
    if "b4.conv.weight" not in sd or "b4.out.weight" not in sd:
        raise _foreign("its D has no b4.conv or b4.out")
    blocks = _blocks(sd, r"b(\d+)\.conv0\.weight")
    res, conv = ([4, *blocks])[-1], sd["b4.conv.weight"]
    conditional = "mapping.embed.weight" in sd
    arch = "resnet" if f"b{res}.skip.weight" in sd else "orig"
    facts = dict(
        resolution=res,
        channels=_shape(sd, f"b{res}.fromrgb.weight", 1),
        num_classes=_shape(sd, "mapping.embed.weight", 1) or 0,
        d_architecture=None if res == 4 else "skip" if "b4.fromrgb.weight" in sd else arch,
        mbstd_channels=conv.shape[1] - conv.shape[0],
        d_mapping_layers=len(_blocks(sd, r"mapping\.fc(\d+)\.weight")) if conditional else None,
        cmap=sd["b4.out.weight"].shape[0] if conditional else None,  # compared by _discriminator
    )
    return facts, {r: sd[f"b{r}.conv0.weight"].shape[0] for r in blocks} | {4: conv.shape[0]}


def _discriminator_kwargs_from_state(rec: PersistentRecord, facts: dict, chans: dict) -> dict:
    """Discriminator init kwargs for a record stored without them."""
    return dict(
        img_resolution=facts["resolution"],
        img_channels=facts["channels"],
        c_dim=facts["num_classes"],
        architecture=facts["d_architecture"] or "resnet",
        channel_base=max(c * r for r, c in chans.items()),
        channel_max=max(chans.values()),
        conv_clamp=_attr(_child(rec, "b4.conv"), "conv_clamp", None),
        cmap_dim=facts["cmap"],
        mapping_kwargs=dict(num_layers=facts["d_mapping_layers"] or 8),
        epilogue_kwargs=dict(
            mbstd_group_size=_attr(_child(rec, "b4.mbstd"), "group_size", 4),
            mbstd_num_channels=facts["mbstd_channels"],
        ),
    )


def _discriminator(rec: PersistentRecord, release: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """D's config (with resolution, channels, num_classes for the caller) and its state dict;
    ``release`` (G's) gives the defaults of its stored init kwargs."""
    sd = _state_dict(rec)
    facts, chans = _discriminator_facts(sd)
    kwargs = _init_kwargs(rec, _D_ARGS)
    if kwargs is None:
        kwargs, release = _discriminator_kwargs_from_state(rec, facts, chans), ADA
    config = _read_table(kwargs, _d_table(release), "D")
    default_cmap = min(config["d_channel_base"] // 4, config["d_channel_max"])
    cmap, found_cmap = config["d_cmap_dim"] or default_cmap, facts.pop("cmap")
    embed, layer, lr_mult = (config.pop(k) for k in ("_embed", "_layer", "_lr_mult"))
    if config["num_classes"]:
        if found_cmap != cmap or embed not in (None, cmap):
            raise _Bad(f"D has cmap_dim {cmap}, b4.out {found_cmap} and embed_features {embed}")
        # With 0 layers (TF-converted cifar10) only the embedding is used, without lr_multiplier.
        if config["d_mapping_layers"] and (layer not in (None, cmap) or lr_mult != 0.01):
            raise _Bad(
                f"D mapping has layer_features={layer}, lr_multiplier={lr_mult}; "
                "GANForge supports only the defaults (cmap_dim, 0.01)"
            )
    config.update(
        d_conv_clamp=float(config["d_conv_clamp"] or 0.0),
        d_cmap_dim=0 if not config["num_classes"] or cmap == default_cmap else cmap,
        mbstd_group_size=config["mbstd_group_size"] or 0,  # None (whole minibatch) -> 0
    )
    _check_facts(config, facts, "D")
    _check_channels(chans, config["d_channel_base"], config["d_channel_max"], "D")
    clamp = _stored_facts(rec, "b4.conv").get("conv_clamp")
    _check_facts(config, {"d_conv_clamp": clamp}, "D", "its layers")
    return config, sd


def _network(data: dict, key: str, class_name: str) -> PersistentRecord | None:
    rec = data.get(key)
    if rec is not None and (not isinstance(rec, PersistentRecord) or rec.class_name != class_name):
        raise _foreign(f"its {key} is a {_describe(rec)}")
    return rec


def _describe(value: object) -> str:
    return value.class_name if isinstance(value, PersistentRecord) else type(value).__name__


def _records(record: PersistentRecord):
    yield record
    for child in (record.state.get("_modules") or {}).values():
        if isinstance(child, PersistentRecord):
            yield from _records(child)


def _refuse_stylegan3(rec: PersistentRecord | None) -> None:
    """StyleGAN3's Generator has the same class name; its synthesis starts with SynthesisInput."""
    if rec is not None and any(r.class_name == "SynthesisInput" for r in _records(rec)):
        raise _Bad(STYLEGAN3)


def _import(data: object, source: str) -> ImportedNetworks:
    if not isinstance(data, dict) or "G_ema" not in data:
        held = f"a {type(data).__name__}"
        if isinstance(data, dict):
            held = ", ".join(f"{k} ({_describe(v)})" for k, v in data.items()) or "an empty dict"
        raise _foreign(f"it holds {held} and no G_ema Generator")
    for key in ("G_ema", "G"):
        _refuse_stylegan3(_network(data, key, "Generator"))
    config, g_ema, release, recorded = _generator(_network(data, "G_ema", "Generator"), "G_ema")
    g = d = None
    if (g_rec := _network(data, "G", "Generator")) is not None:
        g_config, g, _, _ = _generator(g_rec, "G")
        if g_config != config:
            raise _Bad(f"G and G_ema differ: {g_config} vs {config}")
    if (d_rec := _network(data, "D", "Discriminator")) is not None:
        d_config, d = _discriminator(d_rec, release)
        for key in ("resolution", "channels", "num_classes"):
            if d_config.pop(key) != config[key]:
                raise _Bad(f"D and G_ema differ in {key}")
        config.update(d_config)
    kwargs = data.get("training_set_kwargs")
    kwargs = _plain(kwargs) if isinstance(kwargs, dict) else None
    return ImportedNetworks(config, g_ema, g, d, kwargs, source, release, recorded)


def read_network_pickle(path: str | Path) -> ImportedNetworks:
    """Read a StyleGAN2 network pickle of stylegan2-ada-pytorch or of the stylegan3 release
    without executing anything stored in it.

    Returns G_ema's state dict (required) and G's and D's (None when absent), each with exactly
    the names ``state_dict()`` of the official module gives; the config in GANForge's StyleGAN2
    names (the ``d_*`` and ``mbstd_*`` keys only when D is present); and the run's
    ``training_set_kwargs``; the release that wrote it (``format``). Raises `UserError` for a
    TensorFlow-era pickle, a StyleGAN3 (alias-free) network, a truncated or foreign file,
    anything that would need code to load, or an architecture GANForge does not support.
    """
    path = Path(path)
    try:
        return _import(_load(path), str(path))
    except _Bad as err:
        raise UserError(f"{path}: {err}") from None
