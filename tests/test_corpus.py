import logging
import unicodedata
from pathlib import Path

import numpy as np
import pytest

import textgen.corpus
from tests import reference_prepare as reference
from tests.corpora import make_korean, make_play
from textgen.artifacts import load_tokens
from textgen.corpus import corpus_files, document_blocks, iter_text, prepare_files
from textgen.errors import UserError

KOREAN = "로미오: 오, 줄리엣! 그대는 태양이오.\n줄리엣: 이름이 무슨 소용인가요?\n"


def read_text(path: Path) -> str:
    return "".join(iter_text(path))


def prepare(tmp_path: Path, docs: list[str], *args, **kwargs):
    """``prepare_files`` on ``docs`` written as files: (corpus, train, val, test)."""
    folder = tmp_path / "raw"
    folder.mkdir(exist_ok=True)
    files = []
    for i, doc in enumerate(docs):
        files.append(folder / f"{i:03d}.txt")
        files[-1].write_text(doc, encoding="utf-8")
    out = tmp_path / "prepared"
    out.mkdir(exist_ok=True)
    corpus = prepare_files(files, out, *args, **kwargs)
    return corpus, *(load_tokens(out / f"{split}.npy") for split in ("train", "val", "test"))


def test_corpus_files_file_folder_and_glob(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ["a/2.txt", "a/1.txt", "a/notes.md", "b.txt"]:
        (tmp_path / name).write_text("x\n")
    assert corpus_files("b.txt", tmp_path) == [tmp_path / "b.txt"]
    assert corpus_files("a", tmp_path) == [tmp_path / "a/1.txt", tmp_path / "a/2.txt"]
    assert corpus_files("*.txt", tmp_path) == [tmp_path / "b.txt"]
    assert len(corpus_files("**/*.txt", tmp_path)) == 3


def test_corpus_files_errors_name_the_key(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"^data.corpus: missing does not exist"):
        corpus_files("missing", tmp_path)
    with pytest.raises(UserError, match=r"^data.corpus: the folder empty holds no .txt files"):
        corpus_files("empty", tmp_path)
    with pytest.raises(UserError, match=r"matches no files"):
        corpus_files("*.csv", tmp_path)


def test_non_utf8_names_file_and_byte_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("héllo".encode("latin-1"))
    with pytest.raises(UserError) as err:
        read_text(path)
    assert str(path) in str(err.value)
    assert "byte offset 1" in str(err.value)


def test_nul_bytes_name_file_and_first_offset(tmp_path):
    # UTF-16 without a byte-order mark: ASCII letters each followed by a NUL byte, which
    # decodes as valid UTF-8, so it must be refused for the NUL bytes themselves.
    path = tmp_path / "utf16.txt"
    path.write_bytes("hello world\n".encode("utf-16-le"))
    with pytest.raises(UserError) as err:
        read_text(path)
    message = str(err.value)
    assert message.startswith(f"{path}: contains NUL bytes (first at byte offset 1)"), message
    assert "UTF-16" in message and "\n" not in message
    # Non-ASCII UTF-16 (not valid UTF-8 either) gets the same message, not a decoding error.
    path.write_bytes("hé\n".encode("utf-16-be"))
    with pytest.raises(UserError, match=r"contains NUL bytes \(first at byte offset 0\)"):
        read_text(path)
    path.write_bytes(b"text\n\x00\x01binary")
    with pytest.raises(UserError, match=r"first at byte offset 5\)"):
        read_text(path)


@pytest.mark.parametrize(
    ("encoding", "name"),
    [("utf-16", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32", "UTF-32")],
)
def test_a_utf16_or_utf32_byte_order_mark_names_the_encoding(tmp_path, encoding, name):
    path = tmp_path / "bom.txt"
    bom = {"utf-16-be": "\ufeff"}.get(encoding, "")  # utf-16 and utf-32 write their own
    path.write_bytes((bom + "héllo\n").encode(encoding))
    with pytest.raises(UserError) as err:
        read_text(path)
    message = str(err.value)
    assert message == (
        f"{path}: starts with a {name} byte-order mark; not UTF-8 text (re-save the file as UTF-8)"
    )


def test_normalisation_nfc_bom_and_newlines(tmp_path):
    path = tmp_path / "t.txt"
    decomposed = unicodedata.normalize("NFD", "café 한국어")
    path.write_bytes(b"\xef\xbb\xbf" + f"{decomposed}\r\nline\rend".encode())
    text = read_text(path)
    assert text == "café 한국어\nline\nend"
    assert unicodedata.is_normalized("NFC", text)


def test_every_file_ends_in_a_line_break_and_a_blank_corpus_is_refused(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "b.txt").write_text("TWO\n")
    assert "".join(document_blocks(tmp_path / "a.txt")) == "one\n"
    assert "".join(document_blocks(tmp_path / "b.txt", lowercase=True)) == "two\n"
    with pytest.raises(UserError, match=r"^data.corpus: the corpus is empty \(.*1.txt\)"):
        prepare(tmp_path, [" \n\n", "\t"], 0.1, 0.1)


def test_whole_split_is_contiguous_and_complete(tmp_path, play_text):
    cut = play_text.index("\n", 1000) + 1  # each file ends in a line break, as read
    corpus, train, val, test = prepare(
        tmp_path, [play_text[:cut], play_text[cut:]], 0.1, 0.05, per_file=False
    )
    decode = corpus.vocab.decode
    assert decode(train) + decode(val) + decode(test) == play_text
    assert len(val) == int(len(play_text) * 0.1)
    assert len(test) == int(len(play_text) * 0.05)


def test_per_file_split_holds_out_the_end_of_every_file(tmp_path):
    docs = ["a" * 80 + "b" * 10 + "c" * 9, "d" * 160 + "e" * 20 + "f" * 19]  # + line breaks
    corpus, train, val, test = prepare(tmp_path, docs, 0.1, 0.1, per_file=True)
    assert corpus.vocab.decode(train) == "a" * 80 + "d" * 160
    assert corpus.vocab.decode(val) == "\ufffd" * 30  # b and e: never seen in training
    assert len(test) == 30 and corpus.characters == 300


def test_split_refuses_too_little_text(tmp_path):
    with pytest.raises(UserError, match="too few to split"):
        prepare(tmp_path, ["ab"], 0.1, 0.1)
    with pytest.raises(UserError, match="too few to split"):
        prepare(tmp_path, ["abcdefghijklmn"], 0.1, 0.1, per_file=True)  # 1 held-out char


def test_prepare_builds_vocabulary_from_train_only(tmp_path):
    text = "a" * 80 + "b" * 10 + "c" * 9  # 'b' only in val, 'c' (and the line break) in test
    corpus, *_ = prepare(tmp_path, [text], 0.1, 0.1)
    assert corpus.vocab.tokens[1:] == ("a",)
    metrics = corpus.metrics
    assert metrics["train_tokens"] == 80
    assert metrics["val_tokens"] == metrics["test_tokens"] == 10
    assert metrics["vocab_size"] == 2
    assert metrics["unk_rate_val"] == metrics["unk_rate_test"] == 1.0


def test_prepare_korean(tmp_path):
    corpus, train, _, _ = prepare(tmp_path, [KOREAN * 20], 0.1, 0.1)
    assert corpus.metrics["unk_rate_val"] == 0.0
    assert corpus.vocab.decode(train[:5]) == KOREAN[:5]


def test_the_corpus_is_read_a_block_at_a_time(tmp_path, monkeypatch):
    """Blocks end after whitespace: a file is never held whole, and cutting it changes nothing."""
    path = tmp_path / "t.txt"
    text = make_play(200)
    path.write_text(text)
    monkeypatch.setattr(textgen.corpus, "BLOCK_BYTES", 1000)
    blocks = list(iter_text(path))
    assert len(blocks) > 5 and max(map(len, blocks)) < 1200
    assert all(block[-1].isspace() for block in blocks[:-1])
    assert "".join(blocks) == text


# Texts where cutting into blocks could go wrong: CRLF pairs, multi-byte characters and combining
# marks (NFD) at any byte, Greek final sigma under lower-casing, words running across the end of
# one file's piece into the next file's, a file without a final line break, a UTF-8 BOM, a
# stretch with no whitespace at all, blank lines and lines that are too long.
AWKWARD = [
    "\ufeffROMEO.\r\nBut soft, what light\r\nthrough yonder window breaks?\r\n" * 30,
    unicodedata.normalize("NFD", "Café crème, été, naïve résumé. ÅNGSTRÖM!\n") * 40,
    "ΟΔΥΣΣΕΥΣ ΚΑΙ ΑΘΗΝΑΣ. ΛΟΓΟΣ ΣΟΦΙΑΣ\nΣΟΦΟΣ ΟΔΟΣ\n" * 30,  # noqa: RUF001
    make_korean(60, seed=3),
    "x" * 700 + "\n" + "wordsrunningtogether" * 30,
    "\n\n   \n" + "a b c d e f g h i j k l m n o p q r s t u v w x y z\n" * 20 + "\r",
]


@pytest.mark.parametrize("unit", ["stream", "line"])
@pytest.mark.parametrize("tokenizer", ["char", "jamo", "byte", "bpe", "word"])
@pytest.mark.parametrize("per_file", [True, False])
def test_streaming_prepare_gives_the_ids_of_the_in_memory_one(
    tmp_path, monkeypatch, unit, tokenizer, per_file
):
    """The same vocabulary and token ids as the in-memory prepare (``tests/reference_prepare``,
    the library's before it streamed), with blocks of a few bytes (two at the least), which
    cut characters, CRLF pairs and words everywhere."""
    docs = [make_play(40, seed=1), *AWKWARD, make_play(30, seed=2)]
    for lowercase, max_vocab, block_bytes in [(False, None, 7), (True, 20, 64), (False, 30, 2)]:
        if tokenizer == "bpe":  # a subword vocabulary holds the 256 bytes, and has a size
            max_vocab = 270 + (max_vocab or 40)
        monkeypatch.setattr(textgen.corpus, "BLOCK_BYTES", block_bytes)
        kwargs = dict(per_file=per_file, unit=unit, tokenizer=tokenizer, max_len=12)
        run = tmp_path / f"{lowercase}-{max_vocab}-{block_bytes}"
        run.mkdir()
        corpus, *splits = prepare(run, docs, 0.1, 0.1, lowercase, max_vocab=max_vocab, **kwargs)
        expected = reference.prepare_corpus(
            reference.read_corpus(sorted((run / "raw").glob("*.txt")), lowercase),
            0.1,
            0.1,
            lowercase,
            max_vocab=max_vocab,
            **kwargs,
        )
        assert corpus.vocab == expected.vocab
        for got, want in zip(splits, (expected.train, expected.val, expected.test), strict=True):
            np.testing.assert_array_equal(got, want)
        assert corpus.metrics == expected.metrics()
        docs_read = reference.read_corpus(sorted((run / "raw").glob("*.txt")), lowercase)
        assert corpus.characters == sum(map(len, docs_read))


def test_a_failed_prepare_leaves_no_token_file(tmp_path):
    """max_len too small for every line: the error names the key, before any token file is
    written (the stage publishes its folder only on success: atomic_dir)."""
    with pytest.raises(UserError, match=r"^data.max_len: every train line is longer than 1 "):
        prepare(tmp_path, [make_play(40)], 0.1, 0.1, unit="line", tokenizer="word", max_len=1)
    assert not list((tmp_path / "prepared").glob("*.npy"))


def test_a_large_corpus_reports_progress(tmp_path, monkeypatch):
    monkeypatch.setattr(textgen.corpus._Progress, "QUIET_BELOW", 0)  # as if it were large
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("textgen.corpus")
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "level", logging.INFO)
    try:
        prepare(tmp_path, [make_play(20, seed=i) for i in range(10)], 0.1, 0.1)
    finally:
        logger.removeHandler(handler)
    for what in ("measuring", "counting", "encoding"):
        shares = [int(ln.split()[2][:-1]) for ln in lines if ln.startswith(f"prepare: {what} ")]
        assert shares and shares == sorted(set(shares)) and shares[-1] == 100, lines


def test_a_line_cut_between_blocks_is_joined_and_blank_lines_are_skipped():
    blocks = ["ab", "c\n  \n d", "e \n\t\n", "f\n"]
    assert list(textgen.corpus._nonblank_lines(blocks)) == ["abc", "de", "f"]


@pytest.mark.parametrize("unit", ["stream", "line"])
def test_prepare_reads_each_file_once_per_pass(tmp_path, monkeypatch, unit):
    """Sizes, counts, ids: three reads of every file, the lines counted on the read that
    measures the characters."""
    reads = []
    read = textgen.corpus.document_blocks

    def counted(path: Path, lowercase: bool = False):
        reads.append(path.name)
        return read(path, lowercase)

    monkeypatch.setattr(textgen.corpus, "document_blocks", counted)
    prepare(tmp_path, [make_play(20, seed=1), make_play(20, seed=2)], 0.1, 0.1, unit=unit)
    assert sorted(reads) == ["000.txt"] * 3 + ["001.txt"] * 3
