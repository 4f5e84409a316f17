"""The corpus: reading text files, normalising, splitting, and the character vocabulary."""

from __future__ import annotations

import glob
import json
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from textgen.errors import UserError

UNK = "<unk>"
# What an unknown id decodes to: the Unicode replacement character, visibly "not a real char".
UNK_TEXT = "\ufffd"
_GLOB_CHARS = set("*?[")


def corpus_files(spec: str, root: Path = Path()) -> list[Path]:
    """The text files a ``data.corpus`` value names: a file, a folder of .txt files, or a glob."""
    if any(ch in _GLOB_CHARS for ch in spec):
        matches = glob.glob(str(root / spec), recursive=True)
        files = sorted(Path(m) for m in matches if Path(m).is_file())
        if not files:
            raise UserError(f"data.corpus: the pattern {spec!r} matches no files")
        return files
    path = root / spec
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise UserError(f"data.corpus: the folder {spec} holds no .txt files")
        return files
    raise UserError(
        f"data.corpus: {spec} does not exist (run `make corpus` for the built-in Shakespeare, "
        "or put your own .txt files under data/raw/ and point data.corpus at them)"
    )


def read_text(path: Path) -> str:
    """One file as text: strict UTF-8 (a BOM is dropped), newlines unified, NFC-normalised."""
    data = path.read_bytes()
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
class Vocabulary:
    """Character vocabulary: id 0 is the unknown token, then characters in code-point order."""

    tokens: tuple[str, ...]
    lowercase: bool = False
    kind: str = "char"

    @classmethod
    def from_text(cls, text: str, lowercase: bool = False) -> Vocabulary:
        return cls(tokens=(UNK, *sorted(set(text))), lowercase=lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def unk_id(self) -> int:
        return 0

    def encode(self, text: str) -> np.ndarray:
        """Text to int32 ids; characters outside the vocabulary become ``unk_id``."""
        if self.lowercase:
            text = unicodedata.normalize("NFC", text.lower())
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        known = self._code_points
        pos = np.searchsorted(known, points).clip(0, len(known) - 1)
        ids = np.where(known[pos] == points, pos + 1, self.unk_id)
        return ids.astype(np.int32)

    def decode(self, ids: np.ndarray | list[int]) -> str:
        table = (UNK_TEXT, *self.tokens[1:])
        return "".join(table[i] for i in np.asarray(ids).ravel())

    @cached_property
    def _code_points(self) -> np.ndarray:
        return np.array([ord(c) for c in self.tokens[1:]], dtype=np.uint32)

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "tokens": list(self.tokens),
            "special_tokens": {"unk": self.unk_id},
            "lowercase": self.lowercase,
            "normalization": "NFC",
        }

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        if data.get("kind") != "char" or not isinstance(data.get("tokens"), list):
            raise UserError(f"vocabulary: unsupported kind {data.get('kind')!r} (expected 'char')")
        return cls(tokens=tuple(data["tokens"]), lowercase=bool(data.get("lowercase", False)))

    def save(self, path: Path) -> None:
        from textgen.artifacts import write_text_atomic

        write_text_atomic(path, json.dumps(self.to_json(), ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise UserError(f"{path}: vocabulary file not found") from None
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None


def unk_rate(ids: np.ndarray, vocab: Vocabulary) -> float:
    """Share of tokens that the vocabulary could not represent."""
    return float(np.mean(ids == vocab.unk_id)) if len(ids) else 0.0


@dataclass(frozen=True)
class PreparedCorpus:
    vocab: Vocabulary
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def metrics(self) -> dict[str, float | int]:
        return {
            "train_tokens": len(self.train),
            "val_tokens": len(self.val),
            "test_tokens": len(self.test),
            "vocab_size": len(self.vocab),
            "unk_rate_val": unk_rate(self.val, self.vocab),
            "unk_rate_test": unk_rate(self.test, self.vocab),
        }


def prepare_corpus(
    docs: list[str],
    val_fraction: float,
    test_fraction: float,
    lowercase: bool = False,
    per_file: bool = True,
) -> PreparedCorpus:
    """Split, build the vocabulary from the training split only, and encode all three splits."""
    train, val, test = split_corpus(docs, val_fraction, test_fraction, per_file)
    vocab = Vocabulary.from_text(train, lowercase=lowercase)
    return PreparedCorpus(vocab, vocab.encode(train), vocab.encode(val), vocab.encode(test))
