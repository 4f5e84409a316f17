"""Resumable training: the whole state of a run after every epoch, in one file replaced
atomically, so that a run killed at any moment resumes exactly as the uninterrupted run goes on.

The state is every variable of the model (weights, and the seeds of its dropout layers:
``Model.variables``), of its optimisers (moments, step count, learning-rate schedule position)
and of the callbacks that carry something across epochs (early stopping's best epoch and
weights, a monitor's curve), plus the per-epoch logs. Anything less (Keras'
``BackupAndRestore`` keeps weights and optimiser only, in files written in place) resumes
to a different model once dropout or early stopping is involved, or not at all after a
badly timed kill.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from textgen.artifacts import atomic_path
from textgen.backend import keras, tf

log = logging.getLogger(__name__)

STATE_FILE = "state.npz"
FORMAT = 1


def checkpoint_dir(stage: str, settings: str, inputs: Sequence[Path]) -> Path:
    """``checkpoints/<stage>/<key>``: the key hashes the settings, the input files (the stage
    script among them), this library's source and the Keras and TensorFlow versions, so a
    checkpoint is only ever resumed by the code and data that wrote it.

    Kept outside the stage's DVC outputs (which DVC deletes before a run); any other key's
    folder is stale and is removed.
    """
    digest = hashlib.sha256(settings.encode())
    library = sorted(Path(__file__).parent.glob("*.py"))
    for path in [*inputs, *library]:
        digest.update(Path(path).name.encode() + b"\0")
        with open(path, "rb") as f:  # in blocks: a prepared corpus may not fit in memory
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    digest.update(f"keras {keras.__version__} tensorflow {tf.__version__}".encode())
    root = Path("checkpoints") / stage
    key = digest.hexdigest()[:16]
    if root.is_dir():
        for stale in root.iterdir():
            if stale.name != key:
                shutil.rmtree(stale, ignore_errors=True)
    return root / key


class Stateful(Protocol):
    """A callback whose progress a Checkpoint saves: JSON-able values and a list of arrays."""

    def get_state(self) -> tuple[dict, list[np.ndarray]]: ...

    def set_state(self, meta: dict, arrays: list[np.ndarray]) -> None: ...


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' early stopping, with its progress (patience used, best value, epoch and weights)
    saved and restored by a Checkpoint."""

    _restored: tuple[dict, list[np.ndarray]] | None = None

    def get_state(self) -> tuple[dict, list[np.ndarray]]:
        best = None if self.best is None else float(self.best)
        meta = {
            "wait": int(self.wait),
            "best": best,
            "best_epoch": int(self.best_epoch),
            "stopped_epoch": int(self.stopped_epoch),
            "has_best_weights": self.best_weights is not None,
        }
        return meta, [np.asarray(w) for w in self.best_weights or []]

    def set_state(self, meta: dict, arrays: list[np.ndarray]) -> None:
        self._restored = (meta, arrays)

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)  # resets: the restored progress goes on top
        if self._restored is not None:
            meta, arrays = self._restored
            self.wait, self.best = meta["wait"], meta["best"]
            self.best_epoch, self.stopped_epoch = meta["best_epoch"], meta["stopped_epoch"]
            self.best_weights = list(arrays) if meta["has_best_weights"] else None


def optimizers_of(model: keras.Model) -> list[keras.optimizers.Optimizer]:
    """A compiled model's optimisers: ``model.optimizers`` where it has several (a GAN)."""
    return list(getattr(model, "optimizers", None) or [model.optimizer])


class Checkpoint(keras.callbacks.Callback):
    """Saves the run's state to ``directory/state.npz`` after every epoch and, when made, puts
    a saved state back into ``model`` (built and compiled) and the ``stateful`` callbacks.

    It goes last in ``fit``'s callbacks, so that it saves what the others did in the epoch;
    ``fit`` starts at ``initial_epoch(epochs)``. A checkpoint that cannot be read (a kill from
    before atomic saves, a disk error) or does not fit the model is reported and dropped: the
    run starts over rather than stopping.
    """

    def __init__(self, directory: str | Path, model: keras.Model, stateful: Sequence = ()):
        super().__init__()
        self.directory = Path(directory)
        self.path = self.directory / STATE_FILE
        self.stateful: list[Stateful] = list(stateful)
        self.epoch_logs: list[dict[str, float]] = []
        self.stopped = False
        self._model = model
        for optimizer in optimizers_of(model):
            if not optimizer.built:  # its moments must exist before they can be restored
                optimizer.build(model.trainable_variables)
        if self.path.is_file():
            try:
                self._restore(_read(self.path))
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
                log.warning("%s: unusable checkpoint (%s); training from the start", self.path, err)
                shutil.rmtree(self.directory, ignore_errors=True)
                self.epoch_logs, self.stopped = [], False

    @property
    def epochs_done(self) -> int:
        return len(self.epoch_logs)

    def initial_epoch(self, epochs: int) -> int:
        """Where ``fit`` starts: after the saved epochs, or at the end if the run had stopped
        (early, or at its last step), so that only the end-of-training callbacks run."""
        return epochs if self.stopped else min(self.epochs_done, epochs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_logs.append({k: float(v) for k, v in (logs or {}).items()})
        self.stopped = bool(self._model.stop_training)
        self.save()

    def save(self) -> None:
        arrays = {f"model/{i}": v.numpy() for i, v in enumerate(self._model.variables)}
        for j, optimizer in enumerate(optimizers_of(self._model)):
            arrays.update({f"opt{j}/{i}": v.numpy() for i, v in enumerate(optimizer.variables)})
        states = []
        for k, callback in enumerate(self.stateful):
            meta, values = callback.get_state()
            states.append(meta)
            arrays.update({f"cb{k}/{i}": np.asarray(a) for i, a in enumerate(values)})
        meta = {
            "format": FORMAT,
            "epoch_logs": self.epoch_logs,
            "stopped": self.stopped,
            "callbacks": states,
        }
        arrays["meta"] = np.array(json.dumps(meta))
        with atomic_path(self.path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        meta = json.loads(str(arrays["meta"]))
        if meta.get("format") != FORMAT or len(meta["callbacks"]) != len(self.stateful):
            raise ValueError("written by another version")
        groups = [("model", self._model.variables)] + [
            (f"opt{j}", o.variables) for j, o in enumerate(optimizers_of(self._model))
        ]
        for prefix, variables in groups:  # check everything before changing anything
            saved = _group(arrays, prefix)
            if [a.shape for a in saved] != [tuple(v.shape) for v in variables]:
                raise ValueError(f"its {prefix} variables do not fit this model")
        for prefix, variables in groups:
            for variable, value in zip(variables, _group(arrays, prefix), strict=True):
                variable.assign(value)
        for k, (callback, state) in enumerate(zip(self.stateful, meta["callbacks"], strict=True)):
            callback.set_state(state, _group(arrays, f"cb{k}"))
        self.epoch_logs, self.stopped = meta["epoch_logs"], bool(meta["stopped"])
        log.info("resuming a killed run after epoch %d (from %s)", self.epochs_done, self.path)


def _read(path: Path) -> dict[str, np.ndarray]:
    """Every array of a state file, read in full now (a damaged one fails here, not later);
    never unpickles."""
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _group(arrays: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    count = sum(1 for name in arrays if name.startswith(prefix + "/"))
    return [arrays[f"{prefix}/{i}"] for i in range(count)]
