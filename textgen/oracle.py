"""The synthetic oracle benchmark (SeqGAN, Texygen, "Language GANs Falling Short").

A randomly initialised LSTM, the oracle, plays the real data: its samples are the corpus, and
because its probabilities are known, the quality of any model's samples can be measured
exactly: ``nll_oracle``, the oracle's NLL of them. ``nll_test``, the model's NLL of held-out
oracle sequences, measures the other side: how much of the oracle's distribution the model
covers.
"""

from __future__ import annotations

import logging

import numpy as np

from textgen.backend import keras, tf
from textgen.config import OracleParams
from textgen.evaluation import RESAMPLING, Sweep, bootstrap, lm_ratio, with_intervals
from textgen.model import build_model, forward, logits_layer, zero_state
from textgen.sampling import Decoding, sampler_for
from textgen.scoring import heldout
from textgen.seeding import derive_seed
from textgen.sources import RowSource
from textgen.vocab import BOS, PAD, Vocabulary

log = logging.getLogger(__name__)

_NEVER = -1e4  # the logit bias that keeps the oracle from ever emitting a special token


def oracle_vocabulary(size: int) -> Vocabulary:
    """``size`` word tokens ``w0``.. ``w{size-1}``, after padding and a begin token (no end
    token: every oracle sequence has the same length, as in SeqGAN)."""
    return Vocabulary((PAD, BOS, *(f"w{i}" for i in range(size))), kind="word", specials=(PAD, BOS))


def build_oracle(vocab: Vocabulary, p: OracleParams, seed: int) -> keras.Model:
    """The oracle LSTM, every weight drawn from N(0, ``p.init_std``) with ``seed`` (SeqGAN's
    target LSTM draws all its parameters from N(0, 1))."""
    model = build_model(len(vocab), **p.architecture)
    rng = np.random.default_rng(seed)
    model.set_weights(
        [rng.normal(0.0, p.init_std, w.shape).astype(np.float32) for w in model.get_weights()]
    )
    kernel, bias = logits_layer(model).get_weights()
    kernel[:, vocab.never_sampled] = 0.0
    bias[vocab.never_sampled] = _NEVER
    logits_layer(model).set_weights([kernel, bias])
    return model


def sample_sequences(
    oracle: keras.Model, vocab: Vocabulary, n: int, length: int, seed: int, batch: int = 2000
) -> np.ndarray:
    """``n`` rows [n, length + 1] of ``<bos>`` and ``length`` tokens drawn from the oracle."""
    sampler = sampler_for(oracle, vocab)
    prompt = np.array([vocab.bos_id], np.int32)
    parts = [
        sampler.generate(prompt, min(batch, n - i), length, Decoding(1.0), derive_seed(seed, 1, i))
        for i in range(0, n, batch)
    ]
    ids = np.concatenate(parts)
    return np.concatenate([np.full((n, 1), vocab.bos_id, np.int32), ids], axis=1)


def entropy_rate(model: keras.Model, rows: np.ndarray, batch: int = 1000) -> float:
    """Mean entropy (nats/token) of the model's next-token distributions along ``rows``.

    On rows the model sampled itself, this estimates the same quantity as the model's mean NLL
    of them (its entropy rate), with much less variance: the test of a correct NLL.
    """
    total = 0.0
    for i in range(0, len(rows), batch):
        x = tf.constant(rows[i : i + batch, :-1], tf.int32)
        logits, _ = forward(model, x, zero_state(model, tf.shape(x)[0]))
        log_p = tf.nn.log_softmax(logits, axis=-1)
        total += float(tf.reduce_sum(-tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)))
    return total / (rows.shape[0] * (rows.shape[1] - 1))


def uniform_sequences(vocab: Vocabulary, n: int, length: int, seed: int) -> np.ndarray:
    """Rows of tokens drawn uniformly from the non-special vocabulary: the weakest generator."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(len(vocab.specials), len(vocab), (n, length), dtype=np.int32)
    return np.concatenate([np.full((n, 1), vocab.bos_id, np.int32), ids], axis=1)


def oracle_sweep(
    model: keras.Model,
    oracle: keras.Model,
    vocab: Vocabulary,
    test: np.ndarray,
    temperatures: list[float],
    num_samples: int,
    seed: int,
    name: str = "model",
    batch: int = 1000,
    resample_seed: int | None = None,
) -> Sweep:
    """Per temperature: ``nll_oracle`` of the model's samples (quality, exact) and
    ``nll_test``, the tempered model's NLL of held-out oracle rows (coverage), each with its
    95% bootstrap interval: over the generated rows (drawn with ``derive_seed(resample_seed,
    i)``; give each model its own), and over the test rows (one stream of ``seed`` for every
    model and temperature, since the test rows are the common yardstick)."""
    if resample_seed is None:
        resample_seed = derive_seed(seed, RESAMPLING)
    sampler = sampler_for(model, vocab)
    prompt = np.array([vocab.bos_id], np.int32)
    length = test.shape[1] - 1
    points, replicates = [], []
    for i, t in enumerate(temperatures):
        ids = np.concatenate(
            [
                sampler.generate(prompt, min(batch, num_samples - j), length, Decoding(t), key)
                for j in range(0, num_samples, batch)
                for key in [derive_seed(seed, 3, i, j)]  # distinct per batch and T
            ]
        )
        context = np.full((len(ids), 1), vocab.bos_id, np.int32)
        quality = lm_ratio(oracle, context, ids, batch=batch)
        coverage = heldout(model, RowSource(test), batch, temperature=t)
        reps = {
            **bootstrap({"nll_oracle": quality}, derive_seed(resample_seed, i)),
            **bootstrap({"nll_test": coverage}, derive_seed(seed, RESAMPLING)),
        }
        point = with_intervals(
            {"temperature": t, "nll_oracle": quality.value, "nll_test": coverage.value}, reps
        )
        log.info(
            "  %s T=%g: NLL oracle %.3f, NLL test %.3f",
            name,
            t,
            point["nll_oracle"],
            point["nll_test"],
        )
        points.append(point)
        replicates.append(reps)
    return Sweep(points, replicates)
