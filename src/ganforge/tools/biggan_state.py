"""Read BigGAN-PyTorch's released state dicts (``G.pth``, ``G_ema.pth``, ``D.pth`` and the
``state_dict.pth`` beside them) and infer the architecture they were made with.

The files are plain ``torch.save(net.state_dict())`` dicts of tensors, read with
``torch.load(..., weights_only=True)``, which resolves only tensor types and never executes
code stored in a file (the same restricted unpickler for the old, pre-zip format).  The
parameter names are the reference's own (`ganforge.models.biggan` keeps them), so each network
loads strictly once its settings are known.  Those come from the tensors: the resolution from
the number of G blocks, the widths from the first block's convolution, the shared embedding
and the hierarchical chunk from the conditional batch norm's input size, attention from the
blocks that hold a ``gamma``, the classes from D's embedding.  What the tensors cannot tell
(the two epsilons) comes from the run's ``state_dict.pth`` config when it is there, else from
the values of the reference's ImageNet launch scripts.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..models.biggan import D_BLOCKS, G_WIDTHS

#: A few keys every BigGAN-PyTorch generator has, and D's.
G_KEYS = (
    "linear.weight",
    "blocks.0.0.conv1.weight",
    "output_layer.0.gain",
    "output_layer.2.weight",
)
D_KEYS = ("blocks.0.0.conv1.weight", "linear.weight", "embed.weight")
#: What the launch scripts of the published ImageNet models pass (``--SN_eps 1e-6 --BN_eps 1e-5``).
DEFAULT_EPS = {"sn_eps": 1e-6, "bn_eps": 1e-5}


@dataclass
class BigGANFiles:
    """The tensors found beside one another, and the architecture they describe."""

    G: dict[str, torch.Tensor] | None
    G_ema: dict[str, torch.Tensor] | None
    D: dict[str, torch.Tensor] | None
    arch: dict[str, Any] = field(default_factory=dict)  # biggan Config keys
    channels: int = 3
    num_classes: int = 0
    config: dict[str, Any] | None = None  # the reference's own, from state_dict.pth
    files: dict[str, str] = field(default_factory=dict)


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{path}: not a state dict torch can read without executing code ({first[:160]})"
        ) from None


def _state(path: Path, what: str, required: tuple[str, ...]) -> dict[str, torch.Tensor]:
    state = _read(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        kind = type(state).__name__
        raise UserError(f"{path}: expected BigGAN-PyTorch's {what} state dict, found a {kind}")
    missing = [k for k in required if k not in state]
    if missing:
        found = ", ".join(list(state)[:4]) + (", ..." if len(state) > 4 else "")
        raise UserError(
            f"{path} is not BigGAN-PyTorch's {what} state dict: expected keys "
            f"{', '.join(required)}; it lacks {', '.join(missing)} and holds {len(state)} "
            f"tensors ({found or 'none'})"
        )
    return state


def read_biggan_files(path: str | Path) -> BigGANFiles:
    """``G.pth`` or ``G_ema.pth`` (and whichever of ``G.pth``, ``G_ema.pth``, ``D.pth``,
    ``state_dict.pth`` lie beside it, with the same suffix), read and understood."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"state dict '{path}' does not exist")
    # utils.save_weights names them G.pth, G_ema.pth, D.pth, state_dict.pth, with a suffix
    # for copies (G_ema_best0.pth); any prefix ending in "_" is kept too (NAME_G.pth)
    m = re.fullmatch(r"((?:.*_)?)(G_ema|G|D)((?:_.*)?)\.pth", path.name)
    if m is None:
        raise UserError(
            f"{path.name}: give BigGAN-PyTorch's G.pth or G_ema.pth (D.pth and state_dict.pth "
            "beside it are read too)"
        )
    if m[2] == "D":
        raise UserError(
            f"{path.name} holds a discriminator; give the G.pth or G_ema.pth beside it "
            "(the D.pth is read too)"
        )
    prefix, suffix, folder = m[1], m[3], path.parent
    names = ("G", "G_ema", "D", "state_dict")
    found = {name: folder / f"{prefix}{name}{suffix}.pth" for name in names}
    nets: dict[str, Any] = {}
    for name in ("G", "G_ema", "D"):
        file = found[name]
        if file == path or (file.is_file() and name != m[2]):
            nets[name] = _state(
                file,
                "discriminator" if name == "D" else "generator",
                D_KEYS if name == "D" else G_KEYS,
            )
    config = _config(found["state_dict"])
    out = BigGANFiles(nets.get("G"), nets.get("G_ema"), nets.get("D"), config=config)
    out.files = {k: v.name for k, v in found.items() if k in nets}
    _infer(out, path)
    return out


def _config(path: Path) -> dict[str, Any] | None:
    """The reference's run config from ``state_dict.pth``, when it is there and readable."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - optional: the tensors alone suffice
        return None
    config = state.get("config") if isinstance(state, dict) else None
    return config if isinstance(config, dict) else None


def _infer(files: BigGANFiles, path: Path) -> None:
    """The biggan Config keys (and channels, classes) that the tensors describe."""
    g = files.G_ema if files.G_ema is not None else files.G
    assert g is not None
    blocks = 1 + max(int(k.split(".")[1]) for k in g if k.startswith("blocks."))
    resolution = 4 * 2**blocks
    if resolution not in G_WIDTHS:
        raise UserError(f"{path}: a generator of {blocks} blocks ({resolution} px) is not BigGAN's")
    first_in = g["blocks.0.0.conv1.weight"].shape[1]
    g_ch = first_in // G_WIDTHS[resolution][0][0]
    shared = "shared.weight" in g
    gain = g["blocks.0.0.bn1.gain.weight"]
    if shared:
        num_classes, shared_dim = g["shared.weight"].shape
        z_chunk = gain.shape[1] - shared_dim
    else:
        num_classes, shared_dim, z_chunk = gain.shape[0], 0, 0
    first = g["linear.weight"].shape[1]
    hier = z_chunk > 0
    arch: dict[str, Any] = {
        "resolution": resolution,
        "g_ch": g_ch,
        "z_dim": first * (blocks + 1) if hier else first,
        "shared": shared,
        "shared_dim": shared_dim if shared else 128,
        "hier": hier,
        "g_attn": [8 * 2**i for i in range(blocks) if f"blocks.{i}.1.gamma" in g],
    }
    sn_g = "linear.u0" in g
    num_svs = sum(1 for k in g if re.fullmatch(r"linear\.u\d+", k)) or 1
    d = files.D
    sn_d = True
    if d is not None:
        widths, _, names = D_BLOCKS[resolution]
        d_blocks = 1 + max(int(k.split(".")[1]) for k in d if k.startswith("blocks."))
        if d_blocks != len(widths):
            raise UserError(
                f"{path}: D has {d_blocks} blocks, but a {resolution} px BigGAN D has {len(widths)}"
            )
        d_ch = d["blocks.0.0.conv1.weight"].shape[0] // widths[0]
        second = d["blocks.1.0.conv1.weight"].shape
        arch["d_ch"] = d_ch
        arch["d_wide"] = bool(second[0] == widths[1] * d_ch)
        arch["d_attn"] = sorted({names[i] for i in range(d_blocks) if f"blocks.{i}.1.gamma" in d})
        d_classes = d["embed.weight"].shape[0]
        if d_classes != num_classes:
            raise UserError(
                f"{path}: G has {num_classes} classes but the D.pth beside it {d_classes}"
            )
        sn_d = "linear.u0" in d
    else:
        arch["d_ch"], arch["d_attn"] = g_ch, list(arch["g_attn"])
    if sn_g != sn_d or not sn_g:
        arch["spectral_norm"] = sn_g or sn_d
        arch["spectral_norm_scope"] = "both" if sn_g and sn_d else ("G" if sn_g else "D")
    arch["num_svs"] = num_svs
    cfg = files.config or {}
    arch["sn_eps"] = float(cfg.get("SN_eps", DEFAULT_EPS["sn_eps"]))
    arch["bn_eps"] = float(cfg.get("BN_eps", DEFAULT_EPS["bn_eps"]))
    if "num_G_SV_itrs" in cfg:
        arch["sn_itrs"] = int(cfg["num_G_SV_itrs"])
    files.arch = arch
    files.channels = g["output_layer.2.weight"].shape[0]
    files.num_classes = int(num_classes)
