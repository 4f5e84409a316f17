import itertools

import numpy as np
import pytest

from tests.params import lstm_params
from textgen.backend import tf
from textgen.model import build_model
from textgen.sampling import Decoding, Sampler, filter_logits, generate_texts
from textgen.seeding import seed_everything
from textgen.sources import StreamSource
from textgen.training import train
from textgen.vocab import Vocabulary

SMALL = lstm_params(embedding_dim=8, hidden=16, layers=1, dropout=0.0, seq_len=16, batch_size=8)


@pytest.fixture(scope="module")
def model():
    seed_everything(3)
    net = build_model(12, **SMALL.architecture)
    # An untrained net's logits are near-ties; spread them so "the argmax" is well defined.
    kernel, bias = net.get_layer("logits").get_weights()
    net.get_layer("logits").set_weights([kernel * 10, bias])
    return net


def _greedy_reference(model, prompt, length):
    """Slow but obviously right: re-run the whole sequence each step, take the argmax."""
    seq = list(prompt)
    for _ in range(length):
        logits = model(np.array([seq], np.int32), training=False)[0, -1]
        seq.append(int(np.argmax(logits)))
    return seq[len(prompt) :]


def test_filter_logits_top_k_and_top_p():
    logits = tf.constant([[1.0, 4.0, 3.0, 2.0]])
    kept = lambda f: np.isfinite(f.numpy()[0]).tolist()  # noqa: E731
    assert kept(filter_logits(logits, tf.constant(2), tf.constant(1.0))) == [0, 1, 1, 0]
    assert kept(filter_logits(logits, tf.constant(0), tf.constant(1.0))) == [1, 1, 1, 1]
    # probabilities ~ [.03, .64, .24, .09]: the nucleus for p=0.8 is {1, 2}; p tiny keeps top-1
    assert kept(filter_logits(logits, tf.constant(0), tf.constant(0.8))) == [0, 1, 1, 0]
    assert kept(filter_logits(logits, tf.constant(0), tf.constant(0.01))) == [0, 1, 0, 0]


@pytest.mark.parametrize("temperature", [0.0, 1e-5])
def test_temperature_near_zero_is_argmax(model, temperature):
    prompt = np.array([1, 5, 7], np.int32)
    out = Sampler(model).generate(prompt, 3, 12, Decoding(temperature=temperature), seed=4)
    expected = _greedy_reference(model, prompt, 12)
    for row in out:
        assert row.tolist() == expected


def test_same_seed_same_samples_other_seed_differs(model):
    sampler = Sampler(model)
    prompt = np.array([2], np.int32)
    a = sampler.generate(prompt, 4, 30, Decoding(temperature=1.0), seed=11)
    b = sampler.generate(prompt, 4, 30, Decoding(temperature=1.0), seed=11)
    c = sampler.generate(prompt, 4, 30, Decoding(temperature=1.0), seed=12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len({tuple(r) for r in a}) > 1, "rows of one batch must be independent samples"


def test_top_k_never_leaves_the_top_k(model):
    k = 3
    prompt = np.array([4, 4], np.int32)
    out = Sampler(model).generate(prompt, 6, 15, Decoding(temperature=1.5, top_k=k), seed=5)
    for row in out:
        seq = prompt.tolist()
        for token in row:
            logits = model(np.array([seq], np.int32), training=False)[0, -1].numpy()
            assert token in np.argsort(logits)[-k:]
            seq.append(int(token))


def test_prompt_is_respected():
    # A model trained on a cycle continues the prompt from where the prompt leaves off.
    seed_everything(0)
    text = "abcdefgh" * 400
    vocab = Vocabulary.from_text(text)
    net = build_model(len(vocab), **SMALL.architecture)
    params = SMALL.model_copy(
        update={"epochs": 4, "steps_per_epoch": 40, "learning_rate": 0.02, "warmup_steps": 0}
    )
    ids = vocab.encode(text)
    train(net, StreamSource(ids), StreamSource(ids[:400]), params, seed=0, verbose=0)
    for prompt, expected in [("abcdefghabc", "defgh"), ("cdefghabcdefg", "habcd")]:
        texts = generate_texts(net, vocab, prompt, 2, 5, Decoding(temperature=0.0))
        assert texts == [expected, expected]


def test_decoding_rejects_impossible_settings():
    with pytest.raises(ValueError):
        Decoding(temperature=-1)
    with pytest.raises(ValueError):
        Decoding(top_p=0)


@pytest.mark.parametrize(
    ("chunk", "max_chunk"),
    [(1, 1), (3, 3), (7, 7), (40, 40), (1, 4), (2, 8), (3, 128), (5, 6)],
)
@pytest.mark.parametrize("eos_id", [None, 4])
def test_stream_gives_the_ids_of_generate(model, chunk, max_chunk, eos_id):
    """Chunks carry the state and the per-step seeds: the same ids as one rollout, end padding
    included (an end token in one chunk pads the row in the next ones too), whatever the chunk
    sizes: the first has ``chunk`` steps, each next one twice as many, up to ``max_chunk``."""
    sampler = Sampler(model, never=[0], eos_id=eos_id)
    prompt = np.array([2, 5], np.int32)
    ended = False
    for decoding in [Decoding(temperature=1.3), Decoding(temperature=0.9, top_k=5, top_p=0.9)]:
        whole = sampler.generate(prompt, 5, 23, decoding, seed=9)
        ended |= bool((whole == eos_id).any())
        parts = list(
            sampler.stream(prompt, 5, 23, decoding, seed=9, chunk=chunk, max_chunk=max_chunk)
        )
        widths = [p.shape[1] for p in parts]
        assert widths[0] == min(chunk, 23) and max(widths) <= max_chunk
        for before, width in itertools.pairwise(widths[:-1]):  # the last: what is left
            assert width == min(2 * before, max_chunk), widths
        if max_chunk == chunk:
            assert all(p.shape[1] <= chunk for p in parts)
        np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    if eos_id is not None:
        assert ended, "the test must exercise the end padding"


def test_stream_chunks_grow_from_the_first_to_the_cap(model):
    sampler = Sampler(model)
    prompt = np.array([2], np.int32)
    widths = [p.shape[1] for p in sampler.stream(prompt, 2, 100, chunk=3, max_chunk=20)]
    assert widths == [3, 6, 12, 20, 20, 20, 19]
    with pytest.raises(ValueError, match="chunk <= max_chunk"):
        next(sampler.stream(prompt, 2, 100, chunk=8, max_chunk=4))
    for call in (sampler.generate, sampler.stream):  # the same checks for both
        with pytest.raises(ValueError, match="non-empty 1-D"):
            next(iter(call(np.array([], np.int32), 2, 10)))
