"""Where a language model's tokens come from: a split as one type, ``TokenSource``, with two
implementations, so that no caller branches on the data's unit.

- ``StreamSource``: one continuous text (``data.unit: stream``), a 1-D array of ids. Training
  reads windows of ``seq_len + 1`` tokens at a fresh random offset each epoch.
- ``RowSource``: independent sequences (``data.unit: line``, the oracle benchmark), a 2-D
  array ``[n, width]`` of ``<bos> tokens <eos>`` padded with id 0. Training reads whole rows;
  padding weighs 0, so no loss is ever taken on it.

Both give (inputs, targets, weights) batches for training and a ``Layout`` for the one scorer
(``textgen.scoring``). Token files are read with ``pread``, batch by batch, so a corpus larger
than memory trains and scores in flat memory.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from textgen.backend import tf
from textgen.vocab import Vocabulary

PAD_ID = 0  # in rows of independent sequences, padding is id 0 (see vocab.Vocabulary)

Batch = tuple[np.ndarray, np.ndarray, np.ndarray]  # inputs, targets, weights [rows, cols]


# --- Reading token files --------------------------------------------------------------------


def _reader(tokens: np.ndarray) -> Callable[[np.ndarray, int], np.ndarray]:
    """``read(starts, span)``: the spans ``tokens.ravel()[start : start + span]`` [n, span].

    For a whole token file memory-mapped (``artifacts.load_tokens``) they are read from the
    file with ``pread``: reading through the mapping would leave every page a batch touched
    resident in this process (whole page-cache folios of up to 2 MB each), so a long run's
    memory would grow to the size of the file (nanoGPT re-creates its memmap every batch for
    the same reason). Anything else (arrays, slices of a mapping) is indexed in memory.
    """
    if not (
        isinstance(tokens, np.memmap)
        and tokens.flags.c_contiguous
        and tokens.offset + tokens.nbytes == os.path.getsize(tokens.filename)  # not a slice
    ):
        flat = tokens.reshape(-1)
        return lambda starts, span: np.asarray(flat[starts[:, None] + np.arange(span)])
    path, offset, size = tokens.filename, tokens.offset, tokens.itemsize

    def read(starts: np.ndarray, span: int) -> np.ndarray:
        fd = os.open(path, os.O_RDONLY)
        try:
            data = b"".join(os.pread(fd, span * size, offset + int(s) * size) for s in starts)
        finally:
            os.close(fd)
        return np.frombuffer(data, tokens.dtype).reshape(len(starts), span)

    return read


def _shifted(spans: tf.Tensor, weights: Callable[[tf.Tensor], tf.Tensor]) -> tuple:
    """Spans [batch, width + 1] -> (inputs, targets, weights) [batch, width]: the targets are
    the inputs shifted by one, so the loss covers every position."""
    targets = spans[:, 1:]
    return spans[:, :-1], targets, weights(targets)


def _epochs(
    first_epoch: int, starts: Callable[[tf.Tensor], tf.Tensor], batch_size: int, batch: Callable
) -> tf.data.Dataset:
    """Endless batches: epoch ``k`` draws its starts with ``starts(k)`` (so epoch ``k`` of the
    stream is epoch ``k`` of training, and a resumed run starts at ``first_epoch``)."""
    return (
        tf.data.Dataset.range(first_epoch, 2**31)
        .flat_map(lambda epoch: tf.data.Dataset.from_tensor_slices(starts(epoch)))
        .batch(batch_size, drop_remainder=True)
        .map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


# --- What the scorer reads ------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Rows of (inputs, targets, weights), ``n_rows`` x ``width``, that the scorer reads in
    blocks of rows and windows of columns, with the LSTM state carried along each row.

    ``row_units``: a bootstrap unit is a whole row (independent sequences); otherwise each
    window of a row is one (a stream's rows are long, and windows far apart are nearly
    independent). ``block`` reads only the block asked for.
    """

    n_rows: int
    width: int
    block: Callable[[slice, slice], Batch]
    row_units: bool


def array_layout(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Layout:
    """Rows held in memory, each a unit."""
    return Layout(len(x), x.shape[1], lambda r, c: (x[r, c], y[r, c], w[r, c]), row_units=True)


def continuation_layout(
    context: np.ndarray, ids: np.ndarray, weights: np.ndarray | None = None
) -> Layout:
    """``ids`` [n, length] scored as continuations of ``context`` [n, >=1]: the context is
    read, never scored; ``weights`` [n, length] (default 1) weigh each token of ``ids``."""
    rows = np.concatenate([context, ids], axis=1).astype(np.int32)
    w = np.zeros((len(ids), rows.shape[1] - 1), np.float32)
    w[:, context.shape[1] - 1 :] = 1.0 if weights is None else weights
    return array_layout(rows[:, :-1], rows[:, 1:], w)


# --- The two kinds of split -----------------------------------------------------------------


class TokenSource(ABC):
    """A split's token ids, whatever its unit (see the module note)."""

    def __init__(self, ids: np.ndarray):
        self.ids = ids

    @staticmethod
    def of(ids: np.ndarray) -> TokenSource:
        """The source of a prepared split: rows if 2-D, a stream if 1-D."""
        return RowSource(ids) if ids.ndim == 2 else StreamSource(ids)

    @abstractmethod
    def like(self, ids: np.ndarray) -> TokenSource:
        """``ids`` [n, length] (generated rows) as a source of this kind: a stream reads them
        one after the other, rows stay rows."""

    @abstractmethod
    def width(self, seq_len: int) -> int:
        """Tokens a training example predicts: ``seq_len`` of a stream, a whole row."""

    @abstractmethod
    def steps_per_epoch(self, batch_size: int, seq_len: int, cap: int | None = None) -> int:
        """Batches in one pass over the split (at most ``cap``); ValueError if not one."""

    @abstractmethod
    def batches(
        self,
        batch_size: int,
        seq_len: int,
        seed: int,
        steps_per_epoch: int | None = None,
        first_epoch: int = 0,
    ) -> tf.data.Dataset:
        """Endless (inputs, targets, weights) batches [batch_size, width], shuffled afresh each
        epoch from ``seed`` and the epoch's index; every epoch is ``steps_per_epoch`` batches."""

    @abstractmethod
    def validation_layout(self, seq_len: int) -> Layout:
        """What a validation loss reads: independent examples as training sees them (a
        stream's non-overlapping windows from a zero state; the rows)."""

    @abstractmethod
    def scoring_layout(self, batch_size: int) -> Layout:
        """What a held-out NLL reads: every token after the first with all the context before
        it (a stream cut into ``batch_size`` contiguous rows; the rows)."""

    @abstractmethod
    def examples(self, rng: np.random.Generator, n: int, seq_len: int) -> np.ndarray:
        """``n`` examples [n, width + 1] drawn with ``rng``: windows of a stream, rows."""

    @abstractmethod
    def head(self, tokens: int) -> TokenSource:
        """About the first ``tokens`` tokens (whole rows, at least one)."""

    @abstractmethod
    def text(self, vocab: Vocabulary) -> str:
        """The split as one text: a stream as it is, rows as lines."""


class StreamSource(TokenSource):
    def like(self, ids: np.ndarray) -> TokenSource:
        return StreamSource(np.ascontiguousarray(ids).ravel())

    def width(self, seq_len: int) -> int:
        return seq_len

    def _windows(self, seq_len: int) -> int:
        return (len(self.ids) - 1 - seq_len) // seq_len  # leaves room for any offset < seq_len

    def steps_per_epoch(self, batch_size: int, seq_len: int, cap: int | None = None) -> int:
        n_windows = self._windows(seq_len)
        if n_windows < batch_size:
            raise ValueError(
                f"{len(self.ids)} training tokens make {max(n_windows, 0)} windows of {seq_len}, "
                f"fewer than one batch of {batch_size}"
            )
        return min(cap or n_windows // batch_size, n_windows // batch_size)

    def batches(self, batch_size, seq_len, seed, steps_per_epoch=None, first_epoch=0):
        steps = self.steps_per_epoch(batch_size, seq_len, steps_per_epoch)
        n_windows, read = self._windows(seq_len), _reader(self.ids)

        def starts(epoch: tf.Tensor) -> tf.Tensor:
            key = tf.stack([tf.constant(seed, tf.int64), epoch])
            offset = tf.random.stateless_uniform([], key, 0, seq_len, dtype=tf.int64)
            order = tf.random.experimental.stateless_shuffle(
                tf.range(n_windows, dtype=tf.int64), key
            )
            return offset + order[: steps * batch_size] * seq_len

        def batch(flat_starts: tf.Tensor) -> tuple:
            spans = tf.numpy_function(lambda s: read(s, seq_len + 1), [flat_starts], tf.int32)
            spans = tf.ensure_shape(spans, [None, seq_len + 1])
            return _shifted(spans, lambda y: tf.ones(tf.shape(y), tf.float32))

        return _epochs(first_epoch, starts, batch_size, batch)

    def validation_layout(self, seq_len: int) -> Layout:
        n = (len(self.ids) - 1) // seq_len
        if n == 0:
            raise ValueError(f"{len(self.ids)} validation tokens make no window of {seq_len}")
        read = _reader(self.ids)

        def block(rows: slice, cols: slice) -> Batch:
            spans = read(np.arange(rows.start, rows.stop) * seq_len, seq_len + 1)
            x, y = spans[:, :-1][:, cols], spans[:, 1:][:, cols]
            return x, y, np.ones(y.shape, np.float32)

        return Layout(n, seq_len, block, row_units=True)

    def scoring_layout(self, batch_size: int) -> Layout:
        n = len(self.ids) - 1
        if n < 1:
            raise ValueError("need at least two tokens to score")
        rows = min(batch_size, n)
        row_len = math.ceil(n / rows)
        read = _reader(self.ids)

        def block(rows_: slice, cols: slice) -> Batch:
            # Row r holds tokens r * row_len ...; the last row runs past the end: padding.
            cols = slice(cols.start, min(cols.stop, row_len))
            first = np.arange(rows_.start, rows_.stop) * row_len + cols.start
            width = cols.stop - cols.start
            real = np.clip(n - first, 0, width)  # targets of each row that exist
            spans = np.zeros((len(first), width + 1), np.int32)
            for i in np.flatnonzero(real):
                spans[i, : real[i] + 1] = read(first[i : i + 1], int(real[i]) + 1)[0]
            w = (np.arange(width)[None, :] < real[:, None]).astype(np.float32)
            return spans[:, :-1], spans[:, 1:], w

        return Layout(rows, row_len, block, row_units=False)

    def examples(self, rng: np.random.Generator, n: int, seq_len: int) -> np.ndarray:
        if len(self.ids) < seq_len + 2:
            raise ValueError(f"{len(self.ids)} tokens are too few for windows of {seq_len}")
        starts = rng.integers(0, len(self.ids) - seq_len - 1, n)
        return _reader(self.ids)(starts, seq_len + 1)

    def head(self, tokens: int) -> TokenSource:
        return StreamSource(self.ids[:tokens])

    def text(self, vocab: Vocabulary) -> str:
        return vocab.decode(self.ids)


class RowSource(TokenSource):
    def like(self, ids: np.ndarray) -> TokenSource:
        return RowSource(ids)

    def width(self, seq_len: int) -> int:
        return self.ids.shape[1] - 1

    def steps_per_epoch(self, batch_size: int, seq_len: int, cap: int | None = None) -> int:
        n = len(self.ids)
        if n < batch_size:
            raise ValueError(f"{n} training sequences are fewer than one batch of {batch_size}")
        return min(cap or n // batch_size, n // batch_size)

    def batches(self, batch_size, seq_len, seed, steps_per_epoch=None, first_epoch=0):
        steps = self.steps_per_epoch(batch_size, seq_len, steps_per_epoch)
        n, span, read = len(self.ids), self.ids.shape[1], _reader(self.ids)

        def starts(epoch: tf.Tensor) -> tf.Tensor:
            key = tf.stack([tf.constant(seed, tf.int64), epoch])
            order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), key)
            return order[: steps * batch_size]

        def batch(rows: tf.Tensor) -> tuple:
            spans = tf.numpy_function(lambda r: read(r * span, span), [rows], tf.int32)
            return _shifted(tf.ensure_shape(spans, [None, span]), _not_padding)

        return _epochs(first_epoch, starts, batch_size, batch)

    def _layout(self) -> Layout:
        span, read = self.ids.shape[1], _reader(self.ids)

        def block(rows: slice, cols: slice) -> Batch:
            spans = read(np.arange(rows.start, rows.stop) * span, span)
            x, y = spans[:, :-1][:, cols], spans[:, 1:][:, cols]
            return x, y, (y != PAD_ID).astype(np.float32)

        return Layout(len(self.ids), span - 1, block, row_units=True)

    def validation_layout(self, seq_len: int) -> Layout:
        return self._layout()

    def scoring_layout(self, batch_size: int) -> Layout:
        return self._layout()

    def examples(self, rng: np.random.Generator, n: int, seq_len: int) -> np.ndarray:
        return np.asarray(self.ids[rng.integers(0, len(self.ids), n)])

    def head(self, tokens: int) -> TokenSource:
        return RowSource(self.ids[: max(1, tokens // self.ids.shape[1])])

    def text(self, vocab: Vocabulary) -> str:
        return "\n".join(vocab.decode_rows(self.ids))


def _not_padding(targets: tf.Tensor) -> tf.Tensor:
    return tf.cast(targets != PAD_ID, tf.float32)
