"""The tokenizers beyond characters and words: Hangul jamo, UTF-8 bytes, a learned BPE.

Round trips are properties (hypothesis draws mixed Korean, jamo, ASCII and emoji strings);
the per-character figures are checked against their definition; the export's graph ops
against the Python ones; and each tokenizer runs the whole pipeline on tiny Korean text.
"""

import itertools
import json
import logging
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.corpora import make_korean, make_play
from tests.params import merged
from tests.repos import (
    EVALUATE_KEYS,
    PIPELINE,
    TINY_PARAMS,
    UP_TO_EVALUATE,
    init_repo,
    make_repo,
    read_metrics,
    run_stages,
)
from textgen.artifacts import load_vocab, save_vocab
from textgen.config import DataParams
from textgen.corpus import prepare_files
from textgen.errors import UserError
from textgen.metrics import likelihood_metrics
from textgen.sampling import stream_texts
from textgen.vocab import UNK_TEXT, TextSize, Vocabulary

# Mixed scripts: precomposed syllables, conjoining and compatibility jamo, ASCII, emoji.
MIXED = st.lists(
    st.one_of(
        st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3),
        st.characters(min_codepoint=0x1100, max_codepoint=0x11FF),
        st.characters(min_codepoint=0x3131, max_codepoint=0x318E),
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
        st.sampled_from(["\n", "😀", "🇰🇷", "e\u0301"]),
    ),
    max_size=60,
).map(lambda chars: unicodedata.normalize("NFC", "".join(chars)))
KOREAN = make_korean(80, seed=5) + make_play(40, seed=5)


@pytest.fixture(scope="module")
def bpe() -> Vocabulary:
    return Vocabulary.build([KOREAN], "bpe", max_size=400)


@settings(max_examples=300, deadline=None)
@given(MIXED)
def test_jamo_decodes_every_nfc_text_to_itself(text):
    vocab = Vocabulary.build([text], "jamo")
    ids = vocab.encode(text)
    assert vocab.unk_id not in ids
    assert vocab.decode(ids) == text


def test_jamo_tokens_are_the_jamo_and_a_half_built_syllable_shows_as_its_jamo():
    vocab = Vocabulary.build(["한국어 글자, ABC"], "jamo")
    hangul = [t for t in vocab.tokens if "\u1100" <= t <= "\u11ff"]
    assert len(hangul) == len(vocab.tokens) - len(set("ABC ,")) - 1  # every other token a jamo
    ids = vocab.encode("한")  # ᄒ ᅡ ᆫ
    assert len(ids) == 3
    assert vocab.decode(ids[:2]) == "하"
    assert vocab.decode(ids[:1]) == "\u1112"  # the lone consonant, not dropped


def test_jamo_knows_a_syllable_it_never_saw_whole():
    train, unseen = "가나다 각난닫", "간"  # 간 = ᄀ ᅡ ᆫ: all three seen, the syllable not
    chars, jamo = Vocabulary.build([train], "char"), Vocabulary.build([train], "jamo")
    assert chars.encode(unseen).tolist() == [chars.unk_id]
    assert jamo.unk_id not in jamo.encode(unseen)
    assert jamo.decode(jamo.encode(unseen)) == unseen
    # 100 syllables from 5 leading consonants, 5 vowels and 3 finals (or none): 13 jamo.
    blocks = [
        chr(0xAC00 + (lead * 21 + v) * 28 + t)
        for lead in range(5)
        for v in range(5)
        for t in range(4)
    ]
    assert len(Vocabulary.build(blocks, "char")) == 1 + 100
    assert len(Vocabulary.build(blocks, "jamo")) == 1 + 13


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_bytes_round_trip_any_text_with_no_unknown(text):
    vocab = Vocabulary.build(["seen nothing"], "byte")
    ids = vocab.encode(text)
    assert len(vocab) == 257 and vocab.unk_id not in ids
    assert len(ids) == len(text.encode("utf-8"))
    assert vocab.decode(ids) == text


def test_bytes_that_stop_or_wander_mid_character_decode_to_replacement_characters():
    vocab = Vocabulary.build([""], "byte", lines=True)
    ids = vocab.encode("가나")
    assert vocab.decode(ids[:-1]) == "가" + UNK_TEXT  # the sample ended mid-character
    rng = np.random.default_rng(0)
    wandering = rng.integers(4, len(vocab), 200)
    raw = bytes((wandering - 4).tolist())
    assert vocab.decode(wandering) == raw.decode("utf-8", errors="replace")


@settings(max_examples=200, deadline=None)
@given(MIXED)
def test_bpe_round_trips_any_text_with_no_unknown(bpe, text):
    ids = bpe.encode(text)
    assert bpe.unk_id not in ids
    assert bpe.decode(ids) == text


def test_bpe_has_the_size_asked_learns_words_and_saves_and_loads(bpe, tmp_path):
    assert len(bpe) == 400
    assert len(bpe.encode(KOREAN)) < 0.6 * len(KOREAN.encode("utf-8"))  # merges did happen
    again = Vocabulary.build([KOREAN], "bpe", max_size=400)
    assert again == bpe  # learning is deterministic
    save_vocab(bpe, tmp_path / "v.json")
    loaded = load_vocab(tmp_path / "v.json")
    assert loaded == bpe
    assert loaded.encode(KOREAN).tolist() == bpe.encode(KOREAN).tolist()


def test_a_corrupt_or_mismatched_subword_model_is_one_line_naming_the_file(bpe, tmp_path):
    data = bpe.to_json()
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({**data, "model": {"model": "garbage"}}))
    with pytest.raises(UserError, match=r"vocab.json: vocabulary: 'model' is not a valid BPE"):
        load_vocab(path)
    path.write_text(json.dumps({**data, "tokens": [*data["tokens"][:-1], "zz"]}))
    with pytest.raises(UserError, match=r"vocab.json: .* BPE model's tokens differ"):
        load_vocab(path)
    path.write_text(json.dumps({k: v for k, v in data.items() if k != "model"}))
    with pytest.raises(UserError, match=r"vocab.json: vocabulary: 'model' is not a valid BPE"):
        load_vocab(path)


DATA = dict(
    corpus="data/raw/x", lowercase=False, split="per_file", val_fraction=0.1,
    test_fraction=0.1, max_len=64,
)  # fmt: skip


@pytest.mark.parametrize(
    "tokenizer, unit, max_vocab, message",
    [
        ("bpe", "stream", None, "data.max_vocab: the bpe tokenizer .* at least 257"),
        ("bpe", "line", 259, "data.max_vocab: the bpe tokenizer .* at least 260 .* got 259"),
        ("byte", "stream", 100, "data.max_vocab: the byte tokenizer's vocabulary .* got 100"),
        ("sentencepiece", "stream", None, "tokenizer"),
    ],
)
def test_a_vocabulary_that_cannot_hold_the_bytes_is_refused(tokenizer, unit, max_vocab, message):
    with pytest.raises(ValueError, match=message):
        DataParams(**DATA, unit=unit, tokenizer=tokenizer, max_vocab=max_vocab)
    DataParams(
        **DATA, unit="line", tokenizer="byte", max_vocab=None
    )  # the bytes and the specials: fine


def test_jamo_without_hangul_works_and_says_so_once(tmp_path, caplog):
    (tmp_path / "a.txt").write_text(make_play(60, seed=1))
    with caplog.at_level(logging.WARNING):
        corpus = prepare_files([tmp_path / "a.txt"], tmp_path, 0.1, 0.1, tokenizer="jamo")
    said = [r.getMessage() for r in caplog.records if "no Hangul" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("data.tokenizer: jamo")
    (tmp_path / "c").mkdir()
    chars = prepare_files([tmp_path / "a.txt"], tmp_path / "c", 0.1, 0.1, tokenizer="char")
    assert corpus.vocab.tokens == chars.vocab.tokens


@pytest.mark.parametrize("kind", ["char", "jamo", "byte", "bpe"])
def test_prepare_counts_the_characters_and_bytes_each_split_encodes(tmp_path, kind):
    text = make_korean(100, seed=1)
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    size = 300 if kind == "bpe" else None
    out = tmp_path / "out"
    out.mkdir()
    corpus = prepare_files([tmp_path / "a.txt"], out, 0.1, 0.1, tokenizer=kind, max_vocab=size)
    m = corpus.metrics
    splits = [corpus.vocab.decode(np.load(out / f"{s}.npy")) for s in ("train", "val", "test")]
    assert "".join(splits) == text  # every tokenizer here loses nothing of this text
    for name, part in zip(("train", "val", "test"), splits, strict=True):
        assert m[f"{name}_characters"] == len(part)
        assert m[f"{name}_bytes"] == len(part.encode("utf-8"))
    tokens_per_char = m["test_tokens"] / m["test_characters"]
    # Spaces and punctuation are one token each: fewer per character than a syllable's.
    expected = {"char": 1.0, "jamo": (1.5, 3.0), "byte": (1.8, 3.0), "bpe": (0.2, 1.5)}[kind]
    if isinstance(expected, float):
        assert tokens_per_char == expected
    else:
        assert expected[0] < tokens_per_char < expected[1]


def test_per_character_likelihood_is_the_total_over_the_characters():
    text = TextSize(tokens=300, characters=100, bytes=250)
    m = likelihood_metrics(2.0, "test_", text)
    assert list(m)[:2] == ["test_nats_per_char", "test_bits_per_byte"]  # they lead
    assert m["test_nats_per_char"] == pytest.approx(6.0)
    assert m["test_bits_per_byte"] == pytest.approx(600 / 250 / np.log(2))
    assert m["test_nll_nats"] == 2.0
    assert "test_nats_per_char" not in likelihood_metrics(2.0, "test_")  # tokens, not text


@pytest.mark.parametrize("kind", ["jamo", "byte", "bpe"])
def test_a_streamed_text_only_grows_even_mid_character(kind, bpe):
    text = "한국어 텍스트를 한 글자씩. 😀 끝"
    vocab = bpe if kind == "bpe" else Vocabulary.build([text], kind)
    ids = vocab.encode(text)
    chunks = [ids[i : i + 1][None, :] for i in range(len(ids))]
    seen = [texts[0] for texts, _ in stream_texts(chunks, vocab, 1)]
    assert all(a == b[: len(a)] for a, b in itertools.pairwise(seen))
    assert seen[-1] == text
    assert not any(UNK_TEXT in t for t in seen)  # a partial character is never shown


@pytest.mark.parametrize("kind", ["jamo", "byte", "bpe", "jamo-line"])
def test_the_exports_graph_encodes_and_decodes_as_python_does(kind, bpe):
    from textgen.backend import tf
    from textgen.export import GraphVocabulary

    kind, _, lines = kind.partition("-")
    vocab = bpe if kind == "bpe" else Vocabulary.build([KOREAN], kind, lines=bool(lines))
    graph = GraphVocabulary(vocab)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, len(vocab), (40, 30)).astype(np.int32)
    decoded = [t.decode() for t in graph.decode(tf.constant(ids)).numpy()]
    assert decoded == vocab.decode_rows(ids)
    text = "로미오와 줄리엣, 각ᅡ ᄀ가 ROMEO 😀\n"
    encoded = graph.encode(tf.constant(text)).numpy()
    if kind == "bpe":  # spelled byte by byte, which decodes to the same text
        assert len(encoded) == len(text.encode("utf-8"))
        assert vocab.decode(encoded) == text
    else:
        assert encoded.tolist() == vocab.encode(text).tolist()


@pytest.mark.slow
def test_jamo_byte_and_bpe_tokens_run_the_whole_pipeline(tmp_path):
    """Korean as jamo (a stream), byte (lines) and bpe (a stream) through every stage, the GAN
    included, in process; every likelihood is also per character, and those agree with the
    per-token figures. The stages trace nothing again and again."""
    repo = make_repo(tmp_path / "repo")
    (repo / "data/raw/tiny/play.txt").write_text(make_korean(300, seed=2), encoding="utf-8")
    init_repo(repo)
    fast = {"gan": {"steps": 2, "log_every": 2}, "sample": {"prompt": "로미오"}}
    for tokenizer, unit, size in [
        ("jamo", "stream", None),
        ("byte", "line", None),
        ("bpe", "stream", 300),
    ]:
        data = {"tokenizer": tokenizer, "unit": unit, "max_vocab": size, "max_len": 80}
        params = merged(TINY_PARAMS, {**fast, "data": data})
        (repo / "params.yaml").write_text(json.dumps(params))
        # The jamo and byte exports' graphs are checked above (as Python encodes and
        # decodes); bpe's export runs here too, its prompt spelled byte by byte.
        run_stages(repo, PIPELINE if tokenizer == "bpe" else UP_TO_EVALUATE)
        stats = json.loads((repo / "data/prepared/stats.json").read_text())
        assert stats["tokenizer"] == tokenizer
        ratio = stats["test_tokens"] / stats["test_characters"]
        evaluated = json.loads((repo / "metrics/evaluate.json").read_text())
        for model in ("lstm", "gan", "judge"):
            m = evaluated[model]
            assert next(iter(m)) == "test_nats_per_char"  # leads in dvc exp show
            assert m["test_nats_per_char"] == pytest.approx(m["test_nll_nats"] * ratio)
        for stage in ("lstm", "judge", "gan"):
            assert "val_nats_per_char" in json.loads((repo / f"metrics/{stage}.json").read_text())
        assert read_metrics(repo)["results/evaluate.json"]["gan"].keys() >= EVALUATE_KEYS
        # Every text a model writes is recomposed into syllables (jamo: 2-3 tokens each).
        sample = json.loads((repo / "samples/gan.jsonl").open(encoding="utf-8").readline())
        assert any("\uac00" <= ch <= "\ud7a3" for ch in sample["text"])
        if tokenizer == "jamo":
            vocab = json.loads((repo / "data/prepared/vocab.json").read_text(encoding="utf-8"))
            assert "\u110c" in vocab["tokens"] and "줄" not in vocab["tokens"]  # ᄌ, no syllable
            assert 1.5 < ratio < 3  # spaces: one token each
        else:
            assert stats["unk_rate_test"] == 0.0
    assert (repo / "exports/gan/saved_model/saved_model.pb").is_file()  # bpe's
