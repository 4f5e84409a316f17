import numpy as np
import pytest

from tests.params import lstm_params
from textgen.artifacts import load_model, load_tokens, save_model, save_tokens
from textgen.backend import keras, tf
from textgen.lstm import (
    build_model,
    eval_dataset,
    forward,
    row_dataset,
    rows_nll,
    sequence_nll,
    stream_nll,
    train,
    window_dataset,
    zero_state,
)
from textgen.seeding import seed_everything
from textgen.vocab import Vocabulary

TINY = lstm_params(
    embedding_dim=8,
    hidden=16,
    layers=2,
    dropout=0.0,
    seq_len=16,
    batch_size=8,
    epochs=3,
    steps_per_epoch=40,
    learning_rate=0.02,
    warmup_steps=0,
    patience=5,
)


def test_model_predicts_every_position():
    model = build_model(11, TINY)
    logits = model(np.zeros((3, 7), np.int32))
    assert tuple(logits.shape) == (3, 7, 11)
    assert len([w for w in model.layers if isinstance(w, keras.layers.LSTM)]) == TINY.layers


def test_forward_in_chunks_equals_one_pass():
    seed_everything(0)
    model = build_model(13, TINY)
    tokens = np.random.default_rng(0).integers(0, 13, (2, 20)).astype(np.int32)
    whole = model(tokens, training=False).numpy()
    state = zero_state(model, 2)
    first, state = forward(model, tokens[:, :7], state)
    second, _ = forward(model, tokens[:, 7:], state)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-5)


def test_windows_are_shifted_targets_with_fresh_offsets():
    tokens = np.arange(1000, dtype=np.int32)
    ds, steps = window_dataset(tokens, seq_len=10, batch_size=4, seed=1)
    assert steps == (1000 - 1 - 10) // 10 // 4
    batches = list(ds.take(steps * 3).as_numpy_iterator())
    x, y = batches[0]
    assert x.shape == y.shape == (4, 10)
    np.testing.assert_array_equal(y, x + 1)  # targets are the next token at every position
    offsets = {int(b[0][0, 0]) % 10 for b in batches[::steps]}
    assert len(offsets) > 1, "each epoch should start windows at a new random offset"
    again = list(window_dataset(tokens, 10, 4, seed=1)[0].take(3).as_numpy_iterator())
    np.testing.assert_array_equal(again[2][0], batches[2][0])


def test_batches_read_from_a_token_file_equal_those_of_the_array_in_memory(tmp_path):
    """Training reads a prepared split from its file window by window (its memory stays flat
    however large the file); the batches are the in-memory array's, also for a slice."""
    tokens = np.random.default_rng(0).integers(0, 50, 5000).astype(np.int32)
    rows = tokens[:4800].reshape(400, 12)
    save_tokens(tmp_path / "s.npy", tokens)
    save_tokens(tmp_path / "r.npy", rows)
    on_disk, in_rows = load_tokens(tmp_path / "s.npy"), load_tokens(tmp_path / "r.npy")
    cases = [
        (window_dataset(on_disk, 10, 4, seed=3)[0], window_dataset(tokens, 10, 4, seed=3)[0]),
        (window_dataset(on_disk[7:], 10, 4, seed=3)[0], window_dataset(tokens[7:], 10, 4, 3)[0]),
        (row_dataset(in_rows, 8, seed=3)[0], row_dataset(rows, 8, seed=3)[0]),
        (eval_dataset(on_disk, 16, 8), eval_dataset(tokens, 16, 8)),
        (eval_dataset(in_rows, 8, 8), eval_dataset(rows, 8, 8)),
    ]
    for got, want in cases:
        for a, b in zip(got.take(30), want.take(30), strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_window_dataset_rejects_tiny_data():
    with pytest.raises(ValueError, match="fewer than one batch"):
        window_dataset(np.arange(50, dtype=np.int32), seq_len=10, batch_size=8, seed=0)


def _periodic_tokens(n=4000):
    return np.tile(np.array([1, 2, 3, 4, 2, 5, 1, 3], np.int32), n // 8)


def test_training_lowers_the_loss_and_is_reproducible():
    data = _periodic_tokens()
    runs = []
    for _ in range(2):
        seed_everything(7)
        model = build_model(6, TINY)
        before = stream_nll(model, data[:500], batch_size=4)
        result = train(model, data, data[:600], TINY, seed=7, verbose=0)
        runs.append((model, result))
        after = stream_nll(model, data[:500], batch_size=4)
        assert after < 0.5 * before, (before, after)
    assert runs[0][1].epoch_logs == runs[1][1].epoch_logs
    for a, b in zip(runs[0][0].get_weights(), runs[1][0].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_stream_nll_matches_a_direct_computation():
    seed_everything(1)
    model = build_model(9, TINY)
    tokens = np.random.default_rng(1).integers(0, 9, 101).astype(np.int32)
    logits = model(tokens[None, :-1], training=False)
    expected = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(tokens[None, 1:], logits)
    ).numpy()
    # One row, small windows: state carried across windows must give the same number.
    assert stream_nll(model, tokens, batch_size=1, window=7) == pytest.approx(expected, rel=1e-5)
    # Several rows (with padding) score the same tokens, with context reset per row only.
    assert stream_nll(model, tokens, batch_size=3, window=7) == pytest.approx(expected, rel=0.05)


def test_save_and_safe_load_round_trip(tmp_path):
    seed_everything(2)
    model = build_model(5, TINY)
    vocab = Vocabulary.from_text("abcd")
    save_model(model, vocab, tmp_path / "lstm.keras")
    assert (tmp_path / "lstm.vocab.json").is_file()
    loaded, loaded_vocab = load_model(tmp_path / "lstm.keras")
    assert loaded_vocab == vocab
    x = np.array([[1, 2, 3, 4]], np.int32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


def test_sequence_nll_scores_the_continuation_only():
    seed_everything(3)
    model = build_model(9, TINY)
    seq = np.random.default_rng(3).integers(0, 9, (2, 12)).astype(np.int32)
    logits = model(seq[:, :-1], training=False)
    full = tf.nn.sparse_softmax_cross_entropy_with_logits(seq[:, 1:], logits).numpy()
    for c in [1, 4]:  # the continuation seq[:, c:] after a context of c tokens
        got = sequence_nll(model, tf.constant(seq[:, :c]), tf.constant(seq[:, c:])).numpy()
        np.testing.assert_allclose(got, full[:, c - 1 :], rtol=1e-5, atol=1e-6)


class _KillAfter(keras.callbacks.Callback):
    """Ends a run the way a kill would: after the checkpoint of epoch ``epoch`` is saved."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _train_twice(tmp_path, data, val, params, kill_after):
    """An uninterrupted run, and one killed after epoch ``kill_after + 1`` then resumed in
    a fresh model (as a new process would: nothing but the checkpoint survives)."""
    seed_everything(5)
    straight = build_model(6, params)
    whole = train(straight, data, val, params, seed=5, verbose=0)

    seed_everything(5)
    killed = build_model(6, params)
    with pytest.raises(KeyboardInterrupt):
        train(killed, data, val, params, 5, [_KillAfter(kill_after)], 0, tmp_path / "ckpt")

    seed_everything(5)
    resumed = build_model(6, params)
    result = train(resumed, data, val, params, seed=5, verbose=0, checkpoint_dir=tmp_path / "ckpt")
    return (straight, whole), (resumed, result)


def test_a_killed_run_resumes_exactly_with_dropout(tmp_path):
    data = _periodic_tokens()
    params = TINY.model_copy(update={"epochs": 3, "steps_per_epoch": 15, "dropout": 0.3})
    (straight, whole), (resumed, result) = _train_twice(tmp_path, data, data[:600], params, 0)
    assert result.epochs == 3 and result.epoch_logs == whole.epoch_logs
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # dropout's seeds are in the checkpoint too


def test_a_killed_run_resumes_early_stopping_where_it_was(tmp_path):
    """Validation text unlike the training text: its loss soon rises and early stopping
    ends the run, restoring the best epoch's weights; the kill falls while it is waiting."""
    data = _periodic_tokens()
    val = np.random.default_rng(1).integers(0, 6, 600).astype(np.int32)
    params = TINY.model_copy(update={"epochs": 12, "steps_per_epoch": 15, "patience": 2})
    (straight, whole), (resumed, result) = _train_twice(tmp_path, data, val, params, 2)
    assert whole.epochs < params.epochs, "early stopping should end this run"
    assert result.epochs == whole.epochs and result.epoch_logs == whole.epoch_logs
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the best epoch's weights, in both


def test_an_unreadable_checkpoint_is_dropped_with_a_warning(tmp_path, caplog):
    data = _periodic_tokens()
    params = TINY.model_copy(update={"epochs": 2, "steps_per_epoch": 5})
    state = tmp_path / "ckpt" / "state.npz"
    state.parent.mkdir()
    state.write_bytes(b"PK\x03\x04 truncated by a kill")
    seed_everything(5)
    result = train(build_model(6, params), data, data[:600], params, 5, (), 0, tmp_path / "ckpt")
    assert result.epochs == 2
    assert "unusable checkpoint" in caplog.text and "training from the start" in caplog.text


def _padded_rows(n, seed):
    """Rows of <bos> (1), 1 to 3 random tokens, <eos> (5), then padding (0) to width 12:
    mostly padding."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, 12), np.int32)
    rows[:, 0] = 1
    for row, length in zip(rows, rng.integers(1, 4, n), strict=True):
        row[1 : 1 + length] = rng.integers(2, 5, length)
        row[1 + length] = 5
    return rows


def test_line_mode_losses_are_per_real_token():
    """Keras' default reduction divides the weighted loss by every position, padding
    included; the logged validation loss must be the NLL per real token (``rows_nll``)."""
    train_rows, val_rows = _padded_rows(64, 0), _padded_rows(40, 1)
    params = TINY.model_copy(update={"epochs": 1, "steps_per_epoch": 4, "eval_batch_size": 64})
    seed_everything(4)
    model = build_model(6, params)
    result = train(model, train_rows, val_rows, params, seed=4, verbose=0)
    val_loss = result.epoch_logs[0]["val_loss"]
    per_token = rows_nll(model, val_rows, batch_size=64)
    assert val_loss == pytest.approx(per_token, abs=1e-5)
    real = np.count_nonzero(val_rows[:, 1:])
    per_position = per_token * real / val_rows[:, 1:].size  # the old reduction
    assert abs(val_loss - per_position) > 0.5 * per_token
    assert result.epoch_logs[0]["loss"] > 0.8 * per_token  # training: the same reduction
