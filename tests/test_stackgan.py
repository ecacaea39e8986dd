"""StackGAN: the reference's layout at 64 -> 256, the matching-aware losses, the stage switch
(windows, schedules, Stage-I frozen, exact resume across it), captions in and their mistakes,
the precomputed-embeddings path, and the CLI (sample --text/--stage, captioned grids,
interpolate --texts) on a run with the damsm encoder."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _families import TINY_CAPTIONS, build, example_batch, tiny_data
from PIL import Image

import ganforge
from ganforge.cli import main
from ganforge.config import build_config
from ganforge.data import DataSpec, load_dataset
from ganforge.data.captions import build_vocab
from ganforge.engine.checkpoint import read_checkpoint
from ganforge.engine.trainer import Trainer
from ganforge.errors import UserError
from ganforge.features import text as ft
from ganforge.models import get_family
from ganforge.models.stackgan import text_settings

QUIET = [("train.progress", False), ("train.tensorboard", False), ("train.log_every", 1)]


def test_the_reference_layout_at_64_to_256():
    """STAGE1_G: 4 up-blocks from 4 x 4; STAGE2_G: two stride-2 convs to 16 x 16, R_NUM
    residual blocks, 4 up-blocks; STAGE1_D: 4 stride-2 convs; STAGE2_D: 6 stride-2 convs,
    then 3x3 convs 32 -> 16 -> 8 times DF_DIM (widths scaled down here)."""
    cfg = build_config(
        "stackgan",
        "zhang",
        overrides=[
            ("g1_ch", 2),
            ("g2_ch", 4),
            ("d1_ch", 2),
            ("d2_ch", 2),
            ("text_encoder", "hashed"),
        ],
    )
    spec = DataSpec(
        channels=3,
        resolution=256,
        name="birds",
        task="captioned",
        vocab=build_vocab(TINY_CAPTIONS),
        max_tokens=4,
    )
    model = get_family("stackgan")(cfg.family, spec)
    G = model.G
    assert len(G.stage1.ups) == 4 and len(G.stage2.ups) == 4 and len(G.stage2.residual) == 4
    strided = [m for m in G.stage2.encoder if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 2 and G.stage2.size == 16
    d2 = [m for m in model.D2.encode if isinstance(m, torch.nn.Conv2d)]
    assert [m.stride[0] for m in d2] == [2] * 6 + [1, 1]
    assert [m.out_channels for m in d2] == [2, 4, 8, 16, 32, 64, 32, 16]
    assert len([m for m in model.D1.encode if isinstance(m, torch.nn.Conv2d)]) == 4
    assert model.generate(1, text="a dark coat", stage=1, seed=0).shape == (1, 3, 64, 64)
    assert model.generate(1, text="a dark coat", seed=0).shape == (1, 3, 256, 256)
    assert cfg.family.cond_dim == 128 and cfg.family.kl_weight == 2.0
    assert cfg.family.stage1_steps == 600 * 138 and cfg.train.steps == 1200 * 138


def test_matching_aware_d_loss_pairs_real_images_with_shifted_text():
    """Stage-I D with logits = the first entry of the condition: real + (fake + wrong) / 2,
    the wrong pairs being real images 0..n-2 with the conditions of 1..n-1."""
    model, _ = build("stackgan")
    model.D1.cond_logits = lambda h, c: c[:, 0]
    batch = example_batch(model, n=4)
    mu = torch.tensor([[0.5], [-1.0], [2.0], [0.0]]).expand(4, model.cfg.cond_dim).contiguous()
    ctx = {"fake1": torch.zeros(4, 1, 8, 8), "mu1": mu}
    out = model.phases()[1].step(batch, ctx)  # D1
    m = mu[:, 0]
    real = F.binary_cross_entropy_with_logits(m, torch.ones(4))
    fake = F.binary_cross_entropy_with_logits(m, torch.zeros(4))
    wrong = F.binary_cross_entropy_with_logits(m[1:], torch.zeros(3))
    assert out["wrong"].item() == pytest.approx(wrong.item())
    assert out["loss"].item() == pytest.approx((real + 0.5 * (fake + wrong)).item())
    two = model.phases()[3].step(batch, {})  # D2 with its unconditional logits
    expected = (two["real"] + two["real_uncond"]) / 2 + (
        two["fake"] + two["wrong"] + two["fake_uncond"]
    ) / 3
    assert two["loss"].item() == pytest.approx(expected.item())


def test_stage_windows_and_learning_rate_halving():
    model, _ = build("stackgan", stage1_steps=10, lr_decay_steps=4)
    phases = model.phases()
    assert [p.name for p in phases if p.runs_at(9)] == ["G1", "D1"]
    assert [p.name for p in phases if p.runs_at(10)] == ["G2", "D2"]
    groups = model.param_groups()
    first, second = groups["G1"].schedule, groups["D2"].schedule
    assert [first.factor(s) for s in (0, 3, 4, 8)] == [1.0, 1.0, 0.5, 0.25]
    assert [second.factor(s) for s in (9, 10, 13, 14, 18)] == [1.0, 1.0, 1.0, 0.5, 0.25]
    assert groups["G1"].lr == 2e-4 and groups["G1"].betas == (0.5, 0.999)
    with pytest.raises(UserError, match="2x or 4x the Stage-I side"):
        build_config("stackgan", "tiny", overrides=[("resolution", 64)])
    # the frozen text encoder is in no group
    grouped = {id(p) for spec in groups.values() for p in spec.params}
    assert not any(id(p) in grouped for p in model.G.text.parameters())


def _fit(folder, steps, resume=False, **extra):
    settings = [
        *QUIET,
        ("train.steps", steps),
        ("train.checkpoint_every", 1),
        ("train.keep_checkpoints", 10),
        ("train.sample_every", 100),
        *extra.items(),
    ]
    cfg = build_config("stackgan", "tiny", overrides=settings)
    folder.mkdir(exist_ok=True)
    trainer = Trainer(cfg, folder, resume=resume, data=tiny_data("stackgan"))
    trainer.fit()
    return trainer.model.state_dict()


def test_stage_two_leaves_stage_one_alone_and_resumes_exactly_across_the_switch(tmp_path):
    straight = _fit(tmp_path / "a", 4)  # the switch is at step 2
    at_switch = read_checkpoint(tmp_path / "a" / "checkpoints" / "step-000002").weights
    for key, value in straight.items():
        frozen = key.startswith(("G.stage1.", "D1.", "G.text.", "G.bank"))
        assert torch.equal(value, at_switch[key]) == frozen or not value.is_floating_point(), key
    _fit(tmp_path / "b", 1)
    resumed = _fit(tmp_path / "b", 4, resume=True)  # from step 1, through the switch
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert int(straight["G.bank_count"]) == 16  # the caption bank, filled at the start


def test_captions_in_and_their_mistakes():
    model, _ = build("stackgan")
    a = model.generate(2, text="a dark coat", seed=0)
    assert torch.equal(a, model.generate(text=["a dark coat", "a dark coat"], seed=0))
    assert not torch.equal(a, model.generate(2, text="a light small sandal", seed=0))
    assert model.generate(text=list(TINY_CAPTIONS), seed=0).shape == (4, 1, 16, 16)
    assert model.generate(3, text="a dark coat", stage=1, seed=0).shape == (3, 1, 8, 8)
    with pytest.warns(UserWarning, match="vocabulary, read as <unk>: zebra"):
        unknown = model.generate(1, text="a dark zebra coat", seed=0)
    assert unknown.shape == (1, 1, 16, 16)
    for text, message in [("", "has no words"), ("zzz qqq", "no word this model knows")]:
        with pytest.raises(UserError, match=message):
            model.generate(1, text=text)
    with pytest.raises(UserError, match="got 2 captions for 3 images"):
        model.generate(3, text=["a dark coat", "a wide gray bag"])
    with pytest.raises(UserError, match="--stage 3"):
        model.generate(1, text="a dark coat", stage=3)


def _precomputed_spec() -> DataSpec:
    return DataSpec(
        channels=1,
        resolution=16,
        num_classes=3,
        name="birds:./b",
        task="captioned",
        text_embedding_dim=24,
    )


class _Embedded:
    """A stand-in for the birds/flowers data: images, embeddings [N, 24], labels."""

    spec = _precomputed_spec()

    def __len__(self) -> int:
        return 20

    def batch(self, index, *, key=None):
        gen = torch.Generator().manual_seed(7)
        e = torch.randn(20, 24, generator=gen)
        return {
            "image": torch.zeros(len(index), 1, 16, 16),
            "embedding": e[index],
            "label": index % 3,
        }


def test_precomputed_embeddings_condition_the_model():
    cfg = build_config("stackgan", "tiny", overrides=[("text_encoder", "auto")])
    model = get_family("stackgan")(cfg.family, _precomputed_spec())
    assert model.encoder_kind == "precomputed"
    batch = _Embedded().batch(torch.arange(8))
    ctx: dict = {}
    for phase in model.phases():
        assert torch.isfinite(phase.step(batch, ctx)["loss"])
    with pytest.raises(UserError, match="cannot compute"):
        model.generate(1, text="a small bird")
    assert model.generate(embedding=torch.randn(2, 24), seed=0).shape == (2, 1, 16, 16)
    prior = model.generate(4, seed=0)
    model.prepare(_Embedded())  # the bank of training embeddings
    every = _Embedded().batch(torch.arange(20))["embedding"]
    assert int(model.G.bank_count) == 16
    assert (model.G.bank[:, None] == every[None]).all(-1).any(1).all()  # training embeddings
    drawn = model.generate(4, seed=0)
    assert torch.equal(drawn, model.generate(4, seed=0)) and not torch.equal(drawn, prior)
    wrong = build_config("stackgan", "tiny").family  # text_encoder=hashed
    with pytest.raises(UserError, match="drop text_encoder=hashed"):
        get_family("stackgan")(wrong, _precomputed_spec())
    with pytest.raises(UserError, match="needs a data set with sentence embeddings"):
        build("stackgan", text_encoder="precomputed")


def _caption_folder(root):
    """train/ and test/ of 16 px images, each with a caption .txt: dark coats and light
    sandals."""
    for split, n in (("train", 24), ("test", 8)):
        folder = root / split
        folder.mkdir(parents=True)
        for i in range(n):
            dark = i % 2 == 0
            Image.new("L", (16, 16), 220 if dark else 60).save(folder / f"{i:02d}.png")
            text = "a dark coat" if dark else "a light small sandal"
            (folder / f"{i:02d}.txt").write_text(text + "\n")


def test_a_damsm_run_samples_from_the_cli_and_loads_without_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _caption_folder(tmp_path / "caps")
    run = ganforge.train(
        "stackgan",
        preset="tiny",
        dataset=f"captions:{tmp_path / 'caps'}",
        steps=3,
        out=tmp_path / "run",
        overrides={
            "text_encoder": "damsm",
            "text_dim": 8,
            "text_epochs": 1,
            **dict(QUIET),
            "train.sample_every": 100,
        },
    )
    # loading reads the encoder from the checkpoint: it never trains
    monkeypatch.setattr(ft, "train_encoders", lambda *a, **k: pytest.fail("trained in load"))
    g = ganforge.load(run)
    data = load_dataset(f"captions:{tmp_path / 'caps'}", split="train", resolution=16)
    cached, _, _ = ft.cached_text_encoder(data, text_settings(g.model.cfg))
    for k, v in cached.state_dict().items():
        assert torch.equal(g.model.G.text.state_dict()[k], v)
    assert g.generate(3, text=["a dark coat"]).shape == (3, 1, 16, 16)

    out = tmp_path / "one.png"
    assert (
        main(
            [
                "sample",
                str(run),
                "--text",
                "a dark coat",
                "--n",
                "4",
                "--stage",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    cell = (8 * 12 + 8, 8 * 12 + 6 + 5 * 11)  # 8 px enlarged to 96, five caption lines
    assert Image.open(out).size == (2 * cell[0], 2 * cell[1])
    assert main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "test.png")]) == 0
    assert Image.open(tmp_path / "test.png").size == (2 * (16 * 6 + 8), 2 * (16 * 6 + 6 + 55))
    capsys.readouterr()
    for text, message in [("", "has no words"), ("qqq", "no word this model knows")]:
        assert main(["sample", str(run), "--text", text]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    gif = tmp_path / "walk.gif"
    assert (
        main(
            [
                "interpolate",
                str(run),
                "--texts",
                "a dark coat,a light small sandal",
                "--frames",
                "5",
                "--out",
                str(gif),
            ]
        )
        == 0
    )
    assert gif.is_file() and "wrote 5 frames through 2 captions" in capsys.readouterr().out
    assert main(["interpolate", str(run), "--frames", "5"]) == 2


def test_text_walk_ends_on_each_captions_condition_mean():
    model, _ = build("stackgan")
    frames = model.text_walk(["a dark coat", "a wide gray bag"], 5, seed=1)
    assert frames.shape == (5, 1, 16, 16)
    means = model.conditions(model.tokens(["a wide gray bag"]))
    z = model.sample_latent(1, generator=torch.Generator().manual_seed(1))
    G = model.generator().eval()
    assert torch.allclose(frames[-1:], G(z, conditions=means).clamp(-1, 1))
    assert not math.isclose(frames[0].sum().item(), frames[-1].sum().item())


def test_a_run_on_the_birds_layout_samples_the_test_splits_embeddings(tmp_path, capsys):
    """End to end with the data side's own small birds/ layout (tests/test_precomputed.py)."""
    from test_precomputed import write_birds

    root = write_birds(tmp_path / "birds")
    run = ganforge.train(
        "stackgan",
        preset="tiny",
        dataset=f"birds:{root}",
        steps=2,
        out=tmp_path / "run",
        overrides={"text_encoder": "auto", "train.batch_size": 2, **dict(QUIET)},
    )
    assert ganforge.load(run).model.encoder_kind == "precomputed"
    assert main(["sample", str(run), "--n", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size == (2 * (16 * 6 + 8), 16 * 6 + 6 + 55)
    capsys.readouterr()
    assert main(["sample", str(run), "--text", "a small bird"]) == 2
    assert "cannot compute" in capsys.readouterr().err
