"""Training: the loss falls, runs reproduce, a killed run resumes exactly, the validation loss
is per real token."""

import numpy as np
import pytest

from tests.params import lstm_params
from tests.test_sources import padded_rows
from textgen import distribute
from textgen.backend import keras
from textgen.model import build_model, logits_layer
from textgen.scoring import heldout_nll, score
from textgen.seeding import seed_everything
from textgen.sources import RowSource, StreamSource
from textgen.training import learning_rate, train, train_language_model

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


def _periodic(n=4000):
    return StreamSource(np.tile(np.array([1, 2, 3, 4, 2, 5, 1, 3], np.int32), n // 8))


def test_the_learning_rate_warms_up_then_decays_to_its_floor():
    p = TINY.model_copy(update={"warmup_steps": 10, "learning_rate": 0.01})
    schedule = learning_rate(p, 100)
    assert float(schedule(0)) == pytest.approx(0.001)
    assert float(schedule(10)) == pytest.approx(0.01)
    assert float(schedule(100)) == pytest.approx(0.01 * p.min_learning_rate_ratio)
    assert float(learning_rate(p, 6)(0)) == pytest.approx(0.001)  # warm-up: half the run at most


def test_training_lowers_the_loss_and_is_reproducible():
    data = _periodic()
    held_out = StreamSource(data.ids[:500])
    runs = []
    for _ in range(2):
        seed_everything(7)
        model = build_model(6, **TINY.architecture)
        before = heldout_nll(model, held_out, 4)
        result = train(model, data, StreamSource(data.ids[:600]), TINY, seed=7, verbose=0)
        runs.append((model, result))
        assert heldout_nll(model, held_out, 4) < 0.5 * before
    assert runs[0][1].epoch_logs == runs[1][1].epoch_logs
    assert runs[0][1].steps == 3 * 31 and runs[0][1].tokens_per_s > 0  # 248 windows // 8
    for a, b in zip(runs[0][0].get_weights(), runs[1][0].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


class KillAt(keras.callbacks.Callback):
    """Ends a run the way a kill would, at the end of epoch ``epoch``: after its checkpoint is
    saved if it comes after the checkpoint in ``fit``'s callbacks, before it if it comes first."""

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
    straight = build_model(6, **params.architecture)
    whole = train(straight, data, val, params, seed=5, verbose=0)

    seed_everything(5)
    killed = build_model(6, **params.architecture)
    with pytest.raises(KeyboardInterrupt):
        train(killed, data, val, params, 5, [KillAt(kill_after)], 0, tmp_path / "ckpt")

    seed_everything(5)
    resumed = build_model(6, **params.architecture)
    result = train(resumed, data, val, params, seed=5, verbose=0, checkpoint_dir=tmp_path / "ckpt")
    return (straight, whole), (resumed, result)


def test_a_model_trained_again_from_its_start_repeats_its_run_on_the_same_compiled_step():
    p = TINY.model_copy(update={"dropout": 0.2, "epochs": 2})
    data, val = _periodic(), StreamSource(_periodic().ids[:600])
    seed_everything(7)
    model = build_model(6, **p.architecture)
    start = [v.numpy() for v in model.variables]  # weights and dropout seeds
    first = train(model, data, val, p, seed=7, verbose=0)
    weights, step = model.get_weights(), model.train_function
    for variable, value in zip(model.variables, start, strict=True):
        variable.assign(value)
    again = train(model, data, val, p, seed=7, verbose=0)
    assert model.train_function is step  # no new compile, no new trace
    assert again.epoch_logs == first.epoch_logs  # the optimizer started afresh
    for a, b in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_killed_run_resumes_exactly_with_dropout(tmp_path):
    data = _periodic()
    params = TINY.model_copy(update={"epochs": 3, "steps_per_epoch": 15, "dropout": 0.3})
    val = StreamSource(data.ids[:600])
    (straight, whole), (resumed, result) = _train_twice(tmp_path, data, val, params, 0)
    assert result.epochs == 3 and result.epoch_logs == whole.epoch_logs
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # dropout's seeds are in the checkpoint too


def test_a_killed_run_resumes_early_stopping_where_it_was(tmp_path):
    """Validation text unlike the training text: its loss soon rises and early stopping
    ends the run, restoring the best epoch's weights; the kill falls while it is waiting."""
    data = _periodic()
    val = StreamSource(np.random.default_rng(1).integers(0, 6, 600).astype(np.int32))
    params = TINY.model_copy(update={"epochs": 12, "steps_per_epoch": 15, "patience": 2})
    (straight, whole), (resumed, result) = _train_twice(tmp_path, data, val, params, 2)
    assert whole.epochs < params.epochs, "early stopping should end this run"
    assert result.epochs == whole.epochs and result.epoch_logs == whole.epoch_logs
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the best epoch's weights, in both


def test_an_unreadable_checkpoint_is_dropped_with_a_warning(tmp_path, caplog):
    data = _periodic()
    params = TINY.model_copy(update={"epochs": 2, "steps_per_epoch": 5})
    state = tmp_path / "ckpt" / "state.npz"
    state.parent.mkdir()
    state.write_bytes(b"PK\x03\x04 truncated by a kill")
    seed_everything(5)
    model = build_model(6, **params.architecture)
    result = train(model, data, StreamSource(data.ids[:600]), params, 5, (), 0, tmp_path / "ckpt")
    assert result.epochs == 2
    assert "unusable checkpoint" in caplog.text and "training from the start" in caplog.text


def test_line_mode_losses_are_per_real_token():
    """Padding weighs nothing: the training loss is per real token in each batch, and the
    logged validation loss is the NLL per real token of the whole split, across several
    validation batches of unequal padding (Keras' own validation would weigh batches by rows)."""
    train_rows, val_rows = padded_rows(64, 0), padded_rows(40, 1)
    # Half the rows end at once, and the model expects an end: batches differ in their
    # tokens and in their mean NLL (a learning rate too small to change that).
    val_rows[:20, 1:] = 0
    val_rows[:20, 1] = 5
    params = TINY.model_copy(
        update={"epochs": 1, "steps_per_epoch": 4, "eval_batch_size": 16, "learning_rate": 1e-7}
    )
    seed_everything(4)
    model = build_model(6, **params.architecture)
    kernel, bias = logits_layer(model).get_weights()
    bias[5] = 3.0
    logits_layer(model).set_weights([kernel, bias])
    result = train(model, RowSource(train_rows), RowSource(val_rows), params, seed=4, verbose=0)
    val_loss = result.epoch_logs[0]["val_loss"]
    per_token = heldout_nll(model, RowSource(val_rows), batch_size=64)
    assert val_loss == pytest.approx(per_token, rel=1e-6)
    batches = score(model, RowSource(val_rows).validation_layout(16), 16)
    sums = np.add.reduceat(batches.totals, [0, 16, 32])
    counts = np.add.reduceat(batches.counts, [0, 16, 32])
    by_rows = np.average(sums / counts, weights=[16, 16, 8])  # what Keras would log
    assert abs(val_loss - by_rows) > 0.1 * per_token
    real = np.count_nonzero(val_rows[:, 1:])
    per_position = per_token * real / val_rows[:, 1:].size  # a reduction over every position
    assert abs(val_loss - per_position) > 0.5 * per_token
    train_nll = heldout_nll(model, RowSource(train_rows[:32]), 32)
    assert result.epoch_logs[0]["loss"] == pytest.approx(train_nll, rel=0.1)  # per real token


def test_too_little_data_is_a_value_error():
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(build_model(6, **TINY.architecture), _periodic(40), _periodic(), TINY, 0, verbose=0)


def _bigrams(n: int, seed: int) -> StreamSource:
    """A random first-order Markov chain over 6 tokens: about 1.2 nats a token to learn."""
    rng = np.random.default_rng(seed)
    table = rng.dirichlet(np.full(6, 0.3), size=6)
    ids = [0]
    for u in rng.random(n - 1):
        ids.append(int(np.searchsorted(np.cumsum(table[ids[-1]]), u * 0.999999)))
    return StreamSource(np.array(ids, np.int32))


def test_bf16_training_ends_within_a_hundredth_of_a_nat_of_fp32_and_comes_back_in_fp32(
    tmp_path, capsys
):
    data, val = _bigrams(6000, 0), _bigrams(1200, 0)  # the same chain
    losses = {}
    for precision in ["fp32", "bf16"]:
        p = TINY.model_copy(update={"precision": precision})
        seed_everything(7)
        model, result = train_language_model(
            "lstm", p, 7, None, 6, (data, val), tmp_path / precision
        )
        losses[precision] = result.epoch_logs[-1]["val_loss"]
        assert {layer.dtype_policy.name for layer in model.layers[1:]} == {"float32"}
        # Validated as it is returned: in float32, with the best epoch's weights.
        again = score(model, val.validation_layout(p.seq_len), p.eval_batch_size).value
        assert again == pytest.approx(losses[precision], abs=1e-6)
    out = capsys.readouterr().out
    assert "fp32 (as set)" in out and "bf16 compute, fp32 weights (as set)" in out
    assert 0.5 < losses["fp32"] < 1.7  # learned something, far from perfect
    assert losses["bf16"] == pytest.approx(losses["fp32"], abs=0.01)


def test_auto_precision_is_bf16_only_where_the_devices_have_bf16_units(monkeypatch):
    monkeypatch.setattr(distribute, "bf16_units", lambda: "CPU amx_bf16")
    assert distribute.dtype_policy("auto")[0] == "mixed_bfloat16"
    assert "CPU amx_bf16" in distribute.dtype_policy("auto")[1]
    assert distribute.dtype_policy("fp32")[0] == "float32"
    monkeypatch.setattr(distribute, "bf16_units", lambda: None)
    assert distribute.dtype_policy("auto") == (
        "float32",
        "fp32 (auto: no bf16 units on this machine)",
    )
    assert distribute.dtype_policy("bf16")[0] == "mixed_bfloat16"
