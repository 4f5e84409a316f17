"""The LSTM language model: its shape, the stateful forward, the continuation NLL, saving."""

import numpy as np

from textgen.artifacts import load_model, save_model
from textgen.backend import keras, tf
from textgen.model import build_model, float32_copy, forward, sequence_nll, zero_state
from textgen.seeding import seed_everything
from textgen.vocab import Vocabulary

SIZE = dict(embedding_dim=8, hidden=16, layers=2)


def test_model_predicts_every_position():
    model = build_model(11, **SIZE)
    logits = model(np.zeros((3, 7), np.int32))
    assert tuple(logits.shape) == (3, 7, 11)
    assert len([w for w in model.layers if isinstance(w, keras.layers.LSTM)]) == 2


def test_forward_in_chunks_equals_one_pass():
    seed_everything(0)
    model = build_model(13, **SIZE)
    tokens = np.random.default_rng(0).integers(0, 13, (2, 20)).astype(np.int32)
    whole = model(tokens, training=False).numpy()
    state = zero_state(model, 2)
    first, state = forward(model, tokens[:, :7], state)
    second, _ = forward(model, tokens[:, 7:], state)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-5)


def test_sequence_nll_scores_the_continuation_only():
    seed_everything(3)
    model = build_model(9, **SIZE)
    seq = np.random.default_rng(3).integers(0, 9, (2, 12)).astype(np.int32)
    logits = model(seq[:, :-1], training=False)
    full = tf.nn.sparse_softmax_cross_entropy_with_logits(seq[:, 1:], logits).numpy()
    for c in [1, 4]:  # the continuation seq[:, c:] after a context of c tokens
        got = sequence_nll(model, tf.constant(seq[:, :c]), tf.constant(seq[:, c:])).numpy()
        np.testing.assert_allclose(got, full[:, c - 1 :], rtol=1e-5, atol=1e-6)


def test_a_copy_has_the_weights_but_not_the_variables():
    seed_everything(4)
    model = build_model(7, **SIZE)
    twin = float32_copy(model)
    x = np.array([[1, 2, 3]], np.int32)
    np.testing.assert_array_equal(twin(x).numpy(), model(x).numpy())
    twin.layers[-1].kernel.assign(twin.layers[-1].kernel * 0)
    assert not np.array_equal(twin(x).numpy(), model(x).numpy())


def test_save_and_safe_load_round_trip(tmp_path):
    seed_everything(2)
    model = build_model(5, **SIZE)
    vocab = Vocabulary.from_text("abcd")
    save_model(model, vocab, tmp_path / "lstm.keras")
    assert (tmp_path / "lstm.vocab.json").is_file()
    loaded, loaded_vocab = load_model(tmp_path / "lstm.keras")
    assert loaded_vocab == vocab
    x = np.array([[1, 2, 3, 4]], np.int32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)
