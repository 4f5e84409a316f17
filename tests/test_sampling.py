import itertools

import numpy as np
import pytest

from tests.params import lstm_params
from textgen.backend import tf
from textgen.model import build_model, forward, logits_layer
from textgen.sampling import (
    Decoding,
    Sampler,
    check_stops,
    choose_tokens,
    cut_at_stop,
    decode_texts,
    filter_logits,
    generate_texts,
    kept_tokens,
    never_mask,
    penalize,
    prime,
    prompt_context,
    rollout,
    stream_texts,
)
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


@pytest.fixture(scope="module")
def sampler_for(model):
    """The module model's Sampler for (never, eos_id), made once: each traces its functions
    once, and every test that samples with the same settings reuses them (as the page does)."""
    made = {}

    def get(never=(), eos_id=None) -> Sampler:
        key = (tuple(never), eos_id)
        if key not in made:
            made[key] = Sampler(model, never=list(never), eos_id=eos_id)
        return made[key]

    return get


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
def test_temperature_near_zero_is_argmax(sampler_for, model, temperature):
    prompt = np.array([1, 5, 7], np.int32)
    out = sampler_for().generate(prompt, 3, 12, Decoding(temperature=temperature), seed=4)
    expected = _greedy_reference(model, prompt, 12)
    for row in out:
        assert row.tolist() == expected


def test_same_seed_same_samples_other_seed_differs(sampler_for):
    sampler = sampler_for()
    prompt = np.array([2], np.int32)
    a = sampler.generate(prompt, 4, 30, Decoding(temperature=1.0), seed=11)
    b = sampler.generate(prompt, 4, 30, Decoding(temperature=1.0), seed=11)
    c = sampler.generate(prompt, 4, 30, Decoding(temperature=1.0), seed=12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len({tuple(r) for r in a}) > 1, "rows of one batch must be independent samples"


def test_top_k_never_leaves_the_top_k(sampler_for, model):
    k = 3
    prompt = np.array([4, 4], np.int32)
    out = sampler_for().generate(prompt, 6, 15, Decoding(temperature=1.5, top_k=k), seed=5)
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
    for bad in [0, -1.5, float("nan"), float("inf")]:
        with pytest.raises(ValueError, match="repetition_penalty must be > 0"):
            Decoding(repetition_penalty=bad)
    with pytest.raises(ValueError, match="no_repeat_ngram must be >= 0"):
        Decoding(no_repeat_ngram=-1)
    with pytest.raises(ValueError, match="min_length must be >= 0"):
        Decoding(min_length=-2)
    assert Decoding(0.5, repetition_penalty=1.2, min_length=3).as_dict() == {
        "temperature": 0.5,
        "top_k": 0,
        "top_p": 1.0,
        "repetition_penalty": 1.2,
        "no_repeat_ngram": 0,
        "min_length": 3,
    }


@pytest.mark.parametrize(
    ("chunk", "max_chunk"),
    [(1, 1), (3, 3), (7, 7), (40, 40), (1, 4), (2, 8), (3, 128), (5, 6)],
)
@pytest.mark.parametrize("eos_id", [None, 4])
def test_stream_gives_the_ids_of_generate(sampler_for, chunk, max_chunk, eos_id):
    """Chunks carry the state and the per-step seeds: the same ids as one rollout, end padding
    included (an end token in one chunk pads the row in the next ones too), whatever the chunk
    sizes: the first has ``chunk`` steps, each next one twice as many, up to ``max_chunk``."""
    sampler = sampler_for([0], eos_id)
    prompt = np.array([2, 5], np.int32)
    ended = False
    for decoding in [
        Decoding(temperature=1.3),
        Decoding(temperature=0.9, top_k=5, top_p=0.9),
        # The controls' History (seen ids, tokens, match lengths) carries across chunks too.
        Decoding(1.1, repetition_penalty=1.8, no_repeat_ngram=2, min_length=6),
        Decoding(0.0, no_repeat_ngram=3),
    ]:
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


def test_stream_chunks_grow_from_the_first_to_the_cap(sampler_for):
    sampler = sampler_for()
    prompt = np.array([2], np.int32)
    widths = [p.shape[1] for p in sampler.stream(prompt, 2, 100, chunk=3, max_chunk=20)]
    assert widths == [3, 6, 12, 20, 20, 20, 19]
    with pytest.raises(ValueError, match="chunk <= max_chunk"):
        next(sampler.stream(prompt, 2, 100, chunk=8, max_chunk=4))
    for call in (sampler.generate, sampler.stream):  # the same checks for both
        with pytest.raises(ValueError, match="non-empty 1-D"):
            next(iter(call(np.array([], np.int32), 2, 10)))


# --- the repetition controls and stop strings ---------------------------------------------


@tf.function(reduce_retracing=True)
def _loop_before_the_controls(model, prompt, length, temperature, top_k, top_p, seed, mask):
    """The generation loop as it was before the repetition controls, copied: prime, then each
    step ``choose_tokens`` with the seed ``(seed, t)`` and the token fed back."""
    decoding = Decoding(temperature, top_k, top_p)
    last, state = prime(model, prompt, mask)

    def step(t, last, state, ids):
        token = choose_tokens(last, decoding, tf.stack([seed, tf.cast(t, tf.int64)]))
        logits, state = forward(model, token[:, None], state)
        return t + 1, logits[:, -1, :] + mask, state, ids.write(t, token)

    loop = (tf.constant(0), last, state, tf.TensorArray(tf.int32, size=length))
    _, _, _, ids = tf.while_loop(lambda t, *_: t < length, step, loop)
    return tf.transpose(ids.stack())


@pytest.mark.parametrize("eos_id", [None, 4])
def test_with_the_controls_off_the_ids_are_those_of_the_loop_before_them(
    sampler_for, model, eos_id
):
    """Bit for bit, for the same seed: the sampler (controls as tensors, skipped by tf.cond),
    its stream, and ``rollout`` with Python defaults (the GAN's: no History at all)."""
    sampler = sampler_for([0], eos_id)
    prompt = np.array([2, 5, 5], np.int32)
    prompts = tf.constant(np.tile(prompt, (6, 1)))
    mask, seed = never_mask(12, [0]), tf.constant(9, tf.int64)
    rollout_ids = tf.function(lambda d: rollout(model, prompts, 40, d, seed, mask, eos_id or -1)[0])
    for decoding in [Decoding(1.3), Decoding(0.9, top_k=5, top_p=0.9), Decoding(0.0)]:
        settings = [
            tf.constant(decoding.temperature, tf.float32),
            tf.constant(decoding.top_k, tf.int32),
            tf.constant(decoding.top_p, tf.float32),
        ]
        before = _loop_before_the_controls(model, prompts, 40, *settings, seed, mask).numpy()
        if eos_id is not None:  # rollout's padding after the end token
            is_end = before == eos_id
            before = np.where(np.cumsum(is_end, axis=1) - is_end > 0, 0, before)
        np.testing.assert_array_equal(sampler.generate(prompt, 6, 40, decoding, seed=9), before)
        parts = list(sampler.stream(prompt, 6, 40, decoding, seed=9, chunk=3))
        np.testing.assert_array_equal(np.concatenate(parts, axis=1), before)
        np.testing.assert_array_equal(rollout_ids(decoding).numpy(), before)


def test_the_gans_rollout_builds_none_of_the_controls(model):
    """``Decoding()`` (Python defaults, as the GAN's training steps use it) compiles no
    History and none of the controls' work; Python numbers that turn them on do."""

    def ops(decoding: Decoding) -> set[str]:
        fn = tf.function(
            lambda prompt: rollout(
                model, prompt, 5, decoding, tf.constant(1, tf.int64), never_mask(12, [0]), 4, 2.0
            )
        )
        graph = fn.get_concrete_function(tf.TensorSpec([None, None], tf.int32)).graph
        library = graph.as_graph_def().library.function
        return {n.op for n in graph.as_graph_def().node} | {
            n.op for f in library for n in f.node_def
        }

    work = {"UnsortedSegmentMax", "TensorScatterMax", "TensorScatterUpdate"}
    assert not Decoding().controlled
    assert not ops(Decoding()) & work
    assert ops(Decoding(repetition_penalty=1.5, no_repeat_ngram=2)) >= work


def _ngrams(seq: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]


def _repeats_an_ngram(seq: list[int], n: int) -> bool:
    grams = _ngrams(seq, n)
    return len(set(grams)) < len(grams)


@pytest.mark.parametrize(("n", "length"), [(1, 9), (2, 40), (3, 40)])
def test_no_repeat_ngram_never_repeats_an_ngram_of_the_row(sampler_for, n, length):
    """Prompt included: with n = 1 and 11 drawable ids, the prompt's 2 leave 9 to draw."""
    sampler = sampler_for([0])
    prompt = np.array([2, 5], np.int32)
    free = sampler.generate(prompt, 8, length, Decoding(0.0), seed=3)
    assert any(_repeats_an_ngram([2, 5, *r], n) for r in free.tolist()), "nothing to prevent"
    for decoding in [Decoding(0.0, no_repeat_ngram=n), Decoding(1.5, top_k=6, no_repeat_ngram=n)]:
        for row in sampler.generate(prompt, 8, length, decoding, seed=3).tolist():
            assert not _repeats_an_ngram([2, 5, *row], n), (decoding, row)


def test_a_row_with_every_token_banned_still_draws_a_real_token(sampler_for):
    ids = sampler_for([0]).generate(
        np.array([2, 5], np.int32), 4, 20, Decoding(1.0, no_repeat_ngram=1), seed=1
    )
    assert ((ids >= 1) & (ids < 12)).all()  # never the masked id 0, never out of the vocabulary
    for row in ids:
        assert sorted(row[:9]) == [1, 3, 4, 6, 7, 8, 9, 10, 11]  # every other id, once


def test_penalize_is_ctrls_repetition_penalty():
    logits = tf.constant([[2.0, -2.0, 3.0, 0.0, -1.0]])
    seen = tf.constant([[1.0, 1.0, 0.0, 1.0, 0.0]])
    assert penalize(logits, seen, 2.0).numpy().tolist() == [[1.0, -4.0, 3.0, 0.0, -1.0]]


def test_a_repetition_penalty_repeats_fewer_tokens(sampler_for):
    sampler = sampler_for([0])
    prompt = np.array([2, 5], np.int32)

    def repeated(decoding: Decoding) -> float:
        """The share of drawn tokens already in their row (prompt included)."""
        rows = sampler.generate(prompt, 64, 8, decoding, seed=5).tolist()
        return float(np.mean([t in [2, 5, *r[:i]] for r in rows for i, t in enumerate(r)]))

    off = repeated(Decoding(1.0))
    assert repeated(Decoding(1.0, repetition_penalty=5.0)) < 0.7 * off
    assert repeated(Decoding(1.0, repetition_penalty=0.2)) > off  # below 1: repeats favoured


def test_min_length_keeps_the_end_token_away():
    vocab = Vocabulary.build(["a b c", "b c a"], "word", lines=True)
    seed_everything(0)
    net = build_model(len(vocab), **SMALL.architecture)
    kernel, bias = logits_layer(net).get_weights()
    bias[vocab.eos_id] = 3.0  # ends most sequences within a few tokens
    logits_layer(net).set_weights([kernel, bias])
    sampler = Sampler(net, vocab.never_sampled, vocab.eos_id)
    context = prompt_context(vocab, "")

    def ends(decoding: Decoding) -> list[int]:
        rows = sampler.generate(context, 64, 12, decoding, seed=2)
        parts = list(sampler.stream(context, 64, 12, decoding, seed=2, chunk=2, max_chunk=2))
        np.testing.assert_array_equal(np.concatenate(parts, axis=1), rows)
        return [int(np.argmax(r == vocab.eos_id)) if vocab.eos_id in r else 12 for r in rows]

    assert min(ends(Decoding(1.0))) < 5
    held = ends(Decoding(1.0, min_length=5))
    assert min(held) == 5 and sum(e < 12 for e in held) > 32  # then it may, and does, end


def test_cut_at_stop_ends_before_the_first_stop_string_after_start():
    assert cut_at_stop("Hello. World. Bye.", ["."]) == "Hello"
    assert cut_at_stop("one two\n\nthree", ["\n\n", "two"]) == "one "  # the first of any
    assert cut_at_stop("abcabc", ["bc"], start=2) == "abca"
    assert cut_at_stop("abcabc", ["bc"], start=1) == "a"  # one beginning at start counts
    assert cut_at_stop("abc", ["bc"], start=5) == "abc"
    assert cut_at_stop("abc", ["x"]) == cut_at_stop("abc", []) == "abc"
    assert check_stops(("a", "bc"), 2) == ["a", "bc"]
    with pytest.raises(ValueError, match="non-empty"):
        check_stops(["a", ""], 5)
    with pytest.raises(ValueError, match="'abcd' has 4 characters, more than the 3 tokens"):
        check_stops(["abcd"], 3)


WORDS = Vocabulary.build(["the cat sat on the mat"], "word", lines=True)


def _word_ids(text: str) -> list[int]:
    return [WORDS.tokens.index(w) for w in text.split()]


def test_stops_are_searched_after_the_first_min_length_tokens_and_ids_follow_the_text():
    tokens = np.array([*_word_ids("the cat sat on the mat"), WORDS.eos_id])
    row = np.concatenate([tokens, [0, 0]])  # padding after the end token
    assert decode_texts(WORDS, [row]) == ["the cat sat on the mat"]
    assert decode_texts(WORDS, [row], ["the"]) == [""]
    assert decode_texts(WORDS, [row], ["the"], min_length=1) == ["the cat sat on "]
    assert decode_texts(WORDS, [row], [" on", "mat"], min_length=2) == ["the cat sat"]
    # The record's ids: the tokens of the text kept (the end token only when nothing was cut).
    assert kept_tokens(WORDS, tokens, "the cat sat on the mat").tolist() == tokens.tolist()
    assert kept_tokens(WORDS, tokens, "the cat sat on ").tolist() == _word_ids("the cat sat on")
    assert kept_tokens(WORDS, tokens, "the cat sat o").tolist() == _word_ids("the cat sat")
    assert kept_tokens(WORDS, tokens, "").tolist() == []


@pytest.mark.parametrize("stop", [["t s"], ["mat"], ["sat on the"], ["x"], ["on", "cat"]])
def test_streamed_words_stop_where_the_whole_text_does(stop):
    """One token a chunk: a stop string that spans tokens (and the spaces between them) is
    held back until it is known, and the text only ever grows."""
    row = np.array([*_word_ids("the cat sat on the mat"), WORDS.eos_id, 0])
    chunks = [row[None, i : i + 1] for i in range(len(row))]
    streamed = [texts for texts, _ in stream_texts(chunks, WORDS, 1, stop)]
    for before, after in itertools.pairwise(streamed):
        assert after[0].startswith(before[0]), streamed
    assert streamed[-1] == decode_texts(WORDS, [row], stop)


CHARS = Vocabulary.from_text("abcdefghij\n")  # 11 characters and <unk>: the model's 12 ids


@pytest.mark.parametrize("chunk", [1, 3, 8])
def test_streamed_text_stops_where_the_whole_text_does(sampler_for, chunk):
    sampler = sampler_for(CHARS.never_sampled, CHARS.eos_id)
    prompt = CHARS.encode("ab")
    cut = 0
    for stop, min_length in [([], 0), (["c"], 0), (["ca", "jj", "\n"], 3), (["d", "fgh"], 5)]:
        decoding = Decoding(1.2, min_length=min_length)
        rows = sampler.generate(prompt, 6, 30, decoding, seed=4)
        whole = decode_texts(CHARS, rows, stop, min_length)
        cut += sum(len(t) < 30 for t in whole)
        chunks = sampler.stream(prompt, 6, 30, decoding, seed=4, chunk=chunk, max_chunk=chunk)
        streamed = [texts for texts, _ in stream_texts(chunks, CHARS, 6, stop, min_length)]
        for before, after in itertools.pairwise(streamed):
            assert all(a.startswith(b) for a, b in zip(after, before, strict=True))
        assert streamed[-1] == whole
    assert cut > 6, "the stop strings must cut some texts"


def test_streaming_stops_once_every_row_has_stopped(sampler_for):
    sampler = sampler_for()
    read = []

    def counted(chunks):
        for ids in chunks:
            read.append(ids.shape[1])
            yield ids

    every = [*"abcdefghij\n", "\ufffd"]  # whatever is drawn first stops its row
    chunks = counted(sampler.stream(CHARS.encode("ab"), 4, 500, chunk=2, max_chunk=2))
    out = list(stream_texts(chunks, CHARS, 4, every))
    assert out == [([""] * 4, 2)] and read == [2], "no chunk after every row stopped"


def test_generate_texts_cuts_at_stop_strings():
    seed_everything(0)
    text = "abcdefgh" * 400
    vocab = Vocabulary.from_text(text)
    net = build_model(len(vocab), **SMALL.architecture)
    texts = generate_texts(net, vocab, "ab", 3, 20, Decoding(1.0, min_length=2), 1, ["a", "b"])
    full = generate_texts(net, vocab, "ab", 3, 20, Decoding(1.0, min_length=2), 1)
    assert texts == [cut_at_stop(t, ["a", "b"], 2) for t in full] != full
