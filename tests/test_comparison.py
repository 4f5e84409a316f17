"""Comparing quality-diversity curves: fronts, dominance, the gap at equal quality and its
interval, the verdict."""

import numpy as np
import pytest

from textgen.comparison import (
    CRITERIA,
    compare_curves,
    comparison_metrics,
    describe,
    diversity_at,
    frontier,
    verdict,
    winner,
)
from textgen.evaluation import bootstrap
from textgen.scoring import Ratio

BLEU, LM = CRITERIA


# --- curves and the verdict -------------------------------------------------------------------


def curve(bleu, self_bleu):
    return [{"bleu_4": b, "self_bleu_4": s} for b, s in zip(bleu, self_bleu, strict=True)]


def noisy(points, sd, seed, replicates=400):
    """Bootstrap-like replicates of a curve: every metric of every point, plus N(0, sd)."""
    rng = np.random.default_rng(seed)
    return [{k: v + rng.normal(0.0, sd, replicates) for k, v in p.items()} for p in points]


def compared(a, b, sd=0.001, criterion=BLEU):
    reps = (noisy(a, sd, 1), noisy(b, sd, 2))
    return compare_curves(a, b, criterion, ("lstm", "gan"), replicates=reps)


def test_frontier_drops_points_beaten_on_both_counts():
    front = frontier(np.array([0.1, 0.2, 0.3, 0.15]), np.array([0.9, 0.5, 0.4, 0.3]))
    assert front.tolist() == [[0.1, 0.9], [0.2, 0.5], [0.3, 0.4]]  # (0.15, 0.3) is beaten


def test_diversity_at_interpolates_and_is_out_of_reach_above_the_best_quality():
    front = np.array([[0.1, 0.9], [0.3, 0.5]])
    got = diversity_at(front, np.array([0.0, 0.1, 0.2, 0.3, 0.31]))
    assert got[:4] == pytest.approx([0.9, 0.9, 0.7, 0.5])
    assert got[4] == -np.inf


def test_a_curve_more_diverse_at_every_quality_dominates():
    temps = np.linspace(0.5, 1.5, 5)
    lstm = curve(0.3 - 0.1 * temps, 0.5 - 0.2 * temps)  # Self-BLEU falls as T rises
    gan = curve(0.3 - 0.1 * temps, 0.45 - 0.2 * temps)  # same BLEU, 0.05 lower Self-BLEU
    c = compared(lstm, gan)
    assert c.dominant == "gan"
    assert c.wins == (0, len(c.levels))
    assert c.mean_gain == pytest.approx(0.05)  # oriented: the GAN is 0.05 more diverse
    assert c.overlap == pytest.approx((0.15, 0.25))
    low, high = c.gain_interval
    assert 0 < low < 0.05 < high  # noise of 0.001 per metric: a tight interval around the gap
    assert [(r.better, r.share) for r in c.regions] == [("gan", 1.0)] and c.crossings == []
    assert all(low > 0 for low, _ in c.level_intervals) and len(c.better) == len(c.levels)
    m = comparison_metrics(c)
    assert m["gan_better_share"] == 1.0 and m["lstm_better_share"] == 0.0
    assert m["crossings"] == 0.0
    assert m["gan_dominates"] == 1.0 and m["lstm_dominates"] == 0.0
    assert m["gan_better"] == 1.0 and m["lstm_better"] == 0.0
    assert m["gan_more_diverse_share"] == 1.0
    assert (m["gan_mean_diversity_gain_low"], m["gan_mean_diversity_gain_high"]) == (low, high)
    labels = {"lstm": "the LSTM", "gan": "the GAN"}
    text = verdict([c], labels)
    assert text.startswith("The GAN is better here")
    assert f"lower by 0.050 [95% interval {low:.3f}, {high:.3f}]" in text
    # Without replicates there is no interval, so no winner: noise is never assumed away.
    bare = compare_curves(lstm, gan, BLEU, ("lstm", "gan"))
    assert bare.gain_interval is None and winner(bare) is None and bare.regions == []


def test_the_interval_is_quoted_for_the_model_ahead():
    temps = np.linspace(0.5, 1.5, 5)
    lstm = curve(0.3 - 0.1 * temps, 0.45 - 0.2 * temps)  # now the LSTM is more diverse
    gan = curve(0.3 - 0.1 * temps, 0.5 - 0.2 * temps)
    c = compared(lstm, gan)
    low, high = c.gain_interval
    assert high < 0 and winner(c) == "lstm"
    text = verdict([c], {"lstm": "the LSTM", "gan": "the GAN"})
    assert (
        f"the LSTM's Self-BLEU-4 is lower by 0.050 [95% interval {-high:.3f}, {-low:.3f}]" in text
    )


def test_a_model_that_only_trades_quality_for_diversity_along_the_other_curve_does_not_win():
    # The GAN's points lie on the LSTM's curve, at lower temperatures: no better at equal quality.
    lstm = curve([0.30, 0.25, 0.20, 0.15], [0.50, 0.40, 0.30, 0.20])
    gan = curve([0.30, 0.275, 0.25], [0.50, 0.45, 0.40])
    c = compared(lstm, gan)
    assert c.wins == (0, 0)
    assert c.dominant == "lstm"  # descriptive: it also reaches more diversity, lower down
    assert c.mean_gain == pytest.approx(0.0)
    assert winner(c) is None  # at equal quality the two are the same


def test_crossing_curves_give_no_dominance_and_split_levels():
    lstm = curve([0.1, 0.2, 0.3], [0.2, 0.3, 0.6])  # diverse at low quality, not at high
    gan = curve([0.1, 0.2, 0.3], [0.4, 0.3, 0.4])
    c = compared(lstm, gan, sd=0.05)
    assert c.dominant is None
    assert c.wins[0] > 0 and c.wins[1] > 0
    assert c.gain_interval[0] < 0 < c.gain_interval[1]  # a small mean gain, within the noise
    assert winner(c) is None
    text = verdict([c, c], {"lstm": "the LSTM", "gan": "the GAN"})
    assert text.startswith("No clear winner here: by BLEU-4 vs Self-BLEU-4, ")
    # The LSTM ahead below BLEU-4 0.2, the GAN above: one crossing (on the grid's resolution).
    assert c.crossings == pytest.approx([0.2], abs=0.002)


def test_crossing_curves_with_a_mean_gap_beyond_the_noise_name_regions_not_a_winner():
    # The GAN is far more diverse at low BLEU, the LSTM at high BLEU (a smaller stretch):
    # the mean gap favours the GAN beyond the noise, the rule of the mean would name it.
    lstm = curve([0.1, 0.2, 0.3], [0.30, 0.40, 0.50])
    gan = curve([0.1, 0.2, 0.3], [0.20, 0.35, 0.52])
    c = compared(lstm, gan)
    assert c.gain_interval[0] > 0  # the mean rule: "the GAN is better"
    assert winner(c) is None
    assert c.crossings == pytest.approx([0.2 + 0.1 * 0.05 / 0.07], abs=1e-9)
    first, *_, last = c.regions
    assert (first.better, last.better) == ("gan", "lstm")
    assert first.start == pytest.approx(0.1) and last.end == pytest.approx(0.3)
    assert first.end < c.crossings[0] < last.start  # neither, around the crossing
    assert any(r.better is None for r in c.regions)
    assert sum(r.share for r in c.regions) == pytest.approx(1.0)
    m = comparison_metrics(c)
    assert m["gan_better"] == 0.0 and m["lstm_better"] == 0.0
    assert 0 < m["lstm_better_share"] < m["gan_better_share"] < 1
    assert m["crossings"] == 1.0
    text = verdict([c], {"lstm": "the LSTM", "gan": "the GAN"})
    assert text.startswith("No clear winner here: by BLEU-4 vs Self-BLEU-4, more diverse beyond")
    assert f"the GAN at BLEU-4 0.100 to {first.end:.3f}" in text
    assert f"the LSTM at BLEU-4 {last.start:.3f} to 0.300" in text
    described = describe(c, {"lstm": "the LSTM", "gan": "the GAN"})
    assert f"the point curves cross at BLEU-4 {c.crossings[0]:.3f}" in described


def test_a_gap_within_the_noise_is_no_win_and_the_same_gap_above_it_is():
    temps = np.linspace(0.5, 1.5, 5)
    lstm = curve(0.3 - 0.1 * temps, 0.5 - 0.2 * temps)
    gan = curve(0.3 - 0.1 * temps, 0.497 - 0.2 * temps)  # 0.003 lower Self-BLEU everywhere
    noisy_c, quiet_c = compared(lstm, gan, sd=0.01), compared(lstm, gan, sd=0.0002)
    for c in (noisy_c, quiet_c):  # the point curves are the same; only the noise differs
        assert c.dominant == "gan" and c.mean_gain == pytest.approx(0.003)
    low, high = noisy_c.gain_interval
    assert low < 0 < high and winner(noisy_c) is None
    labels = {"lstm": "the LSTM", "gan": "the GAN"}
    assert verdict([noisy_c], labels).startswith("No clear winner")
    assert comparison_metrics(noisy_c)["gan_better"] == 0.0
    assert quiet_c.gain_interval[0] > 0 and winner(quiet_c) == "gan"


def test_lower_is_better_on_both_axes_for_lm_scores():
    lstm = [{"lm_score_nats": q, "reverse_lm_nats": d} for q, d in [(1.2, 2.4), (1.5, 2.0)]]
    gan = [{"lm_score_nats": q, "reverse_lm_nats": d} for q, d in [(1.2, 2.2), (1.5, 1.9)]]
    c = compared(lstm, gan, sd=0.005, criterion=LM)
    assert c.dominant == "gan"
    assert c.overlap == pytest.approx((1.2, 1.5))
    # Levels run from low to high quality, in the metrics' own units (nats, not negated).
    assert (c.levels[0], c.levels[-1]) == pytest.approx((1.5, 1.2))
    assert (c.diversity[1][0], c.diversity[1][-1]) == pytest.approx((1.9, 2.2))
    assert c.mean_gain > 0 and c.gain_interval[0] > 0 and winner(c) == "gan"


def test_regions_of_a_lower_is_better_quality_read_in_the_metrics_ascending_order():
    # The GAN more diverse at the low-quality end (high LM score), the LSTM at the other.
    lstm = [{"lm_score_nats": q, "reverse_lm_nats": d} for q, d in [(1.5, 2.0), (1.3, 2.2)]]
    gan = [{"lm_score_nats": q, "reverse_lm_nats": d} for q, d in [(1.5, 1.9), (1.3, 2.25)]]
    c = compared(lstm, gan, criterion=LM)
    assert (c.regions[0].better, c.regions[-1].better) == ("gan", "lstm")  # low quality first
    text = verdict([c], {"lstm": "the LSTM", "gan": "the GAN"})
    lstm_at, gan_at = text.index("the LSTM at LM score 1.300 to "), text.index("the GAN at LM")
    assert lstm_at < gan_at and "to 1.500 (" in text[gan_at:]
    # Crossings too: the GAN ahead at both ends, the LSTM in the middle.
    lstm = [
        {"lm_score_nats": q, "reverse_lm_nats": d} for q, d in [(1.5, 2.0), (1.4, 2.1), (1.3, 2.2)]
    ]
    gan = [
        {"lm_score_nats": q, "reverse_lm_nats": d}
        for q, d in [(1.5, 1.9), (1.4, 2.15), (1.3, 2.18)]
    ]
    c = compare_curves(lstm, gan, LM, ("lstm", "gan"))
    assert len(c.crossings) == 2 and c.crossings[0] > c.crossings[1]  # as the levels run
    low, high = sorted(c.crossings)
    crossed = f"the point curves cross at LM score {low:.3f}, {high:.3f}"
    assert crossed in describe(c, {"lstm": "the LSTM", "gan": "the GAN"})


def test_curves_without_common_quality_are_not_compared_level_by_level():
    lstm = curve([0.1, 0.2], [0.2, 0.1])
    gan = curve([0.01, 0.05], [0.5, 0.4])  # lower BLEU and higher Self-BLEU than any LSTM point
    c = compare_curves(lstm, gan, BLEU, ("lstm", "gan"))
    assert c.overlap is None and c.levels == []
    assert c.dominant == "lstm"
    assert comparison_metrics(c)["gan_more_diverse_share"] is None


def test_verdict_names_one_winner_only_when_every_criterion_agrees():
    labels = {"lstm": "the LSTM", "gan": "the GAN"}
    better_lstm = compared(curve([0.1, 0.2], [0.1, 0.2]), curve([0.1, 0.2], [0.2, 0.3]))
    better_gan = compared(curve([0.1, 0.2], [0.3, 0.4]), curve([0.1, 0.2], [0.2, 0.3]))
    assert verdict([better_lstm, better_lstm], labels).startswith("The LSTM is better here")
    assert "0.100" in verdict([better_lstm], labels)  # the size of the gap is in the sentence
    assert verdict([better_lstm, better_gan], labels).startswith("No clear winner")


def sample_set(self_bleu_shift, seed, n=80):
    """A synthetic sweep of n samples per temperature: per-sample BLEU-4 and Self-BLEU-4
    scores (one sentence each) that fall and fall with temperature, as real ones do."""
    rng = np.random.default_rng(seed)
    points, replicates = [], []
    for i, t in enumerate([0.6, 0.8, 1.0, 1.2]):
        bleu = np.clip(0.5 - 0.2 * t + rng.normal(0, 0.05, n), 0, 1)
        selfb = np.clip(0.9 - 0.4 * t + self_bleu_shift + rng.normal(0, 0.05, n), 0, 1)
        stats = {k: Ratio(v, np.ones(n)) for k, v in [("bleu_4", bleu), ("self_bleu_4", selfb)]}
        points.append({k: r.value for k, r in stats.items()})
        replicates.append(bootstrap(stats, seed=1000 * seed + i, replicates=300))
    return points, replicates


def test_two_draws_of_one_model_are_no_clear_winner_and_a_real_gap_is():
    same_a, same_b = sample_set(0.0, seed=1), sample_set(0.0, seed=2)
    c = compare_curves(
        same_a[0], same_b[0], BLEU, ("lstm", "gan"), replicates=(same_a[1], same_b[1])
    )
    low, high = c.gain_interval
    assert low < 0 < high and winner(c) is None
    better = sample_set(-0.1, seed=3)  # Self-BLEU lower by 0.1 at every temperature
    c = compare_curves(
        same_a[0], better[0], BLEU, ("lstm", "gan"), replicates=(same_a[1], better[1])
    )
    assert c.gain_interval[0] > 0.05 and winner(c) == "gan"
