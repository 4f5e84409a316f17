"""End to end: the real stage scripts under DVC, in a temporary git repository, on tiny data."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import make_play

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY_PARAMS = {
    "seed": 7,
    "data": {"corpus": "data/raw/tiny", "val_fraction": 0.1, "test_fraction": 0.1},
    "lstm": {
        "embedding_dim": 8,
        "hidden": 16,
        "layers": 2,
        "dropout": 0.0,
        "seq_len": 32,
        "batch_size": 8,
        "epochs": 2,
        "steps_per_epoch": 10,
        "warmup_steps": 0,
        "eval_batch_size": 8,
    },
    "gan": {
        "seq_len": 16,
        "batch_size": 8,
        "steps": 4,
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
}
METRIC_KEYS = {
    "metrics/prepare.json": {
        "train_tokens",
        "val_tokens",
        "test_tokens",
        "vocab_size",
        "unk_rate_val",
        "unk_rate_test",
    },
    "metrics/lstm.json": {"val_nll_nats", "val_bpc", "val_perplexity", "epochs", "parameters"},
    "metrics/gan.json": {
        "d_accuracy_real",
        "d_accuracy_fake",
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


def run(cmd, cwd, check=True):
    env = {**os.environ, **GIT_IDENTITY, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, shell=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_repo(path: Path, params: dict = TINY_PARAMS) -> Path:
    path.mkdir()
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ["stages", "textgen", "scripts"]:
        shutil.copytree(ROOT / name, path / name, ignore=ignore)
    for name in ["dvc.yaml", ".gitignore", "requirements.lock"]:
        shutil.copy(ROOT / name, path / name)
    (path / "params.yaml").write_text(yaml.safe_dump(params))
    (path / "data/raw/tiny").mkdir(parents=True)
    (path / "data/raw/tiny/play.txt").write_text(make_play(300, seed=1))
    return path


def init_repo(repo: Path) -> Path:
    """A git repository with DVC set up, everything committed on ``main``."""
    run("git init -q -b main && dvc init -q && dvc config core.analytics false", repo)
    run("git add -A && git commit -qm base", repo)
    return repo


def stages_run(output: str) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` log shows as run (not skipped or restored)."""
    return set(re.findall(r"^Running stage '([^']+)':$", output, re.M))


def read_metrics(repo: Path) -> dict:
    return {
        name: json.loads((repo / name).read_text())
        for name in [*METRIC_KEYS, "metrics/evaluate.json"]
    }


def _stage(repo: Path, stage: str):
    return run(f"{sys.executable} stages/{stage}.py", repo, check=False)


def _assert_one_line_failure(proc, *needles):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (lambda r, p: p["lstm"].update(hiden=3), ["params.yaml: lstm.hiden: unknown key"]),
        (lambda r, p: p["data"].update(val_fraction=-0.1), ["data.val_fraction"]),
        (lambda r, p: p["data"].update(corpus="data/raw/nothing"), ["data.corpus", "nothing"]),
        (lambda r, p: p["data"].update(corpus="../outside.txt"), ["data.corpus", "outside"]),
        (lambda r, p: (r / "data/raw/tiny/play.txt").write_text("  \n"), ["corpus is empty"]),
        (
            lambda r, p: (r / "data/raw/tiny/bad.txt").write_bytes(b"ok \xff"),
            ["bad.txt", "not valid UTF-8", "byte offset 3"],
        ),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, change, needles):
    params = json.loads(json.dumps(TINY_PARAMS))
    repo = make_repo(tmp_path / "repo")
    (tmp_path / "outside.txt").write_text(make_play(50))
    change(repo, params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    _assert_one_line_failure(_stage(repo, "prepare"), *needles)
    assert not (repo / "data/prepared").exists()
    assert not (repo / "metrics").exists()


def test_missing_inputs_of_later_stages(tmp_path):
    repo = make_repo(tmp_path / "repo")
    _assert_one_line_failure(_stage(repo, "sample"), "models/lstm.keras", "not found")
    gen = run(f"{sys.executable} -m textgen generate --model nope.keras", repo, check=False)
    _assert_one_line_failure(gen, "nope.keras")


LINE_PARAMS = {
    **TINY_PARAMS,
    "data": {
        **TINY_PARAMS["data"],
        "unit": "line",
        "tokenizer": "word",
        "max_vocab": 30,
        "max_len": 10,
    },
    "sample": {"num_samples": 10, "length": 12, "prompt": ""},
    "evaluate": {**TINY_PARAMS["evaluate"], "length": 12},
}


@pytest.mark.slow
def test_line_corpus_with_word_tokens_end_to_end(tmp_path):
    repo = init_repo(make_repo(tmp_path / "repo", LINE_PARAMS))
    run("dvc repro", repo)

    vocab = json.loads((repo / "data/prepared/vocab.json").read_text())
    assert vocab["kind"] == "word" and len(vocab["tokens"]) == 30
    assert vocab["special_tokens"] == {"pad": 0, "unk": 1, "bos": 2, "eos": 3}
    train = np.load(repo / "data/prepared/train.npy", allow_pickle=False)
    assert train.ndim == 2 and train.shape[1] == 12  # <bos> + 10 tokens + <eos>
    assert (train[:, 0] == 2).all() and ((train == 3).sum(axis=1) == 1).all()
    metrics = read_metrics(repo)
    assert metrics["metrics/prepare.json"]["train_sequences"] == len(train)
    for model in ["lstm", "gan"]:
        samples = [json.loads(line) for line in (repo / f"samples/{model}.jsonl").open()]
        assert len(samples) == 10
        for s in samples:
            assert "<pad>" not in s["text"] and "<bos>" not in s["text"] and "\n" not in s["text"]
            ids = s["ids"]
            assert 0 not in ids and 2 not in ids  # never padding or a begin token
            # The end token ends a sample: it is the last id, or the sample ran to its length.
            assert (3 not in ids and len(ids) == 12) or ids.index(3) == len(ids) - 1
        assert metrics["metrics/evaluate.json"][model].keys() >= EVALUATE_KEYS
    assert metrics["metrics/lstm.json"]["val_nll_nats"] < np.log(30)


ORACLE_PARAMS = {
    "seed": 3,
    "data": {"unit": "line"},
    "oracle": {
        "vocab_size": 40,
        "seq_len": 8,
        "embedding_dim": 8,
        "hidden": 8,
        "train_sequences": 400,
        "val_sequences": 100,
        "test_sequences": 100,
    },
    "lstm": {**TINY_PARAMS["lstm"], "layers": 1, "epochs": 2},
    "gan": {**TINY_PARAMS["gan"], "d_filter_widths": [2, 3], "eval_val_tokens": 90},
    "evaluate": {"temperatures": [0.8, 1.0, 1.2], "num_samples": 200},
}


@pytest.mark.slow
def test_oracle_benchmark_pipeline_end_to_end(tmp_path):
    repo = make_repo(tmp_path / "repo")
    shutil.copytree(
        ROOT / "oracle",
        repo / "oracle",
        ignore=shutil.ignore_patterns(
            "data",
            "models",
            "metrics",
            "plots",
            "reports",
            "dvclive",
            "checkpoints",
            "timings",
            "dvc.lock",
            "tmp",
            "cache",
        ),
    )
    (repo / "oracle/params.yaml").write_text(yaml.safe_dump(ORACLE_PARAMS))
    init_repo(repo)
    run("dvc repro", repo / "oracle")
    # A DVC project of its own: the root's status and repro leave it alone.
    assert "oracle" not in run("dvc status", repo).stdout
    assert "up to date" in run("dvc status", repo / "oracle").stdout

    oracle = json.loads((repo / "oracle/metrics/oracle.json").read_text())
    assert oracle["oracle_entropy_nats"] < oracle["nll_oracle_uniform"]
    assert abs(oracle["nll_oracle_real"] - oracle["oracle_entropy_nats"]) < 0.3
    evaluate = json.loads((repo / "oracle/metrics/evaluate.json").read_text())
    for model in ["lstm", "gan"]:
        assert {"nll_oracle", "nll_test"} <= evaluate[model].keys()
        sweep = json.loads((repo / f"oracle/plots/sweep/{model}.json").read_text())
        assert [p["temperature"] for p in sweep] == [0.8, 1.0, 1.2]
    assert "oracle" in evaluate["compare"]
    assert "## Verdict" in (repo / "oracle/reports/report.md").read_text()
    plots = run("dvc plots show --json", repo / "oracle").stdout
    assert "NLL oracle (quality) against NLL test" in plots
    assert not (repo / "metrics").exists()  # the main pipeline did not run


def test_a_stage_reading_an_undeclared_param_stops_with_its_name(tmp_path):
    repo = make_repo(tmp_path / "repo")
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    pipeline["stages"]["prepare"]["params"] = []  # as if `data` had been forgotten
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline))
    _assert_one_line_failure(_stage(repo, "prepare"), "stage 'prepare' reads params key 'data'")
    assert not (repo / "data/prepared").exists()

    (repo / "dvc.yaml").unlink()  # a stage run outside its pipeline's folder
    _assert_one_line_failure(_stage(repo, "prepare"), "dvc.yaml: no stage 'prepare'")


def test_a_killed_train_lstm_resumes_with_its_curves(tmp_path):
    """No `persist` output: the backup and the curves so far live in checkpoints/, and a
    rerun after SIGKILL continues both, ending where an uninterrupted run ends."""
    params = json.loads(json.dumps(TINY_PARAMS))
    params["lstm"].update(epochs=6, steps_per_epoch=20)
    repos = []
    for name in ["straight", "killed"]:
        repo = init_repo(make_repo(tmp_path / name, params))  # dvclive reads HEAD
        run(f"{sys.executable} stages/prepare.py", repo)
        repos.append(repo)
    straight, killed = repos
    run(f"{sys.executable} stages/train_lstm.py", straight)

    proc = subprocess.Popen(
        [sys.executable, "stages/train_lstm.py"], cwd=killed, stdout=subprocess.DEVNULL
    )
    meta = killed / "checkpoints/train_lstm"
    curve = "*/dvclive/plots/metrics/train/loss.tsv"
    # Kill once two epochs are on the curve (their backups are written before the curve).
    while proc.poll() is None:
        points = [len(c.read_text().splitlines()) - 1 for c in meta.glob(curve)]
        if points and points[0] >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert proc.wait() == -signal.SIGKILL, "training ended before the kill"
    assert not (killed / "models/lstm.keras").exists()
    done = [json.loads(m.read_text())["epoch"] for m in meta.glob("*/backup/*.json")]
    assert done and done[0] >= 2, "the backup is kept beside the curves"

    resumed = run(f"{sys.executable} stages/train_lstm.py", killed).stdout
    assert "resuming a killed run after epoch" in resumed
    loss = "dvclive/train_lstm/plots/metrics/train/loss.tsv"
    assert (killed / loss).read_text() == (straight / loss).read_text()  # one curve, 6 epochs
    assert len((killed / loss).read_text().splitlines()) == 1 + 6
    assert (killed / "models/lstm.keras").read_bytes() == (
        straight / "models/lstm.keras"
    ).read_bytes()
    assert not list(meta.iterdir()), "the checkpoint is removed once the model is written"
