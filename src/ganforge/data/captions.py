"""Captions and tokens of captioned data: the tokenizer, vocabularies and caption sources.

Tokens are lower-case words (`words`); a vocabulary is "<pad>", "<unk>" and then the words of a
data set's training captions, sorted, and travels with a run in `DataSpec.vocab`.  A caption
source (`Captions`) gives each item one or more captions: `MeasuredCaptions` writes them from an
image's class and its measured shade, width and fill (fmnist-captions), `FileCaptions` holds
given text (captions:PATH).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Protocol

import torch

from .core import SPECIAL_TOKENS, convert_channels

_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def words(text: str) -> list[str]:
    """The tokenizer: lower-case words (letters and digits; inner ' and - kept: "t-shirt")."""
    return _WORD.findall(text.lower())


def build_vocab(texts: Sequence[str]) -> tuple[str, ...]:
    """ "<pad>", "<unk>", then every word of `texts`, sorted (so it does not depend on order)."""
    return SPECIAL_TOKENS + tuple(sorted({w for text in texts for w in words(text)}))


def tokenize(
    texts: Sequence[str], vocab: Sequence[str] | Mapping[str, int], max_tokens: int
) -> torch.Tensor:
    """Captions as int64 `[B, max_tokens]`: word ids of `vocab` (1 for words outside it), cut to
    max_tokens, padded with 0.  vocab: the word list (`DataSpec.vocab`) or word -> id."""
    ids = vocab if isinstance(vocab, Mapping) else {w: i for i, w in enumerate(vocab)}
    out = torch.zeros(len(texts), max_tokens, dtype=torch.int64)
    for row, text in enumerate(texts):
        tokens = [ids.get(w, 1) for w in words(text)[:max_tokens]]
        out[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.int64)
    return out


class Captions(Protocol):
    """The captions of a data set: item i has `count(i)` of them, `text(i, j)` is one."""

    def count(self, i: int) -> int: ...

    def text(self, i: int, j: int) -> str: ...

    def all_texts(self) -> list[str]: ...


FMNIST_NOUNS = (
    "t-shirt",
    "pair of trousers",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
# The three words of each measured attribute, from low to high.
SHADE_WORDS = ("light", "gray", "dark")
WIDTH_WORDS = ("narrow", "regular", "wide")
FILL_WORDS = ("small", "medium", "large")
FOREGROUND = 32  # 8-bit level above which a pixel belongs to the object (background is 0)
# Cut points between the three words.  Shade and fill: about the terciles of Fashion-MNIST's
# training split (mean object level 146 / 185, fill 0.36 / 0.53), rounded; Fashion-MNIST stores
# negated intensities, so a brighter pixel is a darker part of the garment.  Width: 0.6 and 0.9
# of the frame split the spread within the tops (their boxes span 0.57-0.89 of the frame);
# shoes and bags fill the width, trousers and dresses stay narrow.
SHADE_CUTS = (150.0, 185.0)
WIDTH_CUTS = (0.6, 0.9)
FILL_CUTS = (0.35, 0.55)
CAPTION_TEMPLATES = (
    "a {shade} {noun}",
    "a {fill} {shade} {noun}",
    "a {width} {noun} in {shade} tones",
    "a {noun} that is {width} and {shade}",
    "a {fill} {width} {noun}",
    "a picture of a {shade} {noun} that fills a {fill} part of the frame",
)


def measure(images: torch.Tensor) -> torch.Tensor:
    """Attributes of uint8 `[N, C, H, W]` images (object bright on a dark background) as word
    indices int64 `[N, 3]`: shade (mean level of the object's pixels, > FOREGROUND), width (the
    object's bounding-box width / W) and fill (object pixels / H*W), each cut by its *_CUTS."""
    gray = torch.from_numpy(convert_channels(images.numpy(), 1))[:, 0].float()
    fg = gray > FOREGROUND
    count = fg.sum((1, 2))
    shade = (gray * fg).sum((1, 2)) / count.clamp(min=1)
    cols = fg.any(1).float()  # [N, W]: columns holding the object
    w = cols.shape[1]
    left, right = cols.argmax(1), w - 1 - cols.flip(1).argmax(1)
    width = torch.where(count > 0, (right - left + 1).float() / w, torch.zeros_like(shade))
    fill = count.float() / (fg.shape[1] * fg.shape[2])
    values = (shade, width, fill)
    cuts = (SHADE_CUTS, WIDTH_CUTS, FILL_CUTS)
    return torch.stack(
        [
            torch.bucketize(v, torch.tensor(c), right=True)
            for v, c in zip(values, cuts, strict=True)
        ],
        1,
    )


def _article(text: str) -> str:
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


class MeasuredCaptions:
    """Captions from each item's class noun and measured attributes (`measure`), one per
    template of CAPTION_TEMPLATES: two images of one class differ in wording when their
    attributes differ, and every image has several phrasings."""

    def __init__(self, attributes: torch.Tensor, labels: torch.Tensor, nouns: Sequence[str]):
        self.attributes, self.labels, self.nouns = attributes.tolist(), labels.tolist(), nouns

    def count(self, i: int) -> int:
        return len(CAPTION_TEMPLATES)

    def text(self, i: int, j: int) -> str:
        shade, width, fill = self.attributes[i]
        return self._fill(
            j, SHADE_WORDS[shade], WIDTH_WORDS[width], FILL_WORDS[fill], self.nouns[self.labels[i]]
        )

    @staticmethod
    def _fill(j: int, shade: str, width: str, fill: str, noun: str) -> str:
        template = CAPTION_TEMPLATES[j]
        return _article(template.format(shade=shade, width=width, fill=fill, noun=noun))

    def all_texts(self) -> list[str]:
        """Every caption any image could get, so the vocabulary does not depend on the split."""
        return [
            self._fill(j, s, w, f, noun)
            for j in range(len(CAPTION_TEMPLATES))
            for s in SHADE_WORDS
            for w in WIDTH_WORDS
            for f in FILL_WORDS
            for noun in self.nouns
        ]


class FileCaptions:
    """Captions given as text: item i has the captions `lines[i]` (at least one)."""

    def __init__(self, lines: Sequence[tuple[str, ...]]) -> None:
        self.lines = list(lines)

    def count(self, i: int) -> int:
        return len(self.lines[i])

    def text(self, i: int, j: int) -> str:
        return self.lines[i][j]

    def all_texts(self) -> list[str]:
        return [text for item in self.lines for text in item]
