"""The corpus: reading text files, normalising, splitting, and encoding the splits."""

from __future__ import annotations

import codecs
import contextlib
import glob
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textgen.artifacts import TokenWriter
from textgen.errors import UserError
from textgen.vocab import CHARACTER_KINDS, TOKENIZERS, Vocabulary, has_hangul

log = logging.getLogger(__name__)

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


# Byte-order marks of the encodings a text file saved as "Unicode" is likely to be in; UTF-32's
# first, as UTF-32 LE's begins with UTF-16 LE's.
_FOREIGN_BOMS = [
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
]


BLOCK_BYTES = 1 << 22  # bytes of a file read at a time: memory stays flat whatever its size


def iter_text(path: Path, lowercase: bool = False, block_bytes: int | None = None) -> Iterator[str]:
    """One file as text, block by block: strict UTF-8 (a BOM is dropped), newlines unified,
    NFC-normalised, lower-cased if asked.

    A block ends just after a whitespace character wherever the text has one: no character
    composes with a preceding whitespace, no casing context (Greek final sigma) reaches across
    one and no token spans one, so normalising, lower-casing or tokenizing block by block gives
    exactly what doing it to the whole file would. A file without whitespace is one block.

    No NUL (U+0000) anywhere: it is no character of text, and its bytes (0x00, never part of
    another character's UTF-8) are what UTF-16 or UTF-32 text, or a binary file, is full of;
    ASCII text saved as UTF-16 would otherwise decode as valid UTF-8 with a NUL after every
    letter."""
    block_bytes = block_bytes or BLOCK_BYTES
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    carry = ""  # decoded text after the last whitespace, not yet given out
    offset = 0  # file offset of the next byte read
    with open(path, "rb") as f:
        data = f.read(max(block_bytes, 4))
        for bom, encoding in _FOREIGN_BOMS:
            if data.startswith(bom):
                raise UserError(
                    f"{path}: starts with a {encoding} byte-order mark; not UTF-8 text "
                    "(re-save the file as UTF-8)"
                )
        if data.startswith(codecs.BOM_UTF8):
            data, offset = data[3:], 3
        while True:
            final = not data
            nul = data.find(b"\0")
            if nul >= 0:
                raise UserError(
                    f"{path}: contains NUL bytes (first at byte offset {offset + nul}); not "
                    "plain UTF-8 text (UTF-16 or a binary file? re-save it as UTF-8)"
                )
            pending = len(decoder.getstate()[0])  # bytes of a character cut by the last read
            try:
                text = carry + decoder.decode(data, final)
            except UnicodeDecodeError as err:
                raise UserError(
                    f"{path}: not valid UTF-8 at byte offset {offset - pending + err.start} "
                    f"({err.reason}); re-save the file as UTF-8"
                ) from None
            offset += len(data)
            # A final CR may be the first half of a CRLF: it waits for the next read.
            held = "\r" if not final and text.endswith("\r") else ""
            text = text[: len(text) - len(held)]
            cut = len(text) if final else _after_last_space(text)
            carry = text[cut:] + held
            if cut:
                block = text[:cut].replace("\r\n", "\n").replace("\r", "\n")
                block = unicodedata.normalize("NFC", block)
                if lowercase:
                    # Lower-casing can produce decomposed sequences (e.g. 'İ'); re-normalise.
                    block = unicodedata.normalize("NFC", block.lower())
                yield block
            if final:
                return
            data = f.read(block_bytes)


_LAST_SPACE = re.compile(r"\s(?=\S*\Z)")


def _after_last_space(text: str) -> int:
    found = _LAST_SPACE.search(text, max(len(text) - 4096, 0)) or _LAST_SPACE.search(text)
    return found.end() if found else 0


def document_blocks(path: Path, lowercase: bool = False) -> Iterator[str]:
    """A corpus file as ``iter_text`` gives it, ending in a line break (one is added)."""
    last = ""
    for block in iter_text(path, lowercase):
        last = block[-1]
        yield block
    if last and last != "\n":
        yield "\n"


def _nonblank_lines(blocks: Iterable[str]) -> Iterator[str]:
    """The stripped non-blank lines of one file's ``document_blocks`` (the file ends in a line
    break, so no line is left over), carrying a line cut between blocks into the next."""
    partial = ""
    for block in blocks:
        *complete, partial = (partial + block).split("\n")
        for line in complete:
            if line := line.strip():
                yield line


def encode_lines(vocab: Vocabulary, lines: list[str], max_len: int) -> tuple[np.ndarray, int]:
    """Rows [n, max_len + 2] of ``<bos> ids <eos> <pad>...``; lines longer than ``max_len``
    tokens are dropped (their count is returned too)."""
    rows, kept = _encode_kept_lines(vocab, lines, max_len)
    return rows, len(lines) - len(kept)


def _encode_kept_lines(
    vocab: Vocabulary, lines: list[str], max_len: int
) -> tuple[np.ndarray, list[str]]:
    """``encode_lines``' rows, and the lines they hold."""
    encoded = [(line, vocab.encode(line)) for line in lines]
    kept = [(line, ids) for line, ids in encoded if len(ids) <= max_len]
    rows = np.full((len(kept), max_len + 2), vocab.pad_id, dtype=np.int32)
    for row, (_, ids) in zip(rows, kept, strict=True):
        row[0], row[1 : len(ids) + 1], row[len(ids) + 1] = vocab.bos_id, ids, vocab.eos_id
    return rows, [line for line, _ in kept]


def real_tokens(ids: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """The tokens of a split that carry text: no padding, no begin tokens."""
    ids = np.asarray(ids).ravel()
    return ids[~np.isin(ids, vocab.never_sampled)] if vocab.never_sampled else ids


def unk_rate(ids: np.ndarray, vocab: Vocabulary) -> float:
    """Share of tokens that the vocabulary could not represent."""
    tokens = real_tokens(ids, vocab)
    return float(np.mean(tokens == vocab.unk_id)) if len(tokens) else 0.0


SPLITS = ("train", "val", "test")
_LINE_BATCH = 8192  # lines read, counted and encoded at a time


def _held_out(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Where the val and the test pieces of ``n`` characters or lines start."""
    n_val, n_test = int(n * val_fraction), int(n * test_fraction)
    return n - n_val - n_test, n - n_test


def _cuts(
    sizes: list[int], val_fraction: float, test_fraction: float, per_file: bool
) -> list[tuple[int, int]]:
    """Each file's (val start, test start), in its own characters or lines: every file gives
    its own last stretches (``per_file``), or the joined corpus is cut once."""
    if per_file:
        return [_held_out(n, val_fraction, test_fraction) for n in sizes]
    a, b = _held_out(sum(sizes), val_fraction, test_fraction)
    starts = np.cumsum([0, *sizes[:-1]]).tolist()
    return [
        (min(max(a - s, 0), n), min(max(b - s, 0), n)) for s, n in zip(starts, sizes, strict=True)
    ]


class _Progress:
    """One line per tenth of a pass over a large corpus (small ones stay quiet)."""

    QUIET_BELOW = 64 << 20  # bytes

    def __init__(self, what: str, total_bytes: int):
        self.what, self.total, self.done, self.shown = what, total_bytes, 0, 0

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        tenth = self.done * 10 // max(self.total, 1)
        if self.total >= self.QUIET_BELOW and tenth > self.shown:
            self.shown = tenth
            log.info("prepare: %s %d%% of %.1f MB", self.what, tenth * 10, self.total / 1e6)


def _file_pieces(
    files: list[Path], lowercase: bool, cuts: list[tuple[int, int]], progress: _Progress
) -> Iterator[tuple[int, str]]:
    """(split index, text) pieces of the character streams, in corpus order."""
    for path, (a, b) in zip(files, cuts, strict=True):
        pos = 0
        for block in document_blocks(path, lowercase):
            end = pos + len(block)
            for split, (lo, hi) in enumerate(((0, a), (a, b), (b, end))):
                if max(lo, pos) < min(hi, end):
                    yield split, block[max(lo, pos) - pos : min(hi, end) - pos]
            pos = end
        progress.advance(path.stat().st_size)


def _line_pieces(
    files: list[Path], lowercase: bool, cuts: list[tuple[int, int]], progress: _Progress
) -> Iterator[tuple[int, list[str]]]:
    """(split index, lines) batches of the stripped non-blank lines, in corpus order."""
    for path, (a, b) in zip(files, cuts, strict=True):
        batch, batch_split = [], 0
        for index, line in enumerate(_nonblank_lines(document_blocks(path, lowercase))):
            split = 0 if index < a else 1 if index < b else 2
            if batch and (split != batch_split or len(batch) == _LINE_BATCH):
                yield batch_split, batch
                batch = []
            batch_split = split
            batch.append(line)
        if batch:
            yield batch_split, batch
        progress.advance(path.stat().st_size)


def _stream_pieces(
    files: list[Path],
    lowercase: bool,
    cuts: list[tuple[int, int]],
    tokenizer: str,
    progress: _Progress,
) -> Iterator[tuple[int, str]]:
    """(split index, text) of the three streams, handed on at token boundaries: a word may
    run from one file's piece into the next one's, as it did when the pieces were one string.
    Characters, jamo and bytes end anywhere; a byte-level BPE word starts at its space."""
    pieces = _file_pieces(files, lowercase, cuts, progress)
    if tokenizer in (*CHARACTER_KINDS, "byte"):
        yield from pieces
        return
    pending = ["", "", ""]
    for s, text in pieces:
        text = pending[s] + text
        cut = _after_last_space(text)
        if tokenizer == "bpe":
            cut = max(cut - 1, 0)  # before the space: the word after it carries it
        pending[s] = text[cut:]
        if cut:
            yield s, text[:cut]
    yield from ((s, text) for s, text in enumerate(pending) if text)


class _TokenCounts:
    """Token counts of text seen piece by piece: characters (or jamo) by code point in one
    array (a Counter per character would cost a Python step per character), words in a
    Counter; bytes need none (all 256 are in every byte vocabulary)."""

    def __init__(self, tokenizer: str):
        self.kind, self.split = tokenizer, TOKENIZERS[tokenizer].split
        character = tokenizer in CHARACTER_KINDS
        self.chars = np.zeros(0x110000, np.int64) if character else None
        self.symbols = TOKENIZERS[tokenizer].symbols if character else None
        self.words: Counter[str] = Counter()

    def add(self, text: str) -> int:
        """Counts ``text``'s tokens; returns how many it has (``length``, read once)."""
        if self.kind == "byte":
            return self.length(text)
        if self.symbols is None:
            tokens = self.split(text)
            self.words.update(tokens)
            return len(tokens)
        symbols = self.symbols(text)
        points = np.frombuffer(symbols.encode("utf-32-le"), dtype=np.uint32)
        # Up to the piece's highest code point only: a piece may be a few bytes (small
        # files, or a block cut short), and a full-range count would cost 9 MB each.
        found = np.bincount(points)
        self.chars[: len(found)] += found
        return len(symbols)

    def length(self, text: str) -> int:
        if self.kind == "byte":
            return len(text.encode("utf-8"))
        if self.symbols is not None:
            return len(self.symbols(text))
        return len(self.split(text))

    def join(self, lines: list[str]) -> str:
        """Lines as one text with the same tokens: no token spans a space, and a space is none."""
        return ("" if self.chars is not None else " ").join(lines)

    def counter(self) -> Counter[str]:
        if self.chars is None:
            return self.words
        return Counter({chr(c): int(self.chars[c]) for c in np.flatnonzero(self.chars)})


@dataclass
class _Measure:
    """The characters of the blocks that ``count`` hands on, and whether all were blank,
    measured on the read that also counts the lines (one read of each file per pass)."""

    characters: int = 0
    blank: bool = True

    def count(self, blocks: Iterable[str]) -> Iterator[str]:
        for block in blocks:
            self.characters += len(block)
            self.blank = self.blank and block.isspace()
            yield block


@dataclass(frozen=True)
class PreparedCorpus:
    vocab: Vocabulary
    metrics: dict[str, float | int]
    characters: int  # of the normalised text, every file ending in a line break


def prepare_files(
    files: list[Path],
    out: Path,
    val_fraction: float,
    test_fraction: float,
    lowercase: bool = False,
    per_file: bool = True,
    unit: str = "stream",
    tokenizer: str = "char",
    max_vocab: int | None = None,
    max_len: int = 64,
) -> PreparedCorpus:
    """Split the corpus, build the vocabulary from the training split only, and write the
    three splits' token ids as ``out/{train,val,test}.npy``.

    ``stream``: each split is one token stream, the pieces of the files in order. ``line``:
    each non-blank line is an independent sequence, a row of ``<bos> tokens <eos>`` padded to
    ``max_len + 2`` (longer lines are dropped). The files are read block by block in three
    passes (sizes; token counts; ids), so memory stays flat whatever the corpus's size.
    """
    total_bytes = sum(path.stat().st_size for path in files)
    lines = unit == "line"

    # Pass 1: every file's size in characters (streams) or non-blank lines.
    progress = _Progress("measuring", total_bytes)
    sizes, measure = [], _Measure()
    for path in files:
        blocks = measure.count(document_blocks(path, lowercase))
        if lines:
            sizes.append(sum(1 for _ in _nonblank_lines(blocks)))
        else:
            sizes.append(sum(len(block) for block in blocks))
        progress.advance(path.stat().st_size)
    characters = measure.characters
    if measure.blank:
        names = ", ".join(str(p) for p in files[:3]) + (" ..." if len(files) > 3 else "")
        raise UserError(f"data.corpus: the corpus is empty ({names})")
    cuts = _cuts(sizes, val_fraction, test_fraction, per_file)
    held = [
        sum(a for a, _ in cuts),
        sum(b - a for a, b in cuts),
        sum(n - b for n, (_, b) in zip(sizes, cuts, strict=True)),
    ]
    if lines and not all(held):
        raise UserError(
            f"data.corpus: {sum(sizes)} non-blank lines are too few to split into "
            f"train/val/test with data.val_fraction={val_fraction} and "
            f"data.test_fraction={test_fraction}"
        )
    if not lines and min(held) < 2:
        raise UserError(
            f"data.corpus: the corpus has {sum(sizes)} characters, too few to split into "
            f"train/val/test with data.val_fraction={val_fraction} and "
            f"data.test_fraction={test_fraction}"
        )

    # Pass 2: the training split's token counts (the vocabulary) and every split's length.
    # A subword model is learned first, from the training split alone (one more pass): only
    # then are the lengths known.
    counts: _TokenCounts | None = None
    if tokenizer == "bpe":
        progress = _Progress("learning subwords", total_bytes)
        if lines:
            train = (
                x
                for s, part in _line_pieces(files, lowercase, cuts, progress)
                if s == 0
                for x in part
            )
        else:
            pieces = _stream_pieces(files, lowercase, cuts, tokenizer, progress)
            train = (text for s, text in pieces if s == 0)
        vocab = Vocabulary.learn_bpe(train, lowercase, lines, max_vocab)

        def length(text: str) -> int:
            return len(vocab.encode(text))
    else:
        counts = _TokenCounts(tokenizer)
        length = counts.length
    progress = _Progress("counting", total_bytes)
    lengths = [0, 0, 0]  # tokens of streams; kept rows of lines
    if lines:
        for s, part in _line_pieces(files, lowercase, cuts, progress):
            if s == 0 and counts is not None:
                counts.add(counts.join(part))
            lengths[s] += sum(length(line) <= max_len for line in part)
    else:
        for s, text in _stream_pieces(files, lowercase, cuts, tokenizer, progress):
            lengths[s] += counts.add(text) if s == 0 and counts is not None else length(text)
    if counts is not None:
        vocab = Vocabulary.from_counts(counts.counter(), tokenizer, lowercase, lines, max_vocab)
    if tokenizer == "jamo" and not any(has_hangul(t) for t in vocab.tokens):
        log.warning(
            "data.tokenizer: jamo, but the training split has no Hangul: the tokens are "
            "characters, as with char"
        )
    for s, name in enumerate(SPLITS):
        if lines and lengths[s] == 0:
            raise UserError(
                f"data.max_len: every {name} line is longer than {max_len} tokens; raise it"
            )

    # Pass 3: the ids, written as they are made.
    progress = _Progress("encoding", total_bytes)
    shapes = [(n, max_len + 2) if lines else (n,) for n in lengths]
    real, unknown, dropped = [0, 0, 0], [0, 0, 0], 0
    # What the tokens encode, in characters and UTF-8 bytes (a line's end counts as its line
    # break): per-character likelihoods compare across tokenizers.
    chars, nbytes = [0, 0, 0], [0, 0, 0]
    with contextlib.ExitStack() as stack:
        writers = [
            stack.enter_context(TokenWriter(out / f"{name}.npy", shape))
            for name, shape in zip(SPLITS, shapes, strict=True)
        ]
        if lines:
            for s, part in _line_pieces(files, lowercase, cuts, progress):
                rows, kept = _encode_kept_lines(vocab, part, max_len)
                writers[s].write(rows)
                dropped += len(part) - len(kept)
                chars[s] += sum(len(line) + 1 for line in kept)
                nbytes[s] += sum(len(line.encode("utf-8")) + 1 for line in kept)
                tokens = real_tokens(rows, vocab)
                real[s] += len(tokens)
                unknown[s] += int(np.count_nonzero(tokens == vocab.unk_id))
        else:
            for s, text in _stream_pieces(files, lowercase, cuts, tokenizer, progress):
                ids = vocab.encode(text)
                writers[s].write(ids)
                real[s] += len(ids)
                chars[s] += len(text)
                nbytes[s] += len(text.encode("utf-8"))
                unknown[s] += int(np.count_nonzero(ids == vocab.unk_id))

    metrics: dict[str, float | int] = {f"{n}_tokens": real[s] for s, n in enumerate(SPLITS)}
    metrics |= {f"{n}_characters": chars[s] for s, n in enumerate(SPLITS)}
    metrics |= {f"{n}_bytes": nbytes[s] for s, n in enumerate(SPLITS)}
    if lines:
        metrics |= {f"{n}_sequences": lengths[s] for s, n in enumerate(SPLITS)}
        metrics["dropped_long_lines"] = dropped
    metrics |= {
        "vocab_size": len(vocab),
        "unk_rate_val": unknown[1] / real[1] if real[1] else 0.0,
        "unk_rate_test": unknown[2] / real[2] if real[2] else 0.0,
    }
    return PreparedCorpus(vocab, metrics, characters)
