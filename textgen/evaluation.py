"""The evaluation protocol, the same for every model: sample quality and diversity, the
temperature sweep, and the verdict between two models' quality-diversity curves.

Why a sweep: lowering a language model's sampling temperature raises its "quality" (BLEU, LM
score) and lowers its diversity, so one point per model says little; a model is only better
if it is more diverse at equal quality ("Language GANs Falling Short", Caccia et al., 2020).

Why a bootstrap: a sample set is a random draw, so every metric of it, and the gap between
two curves, has sampling noise. Resampling the samples (the generated texts or rows) shows
how large; a model wins a criterion only where the gap's 95% interval excludes zero.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from textgen.backend import keras, tf
from textgen.config import EvaluateParams, LSTMParams
from textgen.corpus import as_text, real_tokens
from textgen.lstm import (
    PAD_ID,
    build_model,
    forward,
    lstm_layers,
    rows_nll,
    sequence_nll,
    stream_nll,
    train,
    zero_state,
)
from textgen.metrics import (
    BleuReferences,
    CopyIndex,
    distinct_n,
    mean_score,
    ngram_set,
    novelty,
    self_bleu_scores,
    sentences,
)
from textgen.sampling import Decoding, prompt_context, sampler_for
from textgen.seeding import derive_seed
from textgen.vocab import Vocabulary

log = logging.getLogger(__name__)


@dataclass
class RealData:
    """What samples are judged against: the training split (copies, novelty), the test split
    (BLEU references, the reverse LM's score) and the LM trained on real text (LM score)."""

    vocab: Vocabulary
    train_ids: np.ndarray
    test_ids: np.ndarray
    judge: keras.Model
    references: BleuReferences = field(init=False)
    seen_4grams: set[int] = field(init=False)
    copies: CopyIndex = field(init=False)

    def __post_init__(self) -> None:
        self.references = BleuReferences(sentences(as_text(self.test_ids, self.vocab)))
        self.seen_4grams = ngram_set(as_text(self.train_ids, self.vocab), 4)
        self.copies = CopyIndex(real_tokens(self.train_ids, self.vocab))


# --- Uncertainty: a bootstrap over samples ----------------------------------------------------

BOOTSTRAP_REPLICATES = 1000
RESAMPLING = 101  # the derive_seed index of every bootstrap draw (sampling uses 1 to 3)


@dataclass(frozen=True)
class Ratio:
    """A metric that is a ratio of sums over units (samples, test rows, windows):
    sum(totals) / sum(counts). Resampling the units recomputes it without rescoring.

    ``value`` is the metric on all units, computed as it always was (the same float a
    bootstrap-free run reports); the units' ratio equals it up to rounding.
    """

    value: float
    totals: np.ndarray  # [units]
    counts: np.ndarray  # [units]

    @classmethod
    def of_sentences(
        cls, value: float, scores: list[float], owner: np.ndarray, units: int
    ) -> Ratio:
        """A mean over sentences (BLEU, Self-BLEU) as a ratio over the ``units`` samples that
        own them: each sample's sum of sentence scores over its number of sentences. No
        scores (Self-BLEU of fewer than two sentences) count as no sentences: 0 throughout."""
        if not scores:
            return cls(value, np.zeros(units), np.zeros(units))
        totals = np.bincount(owner, weights=scores, minlength=units).astype(np.float64)
        return cls(value, totals, np.bincount(owner, minlength=units).astype(np.float64))


def bootstrap(
    stats: dict[str, Ratio], seed: int, replicates: int = BOOTSTRAP_REPLICATES
) -> dict[str, np.ndarray]:
    """``replicates`` bootstrap values [replicates] of each ratio: the units drawn with
    replacement, as many as there are, the same draws for every ratio (so the metrics of one
    sample set move together, as the quality-diversity curve needs)."""
    (units,) = {len(r.totals) for r in stats.values()}
    rng = np.random.default_rng(seed)
    out = {name: np.empty(replicates) for name in stats}
    chunk = max(1, 2**20 // max(units, 1))  # draws in blocks of about a million indices
    for start in range(0, replicates, chunk):
        draws = rng.integers(0, units, (min(chunk, replicates - start), units))
        for name, r in stats.items():
            totals, counts = r.totals[draws].sum(axis=1), r.counts[draws].sum(axis=1)
            ratio = np.divide(totals, counts, out=np.zeros_like(totals), where=counts > 0)
            out[name][start : start + len(draws)] = ratio
    return out


def interval(replicates: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap replicates (those defined)."""
    low, high = np.nanpercentile(replicates, [2.5, 97.5])
    return float(low), float(high)


def with_intervals(point: dict[str, float], replicates: dict[str, np.ndarray]) -> dict[str, float]:
    """``point`` with ``<metric>_low`` and ``<metric>_high`` after each bootstrapped metric."""
    out = {}
    for name, value in point.items():
        out[name] = value
        if name in replicates:
            out[f"{name}_low"], out[f"{name}_high"] = interval(replicates[name])
    return out


def sample_metrics(
    samples: np.ndarray,
    context: np.ndarray,
    real: RealData,
    reverse_lm: LSTMParams,
    seed: int,
    resample_seed: int,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Every quality and diversity measure of one set of samples [n, length] (token ids,
    padded after an end token), each continuing its row of ``context`` [n, >=1] (the prompt;
    ``<bos>`` first for independent sequences), with ``<m>_low``/``<m>_high``, the 95%
    bootstrap interval of each curve metric; and those metrics' bootstrap replicates.

    The samples are resampled with ``resample_seed``; the reverse LM's test units with one
    stream of ``seed``, the same for every sample set, since they are the common yardstick.
    """
    vocab = real.vocab
    texts = vocab.decode_rows(samples)
    per_text = [sentences(text) for text in texts]
    generated = [s for ss in per_text for s in ss]
    owner = np.repeat(np.arange(len(texts)), [len(ss) for ss in per_text])
    bleu = {n: real.references.sentence_scores(generated, n) for n in range(2, 6)}
    selfb = {n: self_bleu_scores(generated, n) for n in range(2, 6)}
    judged = lm_ratio(real.judge, context, samples, vocab.pad_id)
    reverse = reverse_lm_nll(samples, context, real.test_ids, len(vocab), reverse_lm, seed)
    point = {
        **{f"bleu_{n}": mean_score(bleu[n]) for n in range(2, 6)},
        **{f"self_bleu_{n}": mean_score(selfb[n]) for n in range(2, 6)},
        **{f"distinct_{n}": distinct_n(texts, n) for n in range(1, 5)},
        "novelty_4": novelty(texts, real.seen_4grams, 4),
        "longest_copy_chars": real.copies.median_longest_copy(
            real_tokens(row, vocab) for row in samples
        ),
        "lm_score_nats": judged.value,
        "reverse_lm_nats": reverse.value,
    }
    n = len(texts)
    replicates = {
        **bootstrap(
            {
                "bleu_4": Ratio.of_sentences(point["bleu_4"], bleu[4], owner, n),
                # Self-BLEU: each sentence keeps its score against the full set; only the
                # average is resampled (rescoring against every replicate would be quadratic).
                "self_bleu_4": Ratio.of_sentences(point["self_bleu_4"], selfb[4], owner, n),
                "lm_score_nats": judged,
            },
            resample_seed,
        ),
        **bootstrap({"reverse_lm_nats": reverse}, derive_seed(seed, RESAMPLING)),
    }
    return with_intervals(point, replicates), replicates


def lm_score(
    judge: keras.Model,
    context: np.ndarray,
    samples: np.ndarray,
    pad_id: int | None = None,
    batch: int = 64,
) -> float:
    """Mean per-token NLL (nats) of the samples under ``judge``, each after its context
    (padding, if ``pad_id`` is given, not counted)."""
    return lm_ratio(judge, context, samples, pad_id, batch).value


def lm_ratio(
    lm: keras.Model,
    context: np.ndarray,
    rows: np.ndarray,
    pad_id: int | None = None,
    batch: int = 64,
    temperature: float = 1.0,
) -> Ratio:
    """``lm_score`` with its per-row NLL sums and token counts, the units a bootstrap draws
    (under softmax(logits / ``temperature``))."""
    weight = (rows != pad_id) if pad_id is not None else np.ones(rows.shape, bool)
    total = 0.0
    sums = []
    for i in range(0, len(rows), batch):
        nll = sequence_nll(lm, context[i : i + batch], rows[i : i + batch], temperature=temperature)
        part = nll.numpy() * weight[i : i + batch]
        total += float(np.sum(part))  # summed per batch, as lm_score always has
        sums.append(part.sum(axis=1, dtype=np.float64))
    counts = weight.sum(axis=1).astype(np.float64)
    totals = np.concatenate(sums) if sums else np.zeros(0)
    return Ratio(total / max(int(weight.sum()), 1), totals, counts)


def heldout_ratio(
    lm: keras.Model, tokens: np.ndarray, batch_size: int, temperature: float = 1.0
) -> Ratio:
    """A split's held-out NLL (``lstm.rows_nll``'s or ``lstm.stream_nll``'s value, unchanged)
    with its units: each row of independent sequences, or each window of a stream's rows."""
    if tokens.ndim == 2:
        units = lm_ratio(lm, tokens[:, :1], tokens[:, 1:], PAD_ID, batch_size, temperature)
        return Ratio(rows_nll(lm, tokens, batch_size, temperature), units.totals, units.counts)
    if temperature != 1.0:
        raise ValueError("a stream is scored at temperature 1 only")
    totals, counts = _stream_windows(lm, tokens, batch_size)
    return Ratio(stream_nll(lm, tokens, batch_size), totals, counts)


def _stream_windows(
    lm: keras.Model, tokens: np.ndarray, batch_size: int, window: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Per-window NLL sums and token counts of a stream, in ``stream_nll``'s layout (rows of
    contiguous text read window by window with the state carried), so the windows add up to
    its value; a window is a unit long enough that neighbouring units are nearly independent."""
    n = len(tokens) - 1
    rows = min(batch_size, n)
    row_len = math.ceil(n / rows)
    pad = rows * row_len - n
    x = np.concatenate([tokens[:-1], np.zeros(pad, np.int32)]).reshape(rows, row_len)
    y = np.concatenate([tokens[1:], np.zeros(pad, np.int32)]).reshape(rows, row_len)
    w = np.concatenate([np.ones(n), np.zeros(pad)]).reshape(rows, row_len)
    ids = tf.TensorSpec([rows, None], tf.int32)
    states = [(tf.TensorSpec([rows, layer.units]),) * 2 for layer in lstm_layers(lm)]

    # Compiled once per call (the last, shorter window included): run eagerly, the windows
    # cost more than the reverse LM's whole training.
    @tf.function(input_signature=[ids, ids, states])
    def score(x, y, state):
        logits, state = forward(lm, x, state)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits), state

    state = zero_state(lm, rows)
    totals, counts = [], []
    for t in range(0, row_len, window):
        cols = slice(t, t + window)
        nll, state = score(x[:, cols], y[:, cols], state)
        totals.append((nll.numpy() * w[:, cols]).sum(axis=1))
        counts.append(w[:, cols].sum(axis=1))
    totals_, counts_ = np.concatenate(totals), np.concatenate(counts)
    return totals_[counts_ > 0], counts_[counts_ > 0]


def reverse_lm_nll(
    samples: np.ndarray,
    context: np.ndarray,
    test_ids: np.ndarray,
    vocab_size: int,
    p: LSTMParams,
    seed: int,
) -> Ratio:
    """Reverse LM score: NLL (nats/token) of the real test split under a fresh LM trained on
    the samples only, with its units: the test split's rows or windows. Low when the samples
    cover the real distribution, high when they are repetitive or collapsed, which a score of
    the samples themselves cannot see.

    Every call starts from the same initial weights and data order (seeded here), so two
    models' samples are compared on equal terms. The last tenth of the samples is held out
    for early stopping.

    The LM is trained once per sample set (once per replicate would multiply the stage's
    time by the replicates), so a bootstrap of this ratio covers the scoring side only: the
    test split's sampling noise, not the noise of training on another draw of samples.
    """
    rows = np.concatenate([context, samples], axis=1)
    held_out = max(1, len(rows) // 10)
    if test_ids.ndim == 1:  # a stream: the samples, one after the other
        fit, check = rows[:-held_out].ravel(), rows[-held_out:].ravel()
    else:  # independent sequences: the rows themselves, <bos> first
        fit, check = rows[:-held_out], rows[-held_out:]
    keras.utils.set_random_seed(seed)
    lm = build_model(vocab_size, p)
    with _fresh_model_traces():
        train(lm, fit, check, p, seed, verbose=0)
        return heldout_ratio(lm, test_ids, p.eval_batch_size)  # a fresh scorer per fresh LM


class _FreshModelTraces(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _fresh_model_traces() -> Iterator[None]:
    """Every reverse LM is a new model, so Keras traces its training and validation steps
    anew (a partial last validation batch once more), and its test windows' scorer is compiled
    for it (``_stream_windows``): by design, not a shape leak. On small
    sample sets (a few steps per epoch) that crosses TensorFlow's "5 traces in the last 10
    calls" heuristic, whose warning is silenced here, and only here."""
    quiet = _FreshModelTraces()
    logger = logging.getLogger("tensorflow")
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


@dataclass
class Sweep:
    """One model's sweep: a point of metrics per temperature (with the curve metrics' 95%
    intervals), those metrics' bootstrap replicates per point, and a few samples of each."""

    points: list[dict[str, float]]
    replicates: list[dict[str, np.ndarray]]
    examples: dict[float, list[str]] = field(default_factory=dict)


def temperature_sweep(
    model: keras.Model,
    real: RealData,
    p: EvaluateParams,
    prompt: str,
    seed: int,
    name: str = "model",
    resample_seed: int | None = None,
) -> Sweep:
    """Samples at every temperature in ``p.temperatures`` and their metrics.

    Temperature ``i`` uses the same sampling seed for every model, so two models differ only
    by their weights. Its samples are resampled with ``derive_seed(resample_seed, i)``: give
    each model its own ``resample_seed`` (default: one derived from ``seed``) so that the two
    models' bootstraps are independent draws.
    """
    if resample_seed is None:
        resample_seed = derive_seed(seed, RESAMPLING)
    sampler = sampler_for(model, real.vocab)
    prompt_ids = prompt_context(real.vocab, prompt)
    context = np.tile(prompt_ids, (p.num_samples, 1))
    points, replicates, examples = [], [], {}
    for i, temperature in enumerate(p.temperatures):
        start = time.perf_counter()
        ids = sampler.generate(prompt_ids, p.num_samples, p.length, Decoding(temperature), seed + i)
        metrics, reps = sample_metrics(
            ids, context, real, p.reverse_lm, seed, derive_seed(resample_seed, i)
        )
        point = {"temperature": temperature, **metrics}
        points.append(point)
        replicates.append(reps)
        examples[temperature] = real.vocab.decode_rows(ids[: p.report_samples])
        log.info(
            "  %s T=%g: BLEU-4 %.3f, Self-BLEU-4 %.3f, LM score %.3f, reverse LM %.3f (%.1f s)",
            name,
            temperature,
            point["bleu_4"],
            point["self_bleu_4"],
            point["lm_score_nats"],
            point["reverse_lm_nats"],
            time.perf_counter() - start,
        )
    return Sweep(points, replicates, examples)


# --- Comparing two quality-diversity curves ---------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    """A (quality, diversity) pair of metrics and which direction is better for each."""

    name: str
    quality: str
    quality_higher_is_better: bool
    diversity: str
    diversity_higher_is_better: bool
    quality_label: str
    diversity_label: str


CRITERIA = (
    Criterion("bleu", "bleu_4", True, "self_bleu_4", False, "BLEU-4", "Self-BLEU-4"),
    Criterion(
        "lm", "lm_score_nats", False, "reverse_lm_nats", False, "LM score", "reverse LM score"
    ),
)


def frontier(quality: np.ndarray, diversity: np.ndarray) -> np.ndarray:
    """The Pareto-optimal points [k, 2] of a curve, by rising quality (so falling diversity).

    Both coordinates are oriented so that higher is better. A point beaten on both counts by
    another temperature's point is not part of what the model can offer.
    """
    points = sorted(zip(quality, diversity, strict=True), key=lambda qd: (-qd[0], -qd[1]))
    kept: list[tuple[float, float]] = []
    for q, d in points:  # by falling quality: keep a point only if it adds diversity
        if not kept or d > kept[-1][1]:
            kept.append((q, d))
    return np.array(kept[::-1], dtype=np.float64)


def diversity_at(front: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """The most diversity a curve offers at quality at least ``quality`` (-inf: out of reach).

    Between two temperatures the curve is taken as linear; below its lowest quality it offers
    its highest diversity (a model may always trade quality away).
    """
    q, d = front[:, 0], front[:, 1]
    out = np.interp(quality, q, d, left=d[0], right=-np.inf)
    return np.where(np.asarray(quality) > q[-1], -np.inf, out)


Replicates = list[dict[str, np.ndarray]]  # per sweep point: metric -> bootstrap values
# Diversities this close are equal: the rounding of interpolating one curve at another's
# points, far below any metric's noise (noise is the bootstrap's job, not a constant's).
_ROUNDING = 1e-12


@dataclass(frozen=True)
class Comparison:
    """How two models' curves compare on one criterion (numbers in the metrics' own units)."""

    criterion: Criterion
    names: tuple[str, str]
    overlap: tuple[float, float] | None  # the quality range both models reach
    levels: list[float]  # quality levels across the overlap
    diversity: tuple[list[float], list[float]]  # each model's diversity at those levels
    wins: tuple[int, int]  # levels at which each model is strictly more diverse
    mean_gain: float  # mean over levels of how much more diverse the second model is
    dominant: str | None  # a model whose curve is never worse and somewhere better
    # The 95% bootstrap interval of mean_gain (None: no replicates, or no common level).
    gain_interval: tuple[float, float] | None = None


def _curve(
    quality: np.ndarray, diversity: np.ndarray, criterion: Criterion
) -> tuple[np.ndarray, np.ndarray]:
    """A curve's qualities and its frontier, both oriented so that higher is better."""
    qs = 1.0 if criterion.quality_higher_is_better else -1.0
    ds = 1.0 if criterion.diversity_higher_is_better else -1.0
    return quality * qs, frontier(quality * qs, diversity * ds)


def _common_levels(qa: np.ndarray, qb: np.ndarray, levels: int) -> np.ndarray | None:
    """The quality levels across the range both sweeps span (None: they share none). A
    frontier may start higher, where a model's hottest points were beaten by cooler ones."""
    lo, hi = max(qa.min(), qb.min()), min(qa.max(), qb.max())
    if lo > hi:
        return None
    return np.linspace(lo, hi, levels) if hi > lo else np.array([lo])


def compare_curves(
    a: list[dict[str, float]],
    b: list[dict[str, float]],
    criterion: Criterion,
    names: tuple[str, str] = ("a", "b"),
    levels: int = 101,
    replicates: tuple[Replicates, Replicates] | None = None,
) -> Comparison:
    """For each quality level both curves reach, which model is more diverse; the mean gain
    of ``b`` over ``a`` across those levels, with its 95% interval over the two sweeps'
    bootstrap ``replicates`` (each replicate recomputes both curves and the gain); and,
    descriptively, whether either point curve dominates the other (no noise allowance)."""
    qs = 1.0 if criterion.quality_higher_is_better else -1.0
    ds = 1.0 if criterion.diversity_higher_is_better else -1.0

    def values(points: list[dict[str, float]], key: str) -> np.ndarray:
        return np.array([p[key] for p in points], dtype=np.float64)

    qa, fa = _curve(values(a, criterion.quality), values(a, criterion.diversity), criterion)
    qb, fb = _curve(values(b, criterion.quality), values(b, criterion.diversity), criterion)
    # Both curves are piecewise linear, so their difference changes sign only at a vertex of
    # one of them: checking every vertex decides dominance exactly.
    vertices = np.union1d(fa[:, 0], fb[:, 0])
    da, db = diversity_at(fa, vertices), diversity_at(fb, vertices)
    dominant = None
    if np.all(da >= db - _ROUNDING) and np.any(da > db + _ROUNDING):
        dominant = names[0]
    elif np.all(db >= da - _ROUNDING) and np.any(db > da + _ROUNDING):
        dominant = names[1]

    grid = _common_levels(qa, qb, levels)
    if grid is None:
        return Comparison(criterion, names, None, [], ([], []), (0, 0), math.nan, dominant)
    ga, gb = diversity_at(fa, grid), diversity_at(fb, grid)
    gain_interval = None
    if replicates is not None:
        gains = _replicate_gains(*replicates, criterion, levels)
        gain_interval = interval(gains) if np.isfinite(gains).any() else None
    return Comparison(
        criterion,
        names,
        overlap=tuple(sorted((grid[0] * qs, grid[-1] * qs))),
        levels=list(grid * qs),
        diversity=(list(ga * ds), list(gb * ds)),
        wins=(int(np.sum(ga > gb + _ROUNDING)), int(np.sum(gb > ga + _ROUNDING))),
        mean_gain=float(np.mean(gb - ga)),
        dominant=dominant,
        gain_interval=gain_interval,
    )


def _replicate_gains(a: Replicates, b: Replicates, criterion: Criterion, levels: int) -> np.ndarray:
    """The mean gain of ``b`` over ``a`` on every bootstrap replicate (NaN where the two
    replicate curves share no quality level)."""

    def stacked(reps: Replicates, key: str) -> np.ndarray:
        return np.stack([r[key] for r in reps], axis=1)  # [replicates, points]

    qa, da = stacked(a, criterion.quality), stacked(a, criterion.diversity)
    qb, db = stacked(b, criterion.quality), stacked(b, criterion.diversity)
    gains = np.full(len(qa), np.nan)
    for r in range(len(qa)):
        (qa_r, fa), (qb_r, fb) = _curve(qa[r], da[r], criterion), _curve(qb[r], db[r], criterion)
        grid = _common_levels(qa_r, qb_r, levels)
        if grid is not None:
            gains[r] = np.mean(diversity_at(fb, grid) - diversity_at(fa, grid))
    return gains


def comparison_metrics(c: Comparison) -> dict[str, float | None]:
    """The comparison as flat numbers for metrics/evaluate.json: 1/0 flags for the winner
    (``winner``) and for descriptive dominance, the share of quality levels each model wins,
    and the mean gain with its 95% interval (null: no common level, or no interval)."""
    a, b = c.names
    n = len(c.levels)
    low, high = c.gain_interval if c.gain_interval else (None, None)
    best = winner(c)
    return {
        f"{a}_better": float(best == a),
        f"{b}_better": float(best == b),
        f"{a}_dominates": float(c.dominant == a),
        f"{b}_dominates": float(c.dominant == b),
        f"{a}_more_diverse_share": c.wins[0] / n if n else None,
        f"{b}_more_diverse_share": c.wins[1] / n if n else None,
        f"{b}_mean_diversity_gain": c.mean_gain if n else None,
        f"{b}_mean_diversity_gain_low": low,
        f"{b}_mean_diversity_gain_high": high,
    }


def describe(c: Comparison, label: dict[str, str]) -> str:
    """One sentence with the numbers: who is more diverse at equal quality (with the gap's
    interval), and, descriptively, whether either point curve dominates."""
    a, b = c.names
    q, d = c.criterion.quality_label, c.criterion.diversity_label
    if c.overlap is None:
        text = f"{q} vs {d}: the sweeps share no {q} level"
    else:
        lo, hi = c.overlap
        text = (
            f"{q} vs {d}: over the {q} range both sweeps span ({lo:.3f} to {hi:.3f}), "
            f"{label[a]} is more diverse at {c.wins[0]} of {len(c.levels)} levels and "
            f"{label[b]} at {c.wins[1]}; {_gain(c, label)}"
        )
    if c.dominant:
        loser = label[b] if c.dominant == a else label[a]
        text += f"; {label[c.dominant]}'s point curve dominates {loser}'s"
    else:
        text += "; neither point curve dominates the other"
    return text + "."


def _gain(c: Comparison, label: dict[str, str]) -> str:
    """'<model>'s <diversity> is lower by x [low, high] on average at equal <quality>', in
    natural units: the interval is the 95% bootstrap interval of that same difference."""
    first_more = c.mean_gain <= 0
    more = c.names[0] if first_more else c.names[1]
    direction = "higher" if c.criterion.diversity_higher_is_better else "lower"
    text = (
        f"on average {label[more]}'s {c.criterion.diversity_label} is {direction} by "
        f"{abs(c.mean_gain):.3f}"
    )
    if c.gain_interval:
        low, high = (-x for x in c.gain_interval[::-1]) if first_more else c.gain_interval
        text += f" [95% interval {low:.3f}, {high:.3f}]"
    return text + f" at equal {c.criterion.quality_label}"


def winner(c: Comparison) -> str | None:
    """The better model on one criterion: the one more diverse at equal quality on average,
    when the 95% interval of that gap excludes zero (None: no clear winner, because the
    interval straddles zero, or there is no interval or no common quality level)."""
    if not c.levels or c.gain_interval is None:
        return None
    low, high = c.gain_interval
    if low > 0:
        return c.names[1]
    if high < 0:
        return c.names[0]
    return None


def verdict(comparisons: list[Comparison], label: dict[str, str]) -> str:
    """The answer in one sentence, with its numbers: which model is better here, and why."""
    winners = [winner(c) for c in comparisons]
    numbers = "; ".join(
        _gain(c, label) if c.overlap else f"no common {c.criterion.quality_label} level"
        for c in comparisons
    )
    if len(set(winners)) == 1 and winners[0] is not None:
        text = (
            f"{label[winners[0]]} is better here: at equal quality its samples are more "
            f"diverse on every criterion, by more than the 95% interval's sampling noise "
            f"({numbers})."
        )
        return text[0].upper() + text[1:]
    named = ", ".join(
        f"{label[w] if w else 'neither'} by {c.criterion.quality_label} vs "
        f"{c.criterion.diversity_label}"
        for c, w in zip(comparisons, winners, strict=True)
    )
    return f"No clear winner here: better is {named} ({numbers})."
