"""The one scorer: a language model's NLL of held-out tokens, as per-unit sums.

Every likelihood figure (validation losses during training, held-out NLL and bits per
character, the judge's LM score of samples, the reverse LM's score, the oracle's NLL of
samples, the GAN's curve points) is ``score`` of a ``sources.Layout``. The per-unit sums are
what a bootstrap resamples (``evaluation.bootstrap``); their ratio is the mean.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from textgen.backend import keras, tf
from textgen.model import float32_copy, forward, state_spec, zero_state
from textgen.sources import Layout, TokenSource

WINDOW = 256  # columns read per compiled call, the state carried from one to the next


@dataclass(frozen=True)
class Ratio:
    """A metric that is a ratio of sums over units (samples, test rows, windows):
    sum(totals) / sum(counts). Resampling the units recomputes it without rescoring."""

    totals: np.ndarray  # [units]
    counts: np.ndarray  # [units]

    @property
    def value(self) -> float:
        count = float(np.sum(self.counts))
        return float(np.sum(self.totals)) / count if count else math.nan


def score(
    model: keras.Model,
    layout: Layout,
    batch_size: int,
    temperature: float = 1.0,
    window: int = WINDOW,
) -> Ratio:
    """NLL sums (nats) and token counts of every unit of ``layout`` under ``model`` (under
    softmax(logits / ``temperature``)), ``batch_size`` rows at a time, each row read window
    by window with its state carried, so every prediction sees its row's whole context."""
    step = _compiled_step(model)
    temperature_ = tf.constant(temperature, tf.float32)
    totals: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for r in range(0, layout.n_rows, batch_size):
        rows = slice(r, min(r + batch_size, layout.n_rows))
        state = zero_state(model, rows.stop - rows.start)
        sums, weights = [], []
        for c in range(0, layout.width, window):
            x, y, w = layout.block(rows, slice(c, c + window))
            nll, state = step(x, y, state, temperature_)
            sums.append((nll.numpy().astype(np.float64) * w).sum(axis=1))
            weights.append(w.sum(axis=1, dtype=np.float64))
        if layout.row_units:
            totals.append(np.sum(sums, axis=0))
            counts.append(np.sum(weights, axis=0))
        else:  # window-major: every row's first window, then every row's second...
            totals.extend(sums)
            counts.extend(weights)
    totals_, counts_ = np.concatenate(totals), np.concatenate(counts)
    if not layout.row_units:  # windows past a row's end are padding only: not units
        totals_, counts_ = totals_[counts_ > 0], counts_[counts_ > 0]
    return Ratio(totals_, counts_)


def heldout(
    model: keras.Model, source: TokenSource, batch_size: int, temperature: float = 1.0
) -> Ratio:
    """A split's held-out NLL: every token after the first, with all the context before it."""
    return score(model, source.scoring_layout(batch_size), batch_size, temperature)


def heldout_nll(model: keras.Model, source: TokenSource, batch_size: int) -> float:
    """Mean per-token NLL (nats) of a split (``heldout``'s value)."""
    return heldout(model, source, batch_size).value


# One compiled step per architecture, run on a float32 twin that takes each scored model's
# weights: evaluation scores many models of one shape (the GAN monitor's, the reverse LMs'),
# and a function traced per model would be rebuilt for every one of them.
_steps: dict[str, tuple[keras.Model, Callable]] = {}


def _compiled_step(model: keras.Model) -> Callable:
    key = json.dumps(model.get_config(), sort_keys=True)  # the architecture, not the training
    if key not in _steps:
        twin = float32_copy(model, weights=False)  # a bf16-trained model scores in float32
        _steps[key] = (twin, _nll_step(twin))
    twin, step = _steps[key]
    twin.set_weights(model.get_weights())
    return step


def _nll_step(model: keras.Model) -> Callable:
    ids = tf.TensorSpec([None, None], tf.int32)

    # Any number of rows, any window, any temperature: one trace.
    @tf.function(input_signature=[ids, ids, state_spec(model), tf.TensorSpec([], tf.float32)])
    def step(x, y, state, temperature):
        logits, state = forward(model, x, state)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits / temperature)
        return nll, state

    return step
