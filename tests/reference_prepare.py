"""Today's in-memory prepare, kept as the specification the streaming one must match.

``textgen.corpus.prepare_files`` reads the corpus block by block and writes the token arrays
as it goes; these functions (the library's until the streaming rewrite) hold every file as one
string. The tests compare both on small corpora: the same vocabulary and the same token ids.
"""

from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textgen.corpus import encode_lines, real_tokens, unk_rate
from textgen.errors import UserError
from textgen.vocab import Vocabulary

_FOREIGN_BOMS = [
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
]


def read_text(path: Path) -> str:
    """One file as text: strict UTF-8 (a BOM is dropped), newlines unified, NFC-normalised.

    No NUL (U+0000) anywhere: it is no character of text, and its bytes (0x00, never part of
    another character's UTF-8) are what UTF-16 or UTF-32 text, or a binary file, is full of;
    ASCII text saved as UTF-16 would otherwise decode as valid UTF-8 with a NUL after every
    letter."""
    data = path.read_bytes()
    for bom, encoding in _FOREIGN_BOMS:
        if data.startswith(bom):
            raise UserError(
                f"{path}: starts with a {encoding} byte-order mark; not UTF-8 text "
                "(re-save the file as UTF-8)"
            )
    nul = data.find(b"\0")
    if nul >= 0:
        raise UserError(
            f"{path}: contains NUL bytes (first at byte offset {nul}); not plain UTF-8 text "
            "(UTF-16 or a binary file? re-save it as UTF-8)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(
            f"{path}: not valid UTF-8 at byte offset {err.start} ({err.reason}); "
            "re-save the file as UTF-8"
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def read_corpus(files: list[Path], lowercase: bool = False) -> list[str]:
    """The text of each file, in order, each ending in a newline; no text at all is an error."""
    docs = []
    for path in files:
        text = read_text(path)
        if lowercase:
            # Lower-casing can produce decomposed sequences (e.g. 'İ'); re-normalise.
            text = unicodedata.normalize("NFC", text.lower())
        if text and not text.endswith("\n"):
            text += "\n"
        docs.append(text)
    if not any(doc.strip() for doc in docs):
        names = ", ".join(str(p) for p in files[:3]) + (" ..." if len(files) > 3 else "")
        raise UserError(f"data.corpus: the corpus is empty ({names})")
    return docs


def split_text(text: str, val_fraction: float, test_fraction: float) -> tuple[str, str, str]:
    """Contiguous train / val / test pieces of one text, in that order."""
    n = len(text)
    n_val, n_test = int(n * val_fraction), int(n * test_fraction)
    n_train = n - n_val - n_test
    return text[:n_train], text[n_train : n_train + n_val], text[n_train + n_val :]


def split_corpus(
    docs: list[str], val_fraction: float, test_fraction: float, per_file: bool = True
) -> tuple[str, str, str]:
    """Contiguous train / val / test split, so held-out text is never interleaved with training.

    ``per_file``: each file gives its own last stretches to val and test (every document is
    represented in every split); otherwise the joined text is cut once (the last files are
    held out whole, which measures transfer to unseen documents).
    """
    pieces = (
        [split_text(d, val_fraction, test_fraction) for d in docs]
        if per_file
        else [split_text("".join(docs), val_fraction, test_fraction)]
    )
    train, val, test = ("".join(part) for part in zip(*pieces, strict=True))
    if min(len(train), len(val), len(test)) < 2:
        total = sum(len(d) for d in docs)
        raise UserError(
            f"data.corpus: the corpus has {total} characters, too few to split into "
            f"train/val/test with data.val_fraction={val_fraction} and "
            f"data.test_fraction={test_fraction}"
        )
    return train, val, test


@dataclass(frozen=True)
class PreparedCorpus:
    """Three splits of token ids: 1-D streams, or 2-D rows of independent sequences."""

    vocab: Vocabulary
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    dropped_lines: int = 0
    texts: tuple[str, str, str] = ("", "", "")  # what each split's tokens encode

    def metrics(self) -> dict[str, float | int]:
        names = ("train", "val", "test")
        out: dict[str, float | int] = {
            f"{name}_tokens": len(real_tokens(getattr(self, name), self.vocab)) for name in names
        }
        out |= {f"{name}_characters": len(t) for name, t in zip(names, self.texts, strict=True)}
        out |= {
            f"{name}_bytes": len(t.encode("utf-8"))
            for name, t in zip(names, self.texts, strict=True)
        }
        if self.train.ndim == 2:
            out |= {
                f"{name}_sequences": len(getattr(self, name)) for name in ("train", "val", "test")
            }
            out["dropped_long_lines"] = self.dropped_lines
        return {
            **out,
            "vocab_size": len(self.vocab),
            "unk_rate_val": unk_rate(self.val, self.vocab),
            "unk_rate_test": unk_rate(self.test, self.vocab),
        }


def split_lines(
    docs: list[str], val_fraction: float, test_fraction: float, per_file: bool = True
) -> tuple[list[str], list[str], list[str]]:
    """Contiguous train / val / test lists of the non-blank lines, per file or overall."""
    groups = [[ln.strip() for ln in d.split("\n") if ln.strip()] for d in docs]
    if not per_file:
        groups = [[ln for g in groups for ln in g]]
    train, val, test = [], [], []
    for lines in groups:
        n_val, n_test = int(len(lines) * val_fraction), int(len(lines) * test_fraction)
        n_train = len(lines) - n_val - n_test
        train += lines[:n_train]
        val += lines[n_train : n_train + n_val]
        test += lines[n_train + n_val :]
    if not (train and val and test):
        raise UserError(
            f"data.corpus: {sum(map(len, groups))} non-blank lines are too few to split into "
            f"train/val/test with data.val_fraction={val_fraction} and "
            f"data.test_fraction={test_fraction}"
        )
    return train, val, test


def prepare_corpus(
    docs: list[str],
    val_fraction: float,
    test_fraction: float,
    lowercase: bool = False,
    per_file: bool = True,
    unit: str = "stream",
    tokenizer: str = "char",
    max_vocab: int | None = None,
    max_len: int = 64,
) -> PreparedCorpus:
    """Split, build the vocabulary from the training split only, and encode all three splits.

    ``stream``: each split is one token stream. ``line``: each non-blank line is an
    independent sequence, a row of ``<bos> tokens <eos>`` padded to ``max_len + 2``.
    """
    if unit == "stream":
        train, val, test = split_corpus(docs, val_fraction, test_fraction, per_file)
        vocab = Vocabulary.build([train], tokenizer, lowercase, max_size=max_vocab)
        ids = [vocab.encode(text) for text in (train, val, test)]
        return PreparedCorpus(vocab, *ids, texts=(train, val, test))
    splits = split_lines(docs, val_fraction, test_fraction, per_file)
    vocab = Vocabulary.build(splits[0], tokenizer, lowercase, lines=True, max_size=max_vocab)
    encoded = [encode_lines(vocab, lines, max_len) for lines in splits]
    for (rows, _), name in zip(encoded, ("train", "val", "test"), strict=True):
        if len(rows) == 0:
            raise UserError(
                f"data.max_len: every {name} line is longer than {max_len} tokens; raise it"
            )
    (train_rows, d1), (val_rows, d2), (test_rows, d3) = encoded
    # A kept line's text and its end (counted as its line break).
    texts = tuple(
        "".join(line + "\n" for line in lines if len(vocab.encode(line)) <= max_len)
        for lines in splits
    )
    return PreparedCorpus(vocab, train_rows, val_rows, test_rows, d1 + d2 + d3, texts)
