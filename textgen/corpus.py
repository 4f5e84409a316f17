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


def read_corpus(files: list[Path], lowercase: bool = False) -> str:
    """All files joined in order, each ending in a newline; empty text is a user error."""
    parts = []
    for path in files:
        text = read_text(path)
        if text and not text.endswith("\n"):
            text += "\n"
        parts.append(text)
    corpus = "".join(parts)
    if lowercase:
        # Lower-casing can produce decomposed sequences (e.g. 'İ'); re-normalise.
        corpus = unicodedata.normalize("NFC", corpus.lower())
    if not corpus.strip():
        names = ", ".join(str(p) for p in files[:3]) + (" ..." if len(files) > 3 else "")
        raise UserError(f"data.corpus: the corpus is empty ({names})")
    return corpus


def split_text(text: str, val_fraction: float, test_fraction: float) -> tuple[str, str, str]:
    """Contiguous train / val / test split, in that order, so held-out text is never interleaved."""
    n = len(text)
    n_val, n_test = int(n * val_fraction), int(n * test_fraction)
    n_train = n - n_val - n_test
    if min(n_train, n_val, n_test) < 2:
        raise UserError(
            f"data.corpus: the corpus has {n} characters, too few to split into train/val/test "
            f"with data.val_fraction={val_fraction} and data.test_fraction={test_fraction}"
        )
    return text[:n_train], text[n_train : n_train + n_val], text[n_train + n_val :]


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
    text: str, val_fraction: float, test_fraction: float, lowercase: bool = False
) -> PreparedCorpus:
    """Split, build the vocabulary from the training split only, and encode all three splits."""
    train, val, test = split_text(text, val_fraction, test_fraction)
    vocab = Vocabulary.from_text(train, lowercase=lowercase)
    return PreparedCorpus(vocab, vocab.encode(train), vocab.encode(val), vocab.encode(test))
