"""The two generators a page may sample, loaded from the bytes DVC gives at a revision and kept
with their compiled sampler: each distinct file once, the least recently used dropped beyond
a bound."""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from serve import MAX_MODELS
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
    """Loads each distinct model file once and keeps the ``max_models`` most recently used; a
    stream still running on a dropped one keeps it until it ends. Loads happen one at a time:
    concurrent requests for one model wait for its one load."""

    def __init__(self, store: RevisionStore, max_models: int = MAX_MODELS):
        self.store = store
        self.max_models = max_models
        self._by_digest: OrderedDict[str, Loaded] = OrderedDict()
        # A commit's files never change: (revision, name) -> digest saves re-reading them.
        self._digest_of: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._guard = threading.Lock()  # the two maps
        self._load_lock = threading.Lock()

    def __len__(self) -> int:
        """How many distinct models are loaded."""
        return len(self._by_digest)

    def _cached(self, digest: str) -> Loaded | None:
        with self._guard:
            loaded = self._by_digest.get(digest)
            if loaded is not None:
                self._by_digest.move_to_end(digest)
            return loaded

    def get(self, rev: Revision, name: str) -> Loaded:
        if name not in MODELS:
            raise UnknownModel(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
        key = (rev.id, name)
        # The workspace's files may change, so they are re-read (and hashed) every time.
        digest = self._digest_of.get(key) if rev.id != WORKSPACE else None
        if digest is not None and (loaded := self._cached(digest)) is not None:
            return loaded
        path = MODELS[name]
        data = self.store.read_bytes(rev, path)
        vocab = self.store.read_bytes(rev, str(vocab_path_for(path)))
        if data is None or vocab is None:
            raise UnknownModel(f"revision {rev.label} has no {name} model ({path})")
        digest = hashlib.sha256(data + b"\0" + vocab).hexdigest()
        with self._load_lock:
            loaded = self._cached(digest) or _load(data, vocab, Path(path).name, digest)
        with self._guard:
            self._by_digest[digest] = loaded
            self._by_digest.move_to_end(digest)
            while len(self._by_digest) > self.max_models:
                self._by_digest.popitem(last=False)
            self._digest_of[key] = digest
            self._digest_of.move_to_end(key)
            while len(self._digest_of) > 8 * self.max_models:
                self._digest_of.popitem(last=False)
        return loaded


def _load(data: bytes, vocab: bytes, filename: str, digest: str) -> Loaded:
    # Keras loads from a path; the bytes come from git/DVC, so they go to a private temporary
    # folder (with the vocabulary beside the model, where load_model looks) for the load only.
    with tempfile.TemporaryDirectory(prefix="textgen-serve-") as tmp:
        path = Path(tmp) / filename
        path.write_bytes(data)
        vocab_path_for(path).write_bytes(vocab)
        model, vocabulary = load_model(path)  # safe_mode: no code from the file runs
    return Loaded(sampler_for(model, vocabulary), vocabulary, digest)
