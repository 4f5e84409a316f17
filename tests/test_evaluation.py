import numpy as np
import pytest

from tests.corpora import make_play
from tests.params import evaluate_params, lstm_params
from textgen.config import EvaluateParams
from textgen.evaluation import (
    CRITERIA,
    Ratio,
    RealData,
    bootstrap,
    compare_curves,
    comparison_metrics,
    diversity_at,
    frontier,
    heldout_ratio,
    interval,
    lm_ratio,
    lm_score,
    reverse_lm_nll,
    temperature_sweep,
    verdict,
    winner,
)
from textgen.lstm import build_model, heldout_nll, train
from textgen.metrics import BleuReferences, CopyIndex, self_bleu, self_bleu_scores
from textgen.report import render_report
from textgen.seeding import seed_everything
from textgen.vocab import Vocabulary

BLEU, LM = CRITERIA
TINY_LM = lstm_params(
    embedding_dim=8, hidden=24, layers=1, seq_len=32, batch_size=8, epochs=2, warmup_steps=5
)


# --- longest verbatim copy -----------------------------------------------------------------


def test_longest_copy_hand_checked():
    vocab = Vocabulary.from_text("the cat sat on the mat; a dog ran")
    index = CopyIndex(vocab.encode("the cat sat on the mat"))
    assert index.longest_copy(vocab.encode("a cat sat on a mat")) == len(" cat sat on ")
    assert index.longest_copy(vocab.encode("the mat")) == 7  # all of it
    assert index.longest_copy(vocab.encode("dog")) == 1  # the "o" of "on"
    assert index.longest_copy(vocab.encode("rdg")) == 0  # no letter of it in the text
    assert index.longest_copy(vocab.encode("tt")) == 1
    samples = [vocab.encode(s) for s in ("the mat", "rdg", "a cat sat on a mat")]
    assert index.median_longest_copy(samples) == 7.0  # lengths 7, 0, 12


def test_longest_copy_ignores_matches_across_token_boundaries():
    # Ids above 255 take two bytes each: bytes 01 02 | 03 04 contain "02 03", which is not a token.
    index = CopyIndex(np.array([0x0102, 0x0304, 0x0506]))
    assert index.width == 2
    assert not index.occurs(np.array([0x0203]))
    assert index.occurs(np.array([0x0304, 0x0506]))
    assert index.longest_copy(np.array([0x0203, 0x0304, 0x0506, 0x0102])) == 2


def test_longest_copy_agrees_with_brute_force():
    rng = np.random.default_rng(0)
    text = rng.integers(0, 4, 300)
    index = CopyIndex(text)
    haystack = "".join(map(str, text))
    for _ in range(20):
        sample = rng.integers(0, 4, 40)
        s = "".join(map(str, sample))
        brute = max(
            (j - i for i in range(len(s)) for j in range(i, len(s) + 1) if s[i:j] in haystack),
            default=0,
        )
        assert index.longest_copy(sample) == brute


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
    m = comparison_metrics(c)
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
    assert bare.gain_interval is None and winner(bare) is None


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
    assert text.startswith("No clear winner here: better is neither by BLEU-4 vs Self-BLEU-4")


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


# --- the bootstrap ---------------------------------------------------------------------------


def test_a_bootstrap_is_reproducible_and_its_interval_holds_the_full_set_value():
    rng = np.random.default_rng(0)
    counts = rng.integers(5, 40, 200).astype(float)
    ratio = Ratio(0.0, rng.gamma(2.0, 1.0, 200) * counts, counts)
    value = ratio.totals.sum() / ratio.counts.sum()
    reps = bootstrap({"m": ratio}, seed=3, replicates=500)["m"]
    np.testing.assert_array_equal(reps, bootstrap({"m": ratio}, 3, 500)["m"])
    assert not np.array_equal(reps, bootstrap({"m": ratio}, 4, 500)["m"])
    low, high = interval(reps)
    assert low < value < high
    assert abs(np.mean(reps) - value) < 0.1 * (high - low)  # centred on the full-set value
    # The standard error of a ratio estimator, by the delta method: the bootstrap agrees.
    residual = (ratio.totals - value * ratio.counts) / ratio.counts.mean()
    se = residual.std() / np.sqrt(len(counts))
    assert np.std(reps) == pytest.approx(se, rel=0.15)


def test_metrics_resampled_together_share_their_draws():
    ones = np.ones(50)
    rng = np.random.default_rng(1)
    x = Ratio(0.0, rng.normal(size=50), ones)
    y = Ratio(0.0, 2 * x.totals + 1, ones)  # an exact function of x, unit by unit
    reps = bootstrap({"x": x, "y": y}, seed=0, replicates=100)
    np.testing.assert_allclose(reps["y"], 2 * reps["x"] + 1)
    with pytest.raises(ValueError):  # units of different kinds cannot share draws
        bootstrap({"x": x, "z": Ratio(0.0, ones[:10], ones[:10])}, seed=0)


def test_per_sample_bleu_statistics_add_up_to_the_bleu_of_all_samples():
    rng = np.random.default_rng(2)
    words = "the a of to and my lord sweet love night".split()
    samples = [  # 30 samples of 0 to 3 sentences each
        [list(rng.choice(words, rng.integers(1, 9))) for _ in range(rng.integers(0, 4))]
        for _ in range(30)
    ]
    generated = [s for ss in samples for s in ss]
    owner = np.repeat(np.arange(30), [len(ss) for ss in samples])
    refs = BleuReferences([list(rng.choice(words, 8)) for _ in range(20)])
    for scores, value in [
        (refs.sentence_scores(generated, 4), refs.bleu(generated, 4)),
        (self_bleu_scores(generated, 4), self_bleu(generated, 4)),
    ]:
        r = Ratio.of_sentences(value, scores, owner, 30)
        assert (
            r.counts.sum() == len(generated)
            and r.counts[[len(ss) == 0 for ss in samples]].sum() == 0
        )
        assert r.totals.sum() / r.counts.sum() == pytest.approx(value, rel=1e-12)
    lone = Ratio.of_sentences(0.0, self_bleu_scores(generated[:1], 4), owner[:1], 30)
    assert (
        bootstrap({"self_bleu_4": lone}, seed=0, replicates=5)["self_bleu_4"].tolist() == [0.0] * 5
    )


def sample_set(self_bleu_shift, seed, n=80):
    """A synthetic sweep of n samples per temperature: per-sample BLEU-4 and Self-BLEU-4
    scores (one sentence each) that fall and fall with temperature, as real ones do."""
    rng = np.random.default_rng(seed)
    points, replicates = [], []
    for i, t in enumerate([0.6, 0.8, 1.0, 1.2]):
        bleu = np.clip(0.5 - 0.2 * t + rng.normal(0, 0.05, n), 0, 1)
        selfb = np.clip(0.9 - 0.4 * t + self_bleu_shift + rng.normal(0, 0.05, n), 0, 1)
        stats = {
            k: Ratio(float(v.mean()), v, np.ones(n))
            for k, v in [("bleu_4", bleu), ("self_bleu_4", selfb)]
        }
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


# --- the sweep on a tiny model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    text = make_play(600, seed=4)
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    cut = int(len(ids) * 0.9)
    seed_everything(0)
    model = build_model(len(vocab), TINY_LM)
    train(model, ids[:cut], ids[cut:], TINY_LM.model_copy(update={"epochs": 1}), 0, verbose=0)
    return RealData(vocab, ids[:cut], ids[cut:], judge=model), model


def sweep_params(**kw) -> EvaluateParams:
    values = dict(temperatures=[0.5, 1.0, 1.5], num_samples=12, length=120, reverse_lm=TINY_LM)
    return evaluate_params(**{**values, **kw})


@pytest.fixture(scope="module")
def sweeps(tiny):
    real, model = tiny
    return {
        name: temperature_sweep(model, real, sweep_params(), "\n", seed, name)
        for name, seed in [("lstm", 5), ("gan", 6)]
    }


def test_sweep_gives_one_point_per_temperature_with_every_metric(tiny, sweeps):
    real, model = tiny
    p = sweep_params()
    sweep = sweeps["lstm"]
    assert [pt["temperature"] for pt in sweep.points] == [0.5, 1.0, 1.5]
    keys = {"bleu_4", "self_bleu_4", "lm_score_nats", "reverse_lm_nats", "longest_copy_chars"}
    for point in sweep.points:
        assert keys <= set(point)
        assert all(np.isfinite(v) for v in point.values())
    assert {t: len(v) for t, v in sweep.examples.items()} == {0.5: 2, 1.0: 2, 1.5: 2}
    assert all(len(text) == p.length for v in sweep.examples.values() for text in v)
    # Hotter samples are less likely under the model itself and less alike one another.
    lm = [pt["lm_score_nats"] for pt in sweep.points]
    assert lm[0] < lm[1] < lm[2]
    assert sweep.points[0]["self_bleu_4"] > sweep.points[2]["self_bleu_4"]
    for point in sweep.points:  # the curve metrics' intervals hold their point values
        for key in ("bleu_4", "self_bleu_4", "lm_score_nats", "reverse_lm_nats"):
            assert point[f"{key}_low"] - 1e-9 <= point[key] <= point[f"{key}_high"] + 1e-9
        assert point["bleu_4_low"] < point["bleu_4_high"]  # 12 samples: not a single value
    again = temperature_sweep(model, real, sweep_params(temperatures=[0.5, 1.0]), "\n", seed=5)
    assert again.points == sweep.points[:2]  # same seed, same numbers, same intervals
    for mine, theirs in zip(again.replicates, sweep.replicates, strict=False):
        assert mine.keys() == theirs.keys()
        for key in mine:
            np.testing.assert_array_equal(mine[key], theirs[key])


def test_reverse_lm_sees_collapse_that_the_lm_score_cannot(tiny):
    real, _ = tiny
    n, length = 12, 120
    rows = real.train_ids[: n * length].reshape(n, length)  # real text: covers the language
    collapsed = np.tile(rows[0], (n, 1))  # one sample repeated: fluent but no diversity
    context = np.ones((n, 1), np.int32)
    diverse = reverse_lm_nll(rows, context, real.test_ids, len(real.vocab), TINY_LM, 0)
    single = reverse_lm_nll(collapsed, context, real.test_ids, len(real.vocab), TINY_LM, 0)
    assert diverse.value < single.value


def test_held_out_units_add_up_to_the_held_out_nll(tiny):
    real, model = tiny
    stream = heldout_ratio(model, real.test_ids, batch_size=4)
    assert stream.value == heldout_nll(model, real.test_ids, 4)  # the value itself, unchanged
    assert stream.counts.sum() == len(real.test_ids) - 1  # every scored token in one window
    assert len(stream.counts) > 4  # windows of rows: more units than rows
    assert stream.totals.sum() / stream.counts.sum() == pytest.approx(stream.value, rel=1e-5)
    rows = np.ones((6, 9), np.int32)
    rows[:, 1:] = real.test_ids[:48].reshape(6, 8)
    rows[2:, 6:] = 0  # padding, not scored
    by_row = heldout_ratio(model, rows, batch_size=4)
    assert by_row.value == heldout_nll(model, rows, 4)
    assert by_row.counts.tolist() == [8, 8, 5, 5, 5, 5]
    assert by_row.totals.sum() / by_row.counts.sum() == pytest.approx(by_row.value, rel=1e-5)
    judged = lm_ratio(model, rows[:, :1], rows[:, 1:], pad_id=0, batch=4)
    assert judged.value == lm_score(model, rows[:, :1], rows[:, 1:], 0, batch=4)
    assert judged.totals.sum() / judged.counts.sum() == pytest.approx(judged.value, rel=1e-6)


def test_report_has_the_verdict_the_tables_and_the_samples(sweeps):
    reps = (sweeps["lstm"].replicates, sweeps["gan"].replicates)
    comparisons = [
        compare_curves(
            sweeps["lstm"].points, sweeps["gan"].points, c, ("lstm", "gan"), replicates=reps
        )
        for c in CRITERIA
    ]
    labels = {"lstm": "the LSTM", "gan": "the GAN"}
    answer = verdict(comparisons, labels)
    metrics = {
        name: {"test_nll_nats": 1.0, "test_bpc": 1.4, "test_perplexity": 2.7, **s.points[0]}
        for name, s in sweeps.items()
    }
    judge = "the independent judge (models/judge.keras: 1 x 24 LSTM), neither contestant"
    text = render_report(metrics, sweeps, comparisons, answer, labels, "T=0.5", judge)
    assert answer in text
    assert f"LM score: NLL of the samples under {judge}." in text
    assert "**scoring-side only**" in text  # the reverse LM's interval says what it omits
    for t in ("0.5", "1", "1.5"):
        assert text.count(f"\n| {t} |") == 2  # a sweep row per model
    first = sweeps["lstm"].points[0]
    low, high = first["bleu_4_low"], first["bleu_4_high"]
    assert f"| {first['bleu_4']:.3f} [{low:.3f}, {high:.3f}] |" in text
    for c in comparisons:
        if c.gain_interval:
            assert f"{c.gain_interval[1]:.3f}" in text or f"{-c.gain_interval[0]:.3f}" in text
    assert text.count("```text") == 2 * 3 * 2  # 2 models x 3 temperatures x 2 samples
    assert "| `reverse_lm_nats` |" in text
    assert "sample 2:" in text
