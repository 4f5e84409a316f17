"""Comparing two models' quality-diversity curves: the criteria, the curves (Pareto fronts of
a temperature sweep), which model is more diverse at each quality level and by how much (with
the gap's 95% bootstrap interval at every level), the regions where each is better, and the
verdict in one sentence.

Why curves: lowering a language model's sampling temperature raises its "quality" and lowers
its diversity, so one point per model says little; a model is only better if it is more
diverse at equal quality ("Language GANs Falling Short", Caccia et al., 2020). Why regions:
curves cross, and a mean over the quality range can name a winner that is worse over much of
it (the hot end, where the quality axis stretches, weighs most), so a model wins only where
it is better beyond the noise at every level; otherwise the regions are named.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from textgen.evaluation import interval


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
# The synthetic oracle benchmark's one criterion: the oracle's NLL of the samples (quality,
# exact) against the model's NLL of held-out oracle sequences (coverage).
ORACLE_CRITERION = Criterion(
    "oracle", "nll_oracle", False, "nll_test", False, "NLL oracle", "NLL test"
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
class Region:
    """A stretch of the common quality range (in the metric's units, from the lower-quality
    end) where one model is more diverse beyond the noise (``better``), or neither (None)."""

    start: float
    end: float
    better: str | None
    share: float  # of the quality levels compared


@dataclass(frozen=True)
class Comparison:
    """How two models' curves compare on one criterion (numbers in the metrics' own units)."""

    criterion: Criterion
    names: tuple[str, str]
    overlap: tuple[float, float] | None  # the quality range both models reach
    levels: list[float]  # quality levels across the overlap, from low to high quality
    diversity: tuple[list[float], list[float]]  # each model's diversity at those levels
    wins: tuple[int, int]  # levels at which each model is strictly more diverse
    mean_gain: float  # mean over levels of how much more diverse the second model is
    dominant: str | None  # a model whose curve is never worse and somewhere better
    # The 95% bootstrap interval of mean_gain (None: no replicates, or no common level).
    gain_interval: tuple[float, float] | None = None
    # At every level, the 95% interval of how much more diverse the second model is
    # (oriented: > 0 is the second model better), and who is better beyond it (None: neither).
    # Empty without replicates.
    level_intervals: list[tuple[float, float]] = field(default_factory=list)
    better: list[str | None] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    crossings: list[float] = field(default_factory=list)  # quality levels where the curves cross


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
    """For each quality level both curves reach, which model is more diverse; the gain of ``b``
    over ``a`` at every level and on average, each with its 95% interval over the two sweeps'
    bootstrap ``replicates`` (each replicate recomputes both curves, their common range and
    the gain at the same relative positions along it); the regions where each is better
    beyond that noise and where the point curves cross; and, descriptively, whether either
    point curve dominates the other (no noise allowance)."""
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
    gain_interval, level_intervals, better, regions = None, [], [], []
    if replicates is not None:
        gaps = _replicate_gaps(*replicates, criterion, len(grid))
        defined = np.isfinite(gaps).all(axis=1)
        if defined.any():
            gain_interval = interval(gaps[defined].mean(axis=1))
            level_intervals = [interval(column) for column in gaps[defined].T]
            better = [
                names[1] if low > 0 else names[0] if high < 0 else None
                for low, high in level_intervals
            ]
            regions = _runs(list(grid * qs), better)
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
        level_intervals=level_intervals,
        better=better,
        regions=regions,
        crossings=_crossings(grid * qs, gb - ga),
    )


def _replicate_gaps(a: Replicates, b: Replicates, criterion: Criterion, levels: int) -> np.ndarray:
    """The gain of ``b`` over ``a`` at ``levels`` evenly spaced positions along each bootstrap
    replicate's own common quality range, [replicates, levels] (a row of NaN where the two
    replicate curves share no level). Each replicate's own range, not the point curves':
    near its ends, a replicate's curve may stop short of the point curves' range."""

    def stacked(reps: Replicates, key: str) -> np.ndarray:
        return np.stack([r[key] for r in reps], axis=1)  # [replicates, points]

    qa, da = stacked(a, criterion.quality), stacked(a, criterion.diversity)
    qb, db = stacked(b, criterion.quality), stacked(b, criterion.diversity)
    gaps = np.full((len(qa), levels), np.nan)
    for r in range(len(qa)):
        (qa_r, fa), (qb_r, fb) = _curve(qa[r], da[r], criterion), _curve(qb[r], db[r], criterion)
        grid = _common_levels(qa_r, qb_r, levels)
        if grid is not None:
            gaps[r] = diversity_at(fb, grid) - diversity_at(fa, grid)
    return gaps


def _runs(levels: list[float], better: list[str | None]) -> list[Region]:
    """Runs of consecutive levels with the same ``better``, as quality stretches."""
    regions: list[Region] = []
    start = 0
    for i in range(1, len(levels) + 1):
        if i == len(levels) or better[i] != better[start]:
            share = (i - start) / len(levels)
            regions.append(Region(levels[start], levels[i - 1], better[start], share))
            start = i
    return regions


def _crossings(levels: np.ndarray, gap: np.ndarray) -> list[float]:
    """The quality levels (metric units) where the point gap changes sign, interpolated
    between the two levels around each change; gaps within rounding of zero are skipped."""
    sign = np.where(gap > _ROUNDING, 1, np.where(gap < -_ROUNDING, -1, 0))
    nonzero = np.flatnonzero(sign)
    out = []
    for i, j in itertools.pairwise(nonzero):
        if sign[i] != sign[j]:
            t = gap[i] / (gap[i] - gap[j])
            out.append(float(levels[i] + t * (levels[j] - levels[i])))
    return out


def comparison_metrics(c: Comparison) -> dict[str, float | None]:
    """The comparison as flat numbers for metrics/evaluate.json: 1/0 flags for the winner
    (``winner``) and for descriptive dominance, the share of quality levels each model wins
    on the point curves and beyond the noise, the number of crossings, and the mean gain with
    its 95% interval (null: no common level, or no interval)."""
    a, b = c.names
    n = len(c.levels)
    low, high = c.gain_interval if c.gain_interval else (None, None)
    best = winner(c)

    def beyond_noise(name: str) -> float | None:
        return c.better.count(name) / len(c.better) if c.better else None

    return {
        f"{a}_better": float(best == a),
        f"{b}_better": float(best == b),
        f"{a}_better_share": beyond_noise(a),
        f"{b}_better_share": beyond_noise(b),
        f"{a}_dominates": float(c.dominant == a),
        f"{b}_dominates": float(c.dominant == b),
        f"{a}_more_diverse_share": c.wins[0] / n if n else None,
        f"{b}_more_diverse_share": c.wins[1] / n if n else None,
        "crossings": float(len(c.crossings)) if n else None,
        f"{b}_mean_diversity_gain": c.mean_gain if n else None,
        f"{b}_mean_diversity_gain_low": low,
        f"{b}_mean_diversity_gain_high": high,
    }


def describe(c: Comparison, label: dict[str, str]) -> str:
    """One sentence with the numbers: who is more diverse at equal quality (with the gap's
    interval), where each is better beyond the noise, where the curves cross, and,
    descriptively, whether either point curve dominates."""
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
        if c.regions:
            text += f"; {_regions_text(c, label)}"
        text += f"; {_crossed(c)}"
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


def _regions_text(c: Comparison, label: dict[str, str]) -> str:
    """'more diverse beyond the noise: the LSTM at BLEU-4 0.150 to 0.240 (60% of the
    levels), neither at ...', in the metric's ascending order (as the README's tables read:
    from low to high quality for BLEU, from high to low for an NLL)."""
    q = c.criterion.quality_label
    if len(c.regions) == 1:
        who = c.regions[0].better
        if who is None:
            return f"neither is more diverse beyond the noise at any {q} level"
        return f"{label[who]} is more diverse beyond the noise at every {q} level"
    ascending = c.criterion.quality_higher_is_better
    parts = [
        f"{label[r.better] if r.better else 'neither'} at {q} "
        f"{min(r.start, r.end):.3f} to {max(r.start, r.end):.3f} ({r.share:.0%} of the levels)"
        for r in (c.regions if ascending else c.regions[::-1])
    ]
    return "more diverse beyond the noise (95% interval at each level): " + ", ".join(parts)


def _crossed(c: Comparison) -> str:
    q = c.criterion.quality_label
    if not c.crossings:
        return "the point curves do not cross"
    # In the metric's ascending order, as the regions are written.
    return f"the point curves cross at {q} " + ", ".join(f"{x:.3f}" for x in sorted(c.crossings))


def winner(c: Comparison) -> str | None:
    """The better model on one criterion: the one more diverse at every level of the common
    quality range, each level's 95% interval of the gap excluding zero (None: no clear
    winner, because the curves cross, or the gap is within the noise somewhere, or there are
    no intervals or no common level). An intersection-union test: 'better at every level'
    holds at the 5% level when each level's own test does, with no correction needed."""
    if not c.better or c.better[0] is None:
        return None
    return c.better[0] if all(b == c.better[0] for b in c.better) else None


def verdict(comparisons: list[Comparison], label: dict[str, str]) -> str:
    """The answer in one sentence, with its numbers: which model is better here, and why;
    with no clear winner, where each model is better."""
    winners = [winner(c) for c in comparisons]
    numbers = "; ".join(
        _gain(c, label) if c.overlap else f"no common {c.criterion.quality_label} level"
        for c in comparisons
    )
    if len(set(winners)) == 1 and winners[0] is not None:
        text = (
            f"{label[winners[0]]} is better here: its samples are more diverse at every "
            f"quality level both models reach, on every criterion, by more than the 95% "
            f"interval's sampling noise at each level ({numbers})."
        )
        return text[0].upper() + text[1:]
    named = "; ".join(
        f"by {c.criterion.quality_label} vs {c.criterion.diversity_label}, "
        + (
            f"{label[w]} is more diverse beyond the noise at every level"
            if w
            else _regions_text(c, label)
            if c.regions
            else "not compared"
        )
        for c, w in zip(comparisons, winners, strict=True)
    )
    return f"No clear winner here: {named} ({numbers})."
