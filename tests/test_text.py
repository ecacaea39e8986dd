"""Sentence encoders, conditioning augmentation, the damsm text encoder (trained, cached,
deterministic) and R-precision."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from ganforge.data.captions import FileCaptions, build_vocab, tokenize
from ganforge.data.core import make_dataset
from ganforge.data.tasks import CaptionedDataset
from ganforge.errors import UserError
from ganforge.features import text as ft
from ganforge.nn.text import (
    ConditioningAugmentation,
    GRUSentenceEncoder,
    HashedBagOfWords,
    kl_divergence,
    word_bucket,
)


# ----- hashed bag of words ---------------------------------------------------------------------
def test_hashed_bag_of_words_depends_on_the_words_not_their_ids_or_order():
    a = HashedBagOfWords(build_vocab(["a dark coat"]), 16)
    b = HashedBagOfWords(build_vocab(["a dark coat", "zebra stripes"]), 16)  # other ids
    ta = tokenize(["dark coat", "coat dark", "dark"], build_vocab(["a dark coat"]), 4)
    tb = tokenize(["dark coat"], build_vocab(["a dark coat", "zebra stripes"]), 4)
    ea, eb = a(ta), b(tb)
    assert torch.allclose(ea[0], eb[0])  # same words: same embedding in either vocabulary
    assert torch.allclose(ea[0], ea[1])  # a bag: order does not matter
    # one word: exactly its projection row (sum / sqrt(1)); two: the sum over sqrt(2)
    dark = a.projection[word_bucket("dark", 4096)]
    coat = a.projection[word_bucket("coat", 4096)]
    assert torch.equal(ea[2], dark)
    assert torch.allclose(ea[0], (dark + coat) / math.sqrt(2))
    # padding adds nothing; nothing is persisted, and a new instance is the same encoder
    assert a.state_dict() == {}
    assert torch.equal(HashedBagOfWords(build_vocab(["a dark coat"]), 16)(ta), ea)


# ----- GRU sentence encoder --------------------------------------------------------------------
def test_gru_encoder_ignores_padding_and_joins_both_directions():
    torch.manual_seed(0)
    enc = GRUSentenceEncoder(10, 6, 5)
    short = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[3, 4, 5, 0, 0]])
    out = enc(padded)
    assert out.shape == (1, 10)
    assert torch.allclose(enc(short), out, atol=1e-6)
    assert not torch.allclose(enc(torch.tensor([[5, 4, 3]])), out)  # word order matters


# ----- conditioning augmentation ---------------------------------------------------------------
def test_conditioning_augmentation_and_its_kl_by_hand():
    torch.manual_seed(0)
    ca = ConditioningAugmentation(4, 3)
    e = torch.randn(5, 4)
    mu, logvar = ca.moments(e)
    eps = torch.randn(5, 3)
    c, mu2, logvar2 = ca(e, eps)
    assert torch.equal(mu, mu2) and torch.equal(logvar, logvar2)
    assert torch.allclose(c, mu + torch.exp(logvar / 2) * eps)
    assert torch.equal(ca(e, torch.zeros(5, 3))[0], mu)
    zero = torch.zeros(2, 3)
    assert kl_divergence(zero, zero).item() == 0.0
    assert kl_divergence(torch.ones(2, 3), zero).item() == pytest.approx(0.5)
    four = torch.full((2, 3), math.log(4.0))
    assert kl_divergence(zero, four).item() == pytest.approx(0.5 * (3 - math.log(4.0)))


# ----- the DAMSM sentence loss and R-precision -------------------------------------------------
def test_sentence_loss_by_hand_with_repeated_captions_masked():
    emb = torch.eye(3)
    g = 2.0
    distinct = torch.eye(3, dtype=torch.bool)
    # each row: -log(e^g / (e^g + 2)), in both directions
    expected = 2 * -math.log(math.exp(g) / (math.exp(g) + 2))
    assert ft.sentence_loss(emb, emb, distinct, g).item() == pytest.approx(expected, rel=1e-5)
    # items 0 and 1 have the same caption: image 1 against caption 0 is no wrong pair
    same = ft.same_captions(torch.tensor([[2, 3], [2, 3], [4, 0]]))
    assert same.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    rows = [1 + 1 / math.exp(g), 1 + 1 / math.exp(g), 1 + 2 / math.exp(g)]
    masked = 2 * sum(math.log(r) for r in rows) / 3
    assert ft.sentence_loss(emb, emb, same, g).item() == pytest.approx(masked, rel=1e-4)


def test_r_precision_counts_the_right_caption_ranked_first_and_ties_as_misses():
    image = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    right, wrong = torch.tensor([1.0, 0.1]), torch.tensor([0.1, 1.0])
    captions = torch.stack(
        [
            torch.stack([right, wrong, wrong]),  # hit
            torch.stack([wrong, right, wrong]),  # the right one ranked second: miss
            torch.stack([right, right, right]),  # a tie: miss
        ]
    )
    assert ft.r_precision(image, captions) == pytest.approx(1 / 3)


def test_mismatched_captions_never_have_the_same_words():
    texts = ["a", "b", "a", "c", "b", "a"]
    wrong = ft.mismatched(texts, 9, seed=3)
    assert wrong.shape == (6, 9)
    for i, row in enumerate(wrong.tolist()):
        assert all(texts[j] != texts[i] for j in row)
    assert torch.equal(wrong, ft.mismatched(texts, 9, seed=3))
    with pytest.raises(UserError, match="differ"):
        ft.mismatched(["x", "x"], 3)


# ----- training, caching, determinism ----------------------------------------------------------
def _bright_and_dark(n: int = 64, res: int = 8) -> CaptionedDataset:
    """Half the images bright ("a light square"), half dark ("a dark square")."""
    images = torch.zeros(n, 1, res, res, dtype=torch.uint8)
    images[: n // 2] = 230
    images[n // 2 :] = 20
    images += torch.randint(
        0, 20, images.shape, generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    lines = [("a light square",)] * (n // 2) + [("a dark square",)] * (n // 2)
    source = make_dataset(images.numpy(), None, name="squares")
    vocab = build_vocab([t for item in lines for t in item])
    return CaptionedDataset(source, FileCaptions(lines), vocab, 3, "squares")


SMALL = ft.TextEncoderSettings(dim=8, word_dim=4, image_width=4, epochs=4, batch_size=16)


def test_damsm_encoder_learns_is_cached_and_is_deterministic(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    data = _bright_and_dark()
    with caplog.at_level(logging.INFO, logger="ganforge"):
        text, image, record = ft.build_text_encoder(data, SMALL, progress=False)
    assert "building the text encoder of squares" in caplog.text
    assert record["train_r_precision"] > 0.9  # chance: 0.5 with two kinds of caption
    # the second call reads the cache and trains nothing
    monkeypatch.setattr(ft, "train_encoders", lambda *a, **k: pytest.fail("trained again"))
    text2, _, record2 = ft.build_text_encoder(data, SMALL, progress=False)
    assert record2["hash"] == record["hash"]
    assert all(
        torch.equal(a, b)
        for a, b in zip(text.state_dict().values(), text2.state_dict().values(), strict=True)
    )
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other"))
    rebuilt, _, _ = ft.build_text_encoder(data, SMALL, progress=False)  # from scratch again
    assert all(
        torch.equal(a, b)
        for a, b in zip(text.state_dict().values(), rebuilt.state_dict().values(), strict=True)
    )
    # another caption is other data: another hash
    changed = _bright_and_dark()
    changed.captions.lines[0] = ("a bright square",)
    assert ft.encoder_hash(changed, SMALL) != record["hash"]
