"""End to end: the real stage scripts under DVC, in a temporary git repository, on tiny data."""

import json
import os
import shutil
import subprocess
import sys
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
    "metrics/lstm.json": {
        "val_nll_nats",
        "val_bpc",
        "val_perplexity",
        "epochs",
        "train_seconds",
        "train_tokens_per_s",
        "parameters",
    },
    "metrics/gan.json": {
        "d_accuracy_real",
        "d_accuracy_fake",
        "val_nll_nats",
        "sample_lm_nll_nats",
        "distinct_2",
        "steps",
        "train_seconds",
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
TIMINGS = {"train_seconds", "train_tokens_per_s"}


def run(cmd, cwd, check=True):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, shell=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_repo(path: Path, params: dict = TINY_PARAMS) -> Path:
    path.mkdir()
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ["stages", "textgen"]:
        shutil.copytree(ROOT / name, path / name, ignore=ignore)
    for name in ["dvc.yaml", ".gitignore"]:
        shutil.copy(ROOT / name, path / name)
    (path / "params.yaml").write_text(yaml.safe_dump(params))
    (path / "data/raw/tiny").mkdir(parents=True)
    (path / "data/raw/tiny/play.txt").write_text(make_play(300, seed=1))
    return path


def read_metrics(repo: Path) -> dict:
    return {
        name: json.loads((repo / name).read_text())
        for name in [*METRIC_KEYS, "metrics/evaluate.json"]
    }


def without_timings(metrics: dict) -> dict:
    return {f: {k: v for k, v in m.items() if k not in TIMINGS} for f, m in metrics.items()}


@pytest.mark.slow
def test_dvc_pipeline_end_to_end(tmp_path):
    repo = make_repo(tmp_path / "repo")
    run("git init -q && git config user.email t@t && git config user.name t", repo)
    run("dvc init -q && dvc config core.analytics false", repo)
    run("git add -A && git commit -qm base", repo)
    run("dvc repro", repo)

    for out in [
        "data/prepared/train.npy",
        "data/prepared/val.npy",
        "data/prepared/test.npy",
        "data/prepared/vocab.json",
        "data/prepared/stats.json",
        "models/lstm.keras",
        "models/lstm.vocab.json",
        "samples/lstm.jsonl",
        "models/gan/generator.keras",
        "models/gan/generator.vocab.json",
        "models/gan/discriminator.keras",
        "samples/gan.jsonl",
        "dvclive/train_lstm/plots/metrics/train/loss.tsv",
        "dvclive/train_lstm/plots/metrics/eval/loss.tsv",
        "dvclive/train_gan/plots/metrics/d_accuracy_real.tsv",
        "dvclive/train_gan/plots/metrics/sample_lm_nll_nats.tsv",
        "plots/sweep/lstm.json",
        "plots/sweep/gan.json",
        "reports/report.md",
    ]:
        assert (repo / out).is_file(), out
    assert not list((repo / "checkpoints/train_lstm").glob("*")), "a finished run keeps no backup"
    train = np.load(repo / "data/prepared/train.npy", allow_pickle=False)
    assert train.dtype == np.int32 and train.ndim == 1
    metrics = read_metrics(repo)
    for name, keys in METRIC_KEYS.items():
        assert keys <= metrics[name].keys(), name
    assert set(metrics["metrics/evaluate.json"]) == {"lstm", "gan", "compare"}
    for model in ["lstm", "gan"]:
        assert metrics["metrics/evaluate.json"][model].keys() >= EVALUATE_KEYS
        sweep = json.loads((repo / f"plots/sweep/{model}.json").read_text())
        assert [p["temperature"] for p in sweep] == [0.7, 1.3]
        assert EVALUATE_KEYS - {"test_nll_nats", "test_bpc", "test_perplexity"} <= sweep[0].keys()
    compare = metrics["metrics/evaluate.json"]["compare"]
    assert set(compare) == {"bleu", "lm"}
    assert compare["bleu"]["lstm_dominates"] + compare["bleu"]["gan_dominates"] <= 1
    report = (repo / "reports/report.md").read_text()
    assert "## Verdict" in report and "## Temperature sweep" in report
    assert report.count("```text") == 2 * 2  # 2 models x 2 temperatures x 1 sample
    assert metrics["metrics/lstm.json"]["val_nll_nats"] < np.log(
        metrics["metrics/prepare.json"]["vocab_size"]
    ), "the model must beat a uniform guess"

    for model in ["lstm", "gan"]:
        lines = (repo / f"samples/{model}.jsonl").read_text().splitlines()
        samples = [json.loads(line) for line in lines]
        assert len(samples) == 10
        assert {"model", "temperature", "top_k", "top_p", "seed", "prompt", "text"} <= samples[
            0
        ].keys()
        assert all(s["model"] == model for s in samples)
        assert all(len(s["text"]) == 40 and s["prompt"] == "ROMEO." for s in samples)

    assert "up to date" in run("dvc repro", repo).stdout  # nothing re-runs
    assert "up to date" in run("dvc status", repo).stdout
    shown = json.loads(run("dvc metrics show --json", repo).stdout)
    assert "lstm.test_bpc" in json.dumps(shown) or "test_bpc" in json.dumps(shown)
    plots = run("dvc plots show --json", repo).stdout
    assert "LSTM loss" in plots
    assert "Quality vs diversity: BLEU-4 against Self-BLEU-4" in plots

    # Same params, same metrics: re-run every stage from scratch.
    run("dvc repro --force", repo)
    assert without_timings(read_metrics(repo)) == without_timings(metrics)

    # The trained model generates from the command line.
    gen = run(
        f"{sys.executable} -m textgen generate --model models/lstm.keras "
        "--prompt ROMEO. -n 2 --length 30 --seed 3",
        repo,
    )
    assert gen.stdout.startswith("ROMEO.")

    # An experiment with one parameter changed.
    run("git add -A && git commit -qm trained", repo)
    run("dvc exp run -S lstm.hidden=12", repo)
    runs = list(_exp_rows(json.loads(run("dvc exp show --json", repo).stdout)))
    (exp,) = [r for r in runs if r.get("name") and _lstm_params(r).get("hidden") == 12]
    lstm_metrics = exp["data"]["metrics"]["metrics/lstm.json"]["data"]
    assert {"val_nll_nats", "parameters"} <= lstm_metrics.keys()
    assert lstm_metrics["parameters"] < metrics["metrics/lstm.json"]["parameters"]


def _exp_rows(tree):
    """Every experiment (and baseline) entry in `dvc exp show --json` output."""
    if isinstance(tree, list):
        for item in tree:
            yield from _exp_rows(item)
    elif isinstance(tree, dict):
        if "rev" in tree and "data" in tree:
            yield tree
        for key, value in tree.items():
            if key != "data":
                yield from _exp_rows(value)


def _lstm_params(row) -> dict:
    return row["data"]["params"]["params.yaml"]["data"]["lstm"]


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
    repo = make_repo(tmp_path / "repo", LINE_PARAMS)
    run("git init -q && git config user.email t@t && git config user.name t", repo)
    run("dvc init -q && dvc config core.analytics false", repo)
    run("git add -A && git commit -qm base", repo)
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
            "data", "models", "metrics", "plots", "reports", "dvclive", "checkpoints", "dvc.lock"
        ),
    )
    (repo / "oracle/params.yaml").write_text(yaml.safe_dump(ORACLE_PARAMS))
    run("git init -q && git config user.email t@t && git config user.name t", repo)
    run("dvc init -q && dvc config core.analytics false", repo)
    run("git add -A && git commit -qm base", repo)
    run("dvc repro", repo / "oracle")

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
