"""The two generators a page may sample, loaded once per revision (per content, for the
workspace) from the bytes DVC gives, and kept with their compiled sampler."""

from __future__ import annotations

import hashlib
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from serve.revisions import WORKSPACE, Revision, RevisionStore
from textgen.artifacts import load_model, vocab_path_for
from textgen.sampling import Sampler, sampler_for
from textgen.vocab import Vocabulary

# The models a request may name: the pipeline's paths (stages/_common.py), never a path
# from the request.
MODELS = {"lstm": "models/lstm.keras", "gan": "models/gan/generator.keras"}
LABELS = {"lstm": "LSTM (MLE)", "gan": "GAN"}


class UnknownModel(LookupError):
    """A model name outside ``MODELS``, or a model the revision does not have."""


@dataclass
class Loaded:
    sampler: Sampler
    vocab: Vocabulary
    digest: str  # sha256 of the .keras file: two revisions with the same model share it


class ModelCache:
    """Loads each distinct model file once; concurrent requests for one wait for one load."""

    def __init__(self, store: RevisionStore):
        self.store = store
        self._by_digest: dict[str, Loaded] = {}
        self._digest_of: dict[tuple[str, str], str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __len__(self) -> int:
        """How many distinct models are loaded."""
        return len(self._by_digest)

    def get(self, rev: Revision, name: str) -> Loaded:
        if name not in MODELS:
            raise UnknownModel(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
        key = (rev.id, name)
        # A commit's files never change; the workspace's may, so it is re-read (and hashed).
        if rev.id != WORKSPACE and key in self._digest_of:
            return self._by_digest[self._digest_of[key]]
        path = MODELS[name]
        data = self.store.read_bytes(rev, path)
        vocab = self.store.read_bytes(rev, str(vocab_path_for(path)))
        if data is None or vocab is None:
            raise UnknownModel(f"revision {rev.label} has no {name} model ({path})")
        digest = hashlib.sha256(data + b"\0" + vocab).hexdigest()
        with self._guard:
            lock = self._locks.setdefault(digest, threading.Lock())
        with lock:
            if digest not in self._by_digest:
                self._by_digest[digest] = _load(data, vocab, Path(path).name, digest)
        self._digest_of[key] = digest
        return self._by_digest[digest]


def _load(data: bytes, vocab: bytes, filename: str, digest: str) -> Loaded:
    # Keras loads from a path; the bytes come from git/DVC, so they go to a private temporary
    # folder (with the vocabulary beside the model, where load_model looks) for the load only.
    with tempfile.TemporaryDirectory(prefix="textgen-serve-") as tmp:
        path = Path(tmp) / filename
        path.write_bytes(data)
        vocab_path_for(path).write_bytes(vocab)
        model, vocabulary = load_model(path)  # safe_mode: no code from the file runs
    return Loaded(sampler_for(model, vocabulary), vocabulary, digest)
