"""What the studio does with a model: generate, walk, mix, sweep, translate, inpaint, upscale,
caption.  Each operation takes a loaded run (kept in a small LRU cache) and the submitted
fields, checks them with the CLI's messages, and returns JSON-ready results whose images are
``data:`` URLs.  The model work itself is the API's (`ganforge.api`, `ganforge.tools.latent`):
the same checks and the same images as ``ganforge sample/interpolate/mix/translate/...``."""

from __future__ import annotations

import base64
import io
import tempfile
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import api
from ..data.captions import words
from ..engine.checkpoint import list_checkpoints
from ..errors import UserError
from ..images import check_frames_fit, check_grid_fits, display_scale, make_grid, to_uint8
from ..tools import latent
from . import fields as F
from .runs import RunRef

#: loaded runs kept at once (the least recently used is dropped)
CACHE_SIZE = 4
#: an uploaded file: bytes, and pixels (checked from its header, before it is decoded)
MAX_UPLOAD_BYTES = 4 * 2**20
MAX_UPLOAD_PIXELS = 4096 * 4096
#: the longest side an image may have when the model works on it (upscale: its input side)
MAX_WORK_SIDE, MAX_UPSCALE_SIDE = 1024, 256
#: test-split items one can pick, at most (the first ones)
MAX_TEST_ITEMS = 1000

TRUNCATION_HINTS = {
    "psi": "psi in (0, 1]: pulls z towards its mean; 1 or empty is none",
    "psi-style": "psi in [0, 1.5] around the mean w; 1 or empty is none",
    "threshold": "the threshold of the truncated normal z is drawn from (> 0, e.g. 0.5); "
    "empty is none",
}


@dataclass
class Loaded:
    """A run loaded for use, with the lock that serialises its model work (a model's
    generate changes its state for the call) and its test split once read."""

    g: api.LoadedModel
    ref: RunRef
    lock: threading.Lock = field(default_factory=threading.Lock)
    test: Any = None


class ModelCache:
    """At most `CACHE_SIZE` loaded runs, keyed by folder and newest checkpoint (a run that
    trained on is loaded again)."""

    def __init__(self, device: str = "cpu", size: int = CACHE_SIZE) -> None:
        self.device, self.size = device, size
        self._items: OrderedDict[tuple[str, str], Loaded] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ref: RunRef) -> Loaded:
        found = list_checkpoints(ref.path)
        key = (str(ref.path), found[-1][1].name if found else "")
        with self._lock:  # one load at a time: two requests for one run load it once
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            item = Loaded(api.load(ref.path, device=self.device), ref)
            self._items[key] = item
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return item


# ----- what a run can do ------------------------------------------------------------------
def capabilities(item: Loaded) -> dict[str, Any]:
    """What the page offers for a run: its task, classes, truncation's meaning, the views."""
    g, task = item.g, item.g.model.task
    style = latent.is_style_based(g.model)
    kind = g.TRUNCATION if g.TRUNCATION != "psi" or not style else "psi-style"
    out: dict[str, Any] = {
        "family": g.config.model,
        "task": task.kind,
        "conditional": bool(task.labels),
        "text": bool(task.text),
        "style_based": style,
        "classes": list(g.spec.class_names or [])[: g.spec.num_classes] if task.labels else [],
        "resolution": g.spec.resolution,
        "channels": g.spec.channels,
        "step": g.step,
        "truncation": TRUNCATION_HINTS[kind],
        "views": [],
    }
    if task.kind == "noise":
        out["views"] += ["generate", "explore"]
        if style:
            out["num_ws"] = int(latent.style_generator(g.model, "mixing").num_ws)
        if hasattr(g.model, "vary"):
            conts = getattr(g.model.cfg, "n_cont", 0)
            out["codes"] = ["cat", *(f"cont{i}" for i in range(conts))]
        if task.text:
            out["views"].append("text")
            out["text_encoder"] = getattr(g.model, "encoder_kind", None)
    else:
        out["views"].append("image")
        out["operation"] = {
            "paired": "translate",
            "unpaired": "translate",
            "masked": "inpaint",
            "lowres": "upscale",
        }[task.kind]
        out["directions"] = ["a2b", "b2a"] if task.kind == "unpaired" else []
        out["factor"] = getattr(g.model.cfg, "factor", None)
    return out


# ----- images out -------------------------------------------------------------------------
def data_url(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def png(array: np.ndarray, scale: int = 1) -> bytes:
    """uint8 ``[H, W, C]`` as PNG bytes, enlarged ``scale`` times without blur."""
    picture = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def grid_png(images: torch.Tensor, nrow: int | None = None) -> bytes:
    """A sample grid as ``ganforge sample`` writes it: small images enlarged to about 64 px."""
    return png(make_grid(images, nrow=nrow), display_scale(images.shape[-1]))


def images_zip(images: torch.Tensor, grid: bytes) -> bytes:
    """The grid and each image (its own size) as PNG files in a zip archive."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("grid.png", grid)
        for i, array in enumerate(to_uint8(images)):
            archive.writestr(f"image-{i:03d}.png", png(array))
    return buffer.getvalue()


def _source(item: Loaded) -> str:
    return f"{item.ref.name} (step {item.g.step})"


# ----- noise families -----------------------------------------------------------------------
def _noise_only(item: Loaded, what: str) -> None:
    if item.g.model.task.kind != "noise":
        raise UserError(
            f"{what} draws images from noise; '{item.ref.name}' is an image-to-image model "
            "(use Image in, image out)"
        )


def _class(item: Loaded, fields: Mapping[str, Any]) -> int | None:
    label = F.whole(fields, "label", "--class")
    if label is not None and item.g.model.task.labels:
        k = item.g.spec.num_classes
        if not 0 <= label < k:
            raise UserError(f"--class {label}: this model has classes 0 to {k - 1}")
    return label


def generate(item: Loaded, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``ganforge sample``: a grid of n images (conditional models without a class: one
    column per class) and a zip of them."""
    g = item.g
    _noise_only(item, "sample")
    n = F.count(fields, "n", "--n", 16, F.MAX_IMAGES, "ganforge sample --seeds")
    seed = F.seed(fields)
    label = _class(item, fields)
    truncation = F.real(fields, "truncation", "--truncation")
    noise_mode = F.choice(
        fields, "noise_mode", "--noise-mode", ("const", "random", "none"), "const"
    )
    check_grid_fits(n, g.spec.resolution, "--n")
    if g.model.task.text:  # captions of the test split, each printed under its image
        if label is not None:
            raise UserError(
                f"--class is for class-conditional models; '{item.ref.name}' takes captions"
            )
        images, captions = api._captioned_samples(g, n, seed, None, None, truncation)
        sheet = io.BytesIO()
        api.captioned_grid(images, captions).save(sheet, format="PNG")
        grid = sheet.getvalue()
    else:
        nrow = g.spec.num_classes if g.model.task.labels and label is None else None
        images = g.generate(
            n, labels=label, seed=seed, truncation=truncation, noise_mode=noise_mode
        )
        grid = grid_png(images, nrow)
    return {
        "grid": data_url(grid, "image/png"),
        "zip": data_url(images_zip(images, grid), "application/zip"),
        "count": n,
        "source": _source(item),
    }


def walk(item: Loaded, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``ganforge interpolate``: the frames of a walk through seeds, as a strip and a GIF."""
    _noise_only(item, "interpolate")
    g = item.g
    seeds = F.seed_list(fields, "seeds", "--seeds", F.MAX_FRAMES)
    frames = F.count(fields, "frames", "--frames", 8, F.MAX_FRAMES, "ganforge interpolate")
    space = F.choice(fields, "space", "--space", ("w", "z"), None)
    truncation = F.real(fields, "truncation", "--truncation")
    label = _class(item, fields)
    loop = str(fields.get("loop", "")).lower() in ("1", "true", "on", "yes")
    check_frames_fit(frames, g.spec.channels, g.spec.resolution, "--frames")
    order = api.parse_int_list(seeds, "--seeds")
    chunks = latent.interpolate_chunks(
        g, order, frames, space=space, truncation=truncation, labels=label, loop=loop
    )
    strip = torch.cat(list(chunks))
    with tempfile.TemporaryDirectory(prefix="ganforge-studio-") as folder:
        gif = Path(folder) / "walk.gif"
        latent.save_gif(strip, gif, fps=8.0)
        animation = gif.read_bytes()
    return {
        "strip": data_url(grid_png(strip, nrow=frames), "image/png"),
        "gif": data_url(animation, "image/gif"),
        "frames": frames,
        "source": _source(item),
    }


def mix(item: Loaded, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``ganforge mix``: the style-mixing figure (rows, columns, layers from the columns)."""
    _noise_only(item, "mix")
    rows = F.seed_list(fields, "rows", "--rows", F.MAX_MIX_SEEDS)
    cols = F.seed_list(fields, "cols", "--cols", F.MAX_MIX_SEEDS)
    layers = F.text(fields, "layers")
    if layers is None:
        raise UserError("give --layers, e.g. --layers 0-3 (coarse) or 6,7 (fine)")
    if len(layers) > 100:
        raise UserError(f"--layers {layers[:20]!r}...: give a range a-b or a short list")
    truncation = F.real(fields, "truncation", "--truncation")
    label = F.whole(fields, "label", "--class")
    cells = latent.style_mix(item.g, rows, cols, layers, truncation=truncation, label=label)
    width = len(api.parse_int_list(cols, "--cols")) + 1
    return {
        "grid": data_url(grid_png(cells, nrow=width), "image/png"),
        "source": _source(item),
    }


def sweep(item: Loaded, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``ganforge sample --vary CODE``: InfoGAN's grid varying one latent code per row."""
    g = item.g
    if not hasattr(g.model, "vary"):
        raise UserError(
            f"--vary needs a model with latent codes (infogan); '{item.ref.name}' is a "
            f"{g.config.model} run"
        )
    code = F.text(fields, "code") or "cat"
    n = F.count(fields, "n", "--n", 30, F.MAX_IMAGES, "ganforge sample --vary")
    rows = max(1, n // 10)
    images = g.model.vary(code, rows=rows, seed=F.seed(fields))
    return {
        "grid": data_url(grid_png(images, nrow=len(images) // rows), "image/png"),
        "source": _source(item),
    }


def caption(item: Loaded, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``ganforge sample --text``: images for a typed caption, each word marked known or
    not (unknown words are read as <unk>)."""
    g = item.g
    if not g.model.task.text:
        raise UserError(
            f"--text and --stage are for text-to-image models (stackgan); '{item.ref.name}' is "
            f"a {g.config.model} run"
        )
    text = F.text(fields, "text")
    if text is None:
        raise UserError("type a caption, e.g. a dark coat")
    n = F.count(fields, "n", "--n", 8, F.MAX_TEXT_IMAGES, "ganforge sample --text")
    stage = F.choice(fields, "stage", "--stage", ("1", "2"), "2")
    seed = F.seed(fields)
    truncation = F.real(fields, "truncation", "--truncation")
    known = set(g.spec.vocab[2:])
    marked = [{"word": w, "known": w in known} for w in words(text)]
    images = g.generate(n, text=[text], seed=seed, stage=int(stage), truncation=truncation)
    sheet = io.BytesIO()
    api.captioned_grid(images, [text] * n).save(sheet, format="PNG")
    return {
        "grid": data_url(sheet.getvalue(), "image/png"),
        "words": marked,
        "unknown": [m["word"] for m in marked if not m["known"]],
        "source": _source(item),
    }


# ----- image families -----------------------------------------------------------------------
class Upload(io.BytesIO):
    """An uploaded file's bytes, which prints as its file name: the API's image reader names
    its source in notes and errors, and a client should read its own file's name there."""

    def __init__(self, payload: bytes, name: str) -> None:
        super().__init__(payload)
        self.name = name

    def __str__(self) -> str:
        return self.name

    __format__ = object.__format__  # f"'{upload}'" -> the name, via __str__


def check_upload(payload: bytes, name: str) -> Upload:
    """An uploaded image, refused in one line when too large in bytes or in pixels (read
    from its header before anything is decoded: a decompression bomb never is)."""
    if len(payload) > MAX_UPLOAD_BYTES:
        raise UserError(
            f"image '{name}' is {len(payload) / 2**20:.1f} MiB; the studio takes files of at "
            f"most {MAX_UPLOAD_BYTES // 2**20} MiB"
        )
    if not payload:
        raise UserError(f"image '{name}' is empty; choose an image file (PNG, JPEG, ...)")
    try:
        with Image.open(io.BytesIO(payload)) as im:
            w, h = im.size
    except Image.DecompressionBombError:  # Pillow's own refusal, past twice its limit
        raise UserError(
            f"image '{name}' claims more pixels than Pillow opens (a decompression bomb?); the "
            f"studio takes images of at most {MAX_UPLOAD_PIXELS:,} pixels (4096x4096)"
        ) from None
    except (OSError, ValueError, SyntaxError) as err:
        raise UserError(f"cannot read image '{name}' ({err}); choose an image file") from None
    if w * h > MAX_UPLOAD_PIXELS:
        raise UserError(
            f"image '{name}' is {w}x{h} pixels; the studio takes images of at most "
            f"{MAX_UPLOAD_PIXELS:,} pixels (4096x4096)"
        )
    return Upload(payload, name)


def _test_split(item: Loaded) -> Any:
    if item.test is None:
        from ..data import load_dataset

        d = item.g.config.data
        item.test = load_dataset(
            d.name,
            split="test",
            resolution=item.g.config.family.resolution,
            channels=d.channels,
            data_dir=d.dir,
            download=False,
            options=d.task_options(),
        )
    return item.test


def test_items(item: Loaded) -> int:
    """How many test-split items the page may pick (the first `MAX_TEST_ITEMS`)."""
    return min(len(_test_split(item)), MAX_TEST_ITEMS)


def _test_item(item: Loaded, k: int, direction: str | None):
    """Test item ``k``: the model's input ``[1, C, H, W]`` and the target (None: unpaired)."""
    total = test_items(item)
    if not 0 <= k < total:
        raise UserError(f"test item {k}: choose one from 0 to {total - 1}")
    batch = _test_split(item).batch(torch.tensor([k]))
    kind = item.g.model.task.kind
    if kind == "unpaired":
        return batch["image_b" if direction == "b2a" else "image_a"], None
    if kind == "masked":  # the whole image: the hole is the one asked for
        return batch["image"], batch["image"]
    return batch["cond_image"], batch["image"]


def image_to_image(
    item: Loaded, fields: Mapping[str, Any], upload: Upload | None
) -> dict[str, Any]:
    """``ganforge translate/inpaint/upscale`` of one image (an upload or test item ``test``):
    input, output and (test items of paired data) target, with the API's notes."""
    g = item.g
    kind = g.model.task.kind
    notes: list[str] = []
    direction = F.text(fields, "direction")
    if kind in ("paired", "unpaired", "noise"):  # a noise model: the CLI's refusal
        api.check_direction(g.model, direction)
    elif direction is not None:
        raise UserError(
            f"--direction {direction} is for models that translate both ways (cyclegan); drop it"
        )
    k = F.whole(fields, "test", "test item")
    if (upload is None) == (k is None):
        raise UserError("give one image: upload a file or pick a test-split item")
    size = None
    if F.whole(fields, "size", "--size") is not None:
        size = F.count(fields, "size", "--size", 1, MAX_WORK_SIDE, "ganforge translate --size")
    target = None
    if upload is not None:
        x = api._read_image(upload, api._input_channels(g), size, notes.append)
    else:
        x, target = _test_item(item, k, direction)
    h, w = x.shape[-2:]
    side = MAX_UPSCALE_SIDE if kind == "lowres" else MAX_WORK_SIDE
    if max(h, w) > side:
        raise UserError(
            f"image '{upload}' is {w}x{h}; the studio works on images of at most {side} px a "
            f"side here (use the CLI for larger ones{', or --size' if kind != 'lowres' else ''})"
        )
    source = upload if upload is not None else f"test item {k}"
    shown = x
    if kind == "masked":
        box = F.text(fields, "box")
        if box is None:
            raise UserError("give the hole as --box Y,X,H,W (or draw it on the image)")
        holes = api._box_mask(api.parse_box(box), (h, w), source, box)
        api.check_mask(holes, f"--box {box}")
        api._note_padding(g.model, source, x, notes.append)
        out = g.model.inpaint(x.to(g.model.device), holes.to(g.model.device))
        shown = torch.where(holes.bool(), torch.full_like(x, -1.0), x)
    elif kind == "lowres":
        api._note_padding(g.model, source, x, notes.append)
        out = g.model.upscale(x.to(g.model.device))
    else:
        api._note_padding(g.model, source, x, notes.append)
        out = g.translate(x.to(g.model.device), direction=direction)
    result = {
        "input": data_url(_picture(shown), "image/png"),
        "output": data_url(_picture(out), "image/png"),
        "notes": notes,
        "source": _source(item),
    }
    if target is not None:
        result["target"] = data_url(_picture(target), "image/png")
    return result


def test_preview(item: Loaded, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Test item ``test`` as the model would take it (and its target), for the page."""
    k = F.whole(fields, "test", "test item", 0)
    x, target = _test_item(item, k, F.text(fields, "direction"))
    out = {"input": data_url(_picture(x), "image/png"), "count": test_items(item)}
    out["size"] = [int(x.shape[-1]), int(x.shape[-2])]
    if target is not None:
        out["target"] = data_url(_picture(target), "image/png")
    return out


def _picture(images: torch.Tensor) -> bytes:
    """One image ``[1, C, H, W]`` in [-1, 1] as PNG bytes, at its own size."""
    return png(to_uint8(images.cpu())[0])
