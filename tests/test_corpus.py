import unicodedata

import pytest

from textgen.corpus import (
    corpus_files,
    prepare_corpus,
    read_corpus,
    read_text,
    split_corpus,
)
from textgen.errors import UserError

KOREAN = "로미오: 오, 줄리엣! 그대는 태양이오.\n줄리엣: 이름이 무슨 소용인가요?\n"


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
        read_corpus([path])


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


def test_read_corpus_joins_files_and_rejects_empty(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "b.txt").write_text("two\n")
    assert read_corpus([tmp_path / "a.txt", tmp_path / "b.txt"]) == ["one\n", "two\n"]
    (tmp_path / "c.txt").write_text("ROMEO")
    assert read_corpus([tmp_path / "c.txt"], lowercase=True) == ["romeo\n"]
    (tmp_path / "blank.txt").write_text(" \n\n")
    with pytest.raises(UserError, match="the corpus is empty"):
        read_corpus([tmp_path / "blank.txt"])


def test_whole_split_is_contiguous_and_complete(play_text):
    docs = [play_text[:1000], play_text[1000:]]
    train, val, test = split_corpus(docs, 0.1, 0.05, per_file=False)
    assert train + val + test == play_text
    assert len(val) == int(len(play_text) * 0.1)
    assert len(test) == int(len(play_text) * 0.05)


def test_per_file_split_holds_out_the_end_of_every_file():
    docs = ["a" * 80 + "b" * 10 + "c" * 10, "d" * 160 + "e" * 20 + "f" * 20]
    train, val, test = split_corpus(docs, 0.1, 0.1, per_file=True)
    assert train == "a" * 80 + "d" * 160
    assert val == "b" * 10 + "e" * 20
    assert test == "c" * 10 + "f" * 20


def test_split_refuses_too_little_text():
    with pytest.raises(UserError, match="too few to split"):
        split_corpus(["abc"], 0.1, 0.1)
    with pytest.raises(UserError, match="too few to split"):
        split_corpus(["abcdefghijklmno"], 0.1, 0.1, per_file=True)  # 1 held-out char


def test_prepare_builds_vocabulary_from_train_only():
    text = "a" * 80 + "b" * 10 + "c" * 10  # 'b' only in val, 'c' only in test
    corpus = prepare_corpus([text], 0.1, 0.1)
    assert corpus.vocab.tokens[1:] == ("a",)
    metrics = corpus.metrics()
    assert metrics["train_tokens"] == 80
    assert metrics["val_tokens"] == metrics["test_tokens"] == 10
    assert metrics["vocab_size"] == 2
    assert metrics["unk_rate_val"] == metrics["unk_rate_test"] == 1.0


def test_prepare_korean(tmp_path):
    corpus = prepare_corpus([KOREAN * 20], 0.1, 0.1)
    assert corpus.metrics()["unk_rate_val"] == 0.0
    assert corpus.vocab.decode(corpus.train[:5]) == KOREAN[:5]
