"""Turn published networks into ordinary GANForge run folders.

``ganforge import stylegan2 network-snapshot.pkl --out RUN_DIR`` reads NVIDIA's StyleGAN2-ADA
pickle without executing it (`stylegan2_pickle.read_network_pickle`), builds GANForge's
``stylegan2`` with the inferred architecture, loads G_ema, G and D into it (strictly: every
tensor must find its place) and writes a run folder that ``ganforge.load``, ``ganforge sample``,
``ganforge eval`` and the latent tools use like any trained run (the StyleGAN2 pickles of the
StyleGAN3 release too; a URL is downloaded once into a cache).  ``ganforge import biggan
G.pth --out RUN_DIR`` does the same for BigGAN-PyTorch's state dicts (`biggan_state`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from .._version import __version__
from ..config import build_config
from ..data import DataSpec
from ..engine.checkpoint import CHECKPOINT_DIR, save_checkpoint
from ..errors import UserError
from ..models import get_family
from .biggan_state import read_biggan_files
from .downloads import fetch_network, is_url
from .stylegan2_pickle import read_network_pickle

# says what long one-time work is doing before it starts (shown by the CLI; see cli.py)
log = logging.getLogger("ganforge")

#: keys of the pickle's inferred architecture that describe the data or are recorded only
_SPEC_KEYS = ("channels", "num_classes")
_RECORDED = ("num_fp16_res", "d_num_fp16_res", "resample_filter", "activation")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def import_stylegan2(pickle_path: str | Path, out: str | Path) -> Path:
    """Import a StyleGAN2 network pickle (StyleGAN2-ADA's, or the StyleGAN3 release's), a file
    or an http(s) URL (downloaded once into the cache, `downloads.fetch_network`), into the new
    run folder ``out``; returns it."""
    out = Path(out)
    _check_out(out)  # before any download: a taken --out costs nothing
    source = str(pickle_path)
    pickle_path = fetch_network(pickle_path)
    if not pickle_path.is_file():
        raise UserError(f"network pickle '{pickle_path}' does not exist")
    log.info(f"reading the networks in {pickle_path} (nothing stored in it is executed)")
    nets = read_network_pickle(pickle_path)
    arch = dict(nets.config)
    spec = DataSpec(
        channels=arch["channels"],
        resolution=arch["resolution"],
        num_classes=arch["num_classes"],
        name=_dataset_name(nets.training_set_kwargs),
    )
    if spec.channels not in (1, 3):
        raise UserError(f"{pickle_path}: {spec.channels}-channel networks are not supported")
    recorded = {k: arch.pop(k) for k in _RECORDED if k in arch}
    for key in _SPEC_KEYS:
        arch.pop(key)
    arch["conditional"] = spec.num_classes > 0
    overrides = [(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in arch.items()]
    cfg = build_config("stylegan2", "paper", overrides=overrides)
    model = get_family("stylegan2")(cfg.family, spec)
    # the pickle's networks onto the family's declared ones (same names: G, D and G's average)
    networks, averages = model.networks(), model.ema_networks()
    _load(averages["G"], nets.G_ema, "G_ema", pickle_path)
    _load(networks["G"], nets.G if nets.G is not None else nets.G_ema, "G", pickle_path)
    if nets.D is not None:
        _load(networks["D"], nets.D, "D", pickle_path)
    imported = {
        "format": nets.format,
        **({"url": source} if is_url(source) else {}),
        **nets.recorded,  # the StyleGAN3 release's fused_modconv_default
        "has_G": nets.G is not None,
        "has_D": nets.D is not None,
        "training_set_kwargs": nets.training_set_kwargs,
        **recorded,
    }
    return _write_run(out, cfg, spec, model, pickle_path, imported)


def _check_out(out: Path) -> None:
    if (out / "config.yaml").exists() or (out / CHECKPOINT_DIR).exists():
        raise UserError(
            f"'{out}' already holds a run; choose another --out (runs are never overwritten)"
        )


def _write_run(
    out: Path, cfg, spec: DataSpec, model, source: Path, imported: dict[str, Any]
) -> Path:
    """The run folder of an imported network: config.yaml and one checkpoint (step 0) whose
    meta.json records where the tensors came from."""
    meta: dict[str, Any] = {
        "family": cfg.model,
        "preset": cfg.preset,
        "config": cfg.to_dict(),
        "data_spec": spec.to_dict(),
        "ganforge_version": __version__,
        "losses": {},
        "metrics": {},
        "imported": {"from": source.name, "sha256": _sha256(source), **imported},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(cfg.to_yaml())
    # no optimizer state: an imported network is for use; training state starts fresh
    state = {"step": 0, "imported": True}
    save_checkpoint(out, 0, model.state_dict(), state, meta, keep=1)
    return out


def import_biggan(path: str | Path, out: str | Path) -> Path:
    """Import BigGAN-PyTorch's ``G.pth``/``G_ema.pth`` (with the ``D.pth`` and
    ``state_dict.pth`` beside it) into the new run folder ``out``; returns it.  A missing
    G_ema is G's copy; a missing D keeps its initial weights (recorded as ``has_D`` false)."""
    path, out = Path(path), Path(out)
    _check_out(out)
    log.info(f"reading the state dicts beside {path} (nothing stored in them is executed)")
    files = read_biggan_files(path)
    spec = DataSpec(
        channels=files.channels,
        resolution=files.arch["resolution"],
        num_classes=files.num_classes,
        name=f"imported:{path.parent.name or path.stem}",
    )
    if spec.channels not in (1, 3):
        raise UserError(f"{path}: {spec.channels}-channel networks are not supported")
    overrides = [(k, json.dumps(v)) for k, v in files.arch.items()]
    cfg = build_config("biggan", "pytorch128", overrides=overrides)
    model = get_family("biggan")(cfg.family, spec)
    G = files.G if files.G is not None else files.G_ema
    G_ema = files.G_ema if files.G_ema is not None else G
    _load(model.networks()["G"], G, "G", path, "biggan")
    _load(model.ema_networks()["G"], G_ema, "G_ema", path, "biggan")
    if files.D is not None:
        _load(model.networks()["D"], files.D, "D", path, "biggan")
    imported = {
        "format": "biggan-pytorch",
        "files": files.files,
        "has_G": files.G is not None,
        "has_G_ema": files.G_ema is not None,
        "has_D": files.D is not None,
        "reference_config": _plain(files.config),
    }
    return _write_run(out, cfg, spec, model, path, imported)


def _plain(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The reference's config with only JSON values (it is recorded, never used to build)."""
    if config is None:
        return None
    return {k: v for k, v in config.items() if isinstance(v, str | int | float | bool | None)}


def _load(module, state: dict, what: str, path: Path, family: str = "stylegan2") -> None:
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a shape that disagrees with the inferred architecture
        first = str(err).strip().splitlines()[-1].strip()
        raise UserError(f"{path}: {what} does not fit GANForge's {family} ({first})") from None
    if result.missing_keys or result.unexpected_keys:
        detail = ", ".join(
            [f"missing {k}" for k in result.missing_keys[:3]]
            + [f"unexpected {k}" for k in result.unexpected_keys[:3]]
        )
        raise UserError(f"{path}: {what} does not fit GANForge's {family} ({detail})")


def _dataset_name(kwargs: dict | None) -> str:
    if kwargs and isinstance(kwargs.get("path"), str):
        return "imported:" + Path(kwargs["path"]).name
    return "imported"
