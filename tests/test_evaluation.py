import numpy as np
import pytest

from tests.corpora import make_play
from tests.params import evaluate_params, lstm_params
from textgen.comparison import CRITERIA, compare_curves, verdict
from textgen.config import EvaluateParams
from textgen.evaluation import (
    RealData,
    bootstrap,
    interval,
    lm_ratio,
    lm_score,
    reverse_lm_nll,
    scored_sentences,
    sentence_ratio,
    temperature_sweep,
)
from textgen.metrics import BleuReferences, CopyIndex, self_bleu, self_bleu_scores
from textgen.model import build_model
from textgen.report import describe_judge, render_report
from textgen.scoring import Ratio, heldout, heldout_nll
from textgen.seeding import seed_everything
from textgen.sources import RowSource, StreamSource
from textgen.training import train
from textgen.vocab import Vocabulary

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


# --- the bootstrap ---------------------------------------------------------------------------


def test_a_bootstrap_is_reproducible_and_its_interval_holds_the_full_set_value():
    rng = np.random.default_rng(0)
    counts = rng.integers(5, 40, 200).astype(float)
    ratio = Ratio(rng.gamma(2.0, 1.0, 200) * counts, counts)
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
    x = Ratio(rng.normal(size=50), ones)
    y = Ratio(2 * x.totals + 1, ones)  # an exact function of x, unit by unit
    reps = bootstrap({"x": x, "y": y}, seed=0, replicates=100)
    np.testing.assert_allclose(reps["y"], 2 * reps["x"] + 1)
    with pytest.raises(ValueError):  # units of different kinds cannot share draws
        bootstrap({"x": x, "z": Ratio(ones[:10], ones[:10])}, seed=0)


def test_a_sentence_budget_takes_every_samples_first_sentences_first():
    per_text = [[["a"], ["b"], ["c"]], [["d"]], [], [["e"], ["f"]]]
    everything, owner = scored_sentences(per_text, None)
    assert everything == [["a"], ["b"], ["c"], ["d"], ["e"], ["f"]]
    assert owner.tolist() == [0, 0, 0, 1, 3, 3]
    # Four: each sample's first sentence (a, d, e), then the first sample's second (b).
    chosen, owner = scored_sentences(per_text, 4)
    assert chosen == [["a"], ["b"], ["d"], ["e"]] and owner.tolist() == [0, 0, 1, 3]
    assert scored_sentences(per_text, 100)[0] == everything  # fewer than asked: all of them


def test_a_sentence_budget_makes_self_bleu_independent_of_how_many_lines_a_model_writes():
    # Two models writing the same kind of lines, one twice as many: with every line scored,
    # the wordier one looks less diverse (more lines to match); at one count, they compare.
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]

    def texts(lines_per_sample: int) -> list[list[list[str]]]:
        return [[list(rng.choice(words, 6)) for _ in range(lines_per_sample)] for _ in range(40)]

    few, many = texts(5), texts(20)

    def self_bleu_3(per_text: list[list[list[str]]], limit: int | None) -> float:
        return float(np.mean(self_bleu_scores(scored_sentences(per_text, limit)[0], 3)))

    assert self_bleu_3(many, None) > self_bleu_3(few, None) + 0.1  # 800 lines against 200
    assert abs(self_bleu_3(many, 200) - self_bleu_3(few, 200)) < 0.02


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
        r = sentence_ratio(scores, owner, 30)
        assert (
            r.counts.sum() == len(generated)
            and r.counts[[len(ss) == 0 for ss in samples]].sum() == 0
        )
        assert r.totals.sum() / r.counts.sum() == pytest.approx(value, rel=1e-12)
    lone = sentence_ratio(self_bleu_scores(generated[:1], 4), owner[:1], 30)
    assert (
        bootstrap({"self_bleu_4": lone}, seed=0, replicates=5)["self_bleu_4"].tolist() == [0.0] * 5
    )


# --- the sweep on a tiny model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    text = make_play(600, seed=4)
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    cut = int(len(ids) * 0.9)
    seed_everything(0)
    model = build_model(len(vocab), **TINY_LM.architecture)
    train_, test = StreamSource(ids[:cut]), StreamSource(ids[cut:])
    train(model, train_, test, TINY_LM.model_copy(update={"epochs": 2}), 0, verbose=0)
    return RealData(vocab, train_, test, judge=model), model


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
        assert 0 < point["bleu_sentences"] <= p.bleu_sentences
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


def test_copies_are_counted_in_characters_and_an_unseen_one_breaks_a_copy(tiny):
    real, _ = tiny
    text = real.train.text(real.vocab)
    ids = real.characters(text)
    unseen = real.characters("\u00e9")[0]  # not in the play's alphabet
    assert len(ids) == len(text) and ids.max() < unseen
    span = text[100:140]
    assert real.copies.longest_copy(real.characters(span)) == len(span)
    broken = real.characters(span[:25] + "\u00e9" + span[26:])
    assert real.copies.longest_copy(broken) == 25  # the unseen character matches nothing


def test_reverse_lm_sees_collapse_that_the_lm_score_cannot(tiny):
    real, _ = tiny
    n, length = 12, 120
    rows = real.train.ids[: n * length].reshape(n, length)  # real text: covers the language
    collapsed = np.tile(rows[0], (n, 1))  # one sample repeated: fluent but no diversity
    context = np.ones((n, 1), np.int32)
    diverse = reverse_lm_nll(rows, context, real.test, len(real.vocab), TINY_LM, 0)
    single = reverse_lm_nll(collapsed, context, real.test, len(real.vocab), TINY_LM, 0)
    assert diverse.value < single.value
    # One model serves every set, put back to its start: the order of the sets is no input.
    again = reverse_lm_nll(rows, context, real.test, len(real.vocab), TINY_LM, 0)
    np.testing.assert_array_equal(again.totals, diverse.totals)


def test_held_out_units_add_up_to_the_held_out_nll(tiny):
    real, model = tiny
    stream = heldout(model, real.test, batch_size=4)
    assert stream.value == heldout_nll(model, real.test, 4)
    assert stream.counts.sum() == len(real.test.ids) - 1  # every scored token in one window
    assert len(stream.counts) > 4  # windows of rows: more units than rows
    rows = np.ones((6, 9), np.int32)
    rows[:, 1:] = real.test.ids[:48].reshape(6, 8)
    rows[2:, 6:] = 0  # padding, not scored
    by_row = heldout(model, RowSource(rows), batch_size=4)
    assert by_row.counts.tolist() == [8, 8, 5, 5, 5, 5]
    judged = lm_ratio(model, rows[:, :1], rows[:, 1:], pad_id=0, batch=4)
    assert judged.value == lm_score(model, rows[:, :1], rows[:, 1:], 0, batch=4)
    np.testing.assert_allclose(judged.totals, by_row.totals, rtol=1e-6)  # the same rows


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


def test_the_report_names_a_judge_weaker_than_a_contestant():
    labels = {"lstm": "the LSTM", "gan": "the GAN"}
    weak = describe_judge("models/judge.keras", [128], 1.77, {"lstm": 1.40, "gan": 1.44}, labels)
    assert "1 x 128 LSTM" in weak and "test NLL 1.770 nats/token" in weak
    assert "against the LSTM 1.400, the GAN 1.440" in weak
    assert "weaker than the LSTM and the GAN" in weak
    strong = describe_judge("j.keras", [192, 192], 1.38, {"lstm": 1.40, "gan": 1.44}, labels)
    assert "2 x 192 LSTM" in strong and "weaker" not in strong
