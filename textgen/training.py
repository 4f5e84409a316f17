"""Training a language model: Keras' ``fit`` with Adam, warm-up + cosine decay, clipping, a
per-token validation loss, early stopping, exact resume (``checkpoints``) and several devices
or machines (``distribute``)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from textgen import distribute
from textgen.backend import keras, tf
from textgen.checkpoints import Checkpoint, EarlyStopping
from textgen.config import LSTMParams, StageLSTMParams
from textgen.errors import UserError
from textgen.model import build_model, float32_copy
from textgen.scoring import score
from textgen.sources import Layout, TokenSource


def learning_rate(p: LSTMParams, total_steps: int) -> keras.optimizers.schedules.CosineDecay:
    """Linear warm-up from a tenth of the peak over ``warmup_steps`` (at most half the run),
    then cosine decay to ``min_learning_rate_ratio`` x the peak at the last step."""
    warmup = min(p.warmup_steps, total_steps // 2)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=p.learning_rate * (0.1 if warmup else 1.0),
        decay_steps=max(total_steps - warmup, 1),
        alpha=p.min_learning_rate_ratio,
        warmup_target=p.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def next_token_loss() -> keras.losses.Loss:
    """Cross-entropy at every position, divided by the weights (the real tokens, 0 on
    padding), not by every position: the loss is a per-token NLL in both units."""
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight"
    )


class Validation(keras.callbacks.Callback):
    """Puts ``val_loss`` into each epoch's logs, for the callbacks after it (early stopping,
    the checkpoint, the curves): the validation split's NLL per real token, by the one scorer.

    Keras' own validation averages batch means weighted by rows, which over padded rows
    (``data.unit: line``) is not a per-token figure; and our multi-worker loop logs the same
    number through the same callback.
    """

    def __init__(self, layout: Layout, batch_size: int):
        super().__init__()
        self.layout, self.batch_size = layout, batch_size

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["val_loss"] = score(self.model, self.layout, self.batch_size).value


def _compile(model: keras.Model, p: LSTMParams, total_steps: int) -> None:
    """Compiles ``model`` with a new Adam for ``train``. A model this function compiled
    before with the same settings keeps its compiled training step: its optimizer is put back
    to step 0 with empty moments, which is what a new one is. Keras traces the step anew after
    every ``compile``, and evaluation trains one model of one shape again and again (a reverse
    LM per sample set): seconds each, more than the training itself."""
    settings = (p.model_dump_json(), total_steps)
    if getattr(model, "_textgen_compiled", None) == settings:
        for variable in model.optimizer.variables:
            variable.assign(keras.ops.zeros(variable.shape, variable.dtype))
        return
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(p, total_steps), global_clipnorm=p.clipnorm),
        loss=next_token_loss(),
    )
    model._textgen_compiled = settings


@dataclass
class TrainResult:
    epochs: int
    steps: int
    seconds: float
    tokens_per_s: float
    epoch_logs: list[dict[str, float]]  # every epoch's logs, resumed ones included


def train(
    model: keras.Model,
    train_source: TokenSource,
    val_source: TokenSource,
    p: LSTMParams,
    seed: int,
    callbacks: list[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
    checkpoint_dir: Path | None = None,
) -> TrainResult:
    """Teacher-forced training on ``train_source``, early-stopped on ``val_source``.

    With ``checkpoint_dir``, the whole training state is saved there after every epoch
    (``checkpoints.Checkpoint``) and a killed run resumes from its last finished epoch, with
    the data order, dropout draws and early-stopping progress it would have had. The caller
    removes the folder once the model is safely written.

    Built and compiled under a ``tf.distribute`` strategy's scope, the model trains on its
    replicas (``textgen.distribute``); a multi-worker run is not resumable (every worker would
    have to resume the same epoch), so it keeps no checkpoint.
    """
    steps_per_epoch = train_source.steps_per_epoch(p.batch_size, p.seq_len, p.steps_per_epoch)
    validation = Validation(val_source.validation_layout(p.seq_len), p.eval_batch_size)
    _compile(model, p, steps_per_epoch * p.epochs)
    stop = EarlyStopping(
        monitor="val_loss",
        patience=p.patience,
        restore_best_weights=True,
        verbose=int(verbose != 0),
    )
    own_loop = distribute.needs_own_loop(model.distribute_strategy)
    # Keras' fit: shuffle=False (a dataset shuffles its own windows, reproducibly; True would
    # only warn that it is ignored). Our loop has no such setting.
    fit = partial(distribute.fit, model) if own_loop else partial(model.fit, shuffle=False)
    saved = [Checkpoint(checkpoint_dir, model, [stop])] if checkpoint_dir and not own_loop else []
    first_epoch = saved[0].initial_epoch(p.epochs) if saved else 0
    batches = train_source.batches(p.batch_size, p.seq_len, seed, p.steps_per_epoch, first_epoch)
    if verbose == "auto":  # a progress bar on a terminal; one line per epoch in a CI log
        verbose = 1 if sys.stdout.isatty() else 2
    start = time.perf_counter()
    hist = fit(
        batches,
        epochs=p.epochs,
        initial_epoch=first_epoch,
        steps_per_epoch=steps_per_epoch,
        # Validation first (the others read its val_loss); the checkpoint saves what stop did.
        callbacks=[validation, stop, *saved, *callbacks],
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    ran = len(hist.history.get("loss", []))  # epochs run by this call (after resumed ones)
    epoch_logs = (
        saved[0].epoch_logs
        if saved
        else [{k: float(v[i]) for k, v in hist.history.items()} for i in range(ran)]
    )
    tokens_per_step = p.batch_size * train_source.width(p.seq_len)
    return TrainResult(
        epochs=len(epoch_logs),
        steps=len(epoch_logs) * steps_per_epoch,
        seconds=seconds,
        tokens_per_s=ran * steps_per_epoch * tokens_per_step / seconds,
        epoch_logs=epoch_logs,
    )


def train_language_model(
    section: str,
    p: StageLSTMParams,
    seed: int,
    strategy: tf.distribute.Strategy | None,
    vocab_size: int,
    splits: tuple[TokenSource, TokenSource],
    run_dir: Path,
) -> tuple[keras.Model, TrainResult]:
    """A training stage's language model (``lstm``, ``judge``): built, compiled and trained
    under the stage's strategy in ``<section>.precision``, resumable from ``run_dir``, and
    returned computing in float32 whatever it trained in. Every worker trains; only the
    chief (``distribute.is_chief``) should write what comes out."""
    name, why = distribute.dtype_policy(p.precision)
    with distribute.scope(strategy):
        with distribute.policy(name):
            model = build_model(vocab_size, **p.architecture)
        print(
            f"{section}: {p.layers} x {p.hidden} LSTM, {model.count_params():,} parameters, "
            f"vocabulary {vocab_size}; {why}"
        )
        try:
            result = train(model, *splits, p, seed, checkpoint_dir=run_dir)
        except ValueError as err:  # data too small for the window/batch settings
            raise UserError(
                f"{section}: {err}; lower {section}.seq_len or {section}.batch_size"
            ) from None
    return (model if name == "float32" else float32_copy(model)), result
