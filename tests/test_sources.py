"""Token sources: a stream and rows behind one type; batches, layouts, examples."""

import numpy as np
import pytest

from textgen.artifacts import load_tokens, save_tokens
from textgen.sources import PAD_ID, RowSource, StreamSource, TokenSource, continuation_layout
from textgen.vocab import Vocabulary


def padded_rows(n, seed, width=12):
    """Rows of <bos> (1), 1 to 3 random tokens, <eos> (5), then padding (0): mostly padding."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, width), np.int32)
    rows[:, 0] = 1
    for row, length in zip(rows, rng.integers(1, 4, n), strict=True):
        row[1 : 1 + length] = rng.integers(2, 5, length)
        row[1 + length] = 5
    return rows


def test_the_kind_follows_the_arrays_shape():
    assert isinstance(TokenSource.of(np.zeros(10, np.int32)), StreamSource)
    assert isinstance(TokenSource.of(np.zeros((3, 4), np.int32)), RowSource)
    samples = np.arange(12, dtype=np.int32).reshape(3, 4)
    assert StreamSource(np.zeros(5, np.int32)).like(samples).ids.tolist() == list(range(12))
    assert RowSource(np.zeros((2, 4), np.int32)).like(samples).ids.shape == (3, 4)


def test_stream_windows_are_shifted_targets_with_fresh_offsets():
    source = StreamSource(np.arange(1000, dtype=np.int32))
    steps = source.steps_per_epoch(4, 10)
    assert steps == (1000 - 1 - 10) // 10 // 4 and source.width(10) == 10
    batches = list(source.batches(4, 10, seed=1).take(steps * 3).as_numpy_iterator())
    x, y, w = batches[0]
    assert x.shape == y.shape == w.shape == (4, 10)
    np.testing.assert_array_equal(y, x + 1)  # targets are the next token at every position
    assert (w == 1).all()
    offsets = {int(b[0][0, 0]) % 10 for b in batches[::steps]}
    assert len(offsets) > 1, "each epoch should start windows at a new random offset"
    again = list(source.batches(4, 10, 1).take(3).as_numpy_iterator())
    np.testing.assert_array_equal(again[2][0], batches[2][0])
    resumed = next(source.batches(4, 10, 1, first_epoch=1).as_numpy_iterator())
    np.testing.assert_array_equal(resumed[0], batches[steps][0])  # epoch 1, wherever it starts


def test_rows_weigh_padding_zero_and_are_whole_examples():
    rows = padded_rows(40, 0)
    source = RowSource(rows)
    assert source.width(99) == 11 and source.steps_per_epoch(8, 99) == 5
    x, y, w = next(source.batches(8, 99, seed=0).as_numpy_iterator())
    assert x.shape == (8, 11)
    np.testing.assert_array_equal(w, (y != PAD_ID).astype(np.float32))
    assert (w == 0).any()  # there is padding, and it weighs nothing
    assert {tuple(r) for r in np.concatenate([x[:, :1], y], axis=1)} <= {tuple(r) for r in rows}


def test_too_little_data_is_a_value_error_naming_the_sizes():
    with pytest.raises(ValueError, match="fewer than one batch"):
        StreamSource(np.arange(50, dtype=np.int32)).steps_per_epoch(8, 10)
    with pytest.raises(ValueError, match="fewer than one batch"):
        RowSource(padded_rows(5, 0)).steps_per_epoch(8, 10)
    with pytest.raises(ValueError, match="no window"):
        StreamSource(np.arange(5, dtype=np.int32)).validation_layout(10)
    with pytest.raises(ValueError, match="too few for windows"):
        StreamSource(np.arange(5, dtype=np.int32)).examples(np.random.default_rng(0), 2, 10)


def _blocks(layout, rows, window):
    """Every (x, y, w) block of a layout, as the scorer reads it."""
    for r in range(0, layout.n_rows, rows):
        block = slice(r, min(r + rows, layout.n_rows))
        for c in range(0, layout.width, window):
            yield layout.block(block, slice(c, c + window))


def test_a_streams_scoring_layout_holds_every_token_after_the_first_once():
    tokens = np.arange(1, 102, dtype=np.int32)  # 100 targets, 3 rows of 34 (the last short)
    layout = StreamSource(tokens).scoring_layout(3)
    assert (layout.n_rows, layout.width, layout.row_units) == (3, 34, False)
    targets, inputs = [], []
    for x, y, w in _blocks(layout, 2, 5):
        targets += y[w > 0].tolist()
        inputs += x[w > 0].tolist()
        np.testing.assert_array_equal(y[w > 0], x[w > 0] + 1)
    assert sorted(targets) == list(range(2, 102)) and sorted(inputs) == list(range(1, 101))


def test_validation_layouts_are_training_examples_from_a_zero_state():
    layout = StreamSource(np.arange(95, dtype=np.int32)).validation_layout(10)
    assert (layout.n_rows, layout.width, layout.row_units) == (9, 10, True)
    x, y, w = layout.block(slice(0, 9), slice(0, 10))
    np.testing.assert_array_equal(x[:, 0], np.arange(9) * 10)
    np.testing.assert_array_equal(y, x + 1)
    rows = padded_rows(6, 1)
    x, y, w = RowSource(rows).validation_layout(99).block(slice(2, 4), slice(0, 11))
    np.testing.assert_array_equal(x, rows[2:4, :-1])
    np.testing.assert_array_equal(w, rows[2:4, 1:] != PAD_ID)


def test_a_continuation_layout_scores_the_continuation_only():
    context = np.array([[7, 8], [7, 9]], np.int32)
    ids = np.array([[1, 2, 3], [4, 5, 0]], np.int32)
    layout = continuation_layout(context, ids, ids != 0)
    x, y, w = layout.block(slice(0, 2), slice(0, 4))
    np.testing.assert_array_equal(x, [[7, 8, 1, 2], [7, 9, 4, 5]])
    np.testing.assert_array_equal(y, [[8, 1, 2, 3], [9, 4, 5, 0]])
    np.testing.assert_array_equal(w, [[0, 1, 1, 1], [0, 1, 1, 0]])


def test_examples_and_heads():
    stream = StreamSource(np.arange(500, dtype=np.int32))
    ex = stream.examples(np.random.default_rng(0), 4, 8)
    assert ex.shape == (4, 9)
    np.testing.assert_array_equal(np.diff(ex, axis=1), 1)  # contiguous windows
    assert len(stream.head(20).ids) == 20
    rows = RowSource(padded_rows(10, 2))
    assert rows.examples(np.random.default_rng(0), 4, 8).shape == (4, 12)
    assert rows.head(30).ids.shape == (2, 12) and rows.head(1).ids.shape == (1, 12)
    vocab = Vocabulary(
        ("<pad>", "<unk>", "<bos>", "<eos>", "a", "b"),
        specials=("<pad>", "<unk>", "<bos>", "<eos>"),
    )
    assert RowSource(np.array([[2, 4, 5, 3], [2, 5, 3, 0]], np.int32)).text(vocab) == "ab\nb"
    assert StreamSource(np.array([4, 5, 4], np.int32)).text(vocab) == "aba"


def test_a_token_file_is_read_as_the_array_in_memory(tmp_path):
    """A prepared split is read from its file window by window (memory stays flat however
    large the file); every batch and layout block is the in-memory array's, also for a slice."""
    tokens = np.random.default_rng(0).integers(0, 50, 5000).astype(np.int32)
    rows = tokens[:4800].reshape(400, 12)
    save_tokens(tmp_path / "s.npy", tokens)
    save_tokens(tmp_path / "r.npy", rows)
    on_disk, in_rows = load_tokens(tmp_path / "s.npy"), load_tokens(tmp_path / "r.npy")
    pairs = [
        (StreamSource(on_disk), StreamSource(tokens)),
        (StreamSource(on_disk[7:]), StreamSource(tokens[7:])),
        (RowSource(in_rows), RowSource(rows)),
    ]
    for got, want in pairs:
        for a, b in zip(
            got.batches(4, 10, seed=3).take(30), want.batches(4, 10, seed=3).take(30), strict=True
        ):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x.numpy(), y.numpy())
        for layout_of in (lambda s: s.validation_layout(16), lambda s: s.scoring_layout(8)):
            blocks = zip(_blocks(layout_of(got), 8, 7), _blocks(layout_of(want), 8, 7), strict=True)
            for a, b in blocks:
                for x, y in zip(a, b, strict=True):
                    np.testing.assert_array_equal(x, y)
