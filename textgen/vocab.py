"""The vocabulary: the token table as plain data, and one small tokenizer per token kind.

``Vocabulary`` holds the tokens (special tokens first) and knows their ids; a tokenizer splits
text into tokens, looks them up and joins them back: ``CharTokenizer`` (code points) or
``WordTokenizer`` (runs of letters/digits, single punctuation marks, line breaks). The JSON
form is ``to_json`` / ``from_json``; reading and writing files is ``textgen.artifacts``'.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from textgen.errors import UserError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
# What an unknown id decodes to in characters: the replacement character, visibly not text.
UNK_TEXT = "\ufffd"
_JSON_NAMES = {PAD: "pad", UNK: "unk", BOS: "bos", EOS: "eos"}


class CharTokenizer:
    """Characters: encoding is a binary search over the code points (kept in code-point order)."""

    def __init__(self, tokens: tuple[str, ...], n_specials: int, unk_id: int):
        self.n_specials, self.unk_id = n_specials, unk_id
        self.code_points = np.array([ord(c) for c in tokens[n_specials:]], dtype=np.uint32)
        self.texts = tuple(UNK_TEXT if t == UNK else t for t in tokens)

    @staticmethod
    def split(text: str) -> list[str]:
        return list(text)

    def encode(self, text: str) -> np.ndarray:
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        known = self.code_points
        pos = np.searchsorted(known, points).clip(0, len(known) - 1)
        return np.where(known[pos] == points, pos + self.n_specials, self.unk_id).astype(np.int32)

    def join(self, ids: np.ndarray) -> str:
        return "".join(self.texts[i] for i in ids)


class WordTokenizer:
    """Words: a dictionary lookup; decoded words are joined by spaces, except at line breaks."""

    PATTERN = re.compile(r"\w+|[^\w\s]|\n")

    def __init__(self, tokens: tuple[str, ...], n_specials: int, unk_id: int):
        self.unk_id, self.texts = unk_id, tokens
        self.index = {t: i + n_specials for i, t in enumerate(tokens[n_specials:])}

    @classmethod
    def split(cls, text: str) -> list[str]:
        return cls.PATTERN.findall(text)

    def encode(self, text: str) -> np.ndarray:
        return np.array([self.index.get(t, self.unk_id) for t in self.split(text)], np.int32)

    def join(self, ids: np.ndarray) -> str:
        out: list[str] = []
        for i in ids:
            token = self.texts[i]
            if out and token != "\n" and out[-1] != "\n":
                out.append(" ")
            out.append(token)
        return "".join(out)


TOKENIZERS = {"char": CharTokenizer, "word": WordTokenizer}


@dataclass(frozen=True)
class Vocabulary:
    """Token ids for characters or words; special tokens come first.

    A continuous text (``data.unit: stream``) has one special, ``<unk>`` (id 0). Independent
    sequences (``line``) add padding (id 0, so padded rows are zeros), a begin and an end
    token: every row reads ``<bos> tokens <eos> <pad>...``. Other ids follow: characters in
    code-point order, words by falling frequency.
    """

    tokens: tuple[str, ...]
    lowercase: bool = False
    kind: str = "char"  # a key of TOKENIZERS
    specials: tuple[str, ...] = (UNK,)

    @classmethod
    def build(
        cls,
        units: list[str],
        kind: str = "char",
        lowercase: bool = False,
        lines: bool = False,
        max_size: int | None = None,
    ) -> Vocabulary:
        """The vocabulary of some training text (``units``: its lines, or the whole text).

        ``max_size`` caps the whole vocabulary, specials included; rarer tokens become unknown.
        """
        split = TOKENIZERS[kind].split
        counts = Counter(t for unit in units for t in split(unit))
        return cls.from_counts(counts, kind, lowercase, lines, max_size)

    @classmethod
    def from_counts(
        cls,
        counts: Counter[str],
        kind: str = "char",
        lowercase: bool = False,
        lines: bool = False,
        max_size: int | None = None,
    ) -> Vocabulary:
        """The vocabulary of token counts (``build`` counts a text; streaming, its blocks)."""
        specials = (PAD, UNK, BOS, EOS) if lines else (UNK,)
        keep = sorted(counts, key=lambda t: (-counts[t], t))
        if max_size is not None:
            keep = keep[: max(max_size - len(specials), 0)]
        if kind == "char":
            keep = sorted(keep)  # code-point order: encoding is a binary search
        return cls(tuple([*specials, *keep]), lowercase, kind, specials)

    @classmethod
    def from_text(cls, text: str, lowercase: bool = False) -> Vocabulary:
        """The character vocabulary of a stream of (already normalised) text."""
        return cls.build([text], "char", lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    def _special(self, name: str) -> int | None:
        return self.specials.index(name) if name in self.specials else None

    @property
    def unk_id(self) -> int | None:
        return self._special(UNK)

    @property
    def pad_id(self) -> int | None:
        return self._special(PAD)

    @property
    def bos_id(self) -> int | None:
        return self._special(BOS)

    @property
    def eos_id(self) -> int | None:
        return self._special(EOS)

    @property
    def never_sampled(self) -> list[int]:
        """Ids a sampler must never draw: padding and the begin token."""
        return [i for i in (self.pad_id, self.bos_id) if i is not None]

    @cached_property
    def tokenizer(self) -> CharTokenizer | WordTokenizer:
        unk = self.unk_id if self.unk_id is not None else -1
        return TOKENIZERS[self.kind](self.tokens, len(self.specials), unk)

    def encode(self, text: str) -> np.ndarray:
        """Text to int32 ids (no begin/end tokens); unknown tokens become ``unk_id``."""
        if self.lowercase:
            text = unicodedata.normalize("NFC", text.lower())
        return self.tokenizer.encode(text)

    def decode(self, ids: np.ndarray | list[int]) -> str:
        """Ids to text; stops at an end token, skips padding and begin tokens."""
        ids = np.asarray(ids).ravel()
        if self.eos_id is not None:
            ends = np.flatnonzero(ids == self.eos_id)
            ids = ids[: ends[0]] if len(ends) else ids
        if self.never_sampled:
            ids = ids[~np.isin(ids, self.never_sampled)]
        return self.tokenizer.join(ids)

    def decode_rows(self, rows: np.ndarray) -> list[str]:
        """One text per row of a 2-D array (each up to its end token)."""
        return [self.decode(row) for row in rows]

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "tokens": list(self.tokens),
            "special_tokens": {_JSON_NAMES[t]: i for i, t in enumerate(self.specials)},
            "lowercase": self.lowercase,
            "normalization": "NFC",
        }

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        kind, tokens = data.get("kind"), data.get("tokens")
        if kind not in TOKENIZERS:
            raise UserError(f"vocabulary: unsupported kind {kind!r} (expected 'char' or 'word')")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise UserError("vocabulary: 'tokens' must be a list of strings")
        ids = sorted(dict(data.get("special_tokens") or {"unk": 0}).values())
        if ids != list(range(len(ids))):
            raise UserError("vocabulary: special tokens must come first")
        specials = tuple(tokens[: len(ids)])
        return cls(tuple(tokens), bool(data.get("lowercase", False)), kind, specials)
