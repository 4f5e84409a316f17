"""Hostile input, stage by stage and on the command line: one line on stderr naming the file
or params.yaml key, exit status 1, no traceback, and not one file created or changed.

Every case runs on a copy of one tiny repository whose pipeline has run, so each stage meets
its bad input with everything else in place. Cases run the stage's ``main`` in this process
(TensorFlow is imported once, not once a case); one case per command (``process=True``) runs
it as the pipeline does, a process of its own, so nothing a fresh process prints is missed.
"""

import hashlib
import io
import shutil
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.repos import CLI, run, run_in_process


def _params(**changes) -> Callable[[Path], None]:
    """Set params.yaml keys (``lstm__hidden=True`` sets lstm.hidden); ``None`` deletes one."""

    def change(repo: Path) -> None:
        params = yaml.safe_load((repo / "params.yaml").read_text())
        for dotted, value in changes.items():
            *path, key = dotted.split("__")
            section = params
            for name in path:
                section = section[name]
            if value is None:
                del section[key]
            else:
                section[key] = value
        (repo / "params.yaml").write_text(yaml.safe_dump(params))

    return change


def _write(relative: str, data: bytes | str) -> Callable[[Path], None]:
    def change(repo: Path) -> None:
        path = repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    return change


def _delete(relative: str) -> Callable[[Path], None]:
    return lambda repo: (repo / relative).unlink()


def _npy(relative: str, array: np.ndarray, allow_pickle: bool = False) -> Callable[[Path], None]:
    def change(repo: Path) -> None:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=allow_pickle)
        (repo / relative).write_bytes(buffer.getvalue())

    return change


def _unsafe_model(repo: Path) -> None:
    """A Keras file with a Lambda layer: loading it would run code it carries."""
    from textgen.backend import keras

    inputs = keras.Input((None,), dtype="int32")
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    keras.Model(inputs, outputs).save(repo / "models/gan/generator.keras")


def _zip_without_config(repo: Path) -> None:
    with zipfile.ZipFile(repo / "models/lstm.keras", "w") as z:
        z.writestr("metadata.json", "{}")


@dataclass
class Case:
    name: str
    command: str  # a stage name, or a command line
    change: Callable[[Path], None]
    needles: tuple[str, ...]
    process: bool = False  # run in a process of its own, not in this one

    def __str__(self) -> str:
        return self.name


CASES = [
    # params.yaml (every stage validates all of it first)
    Case(
        "params-not-yaml", "prepare", _write("params.yaml", "data: [unclosed\n"), ("params.yaml",)
    ),
    Case("params-a-list", "prepare", _write("params.yaml", "- 1\n- 2\n"), ("params.yaml",)),
    Case("params-missing", "train_lstm", _delete("params.yaml"), ("params.yaml",), process=True),
    Case(
        "params-unknown-key",
        "prepare",
        _params(data__corpuss="x"),
        ("data.corpuss",),
        process=True,
    ),
    Case("params-missing-key", "train_lstm", _params(lstm__hidden=None), ("lstm.hidden",)),
    Case("hidden-bool", "train_lstm", _params(lstm__hidden=True), ("lstm.hidden",)),
    Case("tokenizer-unknown", "prepare", _params(data__tokenizer="wordpiece"), ("data.tokenizer",)),
    Case("bpe-no-size", "prepare", _params(data__tokenizer="bpe"), ("data.max_vocab", "257")),
    Case(
        "byte-vocab-too-small",
        "prepare",
        _params(data__tokenizer="byte", data__max_vocab=100),
        ("data.max_vocab", "257"),
    ),
    Case("hidden-float", "train_lstm", _params(lstm__hidden=2.5), ("lstm.hidden",)),
    Case("seed-too-big", "train_lstm", _params(seed=2**32), ("seed",)),
    Case("seed-negative", "sample", _params(seed=-1), ("seed",), process=True),
    Case(
        "judge-seed-negative",
        "train_judge",
        _params(judge__seed=-1),
        ("judge.seed",),
        process=True,
    ),
    Case(
        "lr-inf", "train_lstm", _params(lstm__learning_rate=float("inf")), ("lstm.learning_rate",)
    ),
    Case(
        "mle-nan",
        "train_gan",
        _params(gan__mle_weight=float("nan")),
        ("gan.mle_weight",),
        process=True,
    ),
    Case("lowercase-string", "prepare", _params(data__lowercase="yes"), ("data.lowercase",)),
    Case(
        "filter-too-wide", "train_gan", _params(gan__d_filter_widths=[99]), ("gan.d_filter_widths",)
    ),
    Case(
        "temperature-negative", "sample", _params(sample__temperature=-1.0), ("sample.temperature",)
    ),
    Case(
        "one-temperature",
        "evaluate",
        _params(evaluate__temperatures=[0.7]),
        ("evaluate.temperatures",),
        process=True,
    ),
    Case("fraction-one", "prepare", _params(data__val_fraction=1.0), ("data.val_fraction",)),
    Case("distribute-tpu", "train_lstm", _params(lstm__distribute="tpu"), ("lstm.distribute",)),
    Case(
        "multi-worker-without-cluster",
        "train_lstm",
        _params(lstm__distribute="multi_worker"),
        ("lstm.distribute", "TF_CONFIG"),
    ),
    Case(
        "judge-multi-worker-without-cluster",
        "train_judge",
        _params(judge__distribute="multi_worker"),
        ("judge.distribute", "TF_CONFIG"),
    ),
    # corpora
    Case(
        "corpus-nul",
        "prepare",
        _write("data/raw/tiny/u16.txt", "to be\n".encode("utf-16-le")),
        ("u16.txt", "NUL"),
    ),
    Case(
        "corpus-utf16-bom",
        "prepare",
        _write("data/raw/tiny/bom.txt", "to be\n".encode("utf-16")),
        ("bom.txt", "UTF-16"),
    ),
    Case(
        "corpus-latin1",
        "prepare",
        _write("data/raw/tiny/l1.txt", "caf\xe9\n".encode("latin-1")),
        ("l1.txt", "UTF-8"),
    ),
    Case(
        "corpus-missing", "prepare", _params(data__corpus="data/raw/none"), ("data.corpus", "none")
    ),
    Case("corpus-outside", "prepare", _params(data__corpus="../elsewhere"), ("data.corpus",)),
    Case(
        "corpus-blank", "prepare", _write("data/raw/tiny/play.txt", " \n\n"), ("corpus is empty",)
    ),
    # prepared arrays and vocabularies
    Case(
        "tokens-pickled",
        "train_lstm",
        _npy("data/prepared/train.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True),
        ("train.npy",),
    ),
    Case(
        "tokens-float",
        "train_lstm",
        _npy("data/prepared/train.npy", np.zeros(500)),
        ("train.npy", "int32"),
    ),
    Case(
        "tokens-garbage",
        "train_gan",
        _write("data/prepared/val.npy", b"\x93NUMPY garbage"),
        ("val.npy",),
    ),
    Case("tokens-missing", "evaluate", _delete("data/prepared/test.npy"), ("test.npy",)),
    Case(
        "tokens-out-of-vocab",
        "train_lstm",
        _npy("data/prepared/train.npy", np.full(500, 999, np.int32)),
        ("train.npy", "999"),
    ),
    Case(
        "vocab-not-json",
        "train_lstm",
        _write("data/prepared/vocab.json", "{not json"),
        ("vocab.json",),
    ),
    Case(
        "vocab-a-list", "train_lstm", _write("data/prepared/vocab.json", "[1, 2]"), ("vocab.json",)
    ),
    Case(
        "vocab-bad-tokens",
        "evaluate",
        _write("data/prepared/vocab.json", '{"kind": "char", "tokens": [1, 2]}'),
        ("vocab.json", "tokens"),
    ),
    Case(
        "vocab-subword-model-corrupt",
        "evaluate",
        _write("data/prepared/vocab.json", '{"kind": "bpe", "tokens": ["<unk>"], "model": {}}'),
        ("vocab.json", "BPE model"),
    ),
    # models
    Case(
        "model-garbage",
        "train_gan",
        _write("models/lstm.keras", b"PK\x03\x04 not really"),
        ("lstm.keras",),
    ),
    Case("model-no-config", "sample", _zip_without_config, ("lstm.keras",)),
    Case("model-missing", "sample", _delete("models/gan/generator.keras"), ("generator.keras",)),
    Case("model-vocab-missing", "sample", _delete("models/lstm.vocab.json"), ("lstm.vocab.json",)),
    Case("judge-missing", "evaluate", _delete("models/judge.keras"), ("judge.keras",)),
    Case("model-unsafe-lambda", "sample", _unsafe_model, ("generator.keras",)),
    Case(
        "samples-bad-line",
        "evaluate",
        _write("samples/gan.jsonl", '{"text": "a"}\n{oops\n'),
        ("gan.jsonl:2",),
    ),
    Case(
        "samples-not-ours",
        "evaluate",
        _write("samples/lstm.jsonl", '{"text": "a"}\n'),
        ("lstm.jsonl", "prompt, length and ids"),
    ),
    Case(
        "samples-ids-not-numbers",
        "evaluate",
        _write("samples/gan.jsonl", '{"prompt": "a", "length": 3, "ids": ["x"]}\n'),
        ("gan.jsonl", "prompt, length and ids"),
    ),
    # the command line
    Case(
        "cli-temperature",
        f"{CLI} generate --temperature -1",
        lambda r: None,
        ("temperature",),
        process=True,
    ),
    Case("cli-num-samples", f"{CLI} generate -n 0", lambda r: None, ("--num-samples",)),
    Case("cli-seed", f"{CLI} generate --seed 99999999999", lambda r: None, ("--seed",)),
    Case(
        "cli-model-missing",
        f"{CLI} generate --model models/none.keras",
        lambda r: None,
        ("none.keras",),
    ),
    Case(
        "cli-model-not-keras",
        f"{CLI} generate --model params.yaml",
        lambda r: None,
        ("params.yaml",),
    ),
    Case("cli-top-p", f"{CLI} generate --top-p 2", lambda r: None, ("top",)),
    Case(
        "cli-repetition-penalty",
        f"{CLI} generate --repetition-penalty 0",
        lambda r: None,
        ("repetition_penalty",),
    ),
    Case("cli-no-repeat-ngram", f"{CLI} generate --no-repeat-ngram -2", lambda r: None, ("ngram",)),
    Case("cli-stop-empty", f"{CLI} generate --stop=", lambda r: None, ("--stop", "non-empty")),
    Case(
        "cli-stop-too-long",
        f"{CLI} generate --length 3 --stop . --stop abcd",
        lambda r: None,
        ("--stop", "'abcd'", "3 tokens"),
    ),
    Case("cli-fetch-dest-here", f"{CLI} fetch-corpus --dest .", lambda r: None, ("--dest",)),
    Case(
        "cli-fetch-dest-foreign",
        f"{CLI} fetch-corpus --dest data/raw",
        lambda r: None,
        ("data/raw",),
    ),
    Case(
        "cli-fetch-bad-params",
        f"{CLI} fetch-corpus --params stages/_common.py",
        lambda r: None,
        ("_common.py",),
    ),
]


def _snapshot(repo: Path) -> dict[str, str]:
    """Every file but git's and DVC's own, by content."""
    return {
        p.relative_to(repo).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in repo.rglob("*")
        if p.is_file() and not {".git", ".dvc", "__pycache__"} & set(p.relative_to(repo).parts)
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=str)
def test_hostile_input_is_one_line_and_changes_nothing(tiny_pipeline, tmp_path, case):
    repo = tmp_path / "repo"
    shutil.copytree(tiny_pipeline, repo, symlinks=True)
    case.change(repo)
    before = _snapshot(repo)
    if case.process:
        command = case.command
        if " " not in command:
            command = f"{sys.executable} stages/{command}.py"
        proc = run(command, repo, check=False)
        code, stderr = proc.returncode, proc.stderr
    else:
        code, stderr = run_in_process(repo, case.command)
    lines = stderr.strip().splitlines()
    print(f"{case}: exit {code}: {stderr.strip()}")  # (pytest -rP shows them)
    assert code == 1, f"exit {code}\n{stderr}"
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in case.needles:
        assert needle in lines[0], lines[0]
    assert _snapshot(repo) == before, "a failed run created or changed files"


def test_every_command_runs_once_as_a_process():
    """The in-process runs stand for processes: each command is also tried as one."""
    commands = {c.command if " " not in c.command else CLI for c in CASES}
    assert commands == {c.command if " " not in c.command else CLI for c in CASES if c.process}
