"""A team's workflow end to end, on the tiny profile: a pipeline run published to a git origin
and a local-folder DVC remote (the ``team`` fixture, tests/conftest.py), then runs that restore
from the run-cache, clones that pull instead of retraining, verify a change in pipeline CI and
queue experiments that each run their own code. (A fresh clone reproducing the run byte for
byte is the kill chain's last step, tests/test_kill.py.)"""

import json
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.browser import chromium
from tests.repos import (
    EVALUATE_KEYS,
    METRIC_KEYS,
    PIPELINE,
    TIMINGS,
    TINY_PARAMS,
    clone,
    make_repo,
    read_metrics,
    run,
    stages_run,
)

pytestmark = pytest.mark.slow
STAGES = set(PIPELINE)


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def workspace(team: Path, to: Path) -> Path:
    """A copy of the team's run (``team / "a"``: outputs, DVC cache and run-cache), for DVC
    commands of a test's own: ``a`` is shared by the workers, and DVC locks a repository per
    command. Not DVC's locks of the moment (.dvc/tmp)."""
    shutil.copytree(team / "a", to, symlinks=True, ignore=_locks)
    return to


def _locks(folder: str, names: list[str]) -> list[str]:
    return ["tmp"] if Path(folder).name == ".dvc" else []


def set_param(repo: Path, key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    section, name = key.split(".")
    params[section][name] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params))


def test_pipeline_outputs_metrics_and_plots(team, tmp_path):
    repo = workspace(team, tmp_path / "a")
    for out in [
        "data/prepared/train.npy",
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
        "plots/sweep/lstm.json",
        "reports/report.md",
        "reports/quality_diversity_bleu.svg",
        "reports/quality_diversity_lm.svg",
    ]:
        assert (repo / out).is_file(), out
    assert not list((repo / "checkpoints/train_lstm").glob("*")), "a finished run keeps no backup"
    epochs = (repo / "dvclive/train_lstm/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert len(epochs) == 1 + TINY_PARAMS["lstm"]["epochs"], "one curve point per epoch"
    train = np.load(repo / "data/prepared/train.npy", allow_pickle=False)
    assert train.dtype == np.int32 and train.ndim == 1
    metrics = read_metrics(repo)
    for name, keys in METRIC_KEYS.items():
        assert keys <= metrics[name].keys(), name
        assert not TIMINGS & metrics[name].keys(), f"{name}: timings make hashes differ"
    evaluated = metrics["results/evaluate.json"]
    assert set(evaluated) == {"lstm", "gan", "judge", "compare", "verdict", "horizon"}
    # The judge's NLL of the same test split, beside the contestants', in the report too.
    assert evaluated["judge"]["test_nll_nats"] > 0
    assert evaluated["horizon"] == {"adversarial_tokens": 16, "scored_tokens": 40}
    for model in ["lstm", "gan"]:
        assert metrics["results/evaluate.json"][model].keys() >= EVALUATE_KEYS
        sweep = json.loads((repo / f"plots/sweep/{model}.json").read_text())
        assert [p["temperature"] for p in sweep] == [0.7, 1.3]
    compare = metrics["results/evaluate.json"]["compare"]
    assert set(compare) == {"bleu", "lm"}
    report = (repo / "reports/report.md").read_text()
    assert "## Verdict" in report and "## Temperature sweep" in report
    assert "trained adversarially on 16-token sequences" in report
    judge_nll = f"test NLL {evaluated['judge']['test_nll_nats']:.3f} nats/token" in report
    assert judge_nll and f"the LSTM (MLE) {evaluated['lstm']['test_nll_nats']:.3f}" in report
    assert "scores 40-token samples" in report and "(60% of each sample)" in report
    for chart in ["quality_diversity_bleu.svg", "quality_diversity_lm.svg"]:
        assert f"]({chart})" in report, "the report links its charts"
        svg = (repo / "reports" / chart).read_text()
        assert svg.startswith("<svg") and "LSTM (MLE)" in svg and "T=0.7" in svg
    assert report.count("```text") == 2 * 2  # 2 models x 2 temperatures x 1 sample
    assert metrics["results/lstm.json"]["val_nll_nats"] < np.log(
        metrics["results/prepare.json"]["vocab_size"]
    ), "the model must beat a uniform guess"
    for model in ["lstm", "gan"]:
        samples = [json.loads(line) for line in (repo / f"samples/{model}.jsonl").open()]
        assert len(samples) == 10 and all(s["model"] == model for s in samples)
        assert {"temperature", "top_k", "top_p", "seed", "prompt", "text"} <= samples[0].keys()
        assert all(len(s["text"]) == 40 and s["prompt"] == "ROMEO." for s in samples)

    assert stages_run(run("dvc repro", repo).stdout) == set()
    assert "up to date" in run("dvc status", repo).stdout
    assert run("git status --porcelain", repo).stdout == ""
    # Timings: outside the hashed outputs, still in `dvc metrics show`.
    shown = json.loads(run("dvc metrics show --json", repo).stdout)
    files = next(iter(shown.values()))["data"]
    headline = files["metrics/evaluate.json"]["data"]["lstm"]["test_nats_per_char"]
    assert headline == metrics["results/evaluate.json"]["lstm"]["test_nats_per_char"]
    assert files["timings/train_lstm.json"]["data"]["train_tokens_per_s"] > 0
    # The headline only: a table that fits a screen, each figure also in results/.
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["metrics"]
    numbers = [v for path in declared for v in _leaves(files[path]["data"])]
    assert len(numbers) <= 30, len(numbers)
    for name, figures in metrics.items():
        headline = files[name.replace("results/", "metrics/")]["data"]
        assert headline and _leaves(headline) <= _leaves(figures), name
    assert files["timings/train_gan.json"]["data"]["train_seconds"] > 0
    plots = run("dvc plots show --json", repo).stdout
    assert "LSTM loss" in plots
    assert "Quality vs diversity: BLEU-4 against Self-BLEU-4" in plots

    gen = run(
        f"{sys.executable} -m textgen generate --model models/lstm.keras "
        "--prompt ROMEO. -n 2 --length 30 --seed 3",
        repo,
    )
    assert gen.stdout.startswith("ROMEO.")


def test_a_change_reruns_what_follows_it_and_switched_back_the_run_cache_restores(team, tmp_path):
    """(That a fresh clone reproduces the committed dvc.lock byte for byte is the kill chain's
    last step, tests/test_kill.py; that a contestant's change leaves the judge cached,
    tests/test_dvc_yaml.py's.)"""
    repo = workspace(team, tmp_path / "a")
    first = read_metrics(repo)
    set_param(repo, "export.language", ["en", "la"])
    assert stages_run(run("dvc repro", repo).stdout) == {"export"}
    run("git checkout params.yaml", repo)
    back = run("dvc repro", repo).stdout
    assert stages_run(back) == set(), back
    assert "Stage 'export' is cached - skipping run" in back
    assert run("git status --porcelain", repo).stdout == ""
    assert read_metrics(repo) == first


def test_a_model_is_fetched_by_name_version_and_stage_from_the_registry(team, tmp_path):
    """dvc.yaml's artifacts: a teammate (or a deployment) gets a model by name from the
    origin and the remote, without cloning; by a version tag and by a stage tag (GTO's
    notation, which `dvc artifacts get` reads), as docs/shipping.md tells a team to tag."""
    a, origin = team / "a", team / "origin.git"
    run("git tag -a lstm-export@v1.0.0 -m 'first release'", a)
    run("git tag -a 'lstm-export#prod#1' -m 'to production'", a)
    run("git push -q origin --tags", a)
    for how, out in [("", "latest"), ("--rev v1.0.0", "version"), ("--stage prod", "stage")]:
        run(f"dvc artifacts get {origin} lstm-export {how} -o {tmp_path / out}", tmp_path)
        # Files (DVC keeps no empty folder, such as the SavedModel's assets/), byte for byte.
        got = {p.relative_to(tmp_path / out): p.read_bytes() for p in _files(tmp_path / out)}
        want = {
            p.relative_to(a / "exports/lstm"): p.read_bytes() for p in _files(a / "exports/lstm")
        }
        assert got == want and Path("saved_model/saved_model.pb") in got
    # A name resolves through its version tags: none registered yet, none found.
    gan = f"dvc artifacts get {origin} gan-generator -o {tmp_path / 'gan'}"
    untagged = run(gan, tmp_path, check=False)
    assert untagged.returncode != 0 and "Unable to find artifact" in untagged.stderr
    run("git tag -a gan-generator@v0.1.0 -m 'a first GAN' && git push -q origin --tags", a)
    run(gan, tmp_path)
    assert (tmp_path / "gan/generator.keras").is_file()


def test_teammate_pulls_and_pipeline_ci_verifies_a_change(team):
    b = clone(team, "b")
    run("dvc pull", b)
    assert stages_run(run("dvc repro", b).stdout) == set(), "pulled outputs need no training"
    assert "up to date" in run("dvc status", b).stdout
    set_param(b, "evaluate.num_samples", 12)
    assert stages_run(run("dvc repro", b).stdout) == {"evaluate", "export"}  # the card quotes it
    # A pull request whose dvc.lock was committed but whose artifacts were never pushed.
    run("git checkout -q -b more-samples && git commit -qam 'evaluate.num_samples 12'", b)
    run("git push -q origin more-samples", b)

    ci = clone(team, "ci", branch="more-samples")
    report = team / "report.md"
    proc = run(f"REPORT={report} bash scripts/pipeline_ci.sh origin/main", ci)
    text = report.read_text()
    assert "Reproduced: `dvc status` is clean and dvc.lock is the committed one." in text
    assert "stages run here: evaluate export" in text, proc.stdout
    verdict = text.split("## Verdict")[1]
    verdicts = r"^(The LSTM \(MLE\)|The GAN) is better here|^No clear winner here"
    assert re.search(verdicts, verdict, re.M), verdict
    metrics_table = text.split("## Metrics")[1].split("## Params")[0]
    assert "metrics/evaluate.json" in metrics_table and "diversity_gain" in metrics_table
    assert "metrics/prepare.json" not in metrics_table, "unchanged metrics are not listed"
    assert "timings/" not in metrics_table and "failed to load" not in metrics_table
    assert "evaluate.num_samples" in text.split("## Params")[1]
    assert "dvc_plots/index.html" in text and (ci / "dvc_plots/index.html").is_file()
    # CI pushed what it made: the remote now holds every output of this dvc.lock.
    assert "in sync" in run("dvc status --cloud", ci).stdout

    # A params change committed without its dvc.lock fails the gate, with the reason (one
    # that only the last stage reads: the gate needs no more than that stage rerun).
    set_param(ci, "export.language", ["en", "la"])
    run("git commit -qam 'params only'", ci)
    proc = run(f"REPORT={report} bash scripts/pipeline_ci.sh origin/main", ci, check=False)
    assert proc.returncode == 1
    assert "dvc.lock differs from the committed one" in proc.stderr
    assert "**Failed**" in report.read_text()


def test_queued_experiments_run_their_own_code_and_params(team):
    repo = clone(team, "q")
    run("dvc pull", repo)
    # The first experiment carries a library change; the second does not. Both touch the
    # evaluate stage only (its own module, its own params): nothing else is retrained.
    comparison_py = repo / "textgen/comparison.py"
    original = comparison_py.read_text()
    gain = 'f"{b}_mean_diversity_gain": c.mean_gain if n else None,'
    changed = original.replace(gain, 'f"{b}_mean_diversity_gain": -1.0,')
    assert changed != original
    comparison_py.write_text(changed)
    # Up to evaluate: what an experiment runs is what this checks (export only follows).
    run("dvc exp run --queue -n changed-code -S evaluate.num_samples=12 evaluate", repo)
    comparison_py.write_text(original)
    run("dvc exp run --queue -n plain -S evaluate.num_samples=14 evaluate", repo)
    run("dvc queue start -j 2", repo)
    deadline = time.monotonic() + 900
    while "Queued" in (status := run("dvc queue status", repo).stdout) or "Running" in status:
        assert time.monotonic() < deadline, status
        time.sleep(5)
    assert "Failed" not in status, run("dvc queue logs plain", repo, check=False).stdout

    rows = {r["name"]: r for r in _exp_rows(json.loads(run("dvc exp show --json", repo).stdout))}
    changed_row, plain_row = rows["changed-code"], rows["plain"]
    assert _params(changed_row)["evaluate"]["num_samples"] == 12
    assert _params(plain_row)["evaluate"]["num_samples"] == 14
    changed_gain = _metrics(changed_row, "metrics/evaluate.json")["compare"]["bleu"]
    plain = _metrics(plain_row, "metrics/evaluate.json")
    assert changed_gain["gan_mean_diversity_gain"] == -1.0, "it ran its own comparison.py"
    assert plain["compare"]["bleu"]["gan_mean_diversity_gain"] != -1.0
    assert plain["lstm"]["test_nll_nats"] > 0
    run("dvc queue stop", repo, check=False)


def _leaves(tree) -> set:
    """The (dotted key, value) pairs of a nested dict's numbers."""
    if not isinstance(tree, dict):
        return set()
    out = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= {(f"{key}.{k}", v) for k, v in _leaves(value)}
        else:
            out.add((key, value))
    return out


def _exp_rows(tree):
    """Every experiment (and baseline) entry in `dvc exp show --json` output."""
    if isinstance(tree, list):
        for item in tree:
            yield from _exp_rows(item)
    elif isinstance(tree, dict):
        if "rev" in tree and "data" in tree and "name" in tree:
            yield tree
        for key, value in tree.items():
            if key != "data":
                yield from _exp_rows(value)


def _params(row) -> dict:
    return row["data"]["params"]["params.yaml"]["data"]


def _metrics(row, path: str) -> dict:
    return row["data"]["metrics"][path]["data"]


def test_clone_sharing_an_environment_runs_its_own_library(tmp_path):
    """`python stages/x.py` imports the textgen beside it, not the one the venv points at."""
    repo = make_repo(tmp_path / "other-clone")
    corpus = repo / "textgen/corpus.py"
    original = corpus.read_text()
    corpus.write_text(
        original.replace('"vocab_size": len(vocab),', '"code_mark": 1,\n"vocab_size": len(vocab),')
    )
    assert corpus.read_text() != original
    run(f"{sys.executable} stages/prepare.py", repo)
    assert json.loads((repo / "results/prepare.json").read_text())["code_mark"] == 1


def test_dvc_plots_show_draws_every_chart_offline(team, tmp_path):
    """`dvc plots show` with the set-up template: no script from a CDN, and every chart of
    dvc.yaml drawn by headless Chromium from the file alone (this machine has no network)."""
    repo = workspace(team, tmp_path / "a")
    template = tmp_path / "offline.html"
    run(f"{sys.executable} -m textgen plots-template --out {template}", repo)
    run(f"dvc plots show --html-template {template} -o {tmp_path / 'plots'}", repo)
    html = (tmp_path / "plots/index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", html), "no script is fetched"
    charts = html.count("vegaEmbed('#")
    assert charts == len(yaml.safe_load((repo / "dvc.yaml").read_text())["plots"])
    with chromium(1200, 3000) as driver:
        from selenium.webdriver.support.ui import WebDriverWait

        driver.get((tmp_path / "plots/index.html").as_uri())
        drawn = "return document.querySelectorAll('svg.marks, canvas.marks').length"
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(drawn) == charts)
        driver.save_screenshot(str(tmp_path / "dvc_plots.png"))
