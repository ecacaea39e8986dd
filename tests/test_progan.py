"""ProGAN: the growth schedule, the fade-ins of G, D and the real images, PixelNorm, the drift
term, the refused schedules, and exact resume in the middle of a fade-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import make_dataset
from safetensors.torch import load_file

import ganforge
from ganforge.api import resolve_run
from ganforge.cli import main
from ganforge.config import build_config
from ganforge.engine.trainer import Trainer, zero_missing_gradients
from ganforge.errors import UserError
from ganforge.models.progan import GrowthSchedule, pixel_norm

QUIET = [("train.progress", False), ("train.tensorboard", False), ("train.log_every", 1)]


def tiny(**overrides):
    """The tiny preset: resolution 16, stages [[0, 2], [2, 2], [2, 2]] (4 -> 8 -> 16)."""
    torch.manual_seed(0)
    return ganforge.create_model("progan", "tiny", **overrides)


# ----- the schedule ---------------------------------------------------------------------------
def test_stage_and_alpha_as_a_function_of_the_step():
    # 4x4 for steps 0-3; 8x8 fades in over 4-5 and trains alone over 6-11; 16x16 fades in over
    # 12-15 and then stays
    s = GrowthSchedule([[0, 4], [2, 6], [4, 8]])
    expected = {
        0: (0, 1.0),
        3: (0, 1.0),
        4: (1, 0.0),
        5: (1, 0.5),
        6: (1, 1.0),
        11: (1, 1.0),
        12: (2, 0.0),
        13: (2, 0.25),
        14: (2, 0.5),
        15: (2, 0.75),
        16: (2, 1.0),
        10**6: (2, 1.0),  # past the table: the final resolution, on its own
    }
    for step, stage_alpha in expected.items():
        assert s.at(step) == stage_alpha, step
    assert s.length == 4 + 2 + 6 + 4 + 8
    assert [step for step in range(40) if s.starts_period(step)] == [4, 6, 12, 16]


def test_empty_periods_are_skipped():
    # start at 8x8 (4x4 skipped), jump without a fade-in... then fade in 16x16 over 2 steps
    s = GrowthSchedule([[0, 0], [0, 3], [2, 0]])
    assert [s.at(step) for step in range(7)] == [
        (1, 1.0),
        (1, 1.0),
        (1, 1.0),
        (2, 0.0),
        (2, 0.5),
        (2, 1.0),
        (2, 1.0),
    ]
    assert [step for step in range(10) if s.starts_period(step)] == [3, 5]


def test_begin_iteration_sets_every_network_and_asks_for_adam_resets():
    model = tiny()
    assert model.begin_iteration(0) == ()
    assert model.G.growth() == model.G_ema.growth() == model.D.growth() == (0, 1.0)
    assert model.begin_iteration(2) == ("G", "D")  # 8x8 starts fading in
    assert model.begin_iteration(3) == ()
    assert model.G.growth() == model.G_ema.growth() == model.D.growth() == (1, 0.5)
    assert model.begin_iteration(4) == ("G", "D")  # 8x8 on its own


# ----- networks -------------------------------------------------------------------------------
@pytest.mark.parametrize("stage,res", [(0, 4), (1, 8), (2, 16)])
def test_networks_work_at_the_stage_resolution_and_generate_at_the_final_one(stage, res):
    model = tiny()
    model.set_growth(stage, 1.0)
    z = torch.randn(4, 16)
    assert model.G(z).shape == (4, 1, res, res)
    assert model.D(torch.zeros(4, 1, res, res)).shape == (4,)
    images = model.generate(4, seed=0)
    assert images.shape == (4, 1, 16, 16)
    # generate shows the stage's image, upsampled: constant over res-to-16 squares
    k = 16 // res
    blocky = images[..., ::k, ::k].repeat_interleave(k, 2).repeat_interleave(k, 3)
    assert torch.equal(images, blocky)


@pytest.mark.parametrize("stage", [1, 2])
def test_fade_in_starts_exactly_where_the_previous_stage_left_off(stage):
    model = tiny().eval()
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    real = torch.randn(8, 1, 4 << stage, 4 << stage, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.set_growth(stage - 1, 1.0)
        g_before, d_before = model.G(z), model.D(F.avg_pool2d(real, 2))
        model.set_growth(stage, 0.0)
        g_start, d_start = model.G(z), model.D(real)
        model.set_growth(stage, 1.0)
        g_new, d_new = model.G(z), model.D(real)
        model.set_growth(stage, 0.5)
        g_half = model.G(z)
    # at alpha = 0 the new block has no effect on either network
    assert torch.equal(g_start, F.interpolate(g_before, scale_factor=2, mode="nearest"))
    assert torch.equal(d_start, d_before)
    # ... at alpha = 1 it is all there is, and half way G's output is the average
    assert not torch.allclose(g_new, g_start, atol=1e-3)
    assert not torch.allclose(d_new, d_start, atol=1e-3)
    assert torch.allclose(g_half, (g_start + g_new) / 2, atol=1e-6)


def test_real_images_fade_like_the_generator():
    model = tiny()
    # a 16x16 image made of 2x2 squares of a +-1 checkerboard at 8x8: pooled to 8x8 it is the
    # checkerboard, pooled once more it is 0 everywhere
    board = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1
    image = board.repeat_interleave(2, 0).repeat_interleave(2, 1)[None, None]
    model.set_growth(1, 0.25)
    assert torch.equal(model.stage_reals(image), 0.25 * board[None, None])
    model.set_growth(1, 1.0)
    assert torch.equal(model.stage_reals(image), board[None, None])
    model.set_growth(0, 1.0)
    assert torch.equal(model.stage_reals(image), torch.zeros(1, 1, 4, 4))
    model.set_growth(2, 1.0)
    assert torch.equal(model.stage_reals(image), image)


def test_pixel_norm_gives_every_pixel_unit_rms_features():
    x = torch.randn(3, 5, 4, 4) * 7
    rms = pixel_norm(x).square().mean(dim=1).sqrt()
    assert torch.allclose(rms, torch.ones(3, 4, 4), atol=1e-5)
    # and G's blocks hand on normalized features
    model = tiny()
    out = model.G.b8(model.G.b4(pixel_norm(torch.randn(2, 16))))
    assert torch.allclose(out.square().mean(dim=1).sqrt(), torch.ones(2, 8, 8), atol=1e-5)


def test_drift_term_on_known_logits():
    model = ganforge.create_model("dcgan", "tiny", loss="hinge", **{"reg.drift": 0.5})
    real_logits = torch.tensor([1.0, -2.0, 3.0, 0.0])
    fake_logits = torch.tensor([0.5, 0.5, -0.5, -1.5])
    outputs = iter([real_logits, fake_logits])
    model.discriminate = lambda images, labels: (next(outputs), None)
    batch = {"image": torch.zeros(4, 1, 28, 28), "label": torch.zeros(4, dtype=torch.long)}
    losses = model.d_step(batch, {})
    # 0.5 * (1 + 4 + 9 + 0) / 4
    assert losses["drift"].item() == pytest.approx(1.75)
    # hinge: mean relu(1 - real) = (0 + 3 + 0 + 1) / 4, mean relu(1 + fake) = (1.5 + 1.5 + 0.5) / 4
    assert losses["loss"].item() == pytest.approx(1.0 + 0.875 + 1.75)


def test_progan_d_step_has_the_papers_penalties():
    model = tiny()
    model.set_growth(1, 0.5)
    real = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    losses = model.d_step({"image": real}, {})
    with torch.no_grad():
        logits = model.D(model.stage_reals(real))
    assert losses["drift"].item() == pytest.approx(0.001 * logits.square().mean().item())
    assert {"gp", "drift", "loss"} <= set(losses)


def test_unused_layers_get_zero_gradients():
    model = tiny()
    model.set_growth(1, 0.5)  # uses b4, b8 and the RGB layers of both
    real = torch.rand(8, 1, 16, 16) * 2 - 1
    model.g_step({"image": real}, {})["loss"].backward()
    # the loss misses exactly the idle layers; the engine gives them zeros, not none
    missed = {id(p) for p in model.G.parameters() if p.grad is None}
    assert missed == {id(p) for p in model.G.idle_parameters()} and missed
    zero_missing_gradients(list(model.G.parameters()))
    grads = {n: p.grad for n, p in model.G.named_parameters()}
    assert all(grads[n].abs().sum() == 0 for n in grads if n.startswith("b16."))
    assert grads["b4.torgb.weight"].abs().sum() > 0 and grads["b8.torgb.weight"].abs().sum() > 0


# ----- refusals -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sets,message",
    [
        (["stages=[[0,2],[2,2]]"], "give 3 [fade, stable] step pairs, one per resolution"),
        (["resolution=32"], "resolution 32 grows through 4, 8, 16, 32, so give 4"),
        (["stages=[[0,2],[-1,2],[2,2]]"], "step counts cannot be negative"),
        (["stages=[[0,2],[2],[2,2]]"], "give 3 [fade, stable] step pairs"),
        (["stages=[[1,2],[2,2],[2,2]]"], "nothing to fade in from; make its fade 0"),
        (["reg.drift=-1"], "invalid value -1.0 for reg.drift"),
        (["spectral_norm=true"], "spectral_norm and reg.ortho would silently do nothing"),
    ],
)
def test_bad_settings_are_refused_at_config_time_in_one_line(sets, message, capsys):
    args = ["train", "progan", "--preset", "tiny", "--dataset", "digits"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_truncation_and_odd_batches_are_refused():
    model = tiny()
    with pytest.raises(UserError, match="truncation in z has no effect"):
        model.generate(2, seed=0, truncation=0.7)
    with pytest.raises(UserError, match="multiple of 4"):
        model.D(torch.zeros(6, 1, 16, 16))


def test_summary_shows_the_grown_networks(capsys):
    assert main(["summary", "progan"]) == 0
    out = capsys.readouterr().out
    assert "b32.torgb" in out and "b32.fromrgb" in out and "b4.mbstd" in out


def test_presets_follow_the_paper():
    c = build_config("progan", "paper")
    f = c.family
    assert (f.lr_g, f.lr_d, tuple(f.betas), f.n_critic) == (1e-3, 1e-3, (0.0, 0.99), 1)
    assert (f.loss, f.reg.gp, f.reg.drift) == ("wasserstein", 10.0, 0.001)
    # 400k images per period at batch 16
    assert f.stages == [[0, 25_000]] + [[25_000, 25_000]] * 3 and c.train.batch_size == 16
    assert build_config("progan").preset == "fmnist32"


# ----- training and exact resume --------------------------------------------------------------
def run(tmp: Path, steps: int, *, resume: bool = False) -> Trainer:
    overrides = [("train.steps", steps), ("train.checkpoint_every", 3), *QUIET]
    cfg, run_dir = resolve_run("progan", preset="tiny", overrides=overrides, out=tmp, resume=resume)
    trainer = Trainer(cfg, run_dir, resume=resume, data=make_dataset(resolution=16))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    trainer.fit()
    return trainer


def test_training_grows_resets_adam_and_leaves_unused_blocks_alone(tmp_path):
    trainer = run(tmp_path / "r", 3)
    lines = (tmp_path / "r/metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["G/resolution"] for r in records] == [4, 4, 8]
    assert [r["G/alpha"] for r in records] == [1, 1, 0]
    # Adam restarted when 8x8 began fading in at step 2: one update since
    g_state = trainer.optimizers["G"].state
    assert {int(s["step"]) for s in g_state.values()} == {1}
    # the 16x16 block has not been used yet and has not moved
    fresh = tiny()
    now = dict(trainer.model.G.named_parameters())
    for name, p in fresh.G.named_parameters():
        if name.startswith("b16."):
            assert torch.equal(p, now[name]), name
    # a checkpoint carries the stage, so a loaded model generates as the trained one did (up
    # to rounding: training runs channels-last)
    loaded = ganforge.load(tmp_path / "r")
    assert loaded.model.G_ema.growth() == (1, 0.0)
    expected = trainer.model.generate(4, seed=0)
    assert torch.allclose(loaded.generate(4, seed=0), expected, atol=1e-5)


def test_resume_in_the_middle_of_a_fade_in_is_bitwise_identical(tmp_path):
    # steps 2 and 3 fade in 8x8: the split run stops after step 2 and resumes at alpha 0.5
    straight = run(tmp_path / "straight", 6)
    run(tmp_path / "split", 3)
    resumed = run(tmp_path / "split", 6, resume=True)
    assert resumed.step == 6
    a = load_file(str(tmp_path / "straight/checkpoints/step-000006/model.safetensors"))
    b = load_file(str(tmp_path / "split/checkpoints/step-000006/model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for name, opt in straight.optimizers.items():
        sa, sb = opt.state_dict()["state"], resumed.optimizers[name].state_dict()["state"]
        assert sa.keys() == sb.keys()
        for i in sa:
            for k in sa[i]:
                assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k]))
    assert straight.batches_drawn == resumed.batches_drawn == 6
    lines = (tmp_path / "split/metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["G/alpha"] for line in lines] == [1, 1, 0, 0.5, 1, 1]
