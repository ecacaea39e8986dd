"""srgan: the paper's networks and their sizes, sub-pixel upsampling at x4 and x2, the phase
windows and the LR step decay, the content networks (VGG19 to relu5_4 from torchvision's file,
SHA-256 checked; the domain classifier; neither in the state dict), upscale at any size and in
tiles with the untiled result, and a short training run through the API."""

from __future__ import annotations

import json

import pytest
import torch
from _families import build, example_batch
from conftest import make_dataset

import ganforge
from ganforge.api import evaluate_run
from ganforge.config import build_config
from ganforge.data import DataSpec
from ganforge.data.tasks import LowresDataset
from ganforge.engine.trainer import Trainer
from ganforge.errors import UserError
from ganforge.features import domain, vgg
from ganforge.models.srgan import (
    CONTENT_DOMAIN_SEED,
    CONTENT_DOMAIN_WIDTH,
    SRDiscriminator,
    SRResNet,
    d_side,
)
from ganforge.models.tiling import tile_spans, tiled

QUIET = {"train.progress": False, "train.tensorboard": False}
#: torchvision's vgg19().features: (index, out channels, in channels) of each convolution
TORCHVISION_CONVS = [
    (0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256),
    (14, 256, 256), (16, 256, 256), (19, 512, 256), (21, 512, 512), (23, 512, 512),
    (25, 512, 512), (28, 512, 512), (30, 512, 512), (32, 512, 512), (34, 512, 512),
]  # fmt: skip


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def lowres_spec(channels: int = 1, resolution: int = 16, factor: int = 4) -> DataSpec:
    return DataSpec(
        channels=channels,
        resolution=resolution,
        name="lowres:synthetic",
        task="lowres",
        cond_channels=channels,
        cond_resolution=resolution // factor,
    )


# ----- the networks ----------------------------------------------------------------------------
def test_parameter_counts_at_the_papers_size():
    """SRResNet (64 channels, 16 blocks, x4, RGB), counted by hand: 9x9 head 3*64*81 + 64 and
    its PReLU 64; each block two bias-free 3x3 convs 2*64*64*9, two BNs 2*128, PReLU 64; the
    fuse conv 64*64*9 and BN 128; two sub-pixel stages of a 3x3 conv to 256 (64*256*9 + 256)
    and PReLU 64; the 9x9 tail 64*3*81 + 3.  D at 96 px: the first conv 3*64*9 + 64, seven
    bias-free convs with BN, then dense 512*6*6 -> 1024 -> 1."""
    head = 3 * 64 * 81 + 64 + 64
    block = 2 * 64 * 64 * 9 + 2 * 128 + 64
    fuse = 64 * 64 * 9 + 128
    stage = 64 * 256 * 9 + 256 + 64
    tail = 64 * 3 * 81 + 3
    g_expected = head + 16 * block + fuse + 2 * stage + tail
    convs = [(64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
    d_expected = 3 * 64 * 9 + 64 + sum(a * b * 9 + 2 * b for a, b in convs)
    d_expected += 512 * 6 * 6 * 1024 + 1024 + 1024 + 1
    assert g_expected == 1_548_547 and d_expected == 23_563_649
    with torch.device("meta"):
        model = ganforge.create_model("srgan", "ledig", lowres_spec(3, 96))
    assert {n: count(net) for n, net in model.networks().items()} == {
        "G": g_expected,
        "D": d_expected,
    }
    assert len(model.G.blocks) == 16 and model.factor == 4


def test_sub_pixel_stages_double_the_side_twice_at_x4_and_once_at_x2():
    g = SRResNet(1, ngf=8, n_blocks=1, factor=4).eval()
    x = torch.rand(2, 1, 7, 5) * 2 - 1
    with torch.no_grad():
        features = g.head((x + 1) / 2)
        conv = g.upsample[0](features)
        shuffled = g.upsample[1](conv)
        out = g(x)
    assert conv.shape == (2, 32, 7, 5)  # 4 ngf channels before the shuffle
    assert shuffled.shape == (2, 8, 14, 10)  # ngf channels at twice the side
    # pixel shuffle: channel 4c + 2i + j of the conv is sub-pixel (i, j) of output channel c
    assert torch.equal(shuffled[:, 3, 1::2, 0::2], conv[:, 4 * 3 + 2])
    assert out.shape == (2, 1, 28, 20)
    g2 = SRResNet(1, ngf=8, n_blocks=1, factor=2)
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in g2.upsample) == 1
    assert g2(x).shape == (2, 1, 14, 10)


def test_the_x2_option_follows_the_data_or_is_checked_against_it():
    model = ganforge.create_model("srgan", "tiny", lowres_spec(1, 16, factor=2))
    assert model.factor == 2 and model.upscale(torch.zeros(1, 1, 8, 8)).shape == (1, 1, 16, 16)
    model = ganforge.create_model("srgan", "tiny", lowres_spec(1, 16, factor=2), factor=2)
    assert model.factor == 2
    with pytest.raises(UserError, match="factor is 4 but .* 2 times smaller"):
        ganforge.create_model("srgan", "tiny", lowres_spec(1, 16, factor=2), factor=4)


@pytest.mark.parametrize("resolution,side", [(96, 6), (28, 2), (16, 1), (17, 2)])
def test_discriminator_flatten_follows_the_resolution(resolution, side):
    assert d_side(resolution) == side
    d = SRDiscriminator(1, resolution, ndf=4, dense=8)
    assert d.classifier[1].in_features == 8 * 4 * side**2
    assert d(torch.zeros(3, 1, resolution, resolution)).shape == (3,)


def test_receptive_radius_bounds_how_far_one_input_pixel_reaches():
    """Changing one low-res pixel changes outputs at most ``radius`` input pixels away (x4:
    4 * radius output pixels), and the bound is nearly reached."""
    torch.manual_seed(0)
    g = SRResNet(1, ngf=4, n_blocks=2, factor=4).eval()
    assert g.receptive_radius == 2 * 2 + 8
    x = torch.rand(1, 1, 41, 41) * 2 - 1
    y = x.clone()
    y[..., 20, 20] += 1.0
    with torch.no_grad():
        changed = (g(x) - g(y)).abs()[0, 0] > 0
    rows, cols = changed.nonzero(as_tuple=True)
    # the input pixel covers output pixels 80..83; distance in input pixels, rounded up
    reach = max((80 - rows.min()).item(), (rows.max() - 83).item(), (80 - cols.min()).item())
    assert g.receptive_radius - 1 < reach / 4 <= g.receptive_radius


# ----- training phases and schedule ------------------------------------------------------------
def test_phase_windows_mse_first_then_g_and_d():
    model, _ = build("srgan", pretrain_steps=5)
    phases = {p.name: p for p in model.phases()}
    assert [(p.name, p.group) for p in phases.values()] == [
        ("G_mse", "G"),
        ("G", "G"),
        ("D", "D"),
    ]
    assert [s for s in range(8) if phases["G_mse"].runs_at(s)] == [0, 1, 2, 3, 4]
    assert [s for s in range(8) if phases["G"].runs_at(s)] == [5, 6, 7]
    assert [s for s in range(8) if phases["D"].runs_at(s)] == [5, 6, 7]
    assert [model.begin_iteration(s) for s in (0, 4, 5, 6)] == [(), (), ("G",), ()]
    assert build("srgan", pretrain_steps=0)[0].begin_iteration(0) == ()


def test_mse_phase_trains_g_only_then_d_joins(tmp_path):
    """Two MSE steps leave D as it was built and move G; the adversarial steps after them move
    D.  The losses logged per step name the phases that ran."""
    data = LowresDataset(make_dataset(n=16, resolution=16), 4, "lowres:synthetic")
    settings = [("train.log_every", 1), ("train.sample_every", 100), *QUIET.items()]

    def trainer(steps: int) -> Trainer:
        cfg = build_config("srgan", "tiny", overrides=[*settings, ("train.steps", steps)])
        (tmp_path / f"run{steps}").mkdir()
        return Trainer(cfg, tmp_path / f"run{steps}", data=data)

    start = {k: v.clone() for k, v in trainer(1).model.state_dict().items()}
    two, four = trainer(2), trainer(4)
    two.fit()
    four.fit()

    def same(model, prefix: str) -> bool:
        state = model.state_dict()
        return all(torch.equal(state[k], start[k]) for k in start if k.startswith(prefix))

    assert same(two.model, "D.") and not same(two.model, "G.")
    assert not same(four.model, "D.")
    rows = [
        json.loads(line) for line in (tmp_path / "run4" / "metrics.jsonl").read_text().splitlines()
    ]
    phases = {row["step"]: {k.split("/")[0] for k in row if "/" in k} for row in rows}
    assert phases[1] == phases[2] == {"G_mse"} and phases[3] == phases[4] == {"G", "D"}


def test_lr_falls_tenfold_every_lr_step_after_pretraining():
    model, _ = build("srgan", pretrain_steps=100, lr_step=50)
    schedules = {k: spec.schedule for k, spec in model.param_groups().items()}
    for schedule in schedules.values():
        factors = [schedule.factor(s) for s in (0, 99, 100, 149, 150, 199, 200)]
        assert factors == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.01])
    constant = build("srgan", lr_step=0)[0].param_groups()["G"].schedule
    assert constant.factor(10**6) == 1.0
    assert model.param_groups()["G"].betas == (0.9, 0.999)


def test_ledig_preset_is_the_papers_schedule():
    cfg = build_config("srgan", "ledig")
    f = cfg.family
    assert (f.resolution, f.ngf, f.n_blocks, f.ndf, f.d_dense) == (96, 64, 16, 64, 1024)
    assert (f.lr, f.adv_weight, cfg.train.batch_size) == (1e-4, 1e-3, 16)
    assert f.pretrain_steps == 10**6 and cfg.train.steps - f.pretrain_steps == 2 * f.lr_step
    assert f.content_kind == "domain"  # offline default; vgg54 once vgg19_weights is given


def test_srresnet_only_run_is_pretrain_steps_covering_the_run():
    """The benchmark's SRResNet run: pretrain_steps >= train.steps leaves only G_mse."""
    steps = build_config("srgan", "fmnist").train.steps
    model = ganforge.create_model("srgan", "fmnist", lowres_spec(1, 28), pretrain_steps=steps)
    ran = {p.name for p in model.phases() for s in range(steps) if p.runs_at(s)}
    assert ran == {"G_mse"}
    assert model.param_groups()["G"].schedule.factor(steps - 1) == 1.0  # no decay either


# ----- the content networks --------------------------------------------------------------------
def fake_vgg_file(path, *, random: bool = False, classifier: bool = True):
    """A state dict with torchvision's vgg19 key names and feature shapes, each tensor filled
    with its layer index (so a test sees where it lands) or, ``random``, He-initialized; the
    classifier tensors carry torchvision's names but small shapes: the loader drops them."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for index, out_ch, in_ch in TORCHVISION_CONVS:
        shape = (out_ch, in_ch, 3, 3)
        weight = torch.randn(shape, generator=gen) * (2 / (9 * in_ch)) ** 0.5
        state[f"features.{index}.weight"] = weight if random else torch.full(shape, index / 100)
        state[f"features.{index}.bias"] = torch.full((out_ch,), 0.0 if random else -index / 100)
    if classifier:
        for index in (0, 3, 6):
            state[f"classifier.{index}.weight"] = torch.zeros(2, 2)
            state[f"classifier.{index}.bias"] = torch.zeros(2)
    torch.save(state, path)
    return path


def test_vgg19_layers_reach_relu5_4_with_torchvisions_indices():
    names = vgg.layer_names()
    assert names[35] == "relu5_4" and names[34] == "conv5_4" and names[36] == "pool5"
    assert vgg.layer_index("relu2_2") == 8 and vgg.layer_index("relu3_4") == 17
    with torch.device("meta"):
        net = vgg.VGG19Features()
    assert len(net.features) == 36 and isinstance(net.features[35], torch.nn.ReLU)
    convs = [
        (i, m.out_channels, m.in_channels)
        for i, m in enumerate(net.features)
        if isinstance(m, torch.nn.Conv2d)
    ]
    assert convs == TORCHVISION_CONVS
    with pytest.raises(UserError, match="unknown VGG19 layer 'relu6_1'"):
        vgg.layer_index("relu6_1")


def test_torchvision_keys_load_into_vgg19_with_a_matching_sha(tmp_path):
    file = fake_vgg_file(tmp_path / "vgg19.pth")
    digest = vgg.file_sha256(file)
    net, got = vgg.load_vgg19(file, sha256_prefix=digest[:8])
    assert got == digest
    assert not any(p.requires_grad for p in net.parameters()) and not net.training
    for index, _, _ in TORCHVISION_CONVS:
        assert torch.all(net.features[index].weight == index / 100)
        assert torch.all(net.features[index].bias == -index / 100)
    assert net(torch.zeros(1, 1, 32, 32)).shape == (1, 512, 2, 2)  # gray -> RGB, 4 pools
    # ImageNet normalization: mid-gray (0 in [-1, 1]) enters as (0.5 - mean) / std
    expected = (0.5 - torch.tensor(vgg.IMAGENET_MEAN)) / torch.tensor(vgg.IMAGENET_STD)
    normalized = ((torch.zeros(1, 3, 1, 1) + 1) / 2 - net.mean) / net.std
    assert torch.allclose(normalized.flatten(), expected)


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_vgg_file_missing_wrong_or_unfit_is_refused_in_one_line(tmp_path):
    with pytest.raises(UserError) as err:
        vgg.load_vgg19(tmp_path / "nowhere.pth")
    assert vgg.WEIGHTS_URL in one_line(err) and "vgg19_weights=PATH" in one_line(err)
    with pytest.raises(UserError) as err:
        vgg.load_vgg19(None)
    assert vgg.WEIGHTS_URL in one_line(err)
    file = fake_vgg_file(tmp_path / "vgg19.pth")
    with pytest.raises(UserError) as err:  # the real prefix: these random bytes do not match
        vgg.load_vgg19(file)
    assert "expected one starting dcbb9e9d" in one_line(err)
    state = torch.load(file, weights_only=True)
    del state["features.34.weight"]
    torch.save(state, tmp_path / "short.pth")
    digest = vgg.file_sha256(tmp_path / "short.pth")
    with pytest.raises(UserError) as err:
        vgg.load_vgg19(tmp_path / "short.pth", sha256_prefix=digest[:8])
    assert "missing tensors features.34.weight" in one_line(err)


def test_vgg54_content_loss_is_built_on_first_use_and_kept_out_of_the_state(tmp_path, monkeypatch):
    file = fake_vgg_file(tmp_path / "vgg19.pth", random=True, classifier=False)
    monkeypatch.setattr(vgg, "WEIGHTS_SHA256_PREFIX", vgg.file_sha256(file)[:8])
    model, _ = build("srgan", content="auto", vgg19_weights=str(file))
    assert model.cfg.content_kind == "vgg54"
    keys = set(model.state_dict())
    assert model._content is None  # nothing loaded at construction
    model.phases()  # checks the file: a wrong one would stop the run here
    losses = model.g_step(example_batch(model), {})
    assert torch.isfinite(losses["content"]) and losses["content"] > 0
    assert set(model.state_dict()) == keys  # the content network is no part of the model
    assert set(dict(model.named_modules())) == set(dict(build("srgan")[0].named_modules()))
    assert "VGG19 relu5_4" in model.content_description()
    assert vgg.file_sha256(file) in model.content_description()
    assert "x 0.07843" in model.content_description()  # 1 / 12.75
    net = model._content.net
    assert not any(p.requires_grad for p in net.parameters()) and not net.training


def test_domain_content_uses_another_seed_and_width_than_the_evaluation(monkeypatch):
    """The classifier is asked for with seed 1 and width 24 (the evaluation's is seed 0, width
    32) on the data set under 'lowres:'; stubbed here with an untrained one (training the real
    one takes minutes).  Its block-2 features are 2 * 24 channels at half the side."""
    asked = {}

    def fake_build(dataset, *, settings, **_):
        asked.update(dataset=dataset, settings=settings)
        net = domain.DomainClassifier(1, 16, 10, settings).eval()
        return net, {"hash": "feedbeef"}

    monkeypatch.setattr(domain, "build_domain_network", fake_build)
    model, _ = build("srgan", content="domain")
    model.spec = DataSpec(**{**model.spec.to_dict(), "name": "lowres:fmnist"})
    keys = set(model.state_dict())
    losses = model.g_step(example_batch(model), {})
    assert asked["dataset"] == "fmnist"
    evaluation = domain.DomainSettings()
    assert (asked["settings"].seed, asked["settings"].width) == (1, 24)
    assert (CONTENT_DOMAIN_SEED, CONTENT_DOMAIN_WIDTH) != (evaluation.seed, evaluation.width)
    assert CONTENT_DOMAIN_SEED != evaluation.seed and CONTENT_DOMAIN_WIDTH != evaluation.width
    features = model._content.net(torch.zeros(2, 1, 16, 16))
    assert features.shape == (2, 48, 8, 8) and torch.isfinite(losses["content"])
    assert set(model.state_dict()) == keys
    assert "domain classifier of fmnist (feedbeef), seed 1, width 24" in (
        model.content_description()
    )


def test_content_options_are_checked():
    with pytest.raises(UserError, match="vgg19-dcbb9e9d.pth"):
        build_config("srgan", "tiny", overrides=[("content", "vgg54")])
    with pytest.raises(UserError, match="does not use it"):
        build_config("srgan", "tiny", overrides=[("vgg19_weights", "/x.pth")])
    with pytest.raises(UserError, match="use auto, vgg54, domain or mse"):
        build_config("srgan", "tiny", overrides=[("content", "vgg22")])
    model, _ = build("srgan")
    assert model.content_description().startswith("pixel MSE")
    batch = example_batch(model)
    losses = model.g_step(batch, {})
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(model.G(batch["cond_image"]), batch["image"])
    assert torch.allclose(losses["content"], mse)  # SRGAN-MSE: pixel MSE is the content


# ----- upscale ---------------------------------------------------------------------------------
def trained_looking(model):
    """Running BN statistics away from their initial 0 / 1, as after training."""
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model


def test_tile_spans_cover_the_side_once():
    spans = tile_spans(25, 10, 3)
    assert spans == [(0, 10, 0, 13), (10, 20, 7, 23), (20, 25, 17, 25)]


def test_tiled_upscale_equals_the_untiled_one():
    model = trained_looking(build("srgan")[0])
    model.G.eval()
    x = torch.rand(2, 1, 37, 30, generator=torch.Generator().manual_seed(0)) * 2 - 1
    radius = model.G.receptive_radius  # 12 for the tiny G (2 blocks)
    with torch.no_grad():
        whole = model.G(x)
        stitched = tiled(model.G, x, scale=4, tile=10, overlap=radius)
        short = tiled(model.G, x, scale=4, tile=10, overlap=2)
    assert stitched.shape == whole.shape == (2, 1, 148, 120)
    assert (stitched - whole).abs().max() < 1e-5
    assert (short - whole).abs().max() > 1e-3  # too little context shows at the seams
    assert torch.allclose(model.upscale(x, tile=10), model.upscale(x, tile=0), atol=1e-5)
    model.cfg.tile = 16  # the config's tile applies by default
    assert torch.allclose(model.upscale(x), whole.clamp(-1, 1), atol=1e-5)


@pytest.mark.parametrize("size", [(1, 1), (5, 9), (13, 7)])
def test_upscale_takes_any_size(size):
    model = trained_looking(build("srgan")[0])
    model.train()
    x = torch.rand(3, 1, *size) * 2 - 1
    out = model.upscale(x)
    assert out.shape == (3, 1, 4 * size[0], 4 * size[1]) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1
    assert model.G.training  # left in the mode it was in
    assert model.valid_size(*size) == size
    # each image's output depends on it alone (BN in eval mode)
    assert torch.allclose(model.upscale(x[1:2]), out[1:2], atol=1e-6)


def test_upscale_refuses_bad_inputs_in_one_line():
    model, _ = build("srgan")
    with pytest.raises(UserError, match=r"give \[N, 1, H, W\]"):
        model.upscale(torch.zeros(1, 3, 4, 4))
    with pytest.raises(UserError, match="tile must be 0"):
        model.upscale(torch.zeros(1, 1, 4, 4), tile=-1)
    with pytest.raises(UserError, match="upscale"):
        model.generate(2)


def test_a_short_tiny_run_trains_and_loads(tmp_path):
    run = ganforge.train(
        "srgan",
        preset="tiny",
        dataset="lowres:digits",
        steps=4,
        batch_size=4,
        out=tmp_path / "sr",
        overrides={"train.sample_every": 2, "train.log_every": 2, **QUIET},
    )
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert "G_mse/mse" in rows[0] and {"G/content", "G/adv", "D/real"} <= set(rows[1])
    assert (run / "samples" / "step-000004.png").is_file()
    loaded = ganforge.load(run)
    x = torch.rand(2, 1, 4, 4) * 2 - 1
    assert loaded.model.upscale(x).shape == (2, 1, 16, 16)
    assert torch.equal(loaded.upscale(x), loaded.model.upscale(x))
    # every report names the content loss: the training summary and the evaluation
    assert "- content loss: pixel MSE" in (run / "summary.md").read_text()
    report = evaluate_run(run, metrics="psnr", n=4, out=tmp_path / "eval.json")
    assert report["generated"]["notes"]["content loss"].startswith("pixel MSE")
