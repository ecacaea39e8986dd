"""The METRICS registry, the pixel metrics (L1, PSNR, SSIM) against numbers worked by hand and
scikit-image, and the evaluation of image-to-image models against their floors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganforge.data import DataSpec
from ganforge.errors import UserError
from ganforge.features.domain import DomainClassifier, DomainSettings
from ganforge.metrics import catalog, image_tasks, pixels
from ganforge.metrics import evaluate as evaluation
from ganforge.models.base import Task
from ganforge.registry import METRICS, Registry


# ----- the registry ------------------------------------------------------------------------------
def test_every_metric_declares_needs_figures_direction_and_a_doc_line():
    assert METRICS.names()[:8] == ["fid", "kid", "is", "pr", "dc", "cas", "ifid", "ppl"]
    for name in METRICS:
        entry = METRICS.get(name)
        assert isinstance(entry, catalog.Metric) and entry.name == name
        assert entry.needs <= set(catalog.NEEDS) and entry.kind in catalog.KINDS
        assert entry.figures and METRICS.doc(name), name
    assert METRICS.get("pr").figures == ("precision", "recall")
    assert catalog.produced_by(["pr", "kid", "ssim_masked"]) == [
        "precision",
        "recall",
        "kid",
        "ssim_masked",
    ]
    directions = {f: catalog.lower_is_better(f) for f in ("fid", "ifid", "ppl", "l1", "l1_masked")}
    assert all(directions.values()), directions
    for figure in ("precision", "is", "cas", "psnr", "ssim", "label_agreement"):
        assert not catalog.lower_is_better(figure), figure


def test_the_needs_that_config_asks_about():
    assert catalog.metrics_needing("labels") == ["cas", "ifid"]
    assert catalog.metrics_needing("styles") == ["ppl"]
    assert catalog.metrics_needing("masks") == ["l1_masked", "psnr_masked", "ssim_masked"]
    assert set(catalog.metrics_needing("targets")) == {
        "l1",
        "psnr",
        "ssim",
        "l1_masked",
        "psnr_masked",
        "ssim_masked",
    }
    assert catalog.missing("ssim_masked", {"real", "targets"}) == ["masks"]
    with pytest.raises(ValueError, match="unknown need"):
        catalog.metrics_needing("colour")


def test_parse_metrics_takes_the_new_names_and_refuses_unknown_ones():
    assert catalog.parse_metrics(" FID, psnr,ssim_masked ") == ["fid", "psnr", "ssim_masked"]
    with pytest.raises(UserError, match="unknown metric 'pnsr'.*psnr"):
        catalog.parse_metrics("pnsr")
    with pytest.raises(UserError, match="no metrics asked for"):
        catalog.parse_metrics(" , ")


def test_a_new_metric_is_one_decorated_function(monkeypatch):
    registry = Registry("metric", "a private registry for this test")
    monkeypatch.setattr(catalog, "METRICS", registry)

    @catalog.metric("max_gap", needs={"targets"}, kind="pixels", lower_is_better=True, doc="x")
    def _max_gap(x):
        return {"max_gap": float((x.outputs - x.targets).abs().max())}

    assert registry.names() == ["max_gap"] and catalog.produced_by(["max_gap"]) == ["max_gap"]
    assert catalog.missing("max_gap", {"real"}) == ["targets"]
    inputs = catalog.MetricInputs(outputs=torch.tensor([0.5, -0.25]), targets=torch.zeros(2))
    assert catalog.compute(["max_gap"], inputs) == {"max_gap": 0.5}
    with pytest.raises(ValueError, match="not known"):
        catalog.metric("bad", needs={"colour"}, lower_is_better=True, doc="x")


# ----- pixel metrics by hand ------------------------------------------------------------------
def flat(value: float, n: int = 2, c: int = 1, size: int = 16) -> torch.Tensor:
    return torch.full((n, c, size, size), value, dtype=torch.float64)


def test_psnr_of_an_image_off_by_a_constant_tenth_is_20_db():
    # 0.2 apart in [-1, 1] is 0.1 apart in [0, 1]: MSE 0.01, 10 log10(1 / 0.01) = 20 dB
    assert pixels.psnr(flat(0.2), flat(0.0)).tolist() == pytest.approx([20.0, 20.0], abs=1e-9)
    # 0.02 apart in [0, 1]: MSE 4e-4, 10 log10(2500) = 33.9794 dB
    assert float(pixels.psnr(flat(0.04), flat(0.0))[0]) == pytest.approx(33.9794, abs=1e-4)
    assert pixels.psnr(flat(0.3), flat(0.3)).tolist() == [100.0, 100.0]  # capped, finite


def test_ssim_of_an_image_with_itself_is_one_and_of_two_flat_images_its_closed_form():
    image = torch.rand(3, 3, 20, 24, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert pixels.ssim(image, image).tolist() == pytest.approx([1.0] * 3, abs=1e-12)
    # flat images: no variance, so SSIM = (2 mx my + C1) / (mx^2 + my^2 + C1), C1 = 0.01^2;
    # 0.0 and -0.5 in [-1, 1] are 0.5 and 0.25 in [0, 1]: (0.25 + 1e-4) / (0.3125 + 1e-4)
    expected = (0.25 + 1e-4) / (0.3125 + 1e-4)
    assert float(pixels.ssim(flat(0.0), flat(-0.5))[0]) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(UserError, match="ssim needs images of at least 11x11 pixels.*8x8"):
        pixels.ssim(flat(0.0, size=8), flat(0.0, size=8))


def test_l1_is_in_library_units_and_its_masked_variant_counts_only_the_hole():
    assert pixels.l1_error(flat(0.5), flat(-0.5)).tolist() == [1.0, 1.0]
    target = flat(0.0, size=32)
    output = target.clone()
    hole = torch.zeros(2, 1, 32, 32)
    hole[:, :, 8:24, 8:24] = 1  # a quarter of the image
    output[:, :, 8:24, 8:24] = 0.4
    assert pixels.l1_error(output, target).tolist() == pytest.approx([0.1, 0.1], abs=1e-12)
    assert pixels.l1_error(output, target, hole).tolist() == pytest.approx([0.4, 0.4], abs=1e-12)
    # 0.4 in [-1, 1] = 0.2 in [0, 1]: MSE 0.04 in the hole, 10 log10(25) = 13.9794 dB
    assert float(pixels.psnr(output, target, hole)[0]) == pytest.approx(13.9794, abs=1e-4)
    # the SSIM map has a value per position whose window fits (5..26 of 32), so the hole 8..23
    # is the map's 3..18; a window wholly inside the hole sees flat 0.7 against flat 0.5
    values = pixels.ssim_map(output, target)
    in_hole = float(values[0, :, 3:19, 3:19].mean())
    assert float(pixels.ssim(output, target, hole)[0]) == pytest.approx(in_hole, abs=1e-12)
    inside = (2 * 0.7 * 0.5 + 1e-4) / (0.7**2 + 0.5**2 + 1e-4)
    assert float(values[0, 0, 11, 11]) == pytest.approx(inside, abs=1e-12)


def test_pixel_metrics_agree_with_scikit_image():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(2, 3, 24, 20, generator=gen, dtype=torch.float64) * 2 - 1
    b = (a + 0.3 * torch.randn(a.shape, generator=gen, dtype=torch.float64)).clamp(-1, 1)
    hole = torch.zeros(2, 1, 24, 20, dtype=torch.float64)
    hole[:, :, 6:18, 4:14] = 1
    ours, ours_masked, ours_psnr = pixels.ssim(a, b), pixels.ssim(a, b, hole), pixels.psnr(a, b)
    options = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
    for i in range(2):
        x, y = ((a[i] + 1) / 2).numpy(), ((b[i] + 1) / 2).numpy()
        ref, full = skimage_metrics.structural_similarity(
            x, y, channel_axis=0, data_range=1, full=True, **options
        )
        assert float(ours[i]) == pytest.approx(ref, abs=1e-12)
        inside = hole[i, 0, 5:-5, 5:-5].numpy() > 0  # positions whose window fits the image
        assert float(ours_masked[i]) == pytest.approx(full[:, 5:-5, 5:-5][:, inside].mean())
        ref_psnr = skimage_metrics.peak_signal_noise_ratio(x, y, data_range=1)
        assert float(ours_psnr[i]) == pytest.approx(ref_psnr, abs=1e-10)


# ----- floors ------------------------------------------------------------------------------------
def test_floors_are_the_trivial_answers():
    low = torch.full((1, 1, 4, 4), 0.25)
    up = image_tasks.floor_outputs("lowres", low, torch.zeros(1, 1, 16, 16), None)
    assert up.shape == (1, 1, 16, 16) and torch.allclose(up, torch.full_like(up, 0.25))
    image = torch.full((1, 2, 8, 8), -0.5)
    image[:, 1] = 0.5
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    holed = torch.where(mask.bool(), torch.zeros_like(image), image)  # the hole set to 0
    filled = image_tasks.floor_outputs("masked", holed, image, mask)
    assert torch.equal(filled, image)  # the known pixels' mean, per channel, is each channel's
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    assert torch.equal(image_tasks.floor_outputs("paired", x, x, None), x)
    gray_beside_rgb = image_tasks.floor_outputs("paired", x, torch.zeros(2, 3, 8, 8), None)
    assert gray_beside_rgb.shape == (2, 3, 8, 8) and torch.equal(gray_beside_rgb[:, 2], x[:, 0])


def test_feature_source_names_the_labeled_data_behind_a_task():
    source = evaluation.feature_source
    assert source("masked:fmnist") == "fmnist" and source("lowres:masked:digits") == "digits"
    assert source("fmnist-edges") == "fmnist" and source("fmnist-shoes") == "fmnist"
    assert source("pix2pix:./facades") == "pix2pix:./facades" and source(None) is None


# ----- evaluating image-to-image models --------------------------------------------------------
def quantized(shape, seed: int) -> torch.Tensor:
    """Float images in [-1, 1] that are exactly 8-bit levels, as data sets give them."""
    levels = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed))
    return levels.float() / 127.5 - 1


class TaskData:
    """The evaluation split of a task data set: tensors by batch key."""

    def __init__(self, spec: DataSpec, **items: torch.Tensor) -> None:
        self.spec, self.items = spec, items

    def __len__(self) -> int:
        return len(next(iter(self.items.values())))

    def batch(self, index: torch.Tensor, *, key: int | None = None) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.items.items()}


class Toy:
    """The model interface of an image family whose outputs are ``make(batch)``."""

    def __init__(self, kind: str, make, spec: DataSpec) -> None:
        self.task, self.spec, self.make = Task(kind), spec, make

    def eval_outputs(self, batch, *, seed: int, truncation: float = 1.0):
        if self.task.kind == "unpaired":
            return {"image": self.make(batch), "input": batch["image_a"]}
        out = {"image": self.make(batch), "input": batch["cond_image"], "target": batch["image"]}
        if "mask" in batch:
            out["mask"] = batch["mask"]
        return out


def spec(task: str = "plain", **shape) -> DataSpec:
    return DataSpec(channels=1, resolution=16, name="toy", task=task, **shape)


@pytest.fixture
def small_features(monkeypatch):
    """An untrained small domain network in place of training one (its numbers are not the
    point here, only that outputs and floor are scored by the same one)."""
    torch.manual_seed(0)
    net = DomainClassifier(1, 16, 10, DomainSettings(width=4, features=8)).eval()
    record = {"hash": "2" * 16, "dataset": "toy", "test_accuracy": 0.5, "features": 8}
    monkeypatch.setattr(evaluation, "build_domain_network", lambda *a, **k: (net, record))


def run(model, data, metrics: str, **options):
    notes = []
    report = evaluation.evaluate(
        model=model, data=data, dataset="toy", metrics=metrics, warn=notes.append, **options
    )
    return report, notes


def test_an_identity_translator_scores_exactly_its_floor(small_features):
    targets = quantized((24, 1, 16, 16), seed=0)
    inputs = (targets + quantized((24, 1, 16, 16), seed=1) / 4).clamp(-1, 1)
    inputs = ((inputs + 1) * 127.5).round() / 127.5 - 1  # back onto 8-bit levels
    data = TaskData(spec("paired", cond_channels=1, cond_resolution=16), image=targets)
    data.items["cond_image"] = inputs
    model = Toy("paired", lambda b: b["cond_image"], data.spec)
    report, notes = run(model, data, "l1,psnr,ssim,fid,kid,l1_masked")
    assert report["metrics"] == report["floor"]["metrics"]  # bitwise, figure by figure
    assert set(report["metrics"]) == {"l1", "psnr", "ssim", "fid", "kid", "kid_std"}
    assert report["floor"]["name"] == "the input itself" and report["real_vs_real"] is None
    assert report["metrics"]["l1"] == pytest.approx(float((inputs - targets).abs().mean()))
    assert notes == [
        "note: l1_masked needs the masks of an inpainting model (a masked task); this is a "
        "toy model; skipped",
        "note: --n 10000 is more than the 24 items of the test split; using all 24",
    ]
    assert report["generated"]["n"] == 24 and report["generated"]["task"] == "paired"
    assert report["real"] == {"source": "targets of the toy test split", "n": 24}
    text = evaluation.format_report(report)
    assert "floor" in text.splitlines()[4] and "(floor: the input itself" in text


def test_super_resolution_against_the_bicubic_floor(small_features):
    targets = quantized((10, 1, 16, 16), seed=2)
    inputs = F.avg_pool2d(targets, 4)
    data = TaskData(spec("lowres", cond_channels=1, cond_resolution=4), image=targets)
    data.items["cond_image"] = inputs

    def bicubic(batch):
        return F.interpolate(batch["cond_image"], size=16, mode="bicubic").clamp(-1, 1)

    names = "l1,psnr,ssim,fid"
    upscaler, _ = run(Toy("lowres", bicubic, data.spec), data, names)
    assert upscaler["metrics"] == upscaler["floor"]["metrics"]
    assert upscaler["floor"]["name"] == "bicubic upscale of the input"
    perfect, _ = run(Toy("lowres", lambda b: b["image"], data.spec), data, names)
    m, floor = perfect["metrics"], perfect["floor"]["metrics"]
    assert (m["l1"], m["psnr"]) == (0.0, 100.0)
    assert m["ssim"] == pytest.approx(1.0, abs=1e-12) and m["fid"] == pytest.approx(0, abs=1e-9)
    assert floor["l1"] > 0.1 and floor["psnr"] < 30 and floor == upscaler["floor"]["metrics"]


def test_inpainting_is_scored_over_the_hole_against_the_mean_filled_floor():
    targets = quantized((6, 1, 16, 16), seed=3)
    mask = torch.zeros(6, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    holed = torch.where(mask.bool(), torch.zeros_like(targets), targets)
    data = TaskData(spec("masked", cond_channels=1, cond_resolution=16), image=targets)
    data.items.update(mask=mask, cond_image=holed)
    mean_filler = Toy(
        "masked", lambda b: image_tasks.mean_fill(b["cond_image"], b["mask"]), data.spec
    )
    names = "l1,l1_masked,psnr_masked,ssim_masked"
    filled, _ = run(mean_filler, data, names)
    assert filled["metrics"] == filled["floor"]["metrics"]
    assert filled["floor"]["name"] == "the hole filled with the mean of the known pixels"
    perfect, _ = run(Toy("masked", lambda b: b["image"], data.spec), data, names)
    assert perfect["metrics"]["l1_masked"] == 0.0 and perfect["metrics"]["psnr_masked"] == 100.0
    # outside the hole the floor is exact, so its whole-image L1 is a quarter of the hole's
    floor = perfect["floor"]["metrics"]
    assert floor["l1"] == pytest.approx(floor["l1_masked"] / 4, rel=1e-12)
    assert perfect["features"] is None  # pixel metrics only: no feature network was built
    assert "none (pixel metrics only)" in evaluation.format_report(perfect)


def test_unpaired_translation_gets_set_metrics_and_skips_pixel_ones(small_features):
    a, b = quantized((12, 1, 16, 16), seed=4), quantized((12, 1, 16, 16), seed=5)
    data = TaskData(spec("unpaired"), image_a=a, image_b=b)
    model = Toy("unpaired", lambda batch: -batch["image_a"], data.spec)
    report, notes = run(model, data, "fid,psnr")
    assert list(report["metrics"]) == ["fid"] and report["metrics"]["fid"] > 0
    assert report["floor"]["name"] == "the input itself" and "fid" in report["floor"]["metrics"]
    assert notes[0] == (
        "note: psnr needs outputs with pixel-aligned targets (a paired, masked or lowres model); "
        "this is a toy model; skipped"
    )


def test_a_task_data_set_of_the_data_package_end_to_end():
    """``masked:digits`` from `ganforge.data` (its centre holes, the hole set to 0): a mean
    filler scores its floor, and the report names the split it read."""
    from ganforge.data import load_dataset

    data = load_dataset("masked:digits", split="test")
    model = Toy("masked", lambda b: image_tasks.mean_fill(b["cond_image"], b["mask"]), data.spec)
    report = evaluation.evaluate(
        model=model, dataset="masked:digits", metrics="l1_masked,psnr_masked", n=100
    )
    assert report["metrics"] == report["floor"]["metrics"] and report["generated"]["n"] == 100
    assert report["real"]["source"] == "targets of the masked:digits test split"


def test_noise_models_skip_pixel_metrics_and_say_why():
    with pytest.raises(UserError, match="psnr needs outputs with pixel-aligned targets") as err:
        evaluation.evaluate(fake="unused.npz", dataset="digits", metrics="psnr")
    assert "nothing left to evaluate" in str(err.value) and "\n" not in str(err.value)


def test_image_tasks_need_their_evaluation_data_named():
    model = Toy("paired", lambda b: b["cond_image"], spec())
    with pytest.raises(UserError, match="--dataset names the evaluation data of this paired"):
        evaluation.evaluate(model=model, metrics="l1")


def test_pixel_metric_of_a_set_without_hole_pixels_is_an_error():
    inputs = catalog.MetricInputs(
        outputs=flat(0.0), targets=flat(0.0), masks=torch.zeros(2, 1, 16, 16)
    )
    with pytest.raises(UserError, match="l1_masked: no image has pixels in its hole"):
        catalog.compute(["l1_masked"], inputs)
    assert math.isnan(float(pixels.l1_error(flat(0.0), flat(0.0), torch.zeros(2, 1, 16, 16))[0]))
