"""The vocabulary: the token table, its tokenizers, its JSON form."""

import numpy as np
import pytest

from textgen.artifacts import load_vocab, save_vocab
from textgen.corpus import unk_rate
from textgen.errors import UserError
from textgen.vocab import UNK_TEXT, CharTokenizer, Vocabulary, WordTokenizer

KOREAN = "로미오: 오, 줄리엣! 그대는 태양이오.\n줄리엣: 이름이 무슨 소용인가요?\n"


def test_vocabulary_round_trip_and_unknowns():
    vocab = Vocabulary.from_text("hello world\n")
    ids = vocab.encode("hello world\n")
    assert ids.dtype == np.int32
    assert vocab.decode(ids) == "hello world\n"
    assert vocab.unk_id not in ids
    unknown = vocab.encode("help!")
    assert unknown.tolist()[-2:] == [vocab.unk_id, vocab.unk_id]  # 'p' and '!' unseen
    assert vocab.decode(unknown) == f"hel{UNK_TEXT}{UNK_TEXT}"
    assert unk_rate(unknown, vocab) == pytest.approx(2 / 5)


def test_korean_round_trip_and_json(tmp_path):
    vocab = Vocabulary.from_text(KOREAN)
    ids = vocab.encode(KOREAN)
    assert vocab.decode(ids) == KOREAN
    assert "태" in vocab.tokens
    save_vocab(vocab, tmp_path / "vocab.json")
    again = load_vocab(tmp_path / "vocab.json")
    assert again == vocab
    assert "태" in (tmp_path / "vocab.json").read_text(encoding="utf-8")  # readable, not escaped


def test_lowercase_vocabulary_folds_input():
    vocab = Vocabulary.from_text("romeo", lowercase=True)
    assert vocab.decode(vocab.encode("ROMEO")) == "romeo"


def test_word_vocabulary_keeps_the_most_frequent_words_and_maps_the_rest_to_unknown():
    vocab = Vocabulary.build(["the cat saw the dog.\nthe cat ran"], "word", max_size=5)
    # <unk>, then by falling count: the (3), cat (2), then ties in order: "\n" < "."
    assert vocab.tokens == ("<unk>", "the", "cat", "\n", ".")
    assert vocab.decode(vocab.encode("the bird ran.")) == "the <unk> <unk> ."
    assert vocab.decode(vocab.encode("the cat\nthe")) == "the cat\nthe"


def test_each_kind_has_its_tokenizer_and_both_survive_json(tmp_path):
    words = Vocabulary.build(["the cat\nthe dog ."], "word", lines=True)
    chars = Vocabulary.from_text("abc")
    assert isinstance(words.tokenizer, WordTokenizer)
    assert isinstance(chars.tokenizer, CharTokenizer)
    for vocab in (words, chars):
        save_vocab(vocab, tmp_path / "v.json")
        again = load_vocab(tmp_path / "v.json")
        assert again == vocab
        assert again.decode(again.encode("the cat")) == vocab.decode(vocab.encode("the cat"))
    assert (words.pad_id, words.unk_id, words.bos_id, words.eos_id) == (0, 1, 2, 3)


def test_unknown_kinds_and_misplaced_specials_are_one_line_errors():
    with pytest.raises(UserError, match="unsupported kind 'syllable'"):
        Vocabulary.from_json({"kind": "syllable", "tokens": ["a"]})
    with pytest.raises(UserError, match="special tokens must come first"):
        Vocabulary.from_json(
            {"kind": "char", "tokens": ["a", "<unk>"], "special_tokens": {"unk": 1}}
        )
