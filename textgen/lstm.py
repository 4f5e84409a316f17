"""The LSTM language model: architecture, input pipeline, training, stateful forward."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from textgen import distribute
from textgen.backend import keras, tf
from textgen.checkpoints import Checkpoint, EarlyStopping
from textgen.config import LSTMParams, OracleParams


def build_model(vocab_size: int, p: LSTMParams | OracleParams) -> keras.Model:
    """Embedding -> stacked LSTM -> Dense logits, a next-token prediction at every position.

    Each LSTM returns its state too, so the same layers serve stateful evaluation and sampling
    (see ``forward``). Dropout sits between layers, not on recurrent connections (Zaremba et al.).
    """
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab_size, p.embedding_dim, name="embedding")(tokens)
    for i in range(p.layers):
        x = keras.layers.Dropout(p.dropout, name=f"dropout_{i}")(x)
        x, _, _ = keras.layers.LSTM(
            p.hidden, return_sequences=True, return_state=True, name=f"lstm_{i}"
        )(x)
    x = keras.layers.Dropout(p.dropout, name=f"dropout_{p.layers}")(x)
    logits = keras.layers.Dense(vocab_size, name="logits")(x)
    return keras.Model(tokens, logits, name="lstm_lm")


def lstm_layers(model: keras.Model) -> list[keras.layers.LSTM]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]


def logits_layer(model: keras.Model) -> keras.layers.Dense:
    """The output layer of a ``build_model`` language model (its units: the vocabulary size)."""
    return model.get_layer("logits")


def vocab_size(model: keras.Model) -> int:
    return int(logits_layer(model).units)


def zero_state(model: keras.Model, batch: int) -> list[tuple[tf.Tensor, tf.Tensor]]:
    """All-zero (h, c) for every LSTM layer."""
    return [
        (tf.zeros([batch, layer.units]), tf.zeros([batch, layer.units]))
        for layer in lstm_layers(model)
    ]


def forward(model: keras.Model, tokens: tf.Tensor, state: list) -> tuple[tf.Tensor, list]:
    """Inference over ``tokens`` [batch, time] from ``state``; returns logits and the new state.

    Carrying the state lets evaluation read a long text window by window with full context,
    and lets the sampler feed one token per step.
    """
    x = model.get_layer("embedding")(tokens)
    new_state = []
    for layer, (h, c) in zip(lstm_layers(model), state, strict=True):
        x, h, c = layer(x, initial_state=[h, c], training=False)
        new_state.append((h, c))
    return logits_layer(model)(x), new_state


def _gather(tokens: np.ndarray, width: int) -> Callable[[tf.Tensor], tf.Tensor]:
    """A batch of starts -> the windows ``tokens[start : start + width]`` [batch, width] (the
    rows ``tokens[start]`` when ``width`` is 0), read from the array batch by batch."""
    span = width or tokens.shape[1]
    read = _file_reader(tokens, span) or (
        lambda flat: np.asarray(tokens.reshape(-1)[flat[:, None] + np.arange(span)])
    )

    def gather(starts: tf.Tensor) -> tf.Tensor:
        flat = starts * span if not width else starts
        return tf.ensure_shape(tf.numpy_function(read, [flat], tf.int32), [None, span])

    return gather


def _file_reader(tokens: np.ndarray, span: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """For a whole token file memory-mapped (``artifacts.load_tokens``): flat starts -> their
    windows, read from the file with ``pread``. Reading through the mapping would leave every
    page a batch touched resident in this process (whole page-cache folios of up to 2 MB
    each), so a long run's memory would grow to the size of the file (nanoGPT re-creates
    its memmap every batch for the same reason)."""
    if not (
        isinstance(tokens, np.memmap)
        and tokens.flags.c_contiguous
        and tokens.offset + tokens.nbytes == os.path.getsize(tokens.filename)  # not a slice
    ):
        return None
    path, offset, size = tokens.filename, tokens.offset, tokens.itemsize

    def read(flat: np.ndarray) -> np.ndarray:
        fd = os.open(path, os.O_RDONLY)
        try:
            data = b"".join(os.pread(fd, span * size, offset + int(s) * size) for s in flat)
        finally:
            os.close(fd)
        return np.frombuffer(data, tokens.dtype).reshape(len(flat), span)

    return read


def _shifted_windows(
    tokens: np.ndarray, seq_len: int
) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """Window starts -> (inputs, targets) [batch, seq_len]: the targets shifted by one."""
    windows = _gather(tokens, seq_len + 1)

    def to_batch(starts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch = windows(starts)
        return batch[:, :-1], batch[:, 1:]

    return to_batch


def window_dataset(
    tokens: np.ndarray,
    seq_len: int,
    batch_size: int,
    seed: int,
    steps_per_epoch: int | None = None,
    first_epoch: int = 0,
) -> tuple[tf.data.Dataset, int]:
    """Endless (input, target) batches: per epoch, a fresh random offset and shuffled windows.

    Returns the dataset and its batches per epoch: one pass over the tokens, or
    ``steps_per_epoch`` if smaller. Every epoch is exactly that many batches, so epoch ``k``
    of the stream is epoch ``k`` of training (a resumed run starts at ``first_epoch``).
    Targets are the inputs shifted by one: the loss covers every position of every window.
    """
    n_windows = (len(tokens) - 1 - seq_len) // seq_len  # leaves room for any offset < seq_len
    if n_windows < batch_size:
        raise ValueError(
            f"{len(tokens)} training tokens make {max(n_windows, 0)} windows of {seq_len}, "
            f"fewer than one batch of {batch_size}"
        )
    steps = min(steps_per_epoch or n_windows // batch_size, n_windows // batch_size)
    to_batch = _shifted_windows(tokens, seq_len)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        key = tf.stack([tf.constant(seed, tf.int64), epoch])
        offset = tf.random.stateless_uniform([], key, 0, seq_len, dtype=tf.int64)
        order = tf.random.experimental.stateless_shuffle(tf.range(n_windows, dtype=tf.int64), key)
        return tf.data.Dataset.from_tensor_slices(offset + order[: steps * batch_size] * seq_len)

    ds = (
        tf.data.Dataset.range(first_epoch, 2**31)
        .flat_map(one_epoch)
        .batch(batch_size, drop_remainder=True)
        .map(to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    return ds, steps


PAD_ID = 0  # in rows of independent sequences, padding is id 0 (see corpus.Vocabulary)


def row_dataset(
    rows: np.ndarray,
    batch_size: int,
    seed: int,
    steps_per_epoch: int | None = None,
    first_epoch: int = 0,
) -> tuple[tf.data.Dataset, int]:
    """Endless (input, target, weight) batches of independent sequences [n, width], shuffled
    afresh each epoch; the weight is 0 on padding, so no loss is ever taken on it."""
    n = len(rows)
    if n < batch_size:
        raise ValueError(f"{n} training sequences are fewer than one batch of {batch_size}")
    steps = min(steps_per_epoch or n // batch_size, n // batch_size)
    gather = _gather(rows, 0)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        key = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), key)
        return tf.data.Dataset.from_tensor_slices(order[: steps * batch_size])

    ds = (
        tf.data.Dataset.range(first_epoch, 2**31)
        .flat_map(one_epoch)
        .batch(batch_size, drop_remainder=True)
        .map(
            lambda idx: _shifted(gather(idx)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
    return ds, steps


def _shifted(rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    targets = rows[:, 1:]
    return rows[:, :-1], targets, tf.cast(targets != PAD_ID, tf.float32)


def eval_dataset(tokens: np.ndarray, seq_len: int, batch_size: int) -> tf.data.Dataset:
    """Non-overlapping windows in order (or the rows, masked): a cheap per-epoch validation
    loss for early stopping, read from the array batch by batch."""
    if tokens.ndim == 2:
        starts, gather = np.arange(len(tokens)), _gather(tokens, 0)
        return (
            tf.data.Dataset.from_tensor_slices(starts)
            .batch(batch_size)
            .map(lambda idx: _shifted(gather(idx)))
        )
    n = (len(tokens) - 1) // seq_len
    if n == 0:
        raise ValueError(f"{len(tokens)} validation tokens make no window of {seq_len}")
    starts = np.arange(n, dtype=np.int64) * seq_len
    to_batch = _shifted_windows(tokens, seq_len)
    return tf.data.Dataset.from_tensor_slices(starts).batch(batch_size).map(to_batch)


@dataclass
class TrainResult:
    epochs: int
    steps: int
    seconds: float
    tokens_per_s: float
    epoch_logs: list[dict[str, float]]  # every epoch's logs, resumed ones included


def train(
    model: keras.Model,
    train_tokens: np.ndarray,
    val_tokens: np.ndarray,
    p: LSTMParams,
    seed: int,
    callbacks: list[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
    checkpoint_dir: Path | None = None,
) -> TrainResult:
    """Teacher-forced training with Adam, warm-up + cosine decay, clipping, early stopping.

    With ``checkpoint_dir``, the whole training state is saved there after every epoch
    (``checkpoints.Checkpoint``) and a killed run resumes from its last finished epoch, with
    the data order, dropout draws and early-stopping progress it would have had. The caller
    removes the folder once the model is safely written.

    Built and compiled under a ``tf.distribute`` strategy's scope, the model trains on its
    replicas (``textgen.distribute``); a multi-worker run is not resumable (every worker would
    have to resume the same epoch), so it keeps no checkpoint.
    """

    def batches(first_epoch: int) -> tuple[tf.data.Dataset, int]:
        if train_tokens.ndim == 2:  # independent sequences
            return row_dataset(train_tokens, p.batch_size, seed, p.steps_per_epoch, first_epoch)
        return window_dataset(
            train_tokens, p.seq_len, p.batch_size, seed, p.steps_per_epoch, first_epoch
        )

    ds, steps_per_epoch = batches(0)
    width = train_tokens.shape[1] - 1 if train_tokens.ndim == 2 else p.seq_len
    tokens_per_step = p.batch_size * width
    total = steps_per_epoch * p.epochs
    warmup = min(p.warmup_steps, total // 2)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=p.learning_rate * (0.1 if warmup else 1.0),
        decay_steps=max(total - warmup, 1),
        alpha=p.min_learning_rate_ratio,
        warmup_target=p.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, global_clipnorm=p.clipnorm),
        # Rows carry weight 0 on padding: divide by the weights (the real tokens), not by
        # every position, so the curves are per-token NLL; without weights (streams) this
        # is the plain mean.
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        ),
    )
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
    if first_epoch:
        ds, _ = batches(first_epoch)
    val = eval_dataset(val_tokens, p.seq_len, p.eval_batch_size)
    if verbose == "auto":  # a progress bar on a terminal; one line per epoch in a CI log
        verbose = 1 if sys.stdout.isatty() else 2
    start = time.perf_counter()
    hist = fit(
        ds,
        epochs=p.epochs,
        initial_epoch=first_epoch,
        steps_per_epoch=steps_per_epoch,
        validation_data=val,
        callbacks=[stop, *saved, *callbacks],  # the checkpoint saves what stop did
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    ran = len(hist.history.get("loss", []))  # epochs run by this call (after resumed ones)
    epoch_logs = (
        saved[0].epoch_logs
        if saved
        else [{k: float(v[i]) for k, v in hist.history.items()} for i in range(ran)]
    )
    return TrainResult(
        epochs=len(epoch_logs),
        steps=len(epoch_logs) * steps_per_epoch,
        seconds=seconds,
        tokens_per_s=ran * steps_per_epoch * tokens_per_step / seconds,
        epoch_logs=epoch_logs,
    )


def stream_nll(model: keras.Model, tokens: np.ndarray, batch_size: int, window: int = 256) -> float:
    """Mean next-token NLL (nats) over a whole token stream, every token after the first scored.

    The stream is cut into ``batch_size`` contiguous rows read window by window with the LSTM
    state carried over, so each prediction sees all the text before it in its row (no
    context resets at window edges, unlike the per-window validation loss).
    """
    n = len(tokens) - 1
    if n < 1:
        raise ValueError("need at least two tokens to score")
    rows = min(batch_size, n)
    row_len = math.ceil(n / rows)
    pad = rows * row_len - n
    x = np.concatenate([tokens[:-1], np.zeros(pad, np.int32)]).reshape(rows, row_len)
    y = np.concatenate([tokens[1:], np.zeros(pad, np.int32)]).reshape(rows, row_len)
    weight = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)]).reshape(
        rows, row_len
    )
    step = _compiled_nll_step(model)
    state = zero_state(model, rows)
    total = 0.0
    for t in range(0, row_len, window):
        cols = slice(t, t + window)
        nll, state = step(x[:, cols], y[:, cols], weight[:, cols], state)
        total += float(nll)
    return total / n


def rows_nll(
    model: keras.Model, rows: np.ndarray, batch_size: int, temperature: float = 1.0
) -> float:
    """Mean next-token NLL (nats) over independent sequences [n, width] (``<bos>`` first),
    padding excluded: every real token and end token is scored, given its whole row.
    ``temperature`` scores under the model's tempered distribution (what it samples from)."""
    total = count = 0.0
    for i in range(0, len(rows), batch_size):
        batch = tf.constant(rows[i : i + batch_size], tf.int32)
        nll = sequence_nll(model, batch[:, :1], batch[:, 1:], temperature=temperature)
        weight = tf.cast(batch[:, 1:] != PAD_ID, tf.float32)
        total += float(tf.reduce_sum(nll * weight))
        count += float(tf.reduce_sum(weight))
    if count == 0:
        raise ValueError("need at least one token to score")
    return total / count


def heldout_nll(model: keras.Model, tokens: np.ndarray, batch_size: int) -> float:
    """Mean per-token NLL of a split: a stream (``stream_nll``) or rows (``rows_nll``)."""
    if tokens.ndim == 2:
        return rows_nll(model, tokens, batch_size)
    return stream_nll(model, tokens, batch_size)


def sequence_nll(
    lm: keras.Model,
    context: tf.Tensor,
    ids: tf.Tensor,
    training: bool = False,
    temperature: float = 1.0,
) -> tf.Tensor:
    """Per-token NLL [batch, time] of ``ids`` under ``lm``, continuing ``context`` [batch, >=1]
    (under softmax(logits / ``temperature``))."""
    logits = lm(tf.concat([context, ids[:, :-1]], axis=1), training=training)
    logits = logits[:, tf.shape(context)[1] - 1 :]  # the predictions of ids[:, 0], ids[:, 1], ...
    if temperature != 1.0:
        logits = logits / temperature
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ids, logits=logits)


# One compiled scoring step per architecture, run on a twin that takes each scored model's
# weights: evaluation scores many fresh models of one shape (a reverse LM per sample set),
# and a function traced per model would be rebuilt for every one of them.
_scorers: dict[str, tuple[keras.Model, Callable]] = {}


def _compiled_nll_step(model: keras.Model) -> Callable:
    key = json.dumps(model.get_config(), sort_keys=True)  # the architecture, not the training
    if key not in _scorers:
        twin = keras.models.clone_model(model)
        _scorers[key] = (twin, _nll_step(twin))
    twin, step = _scorers[key]
    twin.set_weights(model.get_weights())
    return step


def _nll_step(model: keras.Model) -> Callable:
    ids, weights = tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.float32)
    state_spec = [
        (tf.TensorSpec([None, layer.units]), tf.TensorSpec([None, layer.units]))
        for layer in lstm_layers(model)
    ]

    # Any number of rows, any window: one trace.
    @tf.function(input_signature=[ids, ids, weights, state_spec])
    def step(x, y, w, state):
        logits, state = forward(model, x, state)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        return tf.reduce_sum(nll * w), state

    return step
