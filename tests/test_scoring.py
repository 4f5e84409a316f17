"""The one scorer: per-unit NLL sums that add up to the direct computation, for streams, rows
and continuations, at any temperature."""

import numpy as np
import pytest

from tests.test_sources import padded_rows
from textgen.backend import tf
from textgen.model import build_model
from textgen.scoring import Ratio, heldout, heldout_nll, score
from textgen.seeding import seed_everything
from textgen.sources import RowSource, StreamSource, continuation_layout

SIZE = dict(embedding_dim=8, hidden=16, layers=2)


def direct_nll(model, rows, temperature=1.0):
    """Per-token NLL [n, width - 1] of each row after its first token, in one pass."""
    logits = model(rows[:, :-1], training=False) / temperature
    return tf.nn.sparse_softmax_cross_entropy_with_logits(rows[:, 1:], logits).numpy()


def test_a_stream_is_scored_with_its_whole_context():
    seed_everything(1)
    model = build_model(9, **SIZE)
    tokens = np.random.default_rng(1).integers(0, 9, 101).astype(np.int32)
    expected = direct_nll(model, tokens[None]).mean()
    # One row, small windows: state carried across windows must give the same number.
    one_row = score(model, StreamSource(tokens).scoring_layout(1), 1, window=7)
    assert one_row.value == pytest.approx(expected, rel=1e-5)
    assert len(one_row.totals) == 15 and one_row.counts.sum() == 100  # a unit per window
    # Several rows (with padding) score the same tokens, with context reset per row only.
    rows = heldout(model, StreamSource(tokens), 3)
    assert rows.counts.sum() == 100 and rows.value == pytest.approx(expected, rel=0.05)
    assert heldout_nll(model, StreamSource(tokens), 3) == rows.value


def test_rows_are_units_and_padding_never_counts():
    seed_everything(2)
    model = build_model(6, **SIZE)
    rows = padded_rows(20, 0)
    nll, weight = direct_nll(model, rows), (rows[:, 1:] != 0)
    ratio = score(model, RowSource(rows).scoring_layout(8), 8, window=5)
    np.testing.assert_allclose(ratio.totals, (nll * weight).sum(axis=1), rtol=1e-5)
    np.testing.assert_array_equal(ratio.counts, weight.sum(axis=1))
    wider = np.concatenate([rows, np.zeros((20, 7), np.int32)], axis=1)
    assert heldout_nll(model, RowSource(wider), 8) == pytest.approx(ratio.value, rel=1e-6)


def test_continuations_and_temperature():
    seed_everything(3)
    model = build_model(9, **SIZE)
    seq = np.random.default_rng(3).integers(0, 9, (4, 12)).astype(np.int32)
    for t in [1.0, 0.5]:
        nll = direct_nll(model, seq, temperature=t)
        got = score(model, continuation_layout(seq[:, :3], seq[:, 3:]), 2, temperature=t)
        np.testing.assert_allclose(got.totals, nll[:, 2:].sum(axis=1), rtol=1e-5)
        assert got.counts.tolist() == [9] * 4


def test_a_ratio_is_its_sums():
    assert Ratio(np.array([1.0, 3.0]), np.array([1.0, 3.0])).value == 1.0
    assert np.isnan(Ratio(np.zeros(0), np.zeros(0)).value)


def test_models_of_one_shape_share_one_compiled_step():
    """Evaluation scores a fresh reverse LM per sample set: each is scored with its own
    weights, through one trace."""
    tokens = np.random.default_rng(4).integers(0, 9, 200).astype(np.int32)
    values = []
    for seed in (5, 6):
        seed_everything(seed)
        model = build_model(9, **SIZE)
        values.append(heldout_nll(model, StreamSource(tokens), 4))
        assert values[-1] == pytest.approx(direct_nll(model, tokens[None]).mean(), rel=0.05)
    assert values[0] != values[1]
