"""Evaluation end to end on scikit-learn's digits (bundled, 8x8): fast, and offline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ganforge.api import evaluate_run
from ganforge.cli import main
from ganforge.data import load_dataset
from ganforge.features.domain import (
    DomainSettings,
    accuracy,
    build_domain_network,
    cache_dir,
    network_hash,
    train_classifier,
)
from ganforge.metrics.evaluate import classification_accuracy_score, evaluate

QUIET = ["--set", "train.progress=false", "--set", "train.tensorboard=false"]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    # one cache for the whole module: the digits classifier is trained once
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cgan"
    args = [
        "train",
        "cgan",
        "--preset",
        "tiny",
        "--dataset",
        "digits",
        "--steps",
        "2",
        "--batch-size",
        "16",
        "--out",
        str(out),
        *QUIET,
    ]
    assert main(args) == 0
    return out


def test_cas_on_real_data_equals_the_classifiers_real_test_accuracy():
    train = load_dataset("digits", split="train")
    test = load_dataset("digits", split="test")
    settings = DomainSettings(epochs=8, batch_size=32, width=8, features=16)
    cas = classification_accuracy_score(train.images, train.labels, test, settings)
    assert cas == accuracy(train_classifier(train, settings, progress=False), test)
    assert cas > 0.5  # far above chance (0.1) after eight epochs


def test_domain_network_is_deterministic_cached_and_leaves_the_rng_alone():
    state = torch.get_rng_state()
    net, record = build_domain_network("digits", progress=False)
    assert torch.equal(state, torch.get_rng_state())
    assert record["test_accuracy"] > 0.9 and record["dataset"] == "digits"
    again, record2 = build_domain_network("digits", progress=False)  # from the cache
    assert record2["hash"] == record["hash"]
    rebuilt, _ = build_domain_network("digits", progress=False, rebuild=True)
    for key, value in net.state_dict().items():
        assert torch.equal(value, rebuilt.state_dict()[key]), key
    assert (cache_dir() / f"{record['name']}.safetensors").exists()
    # a network just trained and the same one read from the cache give the same features, to
    # the bit, so the first evaluation after training scores like every later one
    images = load_dataset("digits", split="test").batch(torch.arange(64))["image"]
    with torch.no_grad():
        assert torch.equal(rebuilt.features(images), again.features(images))


def test_domain_network_names_stay_those_cached_before_data_tasks():
    """The cache is keyed by a hash of the training data and settings; DataSpec fields added
    since (task, input shape, captions) enter it only when set, so old networks stay valid."""
    train = load_dataset("digits", split="train")
    assert network_hash(train, DomainSettings()) == "ccf91a44145bcd35"


def test_a_set_against_itself_scores_perfectly(tmp_path):
    test = load_dataset("digits", split="test")
    np.savez(tmp_path / "a.npz", images=test.images.numpy())
    report = evaluate(
        real=tmp_path / "a.npz", fake=tmp_path / "a.npz", dataset="digits", metrics="fid,kid,pr,dc"
    )
    m = report["metrics"]
    assert abs(m["fid"]) < 1e-6
    assert m["precision"] == 1.0 and m["recall"] == 1.0 and m["coverage"] == 1.0
    assert report["real"]["n"] == report["generated"]["n"] == len(test)


def test_run_report_states_its_settings_and_the_real_vs_real_floor(cgan_run):
    report = evaluate_run(cgan_run, metrics="fid,kid,is,pr,dc,cas,ifid", n=200)
    m = report["metrics"]
    for key in (
        "fid",
        "kid",
        "kid_std",
        "is",
        "precision",
        "recall",
        "density",
        "coverage",
        "cas",
        "ifid",
        "label_agreement",
    ):
        assert np.isfinite(m[key]), key
    assert report["generated"]["n"] == 200 and report["real"]["n"] == 200
    assert report["features"]["name"] == "domain" and len(report["features"]["hash"]) == 16
    base = report["real_vs_real"]
    assert base["n"] == 200 and base["splits"] == "train vs test"
    assert base["metrics"]["fid"] < m["fid"]  # 2 training steps are far from the data
    written = json.loads((cgan_run / "eval.json").read_text())
    assert written["metrics"] == m


def test_eval_cli_writes_where_asked_and_notes_a_short_split(cgan_run, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["eval", str(cgan_run), "--metrics", "fid", "--n", "5000", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "using all 359 real images" in captured.err
    assert "real vs real" in captured.out
    assert json.loads(out.read_text())["real"]["n"] == 359


def test_folder_of_mixed_sizes_is_resized_and_said_so(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, size in enumerate([8, 8, 12, 20]):
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(
            folder / f"{i}.png"
        )
    report = evaluate(fake=folder, dataset="digits", metrics="fid", out=tmp_path / "r.json")
    assert report["generated"]["n"] == 4
    assert "resized" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,message",
    [
        (["eval", "--fake", "/nonexistent.npz", "--dataset", "digits"], "does not exist"),
        (["eval", "RUN", "--metrics", "fid,fdi"], "unknown metric 'fdi'"),
        (["eval", "EMPTY"], "no checkpoints"),
        (["eval", "--fake", "EMPTY", "--dataset", "digits"], "no images in"),
        (["eval", "--fake", "EMPTY"], "--dataset"),
    ],
)
def test_eval_mistakes_get_one_line_and_exit_code_2(args, message, cgan_run, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [str(cgan_run) if a == "RUN" else str(empty) if a == "EMPTY" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_training_evaluates_logs_and_keeps_the_best_checkpoint(tmp_path):
    out = tmp_path / "r"
    assert (
        main(
            [
                "train",
                "dcgan",
                "--preset",
                "tiny",
                "--dataset",
                "digits",
                "--steps",
                "4",
                "--batch-size",
                "16",
                "--out",
                str(out),
                "--set",
                "eval.every=2",
                "--set",
                "eval.n=100",
                "--set",
                "train.checkpoint_every=2",
                *QUIET,
            ]
        )
        == 0
    )
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    fids = [(r["step"], r["eval/fid"]) for r in records if "eval/fid" in r]
    assert [s for s, _ in fids] == [2, 4]
    best = json.loads((out / "checkpoints/best/meta.json").read_text())
    assert best["metrics"]["fid"] == min(f for _, f in fids)
    assert best["step"] == min(fids, key=lambda sf: sf[1])[0]
    assert load_file(str(out / "checkpoints/best/model.safetensors"))
    state = torch.load(out / "checkpoints/step-000004/state.pt", weights_only=True)
    assert state["best_metric"] == best["metrics"]["fid"]


def test_eval_settings_are_checked_before_training(capsys):
    assert main(["train", "dcgan", "--set", "eval.every=10", "--set", "eval.best=recall"]) == 2
    assert "eval.best" in capsys.readouterr().err


def test_inception_features_end_to_end_with_a_weights_file(tmp_path, monkeypatch):
    """`--features inception` with a (random-weight) file of the published layout: the report
    names the network and the file's hash; a set against itself has FID 0."""
    from ganforge.features import inception

    torch.manual_seed(0)
    weights = tmp_path / "inception.pth"
    torch.save(inception.FIDInceptionV3().state_dict(), weights)
    monkeypatch.setattr(inception, "KNOWN_WEIGHTS", {inception.file_sha256(weights): "test"})
    test = load_dataset("digits", split="test")
    np.savez(tmp_path / "a.npz", images=test.images[:6].numpy())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # Inception at 299px: one thread is faster on a shared 2-core box
    try:
        report = evaluate(
            real=tmp_path / "a.npz",
            fake=tmp_path / "a.npz",
            metrics="fid,pr",
            features="inception",
            inception_weights=weights,
        )
    finally:
        torch.set_num_threads(threads)
    assert report["features"]["name"] == "inception" and report["features"]["dim"] == 2048
    assert report["features"]["hash"] == inception.file_sha256(weights)[:16]
    assert abs(report["metrics"]["fid"]) < 1e-6 and report["metrics"]["precision"] == 1.0
    assert report["real_vs_real"] is None  # no data set named: no floor to compare with


def test_inception_without_weights_says_how_to_get_them(capsys, monkeypatch):
    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)
    assert main(["eval", "--fake", "x.npz", "--features", "inception"]) == 2
    err = capsys.readouterr().err
    assert "pt_inception-2015-12-05-6726825d.pth" in err and "--features domain" in err
    assert err.count("\n") == 1
