"""End to end: the real stage scripts under DVC, in a temporary git repository, on tiny data."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.corpora import make_play
from tests.params import ORACLE_SHIPPED, merged
from tests.repos import (
    CLI,
    EVALUATE_KEYS,
    ROOT,
    TINY_PARAMS,
    UP_TO_EVALUATE,
    init_repo,
    make_repo,
    read_metrics,
    retracing_warnings,
    run,
    run_in_process,
    run_stages,
    stages_run,
)


def _assert_one_line_failure(code: int, stderr: str, *needles: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == 1, stderr
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
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
    # In this process (tests/test_hostile.py runs each command as a process too).
    _assert_one_line_failure(*run_in_process(repo, "prepare"), *needles)
    assert not (repo / "data/prepared").exists()
    assert not (repo / "metrics").exists()


def test_missing_inputs_of_later_stages(tmp_path):
    repo = make_repo(tmp_path / "repo")
    _assert_one_line_failure(*run_in_process(repo, "sample"), "models/lstm.keras", "not found")
    gen = run_in_process(repo, f"{CLI} generate --model nope.keras")
    _assert_one_line_failure(*gen, "nope.keras")


LINE_PARAMS = {
    **TINY_PARAMS,
    "lstm": {**TINY_PARAMS["lstm"], "epochs": 2},
    "data": {
        **TINY_PARAMS["data"],
        "unit": "line",
        "tokenizer": "word",
        "max_vocab": 30,
        "max_len": 10,
    },
    "sample": {**TINY_PARAMS["sample"], "num_samples": 10, "length": 12, "prompt": ""},
    "evaluate": {**TINY_PARAMS["evaluate"], "length": 12},
}


def _assert_intervals(repo: Path, criteria: dict[str, tuple[str, str]]) -> None:
    """The verdict's numbers, checked so that they can fail: every sweep point's interval
    holds its point, the comparison has exactly its keys, and a model wins only where it is
    better beyond the noise at every quality level. ``criteria``: name -> (quality,
    diversity) metrics."""
    evaluate = json.loads((repo / "results/evaluate.json").read_text())
    for model in ["lstm", "gan"]:
        sweep = json.loads((repo / f"plots/sweep/{model}.json").read_text())
        for point in sweep:
            for metric in {m for pair in criteria.values() for m in pair}:
                low, high = point[f"{metric}_low"], point[f"{metric}_high"]
                assert low - 1e-9 <= point[metric] <= high + 1e-9, (model, metric, point)
    assert evaluate["compare"].keys() == criteria.keys()
    for name, c in evaluate["compare"].items():
        assert c.keys() == {
            "lstm_better",
            "gan_better",
            "lstm_better_share",
            "gan_better_share",
            "lstm_dominates",
            "gan_dominates",
            "lstm_more_diverse_share",
            "gan_more_diverse_share",
            "crossings",
            "gan_mean_diversity_gain",
            "gan_mean_diversity_gain_low",
            "gan_mean_diversity_gain_high",
        }, name
        low, high = c["gan_mean_diversity_gain_low"], c["gan_mean_diversity_gain_high"]
        if low is None:  # no common quality level: no gap, so no winner
            assert high is None
            assert c["lstm_better"] == c["gan_better"] == 0.0
            continue
        assert low <= high
        shares = c["lstm_better_share"], c["gan_better_share"]
        assert all(0.0 <= x <= 1.0 for x in shares) and sum(shares) <= 1.0, name
        assert c["gan_better"] == float(shares[1] == 1.0), name
        assert c["lstm_better"] == float(shares[0] == 1.0), name


def test_retracing_warnings_catch_a_function_traced_again_and_again():
    """The in-process pipeline tests' check (``run_stages``) can fail."""
    from textgen.backend import tf

    traced = tf.function(lambda x: x + 1)
    with retracing_warnings() as retraced:
        for n in range(8):
            traced(n)  # a Python number: a new trace each time
    assert retraced
    with retracing_warnings() as retraced:
        for n in range(8):
            traced(tf.constant(n))
    assert not retraced


@pytest.mark.slow
def test_line_corpus_with_word_tokens_end_to_end(tmp_path):
    """Lines and word tokens through the stages, in process (the shared tiny run is the one
    under DVC), up to evaluate: a word export is checked in tests/test_export.py."""
    repo = init_repo(make_repo(tmp_path / "repo", LINE_PARAMS))
    run_stages(repo, UP_TO_EVALUATE)

    vocab = json.loads((repo / "data/prepared/vocab.json").read_text())
    assert vocab["kind"] == "word" and len(vocab["tokens"]) == 30
    assert vocab["special_tokens"] == {"pad": 0, "unk": 1, "bos": 2, "eos": 3}
    train = np.load(repo / "data/prepared/train.npy", allow_pickle=False)
    assert train.ndim == 2 and train.shape[1] == 12  # <bos> + 10 tokens + <eos>
    assert (train[:, 0] == 2).all() and ((train == 3).sum(axis=1) == 1).all()
    metrics = read_metrics(repo)
    assert metrics["results/prepare.json"]["train_sequences"] == len(train)
    for model in ["lstm", "gan"]:
        samples = [json.loads(line) for line in (repo / f"samples/{model}.jsonl").open()]
        assert len(samples) == 10
        for s in samples:
            assert "<pad>" not in s["text"] and "<bos>" not in s["text"] and "\n" not in s["text"]
            ids = s["ids"]
            assert 0 not in ids and 2 not in ids  # never padding or a begin token
            # The end token ends a sample: it is the last id, or the sample ran to its length.
            assert (3 not in ids and len(ids) == 12) or ids.index(3) == len(ids) - 1
        assert metrics["results/evaluate.json"][model].keys() >= EVALUATE_KEYS
    assert metrics["results/lstm.json"]["val_nll_nats"] < np.log(30)
    _assert_intervals(
        repo, {"bleu": ("bleu_4", "self_bleu_4"), "lm": ("lm_score_nats", "reverse_lm_nats")}
    )
    report = (repo / "reports/report.md").read_text()
    assert "95% bootstrap intervals" in report and "models/judge.keras" in report


ORACLE_PARAMS = merged(
    ORACLE_SHIPPED,
    {
        "seed": 3,
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
    },
)


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
            "results",
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
    # The sweep plot's template lives in the main project's .dvc/plots/, which a fresh
    # `dvc init` does not have.
    shutil.copytree(
        ROOT / ".dvc/plots",
        repo / ".dvc/plots",
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("offline.html"),
    )
    run("dvc repro", repo / "oracle")
    # A DVC project of its own: the root's status and repro leave it alone.
    assert "oracle" not in run("dvc status", repo).stdout
    assert "up to date" in run("dvc status", repo / "oracle").stdout

    oracle = json.loads((repo / "oracle/results/oracle.json").read_text())
    assert oracle["oracle_entropy_nats"] < oracle["nll_oracle_uniform"]
    assert abs(oracle["nll_oracle_real"] - oracle["oracle_entropy_nats"]) < 0.3
    evaluate = json.loads((repo / "oracle/results/evaluate.json").read_text())
    for model in ["lstm", "gan"]:
        assert {"nll_oracle", "nll_test"} <= evaluate[model].keys()
        sweep = json.loads((repo / f"oracle/plots/sweep/{model}.json").read_text())
        assert [p["temperature"] for p in sweep] == [0.8, 1.0, 1.2]
    _assert_intervals(repo / "oracle", {"oracle": ("nll_oracle", "nll_test")})
    report = (repo / "oracle/reports/report.md").read_text()
    assert "## Verdict" in report and "](quality_diversity_oracle.svg)" in report
    assert "NLL oracle" in (repo / "oracle/reports/quality_diversity_oracle.svg").read_text()
    plots = run("dvc plots show --json", repo / "oracle").stdout
    assert "NLL oracle (quality) against NLL test" in plots
    assert not (repo / "metrics").exists()  # the main pipeline did not run

    # Training seeds, each an experiment of its own, pooled by `python -m textgen study`. The
    # oracle has its own seed: the task stays, the contestants are retrained.
    # The run above is seed 3's: its experiment trains nothing (the outputs are in place).
    oracle_dir = repo / "oracle"
    for seed, trained in [(3, set()), (4, {"train_lstm", "train_gan", "evaluate"})]:
        log = run(f"dvc exp run -n tiny-seed-{seed} -S seed={seed}", oracle_dir).stdout
        assert stages_run(log) == trained
    shown = run("python -m textgen study tiny --seeds 3 4", oracle_dir).stdout
    assert "| tiny-seed-3 | 3 |" in shown and "| tiny-seed-4 | 4 |" in shown
    figures = json.loads((oracle_dir / "study/tiny.json").read_text())
    assert [row["seed"] for row in figures["seeds"]] == [3, 4]
    # A seed's row is that experiment's own comparison (seed 4's is in the workspace now).
    last = json.loads((oracle_dir / "results/evaluate.json").read_text())["compare"]["oracle"]
    assert figures["seeds"][1]["oracle"] == last
    pooled = figures["pooled"]["oracle"]
    low, high = pooled["gan_mean_diversity_gain_low"], pooled["gan_mean_diversity_gain_high"]
    assert low <= pooled["gan_mean_diversity_gain"] <= high
    assert figures["verdict"] in (oracle_dir / "study/tiny.md").read_text()
    assert "study" not in run("git status --porcelain", repo).stdout  # not for git
    # The queue recipe: one experiment per seed, with the overrides given.
    queued = run("python -m textgen study tiny --queue --seeds 6 -S gan.steps=2", oracle_dir)
    assert "queued tiny-seed-6" in queued.stdout
    assert "tiny-seed-6" in run("dvc queue status", oracle_dir).stdout
    run("dvc queue remove --all", oracle_dir)
    missing = run("python -m textgen study tiny --seeds 7", oracle_dir, check=False)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "no experiment 'tiny-seed-7'" in missing.stderr


def test_a_stage_reading_an_undeclared_param_stops_with_its_name(tmp_path):
    repo = make_repo(tmp_path / "repo")
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    pipeline["stages"]["prepare"]["params"] = []  # as if `data` had been forgotten
    (repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline))
    failure = run_in_process(repo, "prepare")
    _assert_one_line_failure(*failure, "stage 'prepare' reads params key 'data'")
    assert not (repo / "data/prepared").exists()

    (repo / "dvc.yaml").unlink()  # a stage run outside its pipeline's folder
    _assert_one_line_failure(*run_in_process(repo, "prepare"), "dvc.yaml: no stage 'prepare'")
