"""The evaluation protocol, the same for every model: sample quality and diversity, the
temperature sweep, and the verdict between two models' quality-diversity curves.

Why a sweep: lowering a language model's sampling temperature raises its "quality" (BLEU, LM
score) and lowers its diversity, so one point per model says little; a model is only better
if it is more diverse at equal quality ("Language GANs Falling Short", Caccia et al., 2020).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from textgen.backend import keras
from textgen.config import EvaluateParams, LSTMParams
from textgen.corpus import as_text, real_tokens
from textgen.lstm import build_model, heldout_nll, sequence_nll, train
from textgen.metrics import (
    BleuReferences,
    CopyIndex,
    distinct_n,
    ngram_set,
    novelty,
    self_bleu,
    sentences,
)
from textgen.sampling import Decoding, prompt_context, sampler_for
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


def sample_metrics(
    samples: np.ndarray, context: np.ndarray, real: RealData, reverse_lm: LSTMParams, seed: int
) -> dict[str, float]:
    """Every quality and diversity measure of one set of samples [n, length] (token ids,
    padded after an end token), each continuing its row of ``context`` [n, >=1] (the prompt;
    ``<bos>`` first for independent sequences)."""
    vocab = real.vocab
    texts = vocab.decode_rows(samples)
    generated = [s for text in texts for s in sentences(text)]
    return {
        **{f"bleu_{n}": real.references.bleu(generated, n) for n in range(2, 6)},
        **{f"self_bleu_{n}": self_bleu(generated, n) for n in range(2, 6)},
        **{f"distinct_{n}": distinct_n(texts, n) for n in range(1, 5)},
        "novelty_4": novelty(texts, real.seen_4grams, 4),
        "longest_copy_chars": real.copies.median_longest_copy(
            real_tokens(row, vocab) for row in samples
        ),
        "lm_score_nats": lm_score(real.judge, context, samples, vocab.pad_id),
        "reverse_lm_nats": reverse_lm_nll(
            samples, context, real.test_ids, len(vocab), reverse_lm, seed
        ),
    }


def lm_score(
    judge: keras.Model,
    context: np.ndarray,
    samples: np.ndarray,
    pad_id: int | None = None,
    batch: int = 64,
) -> float:
    """Mean per-token NLL (nats) of the samples under ``judge``, each after its context
    (padding, if ``pad_id`` is given, not counted)."""
    weight = (samples != pad_id) if pad_id is not None else np.ones(samples.shape, bool)
    total = 0.0
    for i in range(0, len(samples), batch):
        nll = sequence_nll(judge, context[i : i + batch], samples[i : i + batch]).numpy()
        total += float(np.sum(nll * weight[i : i + batch]))
    return total / max(int(weight.sum()), 1)


def reverse_lm_nll(
    samples: np.ndarray,
    context: np.ndarray,
    test_ids: np.ndarray,
    vocab_size: int,
    p: LSTMParams,
    seed: int,
) -> float:
    """Reverse LM score: NLL (nats/token) of the real test split under a fresh LM trained on
    the samples only. Low when the samples cover the real distribution, high when they are
    repetitive or collapsed, which a score of the samples themselves cannot see.

    Every call starts from the same initial weights and data order (seeded here), so two
    models' samples are compared on equal terms. The last tenth of the samples is held out
    for early stopping.
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
    return heldout_nll(lm, test_ids, p.eval_batch_size)


class _FreshModelTraces(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _fresh_model_traces() -> Iterator[None]:
    """Every reverse LM is a new model, so Keras traces its training and validation steps
    anew (a partial last validation batch once more): by design, not a shape leak. On small
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
    """One model's sweep: a point of metrics per temperature, and a few samples of each."""

    points: list[dict[str, float]]
    examples: dict[float, list[str]]


def temperature_sweep(
    model: keras.Model,
    real: RealData,
    p: EvaluateParams,
    prompt: str,
    seed: int,
    name: str = "model",
) -> Sweep:
    """Samples at every temperature in ``p.temperatures`` and their metrics.

    Temperature ``i`` uses the same sampling seed for every model, so two models differ only
    by their weights.
    """
    sampler = sampler_for(model, real.vocab)
    prompt_ids = prompt_context(real.vocab, prompt)
    context = np.tile(prompt_ids, (p.num_samples, 1))
    points, examples = [], {}
    for i, temperature in enumerate(p.temperatures):
        start = time.perf_counter()
        ids = sampler.generate(prompt_ids, p.num_samples, p.length, Decoding(temperature), seed + i)
        point = {"temperature": temperature}
        point.update(sample_metrics(ids, context, real, p.reverse_lm, seed))
        points.append(point)
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
    return Sweep(points, examples)


# --- Comparing two quality-diversity curves ---------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    """A (quality, diversity) pair of metrics and which direction is better for each.

    ``tie``: diversity gaps up to this size count as ties, about the run-to-run noise of the
    metric at the default sample sizes (a judgement call, documented in the README), so that
    a verdict never rests on noise.
    """

    name: str
    quality: str
    quality_higher_is_better: bool
    diversity: str
    diversity_higher_is_better: bool
    quality_label: str
    diversity_label: str
    tie: float = 1e-9


CRITERIA = (
    Criterion("bleu", "bleu_4", True, "self_bleu_4", False, "BLEU-4", "Self-BLEU-4", 0.005),
    Criterion(
        "lm", "lm_score_nats", False, "reverse_lm_nats", False, "LM score", "reverse LM score", 0.02
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


def compare_curves(
    a: list[dict[str, float]],
    b: list[dict[str, float]],
    criterion: Criterion,
    names: tuple[str, str] = ("a", "b"),
    levels: int = 101,
    tolerance: float | None = None,
) -> Comparison:
    """For each quality level both curves reach, which model is more diverse; and whether
    either curve dominates the other over the whole range. Diversities within ``tolerance``
    (default: the criterion's ``tie``) of each other are a tie."""
    tolerance = criterion.tie if tolerance is None else tolerance
    qs = 1.0 if criterion.quality_higher_is_better else -1.0
    ds = 1.0 if criterion.diversity_higher_is_better else -1.0

    def oriented(points: list[dict[str, float]]) -> tuple[np.ndarray, np.ndarray]:
        quality = np.array([p[criterion.quality] for p in points]) * qs
        diversity = np.array([p[criterion.diversity] for p in points]) * ds
        return quality, frontier(quality, diversity)

    (qa, fa), (qb, fb) = oriented(a), oriented(b)
    # Both curves are piecewise linear, so their difference changes sign only at a vertex of
    # one of them: checking every vertex decides dominance exactly.
    vertices = np.union1d(fa[:, 0], fb[:, 0])
    da, db = diversity_at(fa, vertices), diversity_at(fb, vertices)
    dominant = None
    if np.all(da >= db - tolerance) and np.any(da > db + tolerance):
        dominant = names[0]
    elif np.all(db >= da - tolerance) and np.any(db > da + tolerance):
        dominant = names[1]

    # Levels: the quality range both sweeps span (a frontier may start higher, where a
    # model's hottest points were beaten by its cooler ones).
    lo, hi = max(qa.min(), qb.min()), min(qa.max(), qb.max())
    if lo > hi:
        return Comparison(criterion, names, None, [], ([], []), (0, 0), math.nan, dominant)
    grid = np.linspace(lo, hi, levels) if hi > lo else np.array([lo])
    ga, gb = diversity_at(fa, grid), diversity_at(fb, grid)
    return Comparison(
        criterion,
        names,
        overlap=tuple(sorted((lo * qs, hi * qs))),
        levels=list(grid * qs),
        diversity=(list(ga * ds), list(gb * ds)),
        wins=(int(np.sum(ga > gb + tolerance)), int(np.sum(gb > ga + tolerance))),
        mean_gain=float(np.mean(gb - ga)),
        dominant=dominant,
    )


def comparison_metrics(c: Comparison) -> dict[str, float | None]:
    """The comparison as flat numbers for metrics/evaluate.json: 1/0 dominance flags, and the
    share of quality levels each model wins and the mean gain (null: no common level)."""
    a, b = c.names
    n = len(c.levels)
    return {
        f"{a}_dominates": float(c.dominant == a),
        f"{b}_dominates": float(c.dominant == b),
        f"{a}_more_diverse_share": c.wins[0] / n if n else None,
        f"{b}_more_diverse_share": c.wins[1] / n if n else None,
        f"{b}_mean_diversity_gain": c.mean_gain if n else None,
    }


def describe(c: Comparison, label: dict[str, str]) -> str:
    """One sentence with the numbers: who is more diverse at equal quality, who dominates."""
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
        text += f"; {label[c.dominant]}'s curve dominates {loser}'s"
    else:
        text += "; neither curve dominates the other"
    return text + "."


def _gain(c: Comparison, label: dict[str, str]) -> str:
    """'<model>'s <diversity> is lower by x on average at equal <quality>', in natural units."""
    more = c.names[1] if c.mean_gain > 0 else c.names[0]
    direction = "higher" if c.criterion.diversity_higher_is_better else "lower"
    return (
        f"on average {label[more]}'s {c.criterion.diversity_label} is {direction} by "
        f"{abs(c.mean_gain):.3f} at equal {c.criterion.quality_label}"
    )


def winner(c: Comparison) -> str | None:
    """The better model on one criterion: the dominant one, else one more diverse at three
    quarters of the quality levels or more, by more than a tie on average (None: no clear
    winner, e.g. crossing curves, or curves closer than the criterion's ``tie``)."""
    if c.dominant:
        return c.dominant
    n = len(c.levels)
    if n == 0 or abs(c.mean_gain) <= c.criterion.tie:
        return None
    for name, wins in zip(c.names, c.wins, strict=True):
        if wins >= 0.75 * n:
            return name
    return None


def verdict(comparisons: list[Comparison], label: dict[str, str]) -> str:
    """The answer in one sentence, with its numbers: which model is better here, and why."""
    winners = [winner(c) for c in comparisons]
    numbers = "; ".join(
        _gain(c, label) if c.overlap else f"no common {c.criterion.quality_label} level"
        for c in comparisons
    )
    if len(set(winners)) == 1 and winners[0] is not None:
        best = winners[0]
        how = "dominates" if all(c.dominant == best for c in comparisons) else "is mostly above"
        text = (
            f"{label[best]} is better here: at equal quality its samples are more diverse, and "
            f"its curve {how} the other's on every criterion ({numbers})."
        )
        return text[0].upper() + text[1:]
    named = ", ".join(
        f"{label[w] if w else 'neither'} by {c.criterion.quality_label} vs "
        f"{c.criterion.diversity_label}"
        for c, w in zip(comparisons, winners, strict=True)
    )
    return f"No clear winner here: better is {named} ({numbers})."
