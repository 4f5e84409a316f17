"""Artifact files: atomic writes, and the formats stages hand each other (npy, JSON, Keras)."""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from textgen.errors import UserError
from textgen.vocab import TextSize, Vocabulary

if TYPE_CHECKING:  # TensorFlow is imported where a model is loaded: prepare runs without it
    from textgen.backend import keras

# Temporaries are named `.<final name>.tmp-<random>` beside their final path, so that
# .gitignore and .dvcignore can skip any that a kill leaves behind (pattern `.*.tmp-*`).
TMP_MARK = ".tmp-"


# The two contestants, as reports name them, and where evaluate keeps each one's bootstrap
# replicates per sweep point (<model>/<metric>.npy): what `python -m textgen study` pools.
LABELS = {"lstm": "the LSTM (MLE)", "gan": "the GAN"}
REPLICATES = Path("results/replicates")


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def _publish_mode(path: Path, directory: bool = False) -> None:
    """Give ``path`` the mode any new file gets under the user's umask: mkstemp and mkdtemp
    make private ones, which a teammate or a group-shared DVC cache could not read."""
    path.chmod((0o777 if directory else 0o666) & ~_umask())


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or a folder's entries) to disk, so that a power loss after the
    rename that publishes it cannot leave an empty file under the final name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary_prefix(path: Path) -> str:
    """The start of the name of every temporary that becomes ``path``."""
    return f".{path.name}{TMP_MARK}"


def _sweep_temporaries(path: Path) -> None:
    """Remove the temporaries of ``path`` that a killed write left behind."""
    for stale in path.parent.glob(glob.escape(_temporary_prefix(path)) + "*"):
        # A kill's leftover: nothing else writes this output while we do.
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds,
    synced to disk, with the umask's mode. A reader never sees a half-written ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path))
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _publish_mode(tmp_path)
        _fsync(tmp_path)
        os.replace(tmp_path, path)
        _fsync(path.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``path`` (replacing it) only if the block
    succeeds, its files synced to disk, with the umask's modes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_temporaries(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path)))
    try:
        yield tmp
        for folder, _, files in os.walk(tmp):
            for name in files:
                _publish_mode(Path(folder, name))
                _fsync(Path(folder, name))
            _publish_mode(Path(folder), directory=True)
            _fsync(Path(folder))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: dict | list) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    write_text_atomic(path, "".join(lines))


def read_json(path: str | Path) -> dict:
    """A JSON file another stage wrote; missing or unreadable: one line naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found (run `dvc repro` to make it)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None


def read_text_size(stats: str | Path, split: str) -> TextSize | None:
    """How much text a split's tokens encode (``prepare``'s statistics), or None where its
    tokens are not text (the oracle's synthetic data)."""
    data = read_json(stats)
    keys = [f"{split}_tokens", f"{split}_characters", f"{split}_bytes"]
    if not all(isinstance(data.get(k), int) for k in keys):
        return None
    return TextSize(*(data[k] for k in keys))


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    records = []
    # Lines end at "\n" only: str.splitlines would also cut at U+2028, U+0085 or \x1c, which
    # json.dumps leaves unescaped inside strings (a byte or BPE model may well write them).
    for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
    return records


def save_tokens(path: str | Path, ids: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(ids, dtype=np.int32))


def save_replicates(path: str | Path, models: dict[str, list[dict[str, np.ndarray]]]) -> None:
    """Each model's bootstrap replicates per sweep point, ``<path>/<model>/<metric>.npy``
    [points, replicates] float64 (plain .npy: an .npz's zip entries carry the time, and a DVC
    output's bytes must not)."""
    with atomic_dir(path) as tmp:
        for model, points in models.items():
            (tmp / model).mkdir()
            for metric in points[0]:
                column = np.stack([np.asarray(p[metric], dtype=np.float64) for p in points])
                with open(tmp / model / f"{metric}.npy", "wb") as f:
                    np.save(f, column)


class TokenWriter:
    """An int32 ``.npy`` of a shape known up front, written piece by piece: the bytes
    ``save_tokens`` writes for the whole array, without the whole array in memory. Write it
    inside ``atomic_dir`` or ``atomic_path``: a run that stops half-way publishes nothing."""

    def __init__(self, path: str | Path, shape: tuple[int, ...]):
        self.path, self.shape, self.written = Path(path), shape, 0
        self._file = open(self.path, "wb")  # noqa: SIM115 (closed by close())
        header = {"descr": "<i4", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self._file, header)

    def write(self, ids: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(ids, dtype="<i4").tobytes())
        self.written += np.size(ids)

    def close(self) -> None:
        self._file.close()
        if self.written != math.prod(self.shape):
            raise RuntimeError(f"{self.path}: wrote {self.written} ids for shape {self.shape}")

    def __enter__(self) -> TokenWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._file.close()


_RANGE_CHUNK = 1 << 22  # ids read at a time when checking a token file's range


def load_tokens(path: str | Path, vocab_size: int | None = None) -> np.ndarray:
    """Token ids saved by ``save_tokens`` or ``TokenWriter``, memory-mapped read-only (a
    corpus larger than memory trains from disk): a 1-D stream, or 2-D rows of independent
    sequences, every id below ``vocab_size`` if given. Never unpickles (the file may come from
    anyone)."""
    path = Path(path)
    try:
        ids = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (run the prepare stage first)") from None
    except (ValueError, OSError, EOFError) as err:
        raise UserError(f"{path}: not a token array ({err})") from None
    if not isinstance(ids, np.ndarray) or ids.dtype != np.int32 or ids.ndim not in (1, 2):
        kind = f"{ids.dtype} {ids.shape}" if isinstance(ids, np.ndarray) else "an .npz archive"
        raise UserError(f"{path}: expected a 1-D or 2-D int32 array, got {kind}")
    if vocab_size is not None and ids.size:
        lo, hi = _id_range(path, ids)
        if not 0 <= lo <= hi < vocab_size:
            raise UserError(
                f"{path}: token id {hi if hi >= vocab_size else lo} is outside the vocabulary of "
                f"{vocab_size} (prepared with another vocabulary? rerun the prepare stage)"
            )
    return ids


def _id_range(path: Path, ids: np.memmap) -> tuple[int, int]:
    # Plain reads, not the mapping: scanning a mapped file would leave all of it resident.
    lo, hi = np.iinfo(np.int32).max, np.iinfo(np.int32).min
    with open(path, "rb") as f:
        f.seek(ids.offset)
        while (chunk := np.fromfile(f, dtype=ids.dtype, count=_RANGE_CHUNK)).size:
            lo, hi = min(lo, int(chunk.min())), max(hi, int(chunk.max()))
    return lo, hi


def vocab_path_for(model_path: str | Path) -> Path:
    """Where a model's vocabulary lives: ``models/lstm.keras`` -> ``models/lstm.vocab.json``."""
    return Path(model_path).with_suffix(".vocab.json")


FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


def _renumber_shared_objects(config, ids: dict | None = None):
    """``config`` with every ``shared_object_id`` replaced by 1, 2, ... in order of first
    appearance: the same sharing, without the process's memory addresses."""
    ids = {} if ids is None else ids
    if isinstance(config, dict):
        return {
            k: ids.setdefault(v, len(ids) + 1)
            if k == "shared_object_id"
            else _renumber_shared_objects(v, ids)
            for k, v in config.items()
        }
    if isinstance(config, list):
        return [_renumber_shared_objects(v, ids) for v in config]
    return config


def save_keras(model: keras.Model, path: str | Path) -> None:
    """A Keras 3 file whose bytes depend only on the model, so the same weights give the same
    hash in dvc.lock. Keras stamps every save with the time (``date_saved`` in metadata.json,
    and the weights' zip entry), which is dropped, and numbers the objects that layers share
    (dtype policies) by their memory addresses, which are renumbered in order of appearance."""
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "model.keras"
        model.save(raw)
        with (
            zipfile.ZipFile(raw) as src,
            atomic_path(path) as tmp,
            zipfile.ZipFile(tmp, "w") as dst,
        ):
            for info in src.infolist():
                data = src.read(info)
                if info.filename == "metadata.json":
                    meta = json.loads(data)
                    meta.pop("date_saved", None)
                    data = json.dumps(meta).encode()
                elif info.filename == "config.json":
                    data = json.dumps(_renumber_shared_objects(json.loads(data))).encode()
                entry = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
                entry.compress_type = info.compress_type
                entry.external_attr = 0o644 << 16
                dst.writestr(entry, data)


def save_vocab(vocab: Vocabulary, path: str | Path) -> None:
    write_text_atomic(path, json.dumps(vocab.to_json(), ensure_ascii=False, indent=1))


def load_vocab(path: str | Path) -> Vocabulary:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise UserError("expected a JSON object")
        return Vocabulary.from_json(data)
    except FileNotFoundError:
        raise UserError(f"{path}: vocabulary file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid UTF-8 JSON ({err})") from None
    except UserError as err:
        raise UserError(f"{path}: {err}") from None


def save_model(model: keras.Model, vocab: Vocabulary, path: str | Path) -> None:
    """A Keras 3 file plus its vocabulary beside it, so the model samples without prepared data."""
    save_keras(model, path)
    save_vocab(vocab, vocab_path_for(path))


def load_model(path: str | Path) -> tuple[keras.Model, Vocabulary]:
    """(model, vocabulary) from ``save_model``'s files, loaded with Keras safe mode on."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found (run `dvc repro` to train it)")
    # Keras reads a file that is no zip as a legacy save and says "File not found".
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a .keras (zip) file")
    from textgen.backend import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    # Whatever a damaged or foreign file makes Keras raise (a zip without config.json: KeyError).
    except (ValueError, OSError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: not a loadable Keras model ({reason})") from None
    return model, load_vocab(vocab_path_for(path))
