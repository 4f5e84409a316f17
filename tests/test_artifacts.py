import json
import os
import stat
import time
import zipfile

import numpy as np
import pytest

from textgen.artifacts import (
    TokenWriter,
    atomic_dir,
    atomic_path,
    load_model,
    load_tokens,
    read_json,
    read_jsonl,
    save_keras,
    save_replicates,
    save_tokens,
    write_json,
    write_jsonl,
)
from textgen.errors import UserError


def test_atomic_path_keeps_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "m.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text().strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_atomic_dir_appears_only_complete(tmp_path):
    target = tmp_path / "prepared"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "train.npy").write_text("x")
        raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "train.npy").write_text("x")
    assert (target / "train.npy").is_file()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_outputs_get_the_umask_mode_not_the_temporary_files_private_one(tmp_path):
    write_json(tmp_path / "m.json", {"a": 1})
    with atomic_dir(tmp_path / "prepared") as tmp:
        save_tokens(tmp / "train.npy", np.arange(3))
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "m.json") == 0o666 & ~_umask()  # mkstemp alone gives 0o600
    assert mode(tmp_path / "prepared") == 0o777 & ~_umask()  # mkdtemp alone gives 0o700
    assert mode(tmp_path / "prepared/train.npy") == 0o666 & ~_umask()


def test_a_killed_writes_temporary_is_removed_by_the_next_write(tmp_path):
    (tmp_path / ".m.json.tmp-abc123").write_text("half")  # a kill's leftover
    (tmp_path / ".prepared.tmp-xyz").mkdir()
    (tmp_path / ".other.json.tmp-keep").write_text("another output's")
    write_json(tmp_path / "m.json", {"a": 1})
    with atomic_dir(tmp_path / "prepared") as tmp:
        (tmp / "f").write_text("x")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".other.json.tmp-keep", "m.json", "prepared"]


def test_a_token_id_outside_the_vocabulary_is_refused(tmp_path):
    save_tokens(tmp_path / "t.npy", np.array([0, 5, 46], np.int32))
    assert load_tokens(tmp_path / "t.npy", 47).max() == 46
    with pytest.raises(UserError, match=r"t\.npy: token id 46 is outside the vocabulary of 46"):
        load_tokens(tmp_path / "t.npy", 46)


def test_tokens_round_trip(tmp_path):
    ids = np.arange(10, dtype=np.int32)
    save_tokens(tmp_path / "t.npy", ids)
    np.testing.assert_array_equal(load_tokens(tmp_path / "t.npy"), ids)


def test_load_tokens_never_unpickles(tmp_path):
    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match=r"evil\.npy"):
        load_tokens(path)
    np.save(path, np.zeros((2, 2), np.float32))
    with pytest.raises(UserError, match=r"expected a 1-D or 2-D int32 array"):
        load_tokens(path)
    np.save(path, np.zeros((2, 2, 2), np.int32))
    with pytest.raises(UserError, match=r"expected a 1-D or 2-D int32 array"):
        load_tokens(path)
    np.save(path, np.zeros((2, 3), np.int32))  # rows of independent sequences
    assert load_tokens(path).shape == (2, 3)
    with pytest.raises(UserError, match="run the prepare stage"):
        load_tokens(tmp_path / "missing.npy")


def test_jsonl_round_trip_keeps_unicode(tmp_path):
    records = [{"text": "로미오\n", "i": 0}, {"text": "ROMEO:", "i": 1}]
    write_jsonl(tmp_path / "s.jsonl", records)
    assert read_jsonl(tmp_path / "s.jsonl") == records
    assert "로미오" in (tmp_path / "s.jsonl").read_text(encoding="utf-8")
    # Characters str.splitlines cuts at, which a byte or BPE model may write (they stay raw
    # in the file): the records still read back whole.
    odd = [{"text": f"a{c}b", "i": i} for i, c in enumerate("\u2028\u2029\x85\x1c\x1d\x1e\x0b\x0c")]
    write_jsonl(tmp_path / "odd.jsonl", odd)
    assert read_jsonl(tmp_path / "odd.jsonl") == odd
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{oops\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: not valid JSON"):
        read_jsonl(tmp_path / "bad.jsonl")


def test_json_of_another_stage_read_or_refused_in_one_line(tmp_path):
    write_json(tmp_path / "r.json", {"verdict": "로미오"})
    assert read_json(tmp_path / "r.json") == {"verdict": "로미오"}
    with pytest.raises(UserError, match=r"missing.json: not found \(run `dvc repro`"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(UserError, match=r"bad.json: not valid JSON"):
        read_json(tmp_path / "bad.json")


def _tiny_model():
    from textgen.backend import keras

    keras.backend.clear_session()  # the same auto-generated layer names each time
    keras.utils.set_random_seed(3)
    inputs = keras.Input((None,), dtype="int32")
    hidden = keras.layers.LSTM(4)(keras.layers.Embedding(7, 3)(inputs))
    return keras.Model(inputs, keras.layers.Dense(2)(hidden))


def test_saved_keras_files_are_byte_identical_across_saves(tmp_path):
    """Keras stamps each save with the time and numbers shared objects by memory address;
    dvc.lock must change with neither."""
    from textgen.backend import keras

    model = _tiny_model()
    save_keras(model, tmp_path / "a.keras")
    time.sleep(1.1)  # Keras' date_saved has one-second resolution
    save_keras(_tiny_model(), tmp_path / "b.keras")  # same weights, other objects
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.keras") as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert json.loads(z.read("metadata.json")) == {"keras_version": keras.__version__}
        assert '"shared_object_id": 1}' in z.read("config.json").decode()
    loaded = keras.saving.load_model(tmp_path / "a.keras", safe_mode=True)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.keras", "b.keras"]  # no leftovers


def test_a_model_file_that_is_no_zip_is_named_in_one_line(tmp_path):
    """Keras would say "File not found" of a file that is there but is no zip."""
    path = tmp_path / "lstm.keras"
    path.write_text("version https://git-lfs.github.com/spec/v1\n")  # e.g. an LFS pointer
    with pytest.raises(UserError) as err:
        load_model(path)
    assert str(err.value) == f"{path}: not a .keras (zip) file"


def test_a_token_file_written_in_pieces_is_the_one_save_tokens_writes(tmp_path):
    ids = np.random.default_rng(0).integers(0, 90, (1000, 12)).astype(np.int32)
    save_tokens(tmp_path / "whole.npy", ids)
    with TokenWriter(tmp_path / "pieces.npy", ids.shape) as writer:
        for i in range(0, 1000, 300):
            writer.write(ids[i : i + 300])
    assert (tmp_path / "pieces.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()
    short = TokenWriter(tmp_path / "short.npy", (2, 12))
    short.write(ids[0])
    with pytest.raises(RuntimeError, match=r"wrote 12 ids for shape \(2, 12\)"):
        short.close()


def test_tokens_are_memory_mapped_read_only(tmp_path):
    save_tokens(tmp_path / "t.npy", np.arange(100, dtype=np.int32))
    ids = load_tokens(tmp_path / "t.npy", 100)
    assert isinstance(ids, np.memmap) and not ids.flags.writeable
    assert ids[40:43].tolist() == [40, 41, 42]


def test_replicates_are_one_npy_per_model_and_metric_with_the_same_bytes_every_time(tmp_path):
    rng = np.random.default_rng(0)
    points = [{"bleu_4": rng.random(5), "self_bleu_4": rng.random(5)} for _ in range(3)]
    save_replicates(tmp_path / "a", {"lstm": points, "gan": points[:2]})
    save_replicates(tmp_path / "b", {"lstm": points, "gan": points[:2]})
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.npy"))
    assert [str(f) for f in files] == [
        "gan/bleu_4.npy",
        "gan/self_bleu_4.npy",
        "lstm/bleu_4.npy",
        "lstm/self_bleu_4.npy",
    ]
    for f in files:  # no timestamps inside (DVC hashes these bytes)
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    column = np.load(tmp_path / "a/lstm/self_bleu_4.npy", allow_pickle=False)
    assert column.shape == (3, 5) and column.dtype == np.float64
    np.testing.assert_array_equal(column[2], points[2]["self_bleu_4"])
