"""Temporary pipeline repositories for the end-to-end tests: tiny params, a tiny corpus,
the real stage scripts and dvc.yaml, and helpers to run DVC in them."""

import contextlib
import io
import json
import logging
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.corpora import make_play
from tests.params import SHIPPED, merged

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLI = f"{sys.executable} -m textgen"  # the command line, as a user runs it

# The shipped params.yaml, made tiny: every other value as shipped.
TINY_PARAMS = merged(
    SHIPPED,
    {
        "seed": 7,
        "data": {"corpus": "data/raw/tiny", "val_fraction": 0.1, "test_fraction": 0.1},
        "lstm": {
            "embedding_dim": 8,
            "hidden": 16,
            "layers": 2,
            "dropout": 0.1,  # on, so that the kill chain (tests/test_kill.py) resumes its draws
            "seq_len": 32,
            "batch_size": 8,
            "epochs": 4,  # the kill chain kills after the third epoch's checkpoint
            "steps_per_epoch": 10,
            "warmup_steps": 0,
            "eval_batch_size": 8,
        },
        "judge": {
            "embedding_dim": 8,
            "hidden": 12,
            "seq_len": 32,
            "batch_size": 8,
            "epochs": 1,
            "steps_per_epoch": 10,
            "warmup_steps": 0,
            "eval_batch_size": 8,
        },
        "gan": {
            "seq_len": 16,
            "batch_size": 8,
            "steps": 6,
            "d_pretrain_steps": 2,
            "log_every": 2,
            "d_filters": 8,
            "d_filter_widths": [2, 3],
            "eval_samples": 8,
            "eval_val_tokens": 300,
        },
        "sample": {"num_samples": 10, "length": 40, "prompt": "ROMEO."},
        "evaluate": {
            "batch_size": 8,
            "temperatures": [0.7, 1.3],
            "num_samples": 10,
            "length": 40,
            "report_samples": 1,
            "reverse_lm": {
                "embedding_dim": 8,
                "hidden": 16,
                "seq_len": 16,
                "batch_size": 4,
                "epochs": 2,
                "warmup_steps": 0,
            },
        },
    },
)

SPLITS = ("train", "val", "test")
PER_CHARACTER = {"val_nats_per_char", "val_bits_per_byte"}  # what compares across tokenizers
# Every figure of a stage, in results/<stage>.json (metrics/<stage>.json: the headline).
METRIC_KEYS = {
    "results/prepare.json": {
        "train_tokens",
        "val_tokens",
        "test_tokens",
        "vocab_size",
        "unk_rate_val",
        "unk_rate_test",
        *(f"{split}_{size}" for split in SPLITS for size in ("characters", "bytes")),
    },
    "results/judge.json": {*PER_CHARACTER, "val_nll_nats", "val_bpc", "val_perplexity", "epochs"},
    "results/lstm.json": {
        *PER_CHARACTER,
        *("val_nll_nats", "val_bpc", "val_perplexity", "epochs", "parameters"),
    },
    "results/gan.json": {
        *PER_CHARACTER,
        "d_accuracy_real",
        "d_accuracy_fake",
        "d_accuracy_fake_hard",
        "val_nll_nats",
        "sample_lm_nll_nats",
        "distinct_2",
        "steps",
    },
}
EVALUATE_KEYS = {
    *(f"bleu_{n}" for n in range(2, 6)),
    *(f"self_bleu_{n}" for n in range(2, 6)),
    "lm_score_nats",
    "reverse_lm_nats",
    "longest_copy_chars",
    "novelty_4",
    "ms_jaccard_4",
    "test_nats_per_char",
    "test_bits_per_byte",
    "lm_score_nats_per_char",
    "reverse_lm_nats_per_char",
    "test_nll_nats",
    "test_bpc",
    "test_perplexity",
    "distinct_1",
    "distinct_2",
    "distinct_3",
    "distinct_4",
}
TIMINGS = {"train_seconds", "train_tokens_per_s"}  # in timings/, never in hashed outputs


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}


def repo_env(**extra: str) -> dict[str, str]:
    """The environment commands run in: this venv's dvc and python first, a git identity."""
    return {**os.environ, **GIT_IDENTITY, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def run(cmd, cwd, check=True):
    env = repo_env()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, shell=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_repo(path: Path, params: dict = TINY_PARAMS) -> Path:
    path.mkdir()
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ["stages", "textgen", "scripts"]:
        shutil.copytree(ROOT / name, path / name, ignore=ignore)
    for name in ["dvc.yaml", ".gitignore", ".dvcignore", "requirements.lock"]:
        shutil.copy(ROOT / name, path / name)
    (path / "params.yaml").write_text(yaml.safe_dump(params))
    (path / "data/raw/tiny").mkdir(parents=True)
    (path / "data/raw/tiny/play.txt").write_text(make_play(300, seed=1))
    return path


def init_repo(repo: Path) -> Path:
    """A git repository with DVC set up, everything committed on ``main``."""
    run("git init -q -b main && dvc init -q && dvc config core.analytics false", repo)
    # The plots' custom templates live in .dvc/plots/, which `dvc init` does not make (the
    # offline HTML template is a set-up result, not part of the project).
    shutil.copytree(
        ROOT / ".dvc/plots",
        repo / ".dvc/plots",
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("offline.html"),
    )
    run("git add -A && git commit -qm base", repo)
    return repo


def clone(team: Path, name: str, branch: str = "main") -> Path:
    """A teammate's fresh checkout of the ``team`` fixture's origin, ``team / name`` (a name of
    its own: the fixture is shared): what git holds, no outputs, an empty DVC cache."""
    run(f"git clone -q -b {branch} origin.git {name}", team)
    return team / name


def stages_run(output: str) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` log shows as run (not skipped or restored)."""
    return set(re.findall(r"^Running stage '([^']+)':$", output, re.M))


def read_metrics(repo: Path) -> dict:
    """Every figure of every stage: ``results/<stage>.json`` by its path."""
    return {
        name: json.loads((repo / name).read_text())
        for name in [*METRIC_KEYS, "results/evaluate.json"]
    }


def run_in_process(repo: Path, command: str) -> tuple[int, str]:
    """Exit status and stderr of ``command`` (a stage, or ``CLI`` and its arguments) run in
    this process with ``repo`` as the working directory, as ``python stages/x.py`` would.

    The stage is this checkout's script (it imports this checkout's textgen, which the repo
    holds a copy of); its paths are relative to the working directory, so it reads and
    writes the repo's files."""
    stderr, cwd, argv, path = io.StringIO(), os.getcwd(), sys.argv, list(sys.path)
    os.chdir(repo)
    try:
        with contextlib.redirect_stderr(stderr):
            if command.startswith(CLI):
                from textgen.cli import main

                sys.argv = ["textgen", *command[len(CLI) :].split()]
                main(sys.argv[1:])
            else:
                script = ROOT / "stages" / f"{command}.py"
                sys.argv, sys.path[:0] = [str(script)], [str(script.parent)]
                runpy.run_path(str(script), run_name="__main__")
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    finally:
        os.chdir(cwd)
        sys.argv, sys.path[:] = argv, path
    return code, stderr.getvalue()


PIPELINE = ["prepare", "train_judge", "train_lstm", "train_gan", "sample", "evaluate", "export"]
UP_TO_EVALUATE = PIPELINE[: PIPELINE.index("evaluate") + 1]  # all but the export
RETRACING = "triggered tf.function retracing"  # TensorFlow's warning: a function rebuilt


@contextlib.contextmanager
def retracing_warnings():
    """The retracing warnings TensorFlow logs meanwhile (a function traced again and again: a
    slow run), in the list it yields."""
    caught: list[str] = []

    def keep(record: logging.LogRecord) -> None:
        if RETRACING in (message := record.getMessage()):
            caught.append(message)

    handler = logging.Handler()
    handler.emit = keep
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        yield caught
    finally:
        logger.removeHandler(handler)


def run_stages(repo: Path, stages: list[str]) -> None:
    """``stages`` in order, in this process (``run_in_process``; no TensorFlow start-up per
    stage), each one asserted to succeed and to trace no function again and again."""
    from tensorflow.python.eager.polymorphic_function import polymorphic_function

    for stage in stages:
        # Under DVC a stage is a process of its own, whose count of recent traces per function
        # (TensorFlow keys it by the function's code, so that one defined in a loop is caught)
        # starts at zero: so here, or one stage's samplers would count against the next's.
        polymorphic_function._frequent_tracing_detector_manager._detectors.clear()
        with retracing_warnings() as retraced:
            code, err = run_in_process(repo, stage)
        assert code == 0, f"{stage}: {err[-2000:]}"
        assert not retraced, f"{stage}: {retraced}"
