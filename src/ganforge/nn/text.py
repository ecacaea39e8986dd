"""Sentence encoders over word tokens, and StackGAN's conditioning augmentation.

Tokens are int64 ``[N, T]`` rows of a vocabulary (``ganforge.data.captions``): 0 is padding,
1 the unknown word.  Each encoder maps a row to one sentence embedding ``[N, dim]``:

- `HashedBagOfWords`: every word hashed (CRC-32, stable across machines and Python runs) into
  one of ``buckets`` rows of a fixed random projection, seeded by a constant; the embedding is
  the sum of the rows of the caption's words over the square root of their count.  Nothing is
  trained and nothing is stored: the same vocabulary gives the same encoder everywhere.
- `GRUSentenceEncoder`: word embeddings and a one-layer bidirectional GRU whose two final
  hidden states, joined, are the sentence embedding (AttnGAN's ``RNN_ENCODER`` sentence
  vector); trained by `ganforge.features.text` against images, then frozen.

`ConditioningAugmentation` turns a sentence embedding into StackGAN's condition ``c = mu +
sigma * eps`` with a KL term towards N(0, I) (`kl_divergence`).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

PAD = 0


def token_lengths(tokens: torch.Tensor) -> torch.Tensor:
    """Words in each row of ``tokens`` [N, T] (the non-padding entries), int64 [N]."""
    return (tokens != PAD).sum(1)


def word_bucket(word: str, buckets: int) -> int:
    """The projection row of ``word``: CRC-32 of its UTF-8 bytes modulo ``buckets``."""
    return zlib.crc32(word.encode("utf-8")) % buckets


class HashedBagOfWords(nn.Module):
    """``forward(tokens [N, T]) -> [N, dim]``: a bag of hashed words through a fixed random
    projection (entries N(0, 1), so an embedding's entries have unit variance).  Padding
    counts for nothing; a row without words embeds to zeros."""

    def __init__(
        self, vocab: Sequence[str], dim: int, *, buckets: int = 4096, seed: int = 0
    ) -> None:
        super().__init__()
        self.dim = dim
        rows = torch.tensor([word_bucket(w, buckets) for w in vocab], dtype=torch.int64)
        gen = torch.Generator().manual_seed(seed)
        projection = torch.randn(buckets, dim, generator=gen)
        # derived from the vocabulary and constants alone: not kept in checkpoints
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("projection", projection, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        vectors = self.projection[self.rows[tokens]]  # [N, T, dim]
        words = (tokens != PAD).to(vectors.dtype)
        total = (vectors * words.unsqueeze(-1)).sum(1)
        return total / words.sum(1, keepdim=True).clamp(min=1).sqrt()


class GRUSentenceEncoder(nn.Module):
    """``forward(tokens [N, T]) -> [N, 2 * hidden]``: embeddings of ``word_dim`` (the padding
    row fixed at zero), a bidirectional GRU over each caption's words (packed, so padding
    never enters), and the final hidden states of both directions joined."""

    def __init__(self, vocab_size: int, word_dim: int, hidden: int) -> None:
        super().__init__()
        self.dim = 2 * hidden
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=PAD)
        self.rnn = nn.GRU(word_dim, hidden, batch_first=True, bidirectional=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        lengths = token_lengths(tokens).clamp(min=1).cpu()  # a wordless row reads its padding
        packed = pack_padded_sequence(
            self.embed(tokens), lengths, batch_first=True, enforce_sorted=False
        )
        _, last = self.rnn(packed)  # [2, N, hidden]: forward and backward final states
        return last.transpose(0, 1).reshape(tokens.shape[0], self.dim)


class ConditioningAugmentation(nn.Module):
    """StackGAN's CA: a linear layer to ``2 * cond_dim`` (then LeakyReLU 0.2, as the TF
    release's ``generate_condition``) split into ``mu`` and ``logvar``; ``forward(e, eps)``
    returns ``(c, mu, logvar)`` with ``c = mu + exp(logvar / 2) * eps`` (``eps`` [N, cond_dim];
    None: drawn from the global RNG)."""

    def __init__(self, embed_dim: int, cond_dim: int) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.fc = nn.Linear(embed_dim, 2 * cond_dim)

    def moments(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.leaky_relu(self.fc(embedding), 0.2)
        return x[:, : self.cond_dim], x[:, self.cond_dim :]

    def forward(
        self, embedding: torch.Tensor, eps: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.moments(embedding)
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + torch.exp(0.5 * logvar) * eps, mu, logvar


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per entry, averaged over every entry (the reference's
    ``KL_loss``: ``-0.5 * mean(1 + logvar - mu^2 - exp(logvar))``)."""
    return -0.5 * torch.mean(1 + logvar - mu.square() - logvar.exp())
