"""Latent-space tools: walks between seeds, the style-mixing figure, projection of an image.

A seed names a latent the way `generate` does: seed ``s`` gives the z of ``generate(1, seed=s)``
(the first image of ``generate(n, seed=s)``), drawn from ``torch.Generator().manual_seed(s)``,
so a seed seen in a sample grid can be walked to, mixed or compared here.

Style-based generators (``G.map`` z -> ws ``[N, num_ws, w_dim]``, ``G.synthesis`` ws -> images)
get the W-space versions: a walk is linear in W, where the mapping network has already made the
space flat enough that straight lines give smooth changes (Karras et al. 2019), and z is only
used through the mapping.  Other families walk in z along great circles (`slerp`), because a
Gaussian z of high dimension lies near a sphere of radius sqrt(z_dim) and a straight line
between two such points passes through the improbable middle of the ball.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..models.stylenets import check_sampling

# says what long one-time work is doing before it starts (shown by the CLI; see cli.py)
log = logging.getLogger("ganforge")

#: what a generator must have to count as style-based


# ----- which network, which latents -----------------------------------------------------------
def _unwrap(model: Any) -> nn.Module:
    """A `GANModel` from itself or from `ganforge.load`'s `LoadedModel`."""
    inner = getattr(model, "model", None)
    return inner if isinstance(inner, nn.Module) else model


def generator_of(model: Any) -> nn.Module:
    """The generator images come from, as the family declares it (its EMA copy if kept)."""
    return _unwrap(model).generator()


def is_style_based(model: Any) -> bool:
    """Whether the family says its generator maps z to styles w (``map``/``synthesis``)."""
    return _unwrap(model).task.styles


def style_generator(model: Any, what: str) -> nn.Module:
    """The style-based generator of ``model``; a one-line error for other families."""
    if not is_style_based(model):
        family = type(_unwrap(model)).__name__.lower()
        raise UserError(
            f"{what} needs a style-based generator (stylegan2, stylegan); this model is a {family}"
        )
    return generator_of(model)


def int_ranges(text: str, what: str) -> list[tuple[int, int]]:
    """The inclusive ``(first, last)`` ranges of ``"1,2,5"``, ``"0-3"`` or ``"0-2,7"``, checked
    but not expanded (so a caller can count them before building a list)."""
    ranges: list[tuple[int, int]] = []
    for item in text.split(","):
        # at most 18 digits: int() of a longer run is slow and past 4,300 digits refused
        match = re.fullmatch(r"\s*(\d{1,18})\s*(?:-\s*(\d{1,18})\s*)?", item)
        if match is None:
            raise UserError(
                f"{what} {text!r}: expected whole numbers or ranges a-b separated by commas, "
                "e.g. 1,2,3 or 0-3"
            )
        first = int(match[1])
        last = int(match[2]) if match[2] is not None else first
        if last < first:
            raise UserError(f"{what} {text!r}: the range {item.strip()} runs backwards")
        ranges.append((first, last))
    return ranges


def parse_int_list(text: str | int | Sequence[int], what: str) -> list[int]:
    """``"1,2,5"``, ``"0-3"`` (inclusive) or a mix like ``"0-2,7"`` -> a list of ints."""
    if isinstance(text, int):
        return [text]
    if not isinstance(text, str):
        return [int(v) for v in text]
    return [v for first, last in int_ranges(text, what) for v in range(first, last + 1)]


def seed_inputs(
    model: Any, seeds: Sequence[int], labels: Any = None, truncation: float | None = None
) -> tuple[list[tuple[Any, ...]], torch.Tensor | None]:
    """G's inputs for each seed (`generator_inputs` of one image, first element z) and the
    per-seed labels (``None`` for unconditional models).  ``labels``: one class for all, one
    per seed, or ``None`` to cycle through the classes as `generate` does.  ``truncation``:
    applied to each seed's inputs in z as `generate` applies it (`truncated_inputs`, with the
    seed's own RNG), so seed s gives the z of ``generate(1, seed=s, truncation=...)``."""
    m = _unwrap(model)
    per_seed = m._labels(len(seeds), labels)
    inputs = []
    for i, seed in enumerate(seeds):
        label = per_seed[i : i + 1] if per_seed is not None else None
        gen = torch.Generator().manual_seed(int(seed))
        args = m.generator_inputs(1, label, gen)
        inputs.append(m.truncated_inputs(args, truncation, gen))
    return inputs, per_seed


def map_to_w(
    model: Any, net: nn.Module, z: torch.Tensor, labels: Any, truncation: float
) -> torch.Tensor:
    """``net.map`` with the truncation `generate` applies: psi around the mean w, on the
    family's ``truncation_cutoff`` first layers when its config has one (StyleGAN's)."""
    cutoff = getattr(_unwrap(model).cfg, "truncation_cutoff", None) or None
    psi = 1.0 if truncation is None else truncation
    return net.map(z, labels, truncation=psi, truncation_cutoff=cutoff)


# ----- interpolation --------------------------------------------------------------------------
def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Straight line: ``a + t (b - a)``, exactly ``a`` at t = 0 and ``b`` at t = 1."""
    like = {"dtype": a.dtype, "device": a.device}
    return torch.lerp(a, torch.as_tensor(b, **like), torch.as_tensor(t, **like))


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the last dimension: the direction turns along the great
    circle from ``a`` to ``b`` at constant angular speed while the length moves linearly from
    ``|a|`` to ``|b|``.  Unit vectors stay unit vectors; t = 0 and 1 give ``a`` and ``b``.

    Splitting direction and length (rather than Shoemake's formula on raw vectors) keeps a
    Gaussian z on its shell even when the two norms differ.  Nearly parallel vectors, where
    the angle is lost in rounding, fall back to a straight line of the directions."""
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    if t.ndim and t.ndim < a.ndim:
        t = t.reshape(*t.shape, *([1] * (a.ndim - t.ndim)))
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    cos = (ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    sin = torch.sin(omega)
    small = sin < 1e-6
    safe = torch.where(small, torch.ones_like(sin), sin)
    wa = torch.where(small, 1 - t, torch.sin((1 - t) * omega) / safe)
    wb = torch.where(small, t, torch.sin(t * omega) / safe)
    direction = wa * ua + wb * ub
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    out = direction * torch.lerp(na, nb, t)
    # exact endpoints, free of the rounding of the trigonometry
    out = torch.where(t == 0, a, out)
    return torch.where(t == 1, b, out)


def path_positions(
    num_seeds: int, frames: int, loop: bool = False
) -> tuple[list[int], list[float]]:
    """For each of ``frames`` frames, the seed it leaves from and how far along (0..1).

    Seed ``j`` sits exactly on frame ``round(j * span / segments)``, so every seed is shown; an
    open path ends on the last seed, a ``loop`` returns towards the first one, stopping a
    frame before it so that a looping GIF does not show it twice."""
    segments = num_seeds if loop else num_seeds - 1
    span = frames if loop else frames - 1
    stops = [math.floor(j * span / segments + 0.5) for j in range(segments + 1)]
    starts, ts = [], []
    for f in range(frames):
        seg = min(max(j for j in range(segments) if stops[j] <= f), segments - 1)
        starts.append(seg)
        ts.append((f - stops[seg]) / (stops[seg + 1] - stops[seg]))
    return starts, ts


def interpolate(
    model: Any,
    seeds: Sequence[int] | str,
    frames: int,
    *,
    space: str | None = None,
    truncation: float | None = None,
    labels: Any = None,
    noise_mode: str = "const",
    loop: bool = False,
    batch_size: int = 32,
) -> torch.Tensor:
    """A walk through the seeds' latents, in order: ``[frames, C, H, W]`` in [-1, 1]; the
    frames of `interpolate_chunks` (which takes the same arguments) put together."""
    chunks = interpolate_chunks(
        model,
        seeds,
        frames,
        space=space,
        truncation=truncation,
        labels=labels,
        noise_mode=noise_mode,
        loop=loop,
        batch_size=batch_size,
    )
    return torch.cat(list(chunks))


def interpolate_chunks(
    model: Any,
    seeds: Sequence[int] | str,
    frames: int,
    *,
    space: str | None = None,
    truncation: float | None = None,
    labels: Any = None,
    noise_mode: str = "const",
    loop: bool = False,
    batch_size: int = 32,
) -> Iterator[torch.Tensor]:
    """The walk of `interpolate` as consecutive chunks of at most ``batch_size`` frames
    ``[<=batch_size, C, H, W]`` in [-1, 1], each made only when it is asked for, so a long
    walk can stream to a file.  The arguments are checked at once, before the first chunk.

    ``frames`` is the total number of frames; frame 0 is the first seed's image and, unless
    ``loop``, the last frame is the last seed's (with ``loop`` the walk heads back to the first
    seed).  Every seed falls on a frame, so ``frames`` must be at least the number of seeds.
    ``space``: ``w`` (lerp of the mapped ws; the default for style-based models) or ``z``
    (slerp, then the mapping; the default, and the only choice, for other families, whose
    first input is interpolated whole: InfoGAN's codes with it).  ``labels`` (conditional):
    one class, one per seed, or None to cycle through the classes; in z, style-based models
    blend the one-hot labels, other families switch label half-way between two seeds."""
    m = _unwrap(model)
    seeds = parse_int_list(seeds, "--seeds")
    if len(seeds) < 2:
        raise UserError(f"an interpolation needs at least 2 seeds, got {len(seeds)}: {seeds}")
    if frames < 2:
        raise UserError(f"--frames {frames} is too few; use at least 2 (e.g. 60)")
    if frames < len(seeds):
        raise UserError(
            f"--frames {frames} is fewer than the {len(seeds)} seeds; every seed needs a frame"
        )
    net = generator_of(m)
    style = is_style_based(m)
    space = space or ("w" if style else "z")
    if space not in ("w", "z"):
        raise UserError(f"unknown latent space {space!r}; use w or z")
    if space == "w" and not style:
        style_generator(m, "interpolation in w")  # raises the family's error
    check_sampling(noise_mode=noise_mode)
    with torch.no_grad():  # truncation in z is applied to the seeds' latents, before the walk
        inputs, per_seed = seed_inputs(m, seeds, labels, None if style else truncation)
    z = torch.cat([args[0] for args in inputs])
    starts, ts = path_positions(len(seeds), frames, loop)
    a = torch.tensor(starts)
    b = (a + 1) % len(seeds)
    t = torch.tensor(ts, dtype=torch.float32, device=z.device)
    walk = (m, net, style, space, inputs, per_seed, z, a, b, t)
    return _frames(walk, frames, batch_size, truncation, noise_mode)


@torch.no_grad()
def _frames(walk, frames: int, batch_size: int, truncation: float, noise_mode: str):
    m, net, style, space, inputs, per_seed, z, a, b, t = walk
    was_training = net.training
    net.eval()
    try:
        for lo in range(0, frames, batch_size):
            s = slice(lo, lo + batch_size)
            if style:
                ws = _style_frames(m, net, z, per_seed, (a[s], b[s], t[s]), space, truncation)
                chunk = net.synthesis(ws, noise_mode=noise_mode)
            else:
                frame_z = slerp(z[a[s]], z[b[s]], t[s])
                start = [inputs[i] for i in a[s].tolist()]
                end = [inputs[i] for i in b[s].tolist()]
                args = m.walk_inputs(frame_z, start, end, t[s])
                chunk = m.synthesize(net, args, truncation=None, noise_mode=noise_mode)
            yield chunk.float().clamp(-1, 1)
    finally:
        net.train(was_training)


def _style_frames(m, net, z, per_seed, where, space, truncation) -> torch.Tensor:
    """The ws of frames of a style-based generator: lerp of ws, or slerp of z (and blended
    one-hot labels) before the mapping; ``where``: (from seed, to seed, t) per frame."""
    a, b, t = where
    check_sampling(truncation=truncation)
    if space == "w":
        ws = map_to_w(m, net, z, per_seed, truncation)
        return lerp(ws[a], ws[b], t.reshape(-1, 1, 1))
    else:
        labels = None
        if per_seed is not None:
            onehot = F.one_hot(per_seed, net.c_dim).float()
            labels = lerp(onehot[a], onehot[b], t.reshape(-1, 1))
    return map_to_w(m, net, slerp(z[a], z[b], t), labels, truncation)


# ----- style mixing ---------------------------------------------------------------------------
@torch.no_grad()
def style_mix(
    model: Any,
    rows: Sequence[int] | str,
    cols: Sequence[int] | str,
    layers: Sequence[int] | str,
    *,
    truncation: float | None = None,
    noise_mode: str = "const",
    label: int | None = None,
) -> torch.Tensor:
    """The style-mixing figure of StyleGAN as cells ``[(R + 1) * (C + 1), C, H, W]`` in
    [-1, 1], row-major: save it with ``save_grid(cells, path, nrow=len(cols) + 1)``.

    The first row holds the column seeds' images, the first column the row seeds' images and
    the top-left cell is blank (black, -1).  Cell (r, c) is the row seed's ws with the layers
    ``layers`` taken from the column seed, the convention of the reference code: the row seed
    is the base and the column seed the source of the copied styles.  Copying the first
    layers (coarse, 4x4 and 8x8) takes pose and shape from the column seed; copying the last
    ones takes only colour and fine texture.  Conditional models use class ``label`` for
    every seed (default 0)."""
    m = _unwrap(model)
    net = style_generator(m, "style mixing")
    row_seeds, col_seeds = parse_int_list(rows, "--rows"), parse_int_list(cols, "--cols")
    layer_list = parse_int_list(layers, "--layers")
    if not row_seeds or not col_seeds or not layer_list:
        raise UserError("style mixing needs at least one row seed, one column seed and one layer")
    bad = [i for i in layer_list if not 0 <= i < net.num_ws]
    if bad:
        raise UserError(
            f"--layers {layers}: layer {bad[0]} is outside this network's layers "
            f"0-{net.num_ws - 1}; choose within 0-{net.num_ws - 1}"
        )
    check_sampling(truncation=truncation, noise_mode=noise_mode)
    if m.task.labels and label is None:
        label = 0
    seeds = list(dict.fromkeys(row_seeds + col_seeds))
    inputs, per_seed = seed_inputs(m, seeds, label)
    was_training = net.training
    net.eval()
    try:
        z = torch.cat([args[0] for args in inputs])
        ws = map_to_w(m, net, z, per_seed, truncation)
        w_of = dict(zip(seeds, ws, strict=True))
        mixed = []
        for r in row_seeds:
            for c in col_seeds:
                w = w_of[r].clone()
                w[layer_list] = w_of[c][layer_list]
                mixed.append(w)
        plain = net.synthesis(
            torch.stack([w_of[s] for s in col_seeds + row_seeds]), noise_mode=noise_mode
        )
        cells_mixed = net.synthesis(torch.stack(mixed), noise_mode=noise_mode)
    finally:
        net.train(was_training)
    plain, cells_mixed = plain.float().clamp(-1, 1), cells_mixed.float().clamp(-1, 1)
    blank = torch.full_like(plain[:1], -1.0)
    k = len(col_seeds)
    cells = [blank, plain[:k]]
    for i in range(len(row_seeds)):
        cells += [plain[k + i : k + i + 1], cells_mixed[i * k : (i + 1) * k]]
    return torch.cat(cells)


# ----- projection -----------------------------------------------------------------------------
@dataclass
class ProjectionResult:
    """What `project` found.

    ``w``: ``[1, num_ws, w_dim]`` (one w repeated over the layers); ``noise_buffers``: the
    optimized noise maps by buffer name (empty unless ``noise=True``); ``image``: the
    reconstruction ``[1, C, H, W]`` in [-1, 1] (``noise_mode='const'`` with those maps);
    ``target``: the target as used, same shape; ``psnr``: of ``image`` against ``target``
    in dB, both mapped to [0, 1]; ``history``: one dict per step (``loss``, ``pixel``,
    ``feature``, ``psnr`` of that step's image, which early on includes the noise added to
    w); ``distance``: what the loss compared, in words."""

    w: torch.Tensor
    noise_buffers: dict[str, torch.Tensor]
    image: torch.Tensor
    target: torch.Tensor
    psnr: float
    history: list[dict[str, float]] = field(default_factory=list)
    distance: str = ""


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of images in [-1, 1], computed on [0, 1]."""
    mse = ((a.float() - b.float()) / 2).square().mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def _convert(x: torch.Tensor, channels: int, resolution: int) -> torch.Tensor:
    """``[1, C, H, W]`` in [-1, 1] -> ``channels`` (luma or repeat), center-cropped square,
    resized (antialiased) to ``resolution``."""
    if x.shape[1] != channels:
        if channels == 1:
            weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
            x = (x[:, :3] * weights).sum(1, keepdim=True)
        else:
            x = x[:, :1].expand(-1, channels, -1, -1)
    h, w = x.shape[-2:]
    s = min(h, w)
    x = x[..., (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    if s != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", antialias=True)
    return x.clamp(-1, 1).contiguous()


def load_target(
    target: str | Path | torch.Tensor, channels: int, resolution: int
) -> tuple[torch.Tensor, str | None]:
    """The target ``[1, channels, resolution, resolution]`` in [-1, 1] and a note saying how
    it was converted (None if it already fitted).  A file is read with Pillow; a tensor is
    ``[C, H, W]`` or ``[1, C, H, W]`` in [-1, 1]."""
    if isinstance(target, torch.Tensor):
        x = target.detach().float().cpu()
        x = x.unsqueeze(0) if x.ndim == 3 else x
        if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] not in (1, 3, 4):
            raise UserError(
                f"target has shape {list(target.shape)}; give one image [C, H, W] in [-1, 1]"
            )
        what = "the target"
    else:
        from PIL import Image, UnidentifiedImageError

        path = Path(target)
        try:
            with Image.open(path) as img:
                img.load()
                mode = "L" if img.mode in ("1", "L", "I;16", "I", "F", "LA") else "RGB"
                array = np.asarray(img.convert(mode), dtype=np.float32)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise UserError(
                f"cannot read target image '{path}' ({reason}); give a PNG, JPEG, BMP or WebP"
            ) from None
        array = array[..., None] if array.ndim == 2 else array
        x = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1
        what = f"'{path}'"
    c, h, w = x.shape[1:]
    if (c, h, w) == (channels, resolution, resolution):
        return x.contiguous(), None
    kind = {1: "gray", 3: "RGB", 4: "RGBA"}
    crop = ", center-cropped to a square" if h != w else ""
    note = (
        f"note: {what} is {w}x{h} {kind[c]}; converted to {resolution}x{resolution} "
        f"{kind[channels]} for this network{crop}"
    )
    return _convert(x, channels, resolution), note


def _feature_distance(model: Any, target: torch.Tensor):
    """``(f(images) -> relative squared feature distance to the target, description)`` with
    the run data set's cached domain network, or ``(None, reason)`` when there is none."""
    from ..features.domain import cached_domain_network

    m = _unwrap(model)
    name = m.spec.name
    cfg = getattr(model, "config", None)
    data_dir = cfg.data.dir if cfg is not None and cfg.data.name == name else None
    try:
        found = cached_domain_network(name, data_dir=data_dir)
    except UserError:
        found = None
    if found is None:
        return None, f"pixel MSE only (no cached domain network for data set '{name}')"
    net, record = found
    net = copy.deepcopy(net).to(target.device).eval().requires_grad_(False)
    target_features = net.features(target)
    scale = target_features.square().sum().clamp_min(1e-8)

    def distance(images: torch.Tensor) -> torch.Tensor:
        return (net.features(images) - target_features).square().sum() / scale

    return distance, f"pixel MSE + domain features ({record['dataset']}, hash {record['hash']})"


def _noise_penalty(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Squared autocorrelation of each noise map with its one-pixel shifts, at every scale of
    a 2x pyramid down to 8x8: what keeps the optimized noise from carrying the image itself
    (the StyleGAN2 projector's regularizer)."""
    total = torch.zeros([], device=maps[0].device)
    for buf in maps:
        x = buf.reshape(1, 1, *buf.shape[-2:])
        while True:
            for dim in (2, 3):
                total = total + (x * x.roll(1, dims=dim)).mean().square()
            if x.shape[-1] <= 8:
                break
            x = F.avg_pool2d(x, 2)
    return total


def _schedule(fraction: float, lr: float) -> tuple[float, float]:
    """(learning rate, scale of the noise added to w as a fraction of w's spread) at
    ``fraction`` of the run: the rate ramps up over the first 5% and down with a half cosine
    over the last 25%; the w noise starts at 5% and fades quadratically to zero by 75%, so
    early steps explore and the end settles."""
    ramp_down = min(1.0, (1.0 - fraction) / 0.25)
    rate = lr * (0.5 - 0.5 * math.cos(ramp_down * math.pi)) * min(1.0, fraction / 0.05)
    return rate, 0.05 * max(0.0, 1.0 - fraction / 0.75) ** 2


@torch.no_grad()
def _mean_w(net: nn.Module, conditional: bool, label: int | None, seed: int, samples: int):
    """The mean w and the root-mean-square distance of w from it, over ``samples`` mapped z
    (of class ``label``, or of all classes in turn); the start and the noise scale."""
    gen = torch.Generator().manual_seed(seed)
    device = next(net.parameters()).device
    ws = []
    for lo in range(0, samples, 1000):
        k = min(1000, samples - lo)
        z = torch.randn(k, net.z_dim, generator=gen).to(device)
        labels = None
        if conditional:
            classes = (
                torch.arange(lo, lo + k) % net.c_dim if label is None else torch.full((k,), label)
            )
            labels = classes.to(device)
        ws.append(net.map(z, labels)[:, :1].double())
    ws = torch.cat(ws)
    mean = ws.mean(0, keepdim=True)
    spread = (ws - mean).square().sum(dim=(1, 2)).mean().sqrt()
    return mean.float(), float(spread)


def project(
    model: Any,
    target: str | Path | torch.Tensor,
    *,
    steps: int = 500,
    lr: float = 0.1,
    noise: bool = False,
    seed: int = 0,
    label: int | None = None,
    w_samples: int = 10_000,
    features: bool = True,
    warn: Callable[[str], None] | None = None,
    progress: bool = False,
) -> ProjectionResult:
    """Find the w whose image best reconstructs ``target`` (a file or ``[C, H, W]`` in [-1, 1];
    converted to the network's size and channels with a note through ``warn``).

    One w, repeated over all layers, starts at the mean w (measured over ``w_samples`` mapped
    z of class ``label``, or of every class; the tracked ``w_avg`` would not follow a label)
    and is optimized with Adam under the StyleGAN2 projector's schedule (see `_schedule`).
    The loss is the pixel MSE plus, when the run's data set has a cached domain network
    (`ganforge features train`) and ``features``, the squared distance of its features
    relative to the target's: a perceptual term in place of the reference's LPIPS/VGG, which
    needs a download.  ``result.distance`` says which was used.  ``noise=True`` also
    optimizes the per-layer noise maps, starting from the stored ones, kept at zero mean and
    unit variance and regularized against structure (`_noise_penalty`, weight 1e5).
    ``seed`` fixes the mean-w sample and the noise added to w."""
    warn = warn or (lambda message: print(message, file=sys.stderr))
    m = _unwrap(model)
    source = style_generator(m, "projection")
    if steps < 1:
        raise UserError(f"--steps {steps}: use at least 1 (500 is usual)")
    if not lr > 0:
        raise UserError(f"learning rate {lr} must be positive (0.1 is usual)")
    if label is not None:
        m._labels(1, label)  # the model's own checks: conditional, and in range
    device = m.device
    resolution, channels = m.spec.resolution, m.spec.channels
    goal, note = load_target(target, channels, resolution)
    if note:
        warn(note)
    goal = goal.to(device)
    net = copy.deepcopy(source).eval().requires_grad_(False)
    w_mean, w_spread = _mean_w(net, m.task.labels, label, seed, w_samples)
    feature_distance, distance_text = (None, "pixel MSE only (features=False)")
    if features:
        feature_distance, distance_text = _feature_distance(model, goal)
    maps = {}
    if noise:
        maps = {k: b for k, b in net.synthesis.named_buffers() if k.endswith("noise_const")}
        if not maps:
            warn("note: this generator has no noise maps; optimizing w alone")
        for buf in maps.values():
            buf.requires_grad_(True)
    log.info(f"projecting the image into the latent space: {steps} steps of gradient descent")
    bar = _progress_bar(steps) if progress else None
    w, history = _descend(net, goal, w_mean, maps, feature_distance, steps, lr, w_spread, seed, bar)
    with torch.no_grad():
        ws = w.detach().repeat(1, net.num_ws, 1)
        image = net.synthesis(ws, noise_mode="const").float().clamp(-1, 1)
    return ProjectionResult(
        w=ws.cpu(),
        noise_buffers={k: b.detach().cpu().clone() for k, b in maps.items()},
        image=image.cpu(),
        target=goal.cpu(),
        psnr=psnr(image, goal),
        history=history,
        distance=distance_text,
    )


def _descend(net, goal, start, maps, feature_distance, steps, lr, spread, seed, bar):
    """The optimization loop of `project`: returns the final w ``[1, 1, w_dim]`` and the
    per-step history.  ``maps`` (noise buffers with gradients) are optimized alongside."""
    device = goal.device
    w = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w, *maps.values()], betas=(0.9, 0.999), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history = []
    for step in range(steps):
        rate, w_noise = _schedule(step / steps, lr)
        for group in optimizer.param_groups:
            group["lr"] = rate
        jitter = torch.randn(w.shape, generator=gen).to(device) * (spread * w_noise)
        image = net.synthesis((w + jitter).repeat(1, net.num_ws, 1), noise_mode="const")
        pixel = (image - goal).square().mean()
        feature = feature_distance(image) if feature_distance else torch.zeros([], device=device)
        loss = pixel + feature
        if maps:
            loss = loss + 1e5 * _noise_penalty(list(maps.values()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for buf in maps.values():  # keep each map a unit Gaussian in distribution
                buf -= buf.mean()
                buf *= buf.square().mean().rsqrt()
        history.append(
            {
                "step": step + 1,
                "loss": loss.detach().item(),
                "pixel": pixel.detach().item(),
                "feature": feature.detach().item(),
                "psnr": psnr(image.detach(), goal),
            }
        )
        if bar is not None:
            bar.set_postfix(psnr=f"{history[-1]['psnr']:.2f}")
            bar.update()
    if bar is not None:
        bar.close()
    return w.detach(), history


def _progress_bar(steps: int):
    from tqdm.auto import tqdm

    return tqdm(total=steps, unit="step", file=sys.stderr, disable=None, desc="projecting")


def save_gif(
    frames: torch.Tensor | Iterable[torch.Tensor], path: str | Path, *, fps: float = 20.0
) -> Path:
    """Write ``[N, C, H, W]`` frames in [-1, 1] (or consecutive chunks of them, as
    `interpolate_chunks` yields) as a looping animated GIF (gray or RGB); small images are
    enlarged without blur as sample grids are (to about 64 px).  Chunks are turned into
    8-bit pictures one at a time, so only those are ever held, never all the float frames."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures = _gif_pictures([frames] if isinstance(frames, torch.Tensor) else frames)
    first = next(pictures)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        first.save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=pictures,  # consumed while Pillow encodes
            duration=max(20, round(1000 / fps)),  # browsers slow down frames shorter than 20 ms
            loop=0,
        )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _gif_pictures(chunks: Iterable[torch.Tensor]) -> Iterator[Any]:
    from PIL import Image

    from ..images import display_scale, to_uint8

    for chunk in chunks:
        scale = display_scale(chunk.shape[-1])
        for array in to_uint8(chunk):
            picture = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
            if scale > 1:
                size = (picture.width * scale, picture.height * scale)
                picture = picture.resize(size, Image.NEAREST)
            yield picture
