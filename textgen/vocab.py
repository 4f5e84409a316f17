"""The vocabulary: the token table as plain data, and one small tokenizer per token kind.

``Vocabulary`` holds the tokens (special tokens first) and knows their ids; a tokenizer splits
text into tokens, looks them up and joins them back:

- ``char``: Unicode code points.
- ``jamo``: code points, with every Hangul syllable decomposed into its 2-3 conjoining jamo
  (the Unicode algorithm, NFD for Hangul only); decoding recomposes them (NFC of the jamo
  runs only), so ``decode(encode(text)) == text`` for every NFC text.
- ``byte``: the text's UTF-8 bytes, all 256 always in the vocabulary (nothing is unknown);
  bytes that do not form a character decode to U+FFFD.
- ``bpe``: a byte-level BPE subword vocabulary learned from the training split (Hugging Face
  ``tokenizers``); its model is part of the vocabulary's JSON.
- ``word``: runs of letters/digits, single punctuation marks, line breaks.

The JSON form is ``to_json`` / ``from_json``; reading and writing files is
``textgen.artifacts``'.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from textgen.errors import UserError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
# What an unknown id decodes to in characters: the replacement character, visibly not text.
UNK_TEXT = "\ufffd"
_JSON_NAMES = {PAD: "pad", UNK: "unk", BOS: "bos", EOS: "eos"}

_SYLLABLES = re.compile("[\uac00-\ud7a3]+")  # precomposed Hangul syllables
_JAMO_RUNS = re.compile("[\u1100-\u11ff]+")  # conjoining jamo (what NFD makes of syllables)


def decompose_hangul(text: str) -> str:
    """Every Hangul syllable as its conjoining jamo; every other character untouched."""
    return _SYLLABLES.sub(lambda m: unicodedata.normalize("NFD", m.group()), text)


def compose_hangul(text: str) -> str:
    """Conjoining jamo recomposed into syllables where they form one; a lone or half-built
    syllable's jamo stay as they are."""
    return _JAMO_RUNS.sub(lambda m: unicodedata.normalize("NFC", m.group()), text)


def has_hangul(text: str) -> bool:
    return bool(_SYLLABLES.search(text) or _JAMO_RUNS.search(text))


class CharTokenizer:
    """Characters: encoding is a binary search over the code points (kept in code-point order)."""

    def __init__(self, tokens: tuple[str, ...], n_specials: int, unk_id: int):
        self.n_specials, self.unk_id = n_specials, unk_id
        self.code_points = np.array([ord(c) for c in tokens[n_specials:]], dtype=np.uint32)
        self.texts = tuple(UNK_TEXT if t == UNK else t for t in tokens)

    @staticmethod
    def symbols(text: str) -> str:
        """The text as the code points this tokenizer's tokens are."""
        return text

    @classmethod
    def split(cls, text: str) -> list[str]:
        return list(cls.symbols(text))

    def encode(self, text: str) -> np.ndarray:
        points = np.frombuffer(self.symbols(text).encode("utf-32-le"), dtype=np.uint32)
        known = self.code_points
        pos = np.searchsorted(known, points).clip(0, len(known) - 1)
        return np.where(known[pos] == points, pos + self.n_specials, self.unk_id).astype(np.int32)

    def join(self, ids: np.ndarray) -> str:
        return "".join(self.texts[i] for i in ids)


class JamoTokenizer(CharTokenizer):
    """Characters, with Hangul syllables as their conjoining jamo (recomposed on the way out)."""

    symbols = staticmethod(decompose_hangul)

    def join(self, ids: np.ndarray) -> str:
        return compose_hangul(super().join(ids))


BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))


class ByteTokenizer:
    """UTF-8 bytes: ids are the byte values after the specials; nothing is unknown."""

    def __init__(self, tokens: tuple[str, ...], n_specials: int, unk_id: int):
        self.n_specials = n_specials
        # What each id decodes to, as bytes (a special: the replacement character's).
        self.byte_texts = tuple(
            bytes([i - n_specials]) if i >= n_specials else UNK_TEXT.encode() * (t == UNK)
            for i, t in enumerate(tokens)
        )
        self.texts = self.byte_texts  # what the export's graph joins

    @staticmethod
    def split(text: str) -> list[str]:
        return [BYTE_TOKENS[b] for b in text.encode("utf-8")]

    def encode(self, text: str) -> np.ndarray:
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        return data.astype(np.int32) + self.n_specials

    def join(self, ids: np.ndarray) -> str:
        return b"".join(self.byte_texts[i] for i in ids).decode("utf-8", errors="replace")


def _byte_level_alphabet() -> dict[str, int]:
    """Byte-level BPE's printable stand-ins for the 256 bytes (GPT-2's ``bytes_to_unicode``,
    which ``tokenizers``' ByteLevel uses and does not expose): each character to its byte."""
    kept = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in kept]
    return {chr(b): b for b in kept} | {chr(256 + i): b for i, b in enumerate(others)}


class BpeTokenizer:
    """A learned byte-level BPE (Hugging Face ``tokenizers``): ids are its ids after the
    specials; every text has an encoding (its alphabet is all 256 bytes)."""

    def __init__(self, tokens: tuple[str, ...], n_specials: int, unk_id: int, model: str):
        from tokenizers import Tokenizer

        self.n_specials, self.unk_id = n_specials, unk_id
        self.model = Tokenizer.from_str(model)
        alphabet = _byte_level_alphabet()
        # Each id's bytes (what the export's graph joins; a special: U+FFFD's or nothing).
        self.texts = tuple(
            bytes(alphabet[c] for c in t) if i >= n_specials else UNK_TEXT.encode() * (t == UNK)
            for i, t in enumerate(tokens)
        )
        # The id of each single byte: every text has this spelling (the export's prompts).
        index = {t: i for i, t in enumerate(tokens)}
        self.byte_ids = [index[c] for c in sorted(alphabet, key=alphabet.__getitem__)]

    def encode(self, text: str) -> np.ndarray:
        return np.array(self.model.encode(text).ids, dtype=np.int32) + self.n_specials

    def join(self, ids: np.ndarray) -> str:
        # A special id (an unknown one a model sampled) splits the ids into runs, each decoded
        # on its own: its bytes need not form characters at a special's either side.
        out, run = [], []
        for i in (int(i) for i in ids):
            if i >= self.n_specials:
                run.append(i - self.n_specials)
                continue
            out.append(self.model.decode(run) if run else "")
            out.append(UNK_TEXT if i == self.unk_id else "")
            run = []
        out.append(self.model.decode(run) if run else "")
        return "".join(out)


def train_bpe(texts: Iterable[str], size: int) -> str:
    """A byte-level BPE model of ``size`` tokens learned from ``texts``, as its JSON."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    model = Tokenizer(models.BPE())
    model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: nothing unknown
        show_progress=False,
        special_tokens=[],  # textgen's own specials come before its ids
    )
    model.train_from_iterator(texts, trainer)
    return model.to_str()


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


Tokenizer = CharTokenizer | ByteTokenizer | BpeTokenizer | WordTokenizer
TOKENIZERS = {
    "char": CharTokenizer,
    "jamo": JamoTokenizer,
    "byte": ByteTokenizer,
    "bpe": BpeTokenizer,
    "word": WordTokenizer,
}
# Kinds whose tokens are single code points (counted by code point, cut anywhere).
CHARACTER_KINDS = ("char", "jamo")
# Kinds whose every text has an encoding: a vocabulary of at least the 256 bytes.
BYTE_KINDS = ("byte", "bpe")


@dataclass(frozen=True)
class TextSize:
    """How much text some tokens encode (``prepare`` counts it per split): what turns a
    per-token likelihood into one per character, which compares across tokenizers."""

    tokens: int
    characters: int  # of the original text (a line's end counts as its line break)
    bytes: int  # its UTF-8 bytes


def specials_for(lines: bool) -> tuple[str, ...]:
    """A stream has ``<unk>`` only; independent lines add padding, begin and end tokens."""
    return (PAD, UNK, BOS, EOS) if lines else (UNK,)


@dataclass(frozen=True)
class Vocabulary:
    """Token ids for characters, jamo, bytes, subwords or words; special tokens come first.

    A continuous text (``data.unit: stream``) has one special, ``<unk>`` (id 0). Independent
    sequences (``line``) add padding (id 0, so padded rows are zeros), a begin and an end
    token: every row reads ``<bos> tokens <eos> <pad>...``. Other ids follow: characters in
    code-point order, bytes in byte order, subwords in the BPE model's order, words by falling
    frequency.
    """

    tokens: tuple[str, ...]
    lowercase: bool = False
    kind: str = "char"  # a key of TOKENIZERS
    specials: tuple[str, ...] = (UNK,)
    model: str | None = None  # bpe: the subword model's JSON (Hugging Face tokenizers)

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

        ``max_size`` caps the whole vocabulary, specials included; rarer tokens become unknown
        (``bpe``: the size it learns, which it needs).
        """
        if kind == "bpe":
            return cls.learn_bpe(units, lowercase, lines, max_size)
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
        """The vocabulary of token counts (``build`` counts a text; streaming, its blocks).
        Bytes need none: all 256 are always in."""
        specials = specials_for(lines)
        if kind == "byte":
            return cls((*specials, *BYTE_TOKENS), lowercase, kind, specials)
        keep = sorted(counts, key=lambda t: (-counts[t], t))
        if max_size is not None:
            keep = keep[: max(max_size - len(specials), 0)]
        if kind in CHARACTER_KINDS:
            keep = sorted(keep)  # code-point order: encoding is a binary search
        return cls(tuple([*specials, *keep]), lowercase, kind, specials)

    @classmethod
    def learn_bpe(
        cls, texts: Iterable[str], lowercase: bool, lines: bool, size: int | None
    ) -> Vocabulary:
        """A byte-level BPE vocabulary of ``size`` ids, specials included, learned from
        ``texts`` (the training split's pieces or lines)."""
        specials = specials_for(lines)
        if size is None or size < len(specials) + 256:
            raise UserError(
                f"data.max_vocab: the bpe tokenizer needs a vocabulary size of at least "
                f"{len(specials) + 256} (the 256 bytes and {len(specials)} special token(s)), "
                f"got {size}"
            )
        model = json.loads(train_bpe(texts, size - len(specials)))
        learned = model["model"]["vocab"]
        subwords = sorted(learned, key=learned.__getitem__)
        # Kept as from_json will read it back, so a saved and loaded vocabulary is equal.
        return cls((*specials, *subwords), lowercase, "bpe", specials, json.dumps(model))

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
    def tokenizer(self) -> Tokenizer:
        unk = self.unk_id if self.unk_id is not None else -1
        if self.kind == "bpe":
            return BpeTokenizer(self.tokens, len(self.specials), unk, self.model or "")
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

    def settled(self, text: str) -> int:
        """How much of the text of some ids no later id can change: all of it, but for a
        last Hangul character (a jamo may still join it) or trailing replacement characters
        (bytes of a character yet to come)."""
        n = len(text)
        if self.kind in BYTE_KINDS:
            while n > len(text) - 3 and n and text[n - 1] == UNK_TEXT:
                n -= 1
        elif self.kind == "jamo" and n and has_hangul(text[n - 1]):
            n -= 1
        return n

    def decode_rows(self, rows: np.ndarray) -> list[str]:
        """One text per row of a 2-D array (each up to its end token)."""
        return [self.decode(row) for row in rows]

    def to_json(self) -> dict:
        data = {
            "kind": self.kind,
            "tokens": list(self.tokens),
            "special_tokens": {_JSON_NAMES[t]: i for i, t in enumerate(self.specials)},
            "lowercase": self.lowercase,
            "normalization": "NFC",
        }
        if self.model is not None:
            data["model"] = json.loads(self.model)
        return data

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        kind, tokens = data.get("kind"), data.get("tokens")
        if kind not in TOKENIZERS:
            raise UserError(
                f"vocabulary: unsupported kind {kind!r} (expected one of {', '.join(TOKENIZERS)})"
            )
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise UserError("vocabulary: 'tokens' must be a list of strings")
        ids = sorted(dict(data.get("special_tokens") or {"unk": 0}).values())
        if ids != list(range(len(ids))):
            raise UserError("vocabulary: special tokens must come first")
        specials = tuple(tokens[: len(ids)])
        model = None
        if kind == "bpe":
            model = _bpe_model(data.get("model"), tokens[len(ids) :])
        elif kind == "byte" and tuple(tokens[len(ids) :]) != BYTE_TOKENS:
            raise UserError("vocabulary: a byte vocabulary lists the 256 bytes in order")
        return cls(tuple(tokens), bool(data.get("lowercase", False)), kind, specials, model)


def _bpe_model(model: object, subwords: list[str]) -> str:
    """The subword model's JSON, checked: it loads, and its ids are the vocabulary's."""
    from tokenizers import Tokenizer

    try:
        text = json.dumps(model)
        learned = Tokenizer.from_str(text).get_vocab()
    except Exception:  # tokenizers raises its own exception types for a malformed model
        raise UserError("vocabulary: 'model' is not a valid BPE model (tokenizers JSON)") from None
    if sorted(learned, key=learned.__getitem__) != subwords:
        raise UserError("vocabulary: the BPE model's tokens differ from 'tokens'")
    return text
