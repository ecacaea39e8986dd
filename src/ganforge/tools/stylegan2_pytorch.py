"""Checkpoints of lucidrains' ``stylegan2_pytorch`` package: import one as a run, or generate
from it directly with the `ModelLoader` a book's examples use.

The package's trainer (``stylegan2_pytorch --data DIR --name NAME``) writes
``models/NAME/model_N.pt``, a ``torch.save`` of ``{'GAN': state_dict, 'version': '1.9.0'}``
(plus ``'amp'`` under apex fp16), and ``models/NAME/.config.json`` with the options the tensors
cannot tell (``image_size``, ``network_capacity``, ``transparent``, ``lr_mlp``, ``attn_layers``,
``no_const``, ``fq_layers``, ``fq_dict_size``).  The file is read with
``torch.load(weights_only=True)``, which rebuilds tensors and never runs code from the file.
The state dict holds the mapping network ``S``, generator ``G``, discriminator ``D`` and their
averages ``SE``/``GE`` (``D_aug.D`` is D again; ``D_cl``, the contrastive head, is not used).
The latent size and mapping depth, the widths (``fmap_max`` is not in the config, and
versions before 1.5.4 sized D without ``network_capacity``), the attention layers and
``no_const`` are read from the tensors and checked against the config.

Supported: the versions whose network code is 1.9.0's (`SUPPORTED`): 1.2.5, the first to record
its version, to 1.9.0 without attention; with ``attn_layers``, 1.8.0-1.8.2 and 1.8.5-1.9.0
(before 1.8.8 the attention's norm divided by ``std + eps``, `attn_norm_legacy`; 1.8.3-1.8.4
used instance norm and earlier versions other attention modules, which are refused).

The package draws a fresh uniform noise image for every call and re-estimates its truncation
centre from 2,000 random latents in every session, so its images are never repeatable.  Here
both are fixed: the centre is the mean w of 2,000 latents from seed 0 (`Generator.mean_w`),
computed once per generator at import (``w_avg``), and the noise image is an argument
(``generate(..., noise=)``) or drawn from the seed.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import build_config
from ..data import DataSpec
from ..errors import UserError
from ..models import get_family
from ..models.stylegan2_pytorch import Config, Generator
from .imports import _check_out, _load, _write_run

log = logging.getLogger("ganforge")

FAMILY = "stylegan2-pytorch"
SUPPORTED = "1.2.5 to 1.9.0 (with attn_layers: 1.8.0 to 1.8.2 and 1.8.5 to 1.9.0)"
FIRST, LAST = (1, 2, 5), (1, 9, 0)
#: the truncation centre: the mean w of this many latents drawn from this seed
W_AVG_SAMPLES, W_AVG_SEED = 2000, 0
#: the seed of the stored noise image (the networks' noise_mode="const")
NOISE_SEED = 0
_NETS = ("S", "G", "D", "SE", "GE")
_UNUSED = ("D_aug", "D_cl")  # D again; the contrastive regularizer's head


@dataclass
class PackageCheckpoint:
    """One ``model_N.pt`` and the ``.config.json`` beside it, understood."""

    path: Path
    version: str
    package_config: dict[str, Any]
    arch: dict[str, Any]  # stylegan2-pytorch Config keys
    channels: int  # 3, or 4 when transparent
    G: dict[str, torch.Tensor]  # S + G as GANForge's Generator names them
    G_ema: dict[str, torch.Tensor]  # SE + GE
    D: dict[str, torch.Tensor] = field(default_factory=dict)
    fq_layers: list[int] = field(default_factory=list)


def newest_checkpoint(folder: str | Path, load_from: int = -1) -> Path:
    """``model_N.pt`` in ``folder`` with the largest N (as the package's trainer resumes), or
    ``model_{load_from}.pt``."""
    folder = Path(folder)
    if load_from >= 0:
        path = folder / f"model_{load_from}.pt"
        if not path.is_file():
            raise UserError(f"'{path}' does not exist; omit load_from for the newest checkpoint")
        return path
    numbered = {}
    for path in folder.glob("model_*.pt"):
        m = re.fullmatch(r"model_(\d+)\.pt", path.name)
        if m:
            numbered[int(m[1])] = path
    if not numbered:
        raise UserError(
            f"'{folder}' holds no model_N.pt; train one with stylegan2_pytorch --data DIR "
            f"--name {folder.name}, or point at the folder that holds them"
        )
    return numbered[max(numbered)]


def read_checkpoint(path: str | Path, *, with_D: bool = True) -> PackageCheckpoint:
    """Read ``model_N.pt`` (or the newest in a folder) and its ``.config.json``; one-line
    `UserError` for anything this importer cannot rebuild exactly.  ``with_D`` False skips the
    discriminator (generating needs only the average generator)."""
    path = Path(path)
    if path.is_dir():
        path = newest_checkpoint(path)
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist")
    config_path = path.parent / ".config.json"
    if not config_path.is_file():
        raise UserError(
            f"'{config_path}' is missing: stylegan2_pytorch writes it beside {path.name} with "
            "the options the tensors do not hold; copy it from the training machine"
        )
    config = _read_config(config_path)
    data = _read_file(path)
    version = _check_version(data, path, config)
    state = data["GAN"]
    groups = _split(state, path)
    arch, channels = _architecture(groups, config, version, path, config_path, with_D)
    fq = [int(v) for v in _as_list(config.get("fq_layers", []))]
    return PackageCheckpoint(
        path=path,
        version=version,
        package_config=config,
        arch=arch,
        channels=channels,
        G=_generator_state(groups["S"], groups["G"]),
        G_ema=_generator_state(groups["SE"], groups["GE"]),
        D=groups["D"] if with_D else {},
        fq_layers=fq,
    )


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"'{path}' is not the package's JSON config ({err})") from None
    if not isinstance(config, dict):
        raise UserError(f"'{path}' holds a {type(config).__name__}, not the package's config")
    for key in ("image_size", "network_capacity"):
        if not isinstance(config.get(key), int) or isinstance(config.get(key), bool):
            raise UserError(f"'{path}' has no whole-number '{key}'; it is not the package's config")
    return config


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{path}: not a checkpoint torch can read without executing code ({first[:160]})"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("GAN"), dict):
        found = f"keys {', '.join(map(str, list(data)[:4]))}" if isinstance(data, dict) else None
        raise UserError(
            f"{path}: expected stylegan2_pytorch's {{'GAN': state dict, 'version': ...}}, found "
            f"{found or 'a ' + type(data).__name__}"
        )
    return data


def _version_tuple(text: str) -> tuple[int, ...] | None:
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", text.strip())
    return tuple(int(v) for v in m.groups()) if m else None


def _check_version(data: dict[str, Any], path: Path, config: dict[str, Any]) -> str:
    version = data.get("version")
    if version is None:
        raise UserError(
            f"{path} records no package version (written before 1.2.5); supported versions: "
            f"{SUPPORTED}"
        )
    found = _version_tuple(str(version))
    if found is None or not FIRST <= found <= LAST:
        raise UserError(
            f"{path} was written by stylegan2_pytorch {version}; supported versions: {SUPPORTED}"
        )
    if _as_list(config.get("attn_layers", [])) and not (
        (1, 8, 0) <= found <= (1, 8, 2) or (1, 8, 5) <= found
    ):
        raise UserError(
            f"{path} was written by stylegan2_pytorch {version}, whose attention layers differ "
            f"from 1.9.0's; supported versions with attn_layers: 1.8.0 to 1.8.2 and 1.8.5 to "
            f"{'.'.join(map(str, LAST))}"
        )
    return str(version)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _split(state: dict[str, Any], path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The state dict by network: ``{"S": {...}, "G": {...}, ...}`` with the prefix removed."""
    groups: dict[str, dict[str, torch.Tensor]] = {name: {} for name in _NETS}
    for key, value in state.items():
        head, _, rest = str(key).partition(".")
        if head in _UNUSED:
            continue
        if head not in groups or not isinstance(value, torch.Tensor):
            raise UserError(
                f"{path}: unexpected entry '{key}' in the state dict; expected the package's "
                f"networks {', '.join(_NETS)}"
            )
        groups[head][rest] = value.float() if value.is_floating_point() else value
    for name in _NETS:
        if not groups[name]:
            raise UserError(f"{path}: the state dict has no '{name}.' tensors; not a full GAN")
    return groups


def _generator_state(mapping: dict, synthesis: dict) -> dict[str, torch.Tensor]:
    state = {f"mapping.{k}": v for k, v in mapping.items()}
    state |= {f"synthesis.{k}": v for k, v in synthesis.items()}
    return state


def _count(state: dict[str, torch.Tensor], pattern: str) -> list[int]:
    """The indices ``i`` of keys matching ``pattern`` (with one ``(\\d+)``), sorted."""
    return sorted({int(m[1]) for k in state if (m := re.fullmatch(pattern, k))})


def _architecture(
    groups: dict[str, dict[str, torch.Tensor]],
    config: dict[str, Any],
    version: str,
    path: Path,
    config_path: Path,
    with_D: bool,
) -> tuple[dict[str, Any], int]:
    """GANForge Config keys (and the image channels) from the tensors, checked against the
    package's config."""
    se, ge, d = groups["SE"], groups["GE"], groups["D"]
    where = f"{path} (stylegan2_pytorch {version})"
    layers = _count(se, r"net\.(\d+)\.weight")
    blocks = _count(ge, r"blocks\.(\d+)\.conv1\.weight")
    if not layers or not blocks or "net.0.weight" not in se:
        raise UserError(f"{where}: the generator has no mapping layers or blocks")
    z_dim = se["net.0.weight"].shape[1]
    num_layers = len(blocks)
    resolution = 2 ** (num_layers + 1)
    if resolution != config["image_size"]:
        raise UserError(
            f"{where}: the generator has {num_layers} blocks ({resolution} px) but "
            f"{config_path.name} says image_size {config['image_size']}"
        )
    channels = ge[f"blocks.{blocks[-1]}.to_rgb.conv.weight"].shape[0]
    if channels != (4 if config.get("transparent") else 3):
        raise UserError(
            f"{where}: the generator draws {channels} channels but {config_path.name} says "
            f"transparent {config.get('transparent')}"
        )
    attn = sorted(
        {num_layers - i for i in _count(ge, r"attns\.(\d+)\..*")}
        | {k + 1 for k in _count(d, r"attn_blocks\.(\d+)\..*")}
    )
    listed = sorted(int(v) for v in _as_list(config.get("attn_layers", [])))
    if attn != [v for v in listed if 1 <= v <= num_layers + 1]:
        raise UserError(
            f"{where}: attention is at layers {attn} but {config_path.name} says attn_layers "
            f"{listed}"
        )
    has_channel_norm = any(k.endswith(".norm.g") for k in (*ge, *d))
    if attn and not has_channel_norm:
        raise UserError(
            f"{where}: attention without the 1.9.0 channel norm; supported: {SUPPORTED}"
        )
    g_widths = [ge[f"blocks.{i}.conv1.weight"].shape[0] for i in blocks]
    capacity, fmap_max = _capacity(g_widths[::-1], 2, where, "generator")
    arch: dict[str, Any] = {
        "resolution": resolution,
        "z_dim": int(z_dim),
        "mapping_layers": len(layers),
        "lr_mlp": float(config.get("lr_mlp", 0.1)),
        "network_capacity": capacity,
        "fmap_max": fmap_max,
        "attn_layers": attn,
        "no_const": "to_initial_block.weight" in ge,
        "attn_norm_legacy": bool(attn) and _version_tuple(version) < (1, 8, 8),
    }
    if with_D:
        d_blocks = _count(d, r"blocks\.(\d+)\.net\.0\.weight")
        if len(d_blocks) != num_layers + 1:
            raise UserError(f"{where}: D has {len(d_blocks)} blocks; expected {num_layers + 1}")
        d_widths = [d[f"blocks.{i}.net.0.weight"].shape[0] for i in d_blocks]
        arch["d_network_capacity"], arch["d_fmap_max"] = _capacity(d_widths, 4, where, "D")
    return arch, int(channels)


def _capacity(widths: list[int], unit: int, where: str, what: str) -> tuple[int, int]:
    """(capacity, fmap_max) whose rule ``min(capacity * unit * 2^i, fmap_max)`` gives
    ``widths`` (smallest first)."""
    capacity = widths[0] // unit
    top = 512 if max(widths) <= 512 else max(widths)
    if widths[-1] < min(capacity * unit * 2 ** (len(widths) - 1), top):
        top = widths[-1]  # clipped by a smaller fmap_max
    rule = [min(capacity * unit * 2**i, top) for i in range(len(widths))]
    if capacity < 1 or rule != widths:
        raise UserError(f"{where}: the {what} widths {widths} follow no network_capacity")
    return capacity, top


# ----- the run --------------------------------------------------------------------------------
def import_stylegan2_pytorch(path: str | Path, out: str | Path) -> Path:
    """Import ``models/NAME/model_N.pt`` (or the newest in the folder ``models/NAME``) with the
    ``.config.json`` beside it into the new run folder ``out``; returns it."""
    path, out = Path(path), Path(out)
    _check_out(out)
    log.info(f"reading the networks in {path} (nothing stored in it is executed)")
    ckpt = read_checkpoint(path)
    if ckpt.fq_layers:
        raise UserError(
            f"{ckpt.path.parent / '.config.json'}: vector quantization in D (fq_layers "
            f"{ckpt.fq_layers}) is not supported; ganforge.ModelLoader can still generate "
            "with its generator"
        )
    if ckpt.channels != 3:
        raise UserError(
            f"{ckpt.path.parent / '.config.json'}: transparent (RGBA) networks cannot become a "
            "run, whose images have 1 or 3 channels; ganforge.ModelLoader generates their "
            "RGBA images"
        )
    spec = DataSpec(
        channels=3,
        resolution=ckpt.arch["resolution"],
        num_classes=0,
        name=f"imported:{ckpt.path.parent.name}",
    )
    overrides = [(k, json.dumps(v)) for k, v in ckpt.arch.items()]
    cfg = build_config(FAMILY, "fmnist32", overrides=overrides)
    model = get_family(FAMILY)(cfg.family, spec)
    networks, averages = model.networks(), model.ema_networks()
    for net, state, what in ((networks["G"], ckpt.G, "G"), (averages["G"], ckpt.G_ema, "G_ema")):
        _load(net, _with_buffers(state, net), what, ckpt.path, FAMILY)
        net.w_avg.copy_(net.mean_w(W_AVG_SAMPLES, W_AVG_SEED))
    _load(networks["D"], ckpt.D, "D", ckpt.path, FAMILY)
    imported = {
        "format": "stylegan2_pytorch",
        "package_version": ckpt.version,
        "checkpoint": ckpt.path.name,
        "package_config": ckpt.package_config,
        "w_avg": f"mean w of {W_AVG_SAMPLES} latents from seed {W_AVG_SEED}, per generator",
        "noise_image": f"uniform [0, 1] from seed {NOISE_SEED} (noise_mode const)",
    }
    return _write_run(out, cfg, spec, model, ckpt.path, imported)


def _with_buffers(state: dict[str, torch.Tensor], net: Generator) -> dict[str, torch.Tensor]:
    """The package's tensors plus GANForge's two buffers: the truncation centre (set after
    loading, from the loaded mapping) and the stored noise image, drawn from `NOISE_SEED`."""
    r = net.synthesis.resolution
    noise = torch.rand(1, r, r, 1, generator=torch.Generator().manual_seed(NOISE_SEED))
    w_avg = torch.zeros(net.w_avg.shape)
    return {**state, "w_avg": w_avg, "synthesis.noise_image": noise}


# ----- the seeds' loader ----------------------------------------------------------------------
class ModelLoader:
    """``ModelLoader(name='ffhq', load_model=True, base_dir='./models')``: the average generator
    of ``base_dir/NAME/`` (the newest ``model_N.pt``, or ``load_from``) as the package's
    trainer writes it; ``base_dir/models/NAME/`` (the package's own ``base_dir``) works too.

    ``generate(latent_vectors)`` gives images ``[N, C, H, W]`` in the package's [0, 1] range
    (C = 4 for transparent networks), on the CPU, ready to plot.  ``load_model=False`` defers
    reading the file to the first call.  Nothing stored in the file is executed."""

    def __init__(
        self,
        name: str = "default",
        load_model: bool = True,
        base_dir: str | Path = "./models",
        *,
        load_from: int = -1,
        device: str | torch.device | None = None,
    ) -> None:
        self.name, self.base_dir, self.load_from = name, Path(base_dir), load_from
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.checkpoint: Path | None = None
        self.version: str | None = None
        self._G: Generator | None = None
        if load_model:
            self.load()

    def _folder(self) -> Path:
        tried = [self.base_dir / self.name, self.base_dir / "models" / self.name]
        for folder in tried:
            if folder.is_dir():
                return folder
        raise UserError(
            f"no model folder '{self.name}' in {tried[0].parent} or {tried[1].parent}; give "
            "base_dir, the folder that holds NAME/model_N.pt"
        )

    def load(self) -> ModelLoader:
        """Read the checkpoint and build its average generator (``SE`` + ``GE``)."""
        path = newest_checkpoint(self._folder(), self.load_from)
        ckpt = read_checkpoint(path, with_D=False)
        # built on the meta device: no memory or random draws for weights replaced at once
        # (the global RNG, which gives the package's noise, is left as the user seeded it)
        with torch.device("meta"):
            G = Generator(Config(**ckpt.arch), ckpt.channels)
        G.load_state_dict(_with_buffers(ckpt.G_ema, G), strict=True, assign=True)
        G.w_avg.copy_(G.mean_w(W_AVG_SAMPLES, W_AVG_SEED))
        self._G = G.eval().requires_grad_(False).to(self.device)
        self.checkpoint, self.version = path, ckpt.version
        return self

    @property
    def generator(self) -> Generator:
        """The average generator (GANForge's module; images in [-1, 1])."""
        if self._G is None:
            self.load()
        return self._G

    def _latents(self, latent_vectors: Any) -> torch.Tensor:
        if isinstance(latent_vectors, torch.Tensor):
            z = latent_vectors.detach().float().cpu()
        else:
            z = torch.as_tensor(np.asarray(latent_vectors, dtype=np.float32))
        z = z.reshape(1, -1) if z.ndim == 1 else z
        width = self.generator.z_dim
        if z.ndim != 2 or z.shape[1] != width:
            raise UserError(
                f"latent_vectors have shape {list(z.shape)}; this network takes [n, {width}]"
            )
        if not torch.isfinite(z).all():
            raise UserError("latent_vectors hold NaN or infinite values; give finite latents")
        return z.to(self.device)

    def _noise(self, n: int, noise: Any) -> torch.Tensor:
        r = self.generator.synthesis.resolution
        if noise is None:  # the package's image_noise: uniform, from the global RNG
            return torch.rand(n, r, r, 1).to(self.device)
        noise = torch.as_tensor(noise, dtype=torch.float32)
        if tuple(noise.shape) != (n, r, r, 1):
            raise UserError(f"noise has shape {list(noise.shape)}; give [{n}, {r}, {r}, 1]")
        return noise.to(self.device)

    @torch.no_grad()
    def generate(
        self, latent_vectors: Any, *, truncation: float | None = None, noise: Any = None
    ) -> torch.Tensor:
        """Images ``[N, C, H, W]`` in [0, 1] from z ``[N, latent_dim]`` (a tensor or array);
        ``truncation``: psi around the mean w (None: none); ``noise``: the noise image
        ``[N, H, W, 1]`` (None: uniform, drawn from torch's global RNG as the package does)."""
        z = self._latents(latent_vectors)
        ws = self.generator.map(z, truncation=1.0 if truncation is None else truncation)
        return self._images(ws, noise)

    @torch.no_grad()
    def noise_to_styles(self, noise: Any, trunc_psi: float | None = None) -> torch.Tensor:
        """The package's ``noise_to_styles``: z -> w ``[N, latent_dim]`` (truncated by
        ``trunc_psi`` around the mean w when given)."""
        z = self._latents(noise)
        return self.generator.map(z, truncation=1.0 if trunc_psi is None else trunc_psi)[:, 0]

    @torch.no_grad()
    def styles_to_images(self, w: Any, *, noise: Any = None) -> torch.Tensor:
        """The package's ``styles_to_images``: w ``[N, latent_dim]`` -> images in [0, 1]."""
        w = self._latents(w)
        return self._images(w.unsqueeze(1).repeat(1, self.generator.num_ws, 1), noise)

    def _images(self, ws: torch.Tensor, noise: Any) -> torch.Tensor:
        images = self.generator.synthesis(ws, noise=self._noise(ws.shape[0], noise))
        return ((images + 1) / 2).clamp(0, 1).cpu()
