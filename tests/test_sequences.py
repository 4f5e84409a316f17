"""Sentence corpora: word tokens, independent lines with begin/end tokens and padding."""

import json

import numpy as np
import pytest

from tests.corpora import make_play
from tests.params import lstm_params
from tests.test_corpus import prepare
from textgen.backend import tf
from textgen.corpus import encode_lines, real_tokens
from textgen.evaluation import lm_score
from textgen.model import build_model, logits_layer
from textgen.sampling import Decoding, never_mask, prompt_context, rollout, sampler_for
from textgen.scoring import heldout_nll
from textgen.seeding import seed_everything
from textgen.sources import PAD_ID, RowSource
from textgen.training import train
from textgen.vocab import Vocabulary

SMALL = lstm_params(embedding_dim=8, hidden=16, layers=1, batch_size=16, epochs=3, warmup_steps=0)


def test_lines_become_rows_of_begin_tokens_end_and_padding():
    vocab = Vocabulary.build(["a b c", "b c"], "word", lines=True)
    assert vocab.specials == ("<pad>", "<unk>", "<bos>", "<eos>") and vocab.pad_id == PAD_ID
    rows, dropped = encode_lines(vocab, ["a b", "c", "a b c d e"], max_len=3)
    a, b, c = (vocab.tokens.index(t) for t in "abc")
    assert dropped == 1  # five tokens do not fit in three
    assert rows.tolist() == [[2, a, b, 3, 0], [2, c, 3, 0, 0]]
    assert vocab.decode_rows(rows) == ["a b", "c"]
    assert vocab.decode([2, a, 3, b, b]) == "a"  # the end token ends the text
    assert RowSource(rows).text(vocab) == "a b\nc"
    again = Vocabulary.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again == vocab and again.to_json()["special_tokens"] == {
        "pad": 0,
        "unk": 1,
        "bos": 2,
        "eos": 3,
    }


def test_character_streams_keep_their_vocabulary_file_format():
    vocab = Vocabulary.from_text("ab\n")
    assert vocab.to_json()["special_tokens"] == {"unk": 0}
    assert vocab.tokens == ("<unk>", "\n", "a", "b")
    assert prompt_context(vocab, "").tolist() == [1]  # an empty prompt starts at a line break


def test_prepare_lines_splits_lines_per_file_and_counts_sequences(tmp_path):
    docs = ["\n".join(f"f{f} line {i}" for i in range(20)) + "\n" for f in range(2)]
    corpus, train, val, test = prepare(
        tmp_path, docs, 0.1, 0.1, unit="line", tokenizer="word", max_len=4
    )
    assert train.shape == (32, 6) and val.shape == test.shape == (4, 6)
    assert corpus.vocab.decode_rows(test[:2]) == ["f0 line <unk>"] * 2  # lines 18, 19
    m = corpus.metrics
    assert m["train_sequences"] == 32 and m["train_tokens"] == 32 * 4  # 3 words + <eos>
    assert m["unk_rate_test"] > 0  # "18", "19" never occur in training


def rows_of(text: str, max_len: int = 12):
    lines = [ln for ln in text.split("\n") if ln.strip()]
    vocab = Vocabulary.build(lines, "word", lines=True)
    rows, _ = encode_lines(vocab, lines, max_len)
    return vocab, rows


def test_padding_never_counts_in_the_loss_or_the_metrics():
    vocab, rows = rows_of(make_play(60, seed=1))
    seed_everything(0)
    model = build_model(len(vocab), **SMALL.architecture)
    wider = np.concatenate([rows, np.zeros((len(rows), 7), np.int32)], axis=1)
    assert heldout_nll(model, RowSource(wider), 32) == pytest.approx(
        heldout_nll(model, RowSource(rows), 32), rel=1e-5
    )
    context = rows[:, :1]
    assert lm_score(model, context, wider[:, 1:], vocab.pad_id) == pytest.approx(
        lm_score(model, context, rows[:, 1:], vocab.pad_id), rel=1e-5
    )
    _, y, w = next(iter(RowSource(rows).batches(16, 99, seed=0)))
    np.testing.assert_array_equal(w.numpy(), (y.numpy() != PAD_ID).astype(np.float32))
    assert (w.numpy() == 0).any()  # there is padding, and it weighs nothing


def test_training_on_lines_lowers_the_held_out_nll():
    vocab, rows = rows_of(make_play(300, seed=2))
    seed_everything(0)
    model = build_model(len(vocab), **SMALL.architecture)
    held_out = RowSource(rows[-50:])
    before = heldout_nll(model, held_out, 32)
    train(model, RowSource(rows[:-50]), held_out, SMALL, seed=0, verbose=0)
    assert heldout_nll(model, held_out, 32) < before - 0.5


def test_the_end_token_ends_a_sample_and_specials_are_never_drawn():
    vocab, _ = rows_of("a b c\nb c a\n")
    seed_everything(0)
    model = build_model(len(vocab), **SMALL.architecture)
    kernel, bias = logits_layer(model).get_weights()
    bias[[vocab.pad_id, vocab.bos_id]] = 20.0  # the net would pick these, were they allowed
    bias[vocab.eos_id] = 2.0  # ... and ends sequences early
    logits_layer(model).set_weights([kernel, bias])
    ids = sampler_for(model, vocab).generate(
        prompt_context(vocab, ""), 64, 30, Decoding(1.0), seed=1
    )
    assert not np.isin(ids, [vocab.bos_id]).any()
    ended = 0
    for row in ids:
        ends = np.flatnonzero(row == vocab.eos_id)
        if len(ends):
            ended += 1
            assert (row[ends[0] + 1 :] == PAD_ID).all()  # nothing after the end token
        assert (row[: (ends[0] if len(ends) else len(row))] != PAD_ID).all()
    assert ended > 32  # most samples end well before 30 tokens
    texts = vocab.decode_rows(ids)
    assert all("<eos>" not in t and "<pad>" not in t for t in texts)
    assert real_tokens(ids[0], vocab).tolist() == ids[0][ids[0] != PAD_ID].tolist()


def test_gumbel_rollout_pads_after_the_end_token_hard_and_soft():
    vocab, _ = rows_of("a b c\nb c a\n")
    seed_everything(0)
    model = build_model(len(vocab), **SMALL.architecture)
    kernel, bias = logits_layer(model).get_weights()
    bias[vocab.eos_id] = 3.0
    logits_layer(model).set_weights([kernel, bias])
    first = tf.fill([32, 1], vocab.bos_id)
    never = never_mask(len(vocab), vocab.never_sampled)
    ids, soft = rollout(
        model, first, 12, Decoding(), tf.constant(3, tf.int64), never, vocab.eos_id, 5.0
    )
    ids, soft = ids.numpy(), soft.numpy()
    cut = [np.flatnonzero(r == vocab.eos_id) for r in ids]
    assert sum(len(c) > 0 for c in cut) > 16
    for row, probs, c in zip(ids, soft, cut, strict=True):
        if len(c):
            assert (row[c[0] + 1 :] == PAD_ID).all()
            assert np.allclose(probs[c[0] + 1 :, PAD_ID], 1.0)
