import numpy as np
import pytest

from tests.corpora import make_play
from tests.params import evaluate_params, lstm_params
from textgen.config import EvaluateParams
from textgen.evaluation import (
    CRITERIA,
    RealData,
    compare_curves,
    comparison_metrics,
    diversity_at,
    frontier,
    reverse_lm_nll,
    temperature_sweep,
    verdict,
    winner,
)
from textgen.lstm import build_model, train
from textgen.metrics import CopyIndex
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
    c = compare_curves(lstm, gan, BLEU, ("lstm", "gan"))
    assert c.dominant == "gan"
    assert c.wins == (0, len(c.levels))
    assert c.mean_gain == pytest.approx(0.05)  # oriented: the GAN is 0.05 more diverse
    assert c.overlap == pytest.approx((0.15, 0.25))
    m = comparison_metrics(c)
    assert m["gan_dominates"] == 1.0 and m["lstm_dominates"] == 0.0
    assert m["gan_more_diverse_share"] == 1.0
    labels = {"lstm": "the LSTM", "gan": "the GAN"}
    assert verdict([c], labels).startswith("The GAN is better here")


def test_a_model_that_only_trades_quality_for_diversity_along_the_other_curve_does_not_win():
    # The GAN's points lie on the LSTM's curve, at lower temperatures: no better at equal quality.
    lstm = curve([0.30, 0.25, 0.20, 0.15], [0.50, 0.40, 0.30, 0.20])
    gan = curve([0.30, 0.275, 0.25], [0.50, 0.45, 0.40])
    c = compare_curves(lstm, gan, BLEU, ("lstm", "gan"))
    assert c.wins == (0, 0)
    assert c.dominant == "lstm"  # it also reaches more diversity, lower down
    assert winner(c) == "lstm"


def test_crossing_curves_give_no_dominance_and_split_levels():
    lstm = curve([0.1, 0.2, 0.3], [0.2, 0.3, 0.6])  # diverse at low quality, not at high
    gan = curve([0.1, 0.2, 0.3], [0.4, 0.3, 0.4])
    c = compare_curves(lstm, gan, BLEU, ("lstm", "gan"))
    assert c.dominant is None
    assert c.wins[0] > 0 and c.wins[1] > 0
    assert winner(c) is None  # the curves mirror each other: a tie
    text = verdict([c, c], {"lstm": "the LSTM", "gan": "the GAN"})
    assert text.startswith("No clear winner here: better is neither by BLEU-4 vs Self-BLEU-4")


def test_curves_closer_than_noise_are_a_tie():
    temps = np.linspace(0.5, 1.5, 5)
    lstm = curve(0.3 - 0.1 * temps, 0.5 - 0.2 * temps)
    gan = curve(0.3 - 0.1 * temps, 0.497 - 0.2 * temps)  # 0.003 lower Self-BLEU: within 0.005
    c = compare_curves(lstm, gan, BLEU, ("lstm", "gan"))
    assert c.dominant is None and c.wins == (0, 0) and winner(c) is None
    assert compare_curves(lstm, gan, BLEU, ("lstm", "gan"), tolerance=0.0).dominant == "gan"
    assert verdict([c], {"lstm": "the LSTM", "gan": "the GAN"}).startswith("No clear winner")


def test_lower_is_better_on_both_axes_for_lm_scores():
    lstm = [{"lm_score_nats": q, "reverse_lm_nats": d} for q, d in [(1.2, 2.4), (1.5, 2.0)]]
    gan = [{"lm_score_nats": q, "reverse_lm_nats": d} for q, d in [(1.2, 2.2), (1.5, 1.9)]]
    c = compare_curves(lstm, gan, LM, ("lstm", "gan"))
    assert c.dominant == "gan"
    assert c.overlap == pytest.approx((1.2, 1.5))
    # Levels run from low to high quality, in the metrics' own units (nats, not negated).
    assert (c.levels[0], c.levels[-1]) == pytest.approx((1.5, 1.2))
    assert (c.diversity[1][0], c.diversity[1][-1]) == pytest.approx((1.9, 2.2))
    assert c.mean_gain > 0


def test_curves_without_common_quality_are_not_compared_level_by_level():
    lstm = curve([0.1, 0.2], [0.2, 0.1])
    gan = curve([0.01, 0.05], [0.5, 0.4])  # lower BLEU and higher Self-BLEU than any LSTM point
    c = compare_curves(lstm, gan, BLEU, ("lstm", "gan"))
    assert c.overlap is None and c.levels == []
    assert c.dominant == "lstm"
    assert comparison_metrics(c)["gan_more_diverse_share"] is None


def test_verdict_names_one_winner_only_when_every_criterion_agrees():
    labels = {"lstm": "the LSTM", "gan": "the GAN"}
    better_lstm = compare_curves(
        curve([0.1, 0.2], [0.1, 0.2]), curve([0.1, 0.2], [0.2, 0.3]), BLEU, ("lstm", "gan")
    )
    better_gan = compare_curves(
        curve([0.1, 0.2], [0.3, 0.4]), curve([0.1, 0.2], [0.2, 0.3]), BLEU, ("lstm", "gan")
    )
    assert verdict([better_lstm, better_lstm], labels).startswith("The LSTM is better here")
    assert "0.100" in verdict([better_lstm], labels)  # the size of the gap is in the sentence
    assert verdict([better_lstm, better_gan], labels).startswith("No clear winner")


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
    again = temperature_sweep(model, real, sweep_params(temperatures=[0.5, 1.0]), "\n", seed=5)
    assert again.points == sweep.points[:2]  # same seed, same numbers


def test_reverse_lm_sees_collapse_that_the_lm_score_cannot(tiny):
    real, _ = tiny
    n, length = 12, 120
    rows = real.train_ids[: n * length].reshape(n, length)  # real text: covers the language
    collapsed = np.tile(rows[0], (n, 1))  # one sample repeated: fluent but no diversity
    context = np.ones((n, 1), np.int32)
    diverse = reverse_lm_nll(rows, context, real.test_ids, len(real.vocab), TINY_LM, 0)
    single = reverse_lm_nll(collapsed, context, real.test_ids, len(real.vocab), TINY_LM, 0)
    assert diverse < single


def test_report_has_the_verdict_the_tables_and_the_samples(sweeps):
    comparisons = [
        compare_curves(sweeps["lstm"].points, sweeps["gan"].points, c, ("lstm", "gan"))
        for c in CRITERIA
    ]
    labels = {"lstm": "the LSTM", "gan": "the GAN"}
    answer = verdict(comparisons, labels)
    metrics = {
        name: {"test_nll_nats": 1.0, "test_bpc": 1.4, "test_perplexity": 2.7, **s.points[0]}
        for name, s in sweeps.items()
    }
    text = render_report(metrics, sweeps, comparisons, answer, labels, "T=0.5")
    assert answer in text
    for t in ("0.5", "1", "1.5"):
        assert text.count(f"\n| {t} |") == 2  # a sweep row per model
    assert text.count("```text") == 2 * 3 * 2  # 2 models x 3 temperatures x 2 samples
    assert "| `reverse_lm_nats` |" in text
    assert "sample 2:" in text
