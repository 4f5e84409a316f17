import numpy as np
import pytest

from tests.params import oracle_params
from textgen.evaluation import lm_ratio, lm_score
from textgen.oracle import (
    build_oracle,
    entropy_rate,
    oracle_sweep,
    oracle_vocabulary,
    sample_sequences,
    uniform_sequences,
)

SMALL = oracle_params(vocab_size=200, seq_len=10, embedding_dim=16, hidden=16)


@pytest.fixture(scope="module")
def oracle():
    vocab = oracle_vocabulary(SMALL.vocab_size)
    return vocab, build_oracle(vocab, SMALL, seed=3)


def test_the_oracle_is_deterministic_for_a_seed(oracle):
    vocab, model = oracle
    twin = build_oracle(vocab, SMALL, seed=3)
    other = build_oracle(vocab, SMALL, seed=4)
    for a, b in zip(model.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(model.get_weights()[0], other.get_weights()[0])
    rows = sample_sequences(model, vocab, 50, SMALL.seq_len, seed=1)
    np.testing.assert_array_equal(rows, sample_sequences(twin, vocab, 50, SMALL.seq_len, seed=1))
    assert rows.shape == (50, SMALL.seq_len + 1)
    assert (rows[:, 0] == vocab.bos_id).all()
    assert not np.isin(rows[:, 1:], vocab.never_sampled).any()  # only real tokens


def test_nll_oracle_of_its_own_samples_is_its_entropy_and_beats_uniform(oracle):
    vocab, model = oracle
    rows = sample_sequences(model, vocab, 4000, SMALL.seq_len, seed=2)
    context, ids = rows[:, :1], rows[:, 1:]
    judged = lm_ratio(model, context, ids, batch=1000)
    own = judged.value
    assert own == lm_score(model, context, ids, batch=1000)
    entropy = entropy_rate(model, rows)
    # The noise: standard error over rows (tokens within a row are correlated).
    nll_rows = judged.totals / judged.counts
    se = nll_rows.std() / np.sqrt(len(nll_rows))
    assert abs(own - entropy) < 4 * se
    uniform = uniform_sequences(vocab, 4000, SMALL.seq_len, seed=5)
    assert lm_score(model, uniform[:, :1], uniform[:, 1:], batch=1000) > own + 1.0
    assert entropy < np.log(SMALL.vocab_size)


def test_the_oracle_sweep_shows_the_temperature_trade_off(oracle):
    vocab, model = oracle
    test = sample_sequences(model, vocab, 500, SMALL.seq_len, seed=6)
    sweep = oracle_sweep(model, model, vocab, test, [0.5, 1.0, 2.0], 500, seed=7)
    points = sweep.points
    assert [p["temperature"] for p in points] == [0.5, 1.0, 2.0]
    oracle_nll = [p["nll_oracle"] for p in points]
    test_nll = [p["nll_test"] for p in points]
    # The oracle judging itself: colder samples look better to it, hotter ones worse ...
    assert oracle_nll[0] < oracle_nll[1] < oracle_nll[2]
    # ... and its held-out NLL is best at its own temperature, 1.
    assert test_nll[1] < test_nll[0] and test_nll[1] < test_nll[2]
    for p in points:  # each interval holds its point; the test rows are scored exactly
        for key in ("nll_oracle", "nll_test"):
            assert p[f"{key}_low"] < p[key] < p[f"{key}_high"]
            assert len(sweep.replicates[0][key]) == 1000
    again = oracle_sweep(model, model, vocab, test, [0.5], 500, seed=7)
    assert again.points[0] == points[0]  # same seeds, same numbers and intervals
    other = oracle_sweep(model, model, vocab, test, [0.5], 500, seed=7, resample_seed=1)
    assert other.points[0]["nll_oracle"] == points[0]["nll_oracle"]
    assert other.points[0]["nll_oracle_low"] != points[0]["nll_oracle_low"]
    assert other.points[0]["nll_test_low"] == points[0]["nll_test_low"]  # shared test draws
