"""Artifact files: atomic writes, and the formats stages hand each other (npy, JSON, Keras)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from textgen.errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``path`` (replacing it) only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def checkpoint_dir(stage: str, settings: str, inputs: list[Path]) -> Path:
    """``checkpoints/<stage>/<key>``, the key a hash of the settings and the input files.

    Kept outside the stage's DVC outputs (which DVC deletes before a run), so a killed run can
    resume; any other key's folder is stale (other params or data) and is removed.
    """
    digest = hashlib.sha256(settings.encode())
    for path in inputs:
        digest.update(Path(path).read_bytes())
    root = Path("checkpoints") / stage
    key = digest.hexdigest()[:16]
    if root.is_dir():
        for stale in root.iterdir():
            if stale.name != key:
                shutil.rmtree(stale, ignore_errors=True)
    return root / key


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: dict | list) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    write_text_atomic(path, "".join(lines))


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    records = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
    return records


def save_tokens(path: str | Path, ids: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(ids, dtype=np.int32))


def load_tokens(path: str | Path) -> np.ndarray:
    """Token ids saved by ``save_tokens``: a 1-D stream, or 2-D rows of independent sequences.
    Never unpickles (the file may come from anyone)."""
    path = Path(path)
    try:
        ids = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (run the prepare stage first)") from None
    except ValueError as err:
        raise UserError(f"{path}: not a token array ({err})") from None
    if ids.dtype != np.int32 or ids.ndim not in (1, 2):
        raise UserError(f"{path}: expected a 1-D or 2-D int32 array, got {ids.dtype} {ids.shape}")
    return ids


def vocab_path_for(model_path: str | Path) -> Path:
    """Where a model's vocabulary lives: ``models/lstm.keras`` -> ``models/lstm.vocab.json``."""
    return Path(model_path).with_suffix(".vocab.json")


def save_model(model, vocab, path: str | Path) -> None:
    """A Keras 3 file plus its vocabulary beside it, so the model samples without prepared data."""
    with atomic_path(path) as tmp:
        model.save(tmp)
    vocab.save(vocab_path_for(path))


def load_model(path: str | Path):
    """(model, vocabulary) from ``save_model``'s files, loaded with Keras safe mode on."""
    from textgen.backend import keras
    from textgen.corpus import Vocabulary

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found (run `dvc repro` to train it)")
    vocab = Vocabulary.load(vocab_path_for(path))
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except (ValueError, OSError) as err:
        raise UserError(f"{path}: not a loadable Keras model ({err})") from None
    return model, vocab
