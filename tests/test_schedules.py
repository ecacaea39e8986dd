"""The engine's pure functions of the step: learning-rate schedules per optimizer group, phase
windows, and the zero gradients it gives parameters a phase does not reach."""

from __future__ import annotations

import pytest
import torch
from _families import build, example_batch
from conftest import make_dataset

from ganforge.config import build_config
from ganforge.engine.trainer import Trainer, zero_missing_gradients
from ganforge.errors import UserError
from ganforge.models.base import LRSchedule, Phase

QUIET = [
    ("train.sample_every", 100),
    ("train.log_every", 1),
    ("train.progress", False),
    ("train.tensorboard", False),
]


def trainer(tmp_path, folder, steps, *sets, resume=False, model="dcgan"):
    cfg = build_config(model, "tiny", overrides=[*QUIET, ("train.steps", steps), *sets])
    (tmp_path / folder).mkdir(exist_ok=True)
    return Trainer(cfg, tmp_path / folder, resume=resume, data=make_dataset(n=48))


def test_schedule_factors_worked_by_hand():
    linear = LRSchedule("linear", start=10, length=10)
    factors = [linear.factor(s) for s in (0, 9, 10, 15, 19, 20, 30)]
    assert factors == pytest.approx([1, 1, 1, 0.5, 0.1, 0, 0])
    step = LRSchedule("step", start=0, length=5, gamma=0.5)
    assert [step.factor(s) for s in (0, 4, 5, 9, 10)] == [1, 1, 0.5, 0.5, 0.25]
    assert LRSchedule().factor(10**9) == 1


def test_the_engine_sets_every_groups_rate_from_the_schedule(tmp_path):
    sets = [("lr_schedule", "linear"), ("lr_decay_start", 2), ("lr_decay_steps", 4)]
    t = trainer(tmp_path, "a", 5, *sets)
    t.fit()
    # the last step run was step 4: 2 steps into the decay, so half the base rate
    assert t.optimizers["G"].param_groups[0]["lr"] == pytest.approx(2e-4 * 0.5)
    assert t.optimizers["D"].param_groups[0]["lr"] == pytest.approx(2e-4 * 0.5)


def test_resuming_in_the_middle_of_a_decay_is_bitwise_a_straight_run(tmp_path):
    sets = [
        ("lr_schedule", "linear"),
        ("lr_decay_start", 1),
        ("lr_decay_steps", 5),
        ("train.checkpoint_every", 3),
    ]
    straight = trainer(tmp_path, "a", 6, *sets)
    straight.fit()
    trainer(tmp_path, "b", 3, *sets).fit()
    resumed = trainer(tmp_path, "b", 6, *sets, resume=True)
    assert resumed.step == 3
    resumed.fit()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lrs = [g["lr"] for t in (straight, resumed) for g in t.optimizers["G"].param_groups]
    assert lrs[0] == lrs[1] == pytest.approx(2e-4 * 0.2)


def test_bad_schedules_are_refused_with_the_key():
    with pytest.raises(UserError, match="lr_decay_steps"):
        build_config("dcgan", "tiny", overrides=[("lr_schedule", "linear")])
    with pytest.raises(UserError, match="lr_schedule"):
        build_config("dcgan", "tiny", overrides=[("lr_schedule", "cosine")])
    with pytest.raises(UserError, match="lr_decay_gamma"):
        build_config(
            "dcgan",
            "tiny",
            overrides=[("lr_schedule", "step"), ("lr_decay_steps", 2), ("lr_decay_gamma", 2)],
        )


def test_phase_windows_and_intervals():
    phase = Phase("stage2", group="G", step=lambda b, c: {}, every=2, start=4, stop=10)
    assert [s for s in range(12) if phase.runs_at(s)] == [4, 6, 8]
    assert [s for s in range(4) if Phase("p", "G", lambda b, c: {}).runs_at(s)] == [0, 1, 2, 3]


def test_the_engine_runs_a_phase_only_inside_its_window(tmp_path):
    t = trainer(tmp_path, "a", 6)
    ran: list[int] = []
    d_phase = next(p for p in t.phases if p.group == "D")
    step = d_phase.step

    def counting(batch, ctx):
        ran.append(t.step)
        return step(batch, ctx)

    d_phase.step, d_phase.start, d_phase.stop = counting, 2, 5
    before = [p.detach().clone() for p in t.model.D.parameters()]
    t.step = 0
    t.fit()
    assert ran == [2, 3, 4]
    assert any(not torch.equal(a, b) for a, b in zip(before, t.model.D.parameters(), strict=True))


def test_parameters_a_phase_misses_get_zero_gradients():
    model, _ = build("dcgan", **{"reg.r1": 1.0, "reg.every": 4})
    reg = next(p for p in model.phases() if p.name == "D_reg")
    params = list(model.D.parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    reg.step(example_batch(model), {})["loss"].backward()
    missing = [p for p in params if p.grad is None]
    assert missing  # D's output bias has no input gradient under R1
    zero_missing_gradients(params)
    assert all(p.grad is not None for p in params)
    assert all(torch.count_nonzero(p.grad) == 0 for p in missing)


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax"])
def test_label_smoothing_moves_the_real_target_of_both_bce_losses(loss):
    """It was accepted with loss=minimax but never applied: D's real-image loss was 0.71159 at
    smoothing 0 and at 0.2 alike."""
    real = {}
    for smoothing in (0.0, 0.2):
        model, _ = build("dcgan", seed=0, loss=loss, label_smoothing=smoothing)
        torch.manual_seed(0)
        real[smoothing] = model.d_step(example_batch(model), {})["real"].item()
    # BCE at target t of a logit l is softplus(l) - t * l: it changes with t unless l = 0
    assert real[0.0] != pytest.approx(real[0.2], abs=1e-4)
