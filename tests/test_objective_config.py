"""Objectives composed by config, end to end, and the combinations refused at config time."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_dataset

import ganforge
from ganforge.api import resolve_run
from ganforge.cli import main
from ganforge.engine.trainer import Trainer

QUIET = ["--set", "train.progress=false", "--set", "train.tensorboard=false"]


def train(tmp_path, model, *sets, steps=2):
    out = tmp_path / "run"
    args = [
        "train",
        model,
        "--preset",
        "tiny",
        "--dataset",
        "digits",
        "--steps",
        str(steps),
        "--batch-size",
        "16",
        "--out",
        str(out),
        "--set",
        "train.log_every=1",
        *QUIET,
    ]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    return out, [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_hinge_r1_and_diffaugment_compose_on_dcgan(tmp_path):
    _, records = train(tmp_path, "dcgan", "loss=hinge", "reg.r1=10", "augment=diffaugment")
    last = records[-1]
    assert {"D/r1", "D/real", "D/fake", "G/loss"} <= set(last)
    assert all(torch.isfinite(torch.tensor(v)) for k, v in last.items() if "/" in k)


def test_lazy_r1_runs_as_its_own_phase_every_n_steps(tmp_path):
    _, records = train(tmp_path, "dcgan", "reg.r1=10", "reg.every=2", "d_norm=layer", steps=4)
    with_reg = [r["step"] for r in records if "D_reg/r1" in r]
    assert with_reg == [1, 3]  # phases run on steps 0 and 2, logged after them


def test_wgan_clips_the_critic_and_wgan_gp_logs_its_estimate(tmp_path):
    out, _ = train(tmp_path / "a", "wgan")
    d = ganforge.load(out).model.D
    assert max(p.abs().max().item() for p in d.parameters()) <= 0.01 + 1e-9
    _, records = train(tmp_path / "b", "wgan-gp")
    assert {"D/wasserstein", "D/gp"} <= set(records[-1])


def test_n_critic_draws_a_fresh_batch_for_every_critic_step_but_the_first(tmp_path):
    cfg, run_dir = resolve_run(
        "wgan",
        preset="tiny",
        out=tmp_path / "r",
        overrides=[
            ("train.steps", 3),
            ("train.progress", False),
            ("train.tensorboard", False),
            ("n_critic", 4),
        ],
    )
    trainer = Trainer(cfg, run_dir, data=make_dataset())
    run_dir.mkdir(parents=True)
    trainer.fit()
    assert trainer.batches_drawn == 3 * 4  # G's batch is reused by the first critic step


def test_spectral_norm_is_a_layer_option():
    model = ganforge.create_model("dcgan", "tiny", spectral_norm=True)
    convs = [m for m in model.D.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    assert convs and all(torch.nn.utils.parametrize.is_parametrized(m) for m in convs)
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in model.G.modules())


def test_infogan_varies_one_code_per_row(tmp_path, capsys):
    out, records = train(tmp_path, "infogan")
    assert "G/info_cat" in records[-1] and "D/info_cont" in records[-1]
    model = ganforge.load(out).model
    inputs = []  # what the generator is given, split back into z, category and codes
    hook = model.generator().register_forward_pre_hook(lambda net, args: inputs.append(args[0]))
    cat_grid = model.vary("cat", rows=2, seed=0)
    cont_grid = model.vary("cont1", rows=3, steps=5, seed=0)
    hook.remove()
    assert cat_grid.shape == (2 * 10, 1, 28, 28) and cont_grid.shape == (3 * 5, 1, 28, 28)
    z, cat, cont = (t.unflatten(0, (2, 10)) for t in model.split_input(inputs[0].cpu()))
    assert torch.equal(cat, torch.arange(10).expand(2, 10))  # every category, in order
    for row in range(2):  # within a row only the category changes
        assert torch.equal(z[row], z[row, :1].expand(10, -1))
        assert torch.equal(cont[row], cont[row, :1].expand(10, -1))
    assert not torch.equal(z[0, 0], z[1, 0])  # each row its own z
    z, cat, cont = (t.unflatten(0, (3, 5)) for t in model.split_input(inputs[1].cpu()))
    for row in range(3):  # cont1 walks -2, -1, 0, 1, 2; z, the category and cont0 stay
        assert torch.allclose(cont[row, :, 1], torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0]))
        assert torch.equal(cont[row, :, 0], cont[row, :1, 0].expand(5))
        assert torch.equal(cat[row], cat[row, :1].expand(5))
        assert torch.equal(z[row], z[row, :1].expand(5, -1))
    assert (
        main(["sample", str(out), "--vary", "cont1", "--n", "20", "--out", str(tmp_path / "v.png")])
        == 0
    )
    assert main(["sample", str(out), "--vary", "cont7"]) == 2
    assert "unknown code 'cont7'" in capsys.readouterr().err


def test_acgan_learns_class_heads_on_both_sides(tmp_path):
    """D's class head learns the real labels (its loss falls from chance, ln 10 = 2.30, in 60
    tiny steps), and in G's step the class loss reaches G, so G learns from that head."""
    _, records = train(
        tmp_path, "acgan", "d_class_on_fake=false", "lr_d=1e-3", "train.seed=5", steps=60
    )
    d_class = [r["D/class"] for r in records]
    assert d_class[0] > 2.0
    assert sum(d_class[-10:]) / 10 < 1.2
    model = ganforge.create_model("acgan", "tiny").train()
    g_step = next(p for p in model.phases() if p.name == "G")
    losses = g_step.step(make_dataset(16).batch(torch.arange(16)), {})  # images and labels
    g_params = list(model.networks()["G"].parameters())
    grads = torch.autograd.grad(losses["class"], g_params, allow_unused=True)
    reached = [g for g in grads if g is not None and g.abs().sum() > 0]
    assert len(reached) == len(g_params)  # every parameter of G gets a share of it


@pytest.mark.parametrize(
    "model,sets,message",
    [
        ("dcgan", ["reg.r1=10", "reg.clip=0.01"], "reg.clip cannot be combined"),
        ("dcgan", ["loss=wasserstein"], "loss=wasserstein needs D to be Lipschitz"),
        ("dcgan", ["loss=hinge", "label_smoothing=0.1"], "label_smoothing applies to BCE"),
        ("dcgan", ["loss=hing"], "invalid value 'hing' for loss"),
        ("dcgan", ["eval.every=100", "eval.metrics=fid,cas"], "need a class-conditional model"),
        ("wgan", ["reg.gp=10"], "reg.clip cannot be combined"),
        ("dcgan", ["augment=diffaugment", "augment_policy=color,flip"], "flip"),
        ("wgan", ["d_output=sigmoid"], "loss=wasserstein with d_output=sigmoid cannot work"),
        ("dcgan", ["loss=hinge", "d_output=sigmoid"], "hinge margins"),
        ("dcgan", ["d_output=softmax"], "invalid value 'softmax' for d_output"),
        ("dcgan", ["eval.every=100", "eval.metrics=fid,ppl"], "needs a style-based generator"),
    ],
)
def test_combinations_that_cannot_work_are_refused_before_training(model, sets, message, capsys):
    args = ["train", model, "--dataset", "digits"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_acgan_class_head_on_real_only_when_asked():
    import torch.nn.functional as F

    model = ganforge.create_model("acgan", "tiny", d_class_on_fake=False)
    gen = torch.Generator().manual_seed(0)
    real_aux, fake_aux = torch.randn(4, 10, generator=gen), torch.randn(4, 10, generator=gen)
    batch = {"label": torch.tensor([0, 1, 2, 3])}
    inputs = (torch.zeros(4, 16), torch.tensor([4, 5, 6, 7]))
    d = model.aux_losses("D", real_aux, fake_aux, batch, inputs)["class"]
    assert torch.allclose(d, F.cross_entropy(real_aux, batch["label"]))
    paper = ganforge.create_model("acgan", "tiny")
    both = paper.aux_losses("D", real_aux, fake_aux, batch, inputs)["class"]
    expected = 0.5 * (
        F.cross_entropy(real_aux, batch["label"]) + F.cross_entropy(fake_aux, inputs[1])
    )
    assert torch.allclose(both, expected)


def test_sigmoid_output_d_matches_bce_on_probabilities_and_saturates_like_it():
    """d_output=sigmoid: the loss is nn.BCELoss on sigmoid(D), including its cap of 100 on a
    saturated log term and the zero gradient of a saturated sigmoid."""
    import torch.nn.functional as F

    model = ganforge.create_model("dcgan", "tiny", d_output="sigmoid")
    raw = torch.tensor([-3.0, 0.5, 40.0], requires_grad=True)
    model.discriminate = lambda images, labels: (raw, None)
    logits, _ = model._discriminate(None, None)
    p = torch.sigmoid(raw)
    ours = F.binary_cross_entropy_with_logits(logits, torch.zeros(3), reduction="none")
    ref = F.binary_cross_entropy(p, torch.zeros(3), reduction="none")
    assert torch.allclose(ours, ref, atol=1e-5)
    assert ours[2].item() == pytest.approx(100.0)  # log(1 - 1) capped, as BCELoss does
    ours.sum().backward()
    assert raw.grad[2].item() == 0.0 and raw.grad[1].item() != 0.0
    assert ganforge.create_model("dcgan", "classic32").cfg.d_output == "sigmoid"


def test_lazy_gradient_penalty_is_its_own_phase_scaled_by_the_interval(tmp_path):
    _, records = train(tmp_path, "wgan-gp", "reg.every=2", "n_critic=1", steps=4)
    assert [r["step"] for r in records if "D_reg/gp" in r] == [1, 3]
    assert not any("D/gp" in r for r in records)  # the critic steps no longer carry it

    from ganforge.regularizers import gradient_penalty

    model = ganforge.create_model("wgan-gp", "tiny", **{"reg.every": 3})
    s = model.spec
    real = torch.rand(4, s.channels, s.resolution, s.resolution) * 2 - 1
    fake = torch.rand(4, s.channels, s.resolution, s.resolution) * 2 - 1
    torch.manual_seed(1)
    lazy = model.d_reg_step({"image": real}, {"fake": fake, "fake_inputs": (None,)})
    torch.manual_seed(1)
    eager = gradient_penalty(lambda x: model.critic(x, None), real, fake, weight=10.0)
    assert torch.allclose(lazy["gp"], 3 * eager["loss"])  # the average strength is kept
    assert torch.equal(lazy["loss"], lazy["gp"])
