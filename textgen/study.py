"""The comparison over several training seeds (``python -m textgen study``): each seed is a DVC
experiment of its own (``-S seed=S``: the LSTM, the GAN that starts from it, the samples and
the reverse LMs all retrained), and the study pools their temperature sweeps into one verdict
whose intervals cover retraining as well as sampling.

Why a hierarchical bootstrap: one training run's intervals cover only which samples were
drawn, and retraining moves the curves by as much as the gaps reported ("On Accurate
Evaluation of GANs for Language Generation", Semeniuta et al.; "Language GANs Falling Short",
Caccia et al.). Each replicate draws the seeds with replacement, a seed's LSTM and GAN
together (the GAN starts from that seed's LSTM, and both are scored on the same test draws),
then for each drawn seed one of its own sample-bootstrap replicates (as ``evaluate`` drew
them), and averages the drawn seeds' metrics at every temperature. The point curves are the
seeds' mean metrics at every temperature. With one seed this is ``evaluate``'s own bootstrap.
With few seeds it understates the seed-to-seed spread (a bootstrap of k values has (k-1)/k of
their variance, and 3 seeds give only 10 distinct draws): read the intervals as a floor.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from textgen.artifacts import LABELS, REPLICATES
from textgen.comparison import (
    CRITERIA,
    ORACLE_CRITERION,
    Comparison,
    Criterion,
    Replicates,
    compare_curves,
    comparison_metrics,
    verdict,
    winner,
)
from textgen.errors import UserError

MODELS = tuple(LABELS)


@dataclass(frozen=True)
class SeedRun:
    """One training seed's evaluation: its sweep points and their bootstrap replicates, per
    model, and the figures of ``results/evaluate.json``."""

    name: str  # the experiment
    seed: int
    points: dict[str, list[dict[str, float]]]
    replicates: dict[str, Replicates]
    results: dict
    params: dict  # its params.yaml: every run of a study must differ in `seed` alone


def experiment_name(study: str, seed: int) -> str:
    return f"{study}-seed-{seed}"


# The pipeline's input, ignored by Git (the built-in corpus, a user's text): a queued
# experiment runs in a temporary copy of the repository that holds only what Git and DVC
# track, so it is copied in (`dvc exp run --copy-paths`).
RAW = Path("data/raw")


def queue(study: str, seeds: list[int], overrides: list[str]) -> list[str]:
    """``dvc exp run --queue`` one experiment per seed, ``-S seed=S`` with the same
    ``overrides`` (and what Git ignores under ``data/raw`` copied in); returns their names."""
    names = []
    for seed in seeds:
        name = experiment_name(study, seed)
        command = [sys.executable, "-m", "dvc", "exp", "run", "--queue", "-n", name]
        for path in _untracked_inputs():
            command += ["--copy-paths", path]
        for override in [f"seed={seed}", *overrides]:
            command += ["-S", override]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            detail = " ".join((done.stderr or done.stdout).split())
            raise UserError(f"study: could not queue {name}: {detail}")
        names.append(name)
    return names


def _untracked_inputs() -> list[str]:
    """The entries of ``data/raw`` that hold no file Git tracks (the corpus itself; its
    README is tracked, and so already in the copy)."""
    if not RAW.is_dir():
        return []
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", str(RAW)], capture_output=True, text=True
    ).stdout
    tracked = [Path(f) for f in listed.split("\0") if f]
    return [
        str(entry)
        for entry in sorted(RAW.iterdir())
        if not any(f == entry or entry in f.parents for f in tracked)
    ]


def read_run(
    name: str, read: Callable[[str], bytes], listdir: Callable[[str], list[str]]
) -> SeedRun:
    """One experiment's evaluation, through ``read(path)`` and ``listdir(folder)`` (file names),
    paths relative to its pipeline's folder."""
    import yaml

    params = yaml.safe_load(read("params.yaml"))
    points = {m: json.loads(read(f"plots/sweep/{m}.json")) for m in MODELS}
    replicates: dict[str, Replicates] = {}
    for model in MODELS:
        folder = f"{REPLICATES}/{model}"
        columns = {}
        for file in sorted(f for f in listdir(folder) if f.endswith(".npy")):
            columns[file[: -len(".npy")]] = _load_npy(read(f"{folder}/{file}"), f"{folder}/{file}")
        if not columns:
            raise UserError(f"{name}: {folder} holds no replicates (rerun its evaluate stage)")
        replicates[model] = [
            {metric: column[i] for metric, column in columns.items()}
            for i in range(len(points[model]))
        ]
    results = json.loads(read("results/evaluate.json"))
    return SeedRun(name, int(params["seed"]), points, replicates, results, params)


def _load_npy(data: bytes, path: str) -> np.ndarray:
    import io

    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UserError(f"{path}: not a replicates array ({err})") from None
    if not isinstance(array, np.ndarray) or array.ndim != 2:
        raise UserError(f"{path}: expected a [points, replicates] array")
    return array.astype(np.float64)


def read_experiment(name: str) -> SeedRun:
    """An experiment of the DVC project in the current folder (the root, or a project of its
    own like oracle/), read from its Git commit and the DVC cache; the workspace is left
    alone."""
    import posixpath

    from dvc.exceptions import DvcException
    from dvc.fs.dvc import DVCFileSystem
    from dvc.repo import Repo
    from dvc_data.index import DataIndexError

    missing = (DvcException, DataIndexError)  # in dvc.lock, but not in this machine's cache

    try:
        here = Repo(".")
    except DvcException:
        raise UserError("study: run it in a DVC project's folder (the root, or oracle/)") from None
    # A revision's file system starts at the Git root: a project in a subfolder is under it.
    prefix = Path(os.path.relpath(here.root_dir, here.scm.root_dir)).as_posix()
    try:
        repo = Repo.open(".", rev=name, subrepos=True, uninitialized=True)
    except DvcException as err:
        raise UserError(
            f"study: no experiment '{name}' here ({' '.join(str(err).split())})"
        ) from None
    with repo:
        fs = DVCFileSystem(repo=repo, subrepos=True)

        def where(path: str) -> str:
            return posixpath.normpath(posixpath.join(prefix, path))

        def read(path: str) -> bytes:
            try:
                return fs.read_bytes(where(path))
            except FileNotFoundError:
                raise UserError(f"{name}: {path} not found (did its evaluate stage run?)") from None
            except missing as err:
                raise UserError(
                    f"{name}: {path} is not in this machine's DVC cache ({err}): "
                    "`dvc exp pull` it or run it here"
                ) from None

        def listdir(folder: str) -> list[str]:
            try:
                return [posixpath.basename(e) for e in fs.ls(where(folder), detail=False)]
            except (FileNotFoundError, *missing):
                raise UserError(
                    f"{name}: {folder} not found (an experiment from before `evaluate` kept "
                    "its replicates: rerun it)"
                ) from None

        return read_run(name, read, listdir)


def criteria_of(run: SeedRun) -> tuple[Criterion, ...]:
    """The oracle benchmark's criterion where its sweeps have it, else the main pipeline's."""
    return (ORACLE_CRITERION,) if "nll_oracle" in run.points["lstm"][0] else CRITERIA


def _flat(params: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check_alike(runs: list[SeedRun]) -> None:
    first = runs[0]
    base = {k: v for k, v in _flat(first.params).items() if k != "seed"}
    for run in runs[1:]:
        other = {k: v for k, v in _flat(run.params).items() if k != "seed"}
        differ = sorted(k for k in base.keys() | other.keys() if base.get(k) != other.get(k))
        if differ:
            raise UserError(
                f"study: {run.name} and {first.name} differ in {differ[0]} "
                f"({other.get(differ[0])!r} vs {base.get(differ[0])!r}), not only in seed"
            )
        for model in MODELS:
            temps = [p["temperature"] for p in run.points[model]]
            if temps != [p["temperature"] for p in first.points[model]]:
                raise UserError(
                    f"study: {run.name} swept temperatures {temps}, {first.name} "
                    f"{[p['temperature'] for p in first.points[model]]}: give them one "
                    "evaluate.temperatures"
                )
            if run.replicates[model][0].keys() != first.replicates[model][0].keys():
                raise UserError(f"study: {run.name} and {first.name} bootstrapped other metrics")
    seeds = [run.seed for run in runs]
    if len(set(seeds)) != len(seeds):
        raise UserError(f"study: two experiments share a training seed ({seeds})")


def pool(
    runs: list[SeedRun], seed: int
) -> tuple[dict[str, list[dict[str, float]]], dict[str, Replicates]]:
    """The seeds' mean sweep points per model, and the hierarchical bootstrap's replicates of
    them (module docstring): seeds drawn with replacement, then one of each drawn seed's own
    replicates, the same draws for both models and every metric (so a seed's pair and a
    sample set's metrics move together)."""
    _check_alike(runs)
    k = len(runs)
    within = min(len(next(iter(r.replicates["lstm"][0].values()))) for r in runs)
    n = within  # as many pooled replicates as each seed has
    rng = np.random.default_rng(seed)
    which_seed = rng.integers(0, k, (n, k))
    which_replicate = rng.integers(0, within, (n, k))
    points: dict[str, list[dict[str, float]]] = {}
    pooled: dict[str, Replicates] = {}
    for model in MODELS:
        first = runs[0].points[model]
        points[model] = [
            {
                key: float(np.mean([r.points[model][i][key] for r in runs]))
                for key, value in first[i].items()
                if isinstance(value, int | float) and all(key in r.points[model][i] for r in runs)
            }
            for i in range(len(first))
        ]
        metrics = list(runs[0].replicates[model][0])
        pooled[model] = [{} for _ in first]
        for metric in metrics:
            # [seeds, points, replicates], each seed's first `within` replicates
            stack = np.stack(
                [np.stack([pt[metric][:within] for pt in r.replicates[model]]) for r in runs]
            )
            drawn = stack[which_seed, :, which_replicate]  # [n, k, points]
            means = drawn.mean(axis=1)
            for i in range(len(first)):
                pooled[model][i][metric] = means[:, i]
    return points, pooled


@dataclass(frozen=True)
class Study:
    runs: list[SeedRun]
    per_seed: list[list[Comparison]]  # each seed's own comparisons (its sampling noise only)
    pooled: list[Comparison]  # over seeds x samples
    verdict: str


def study(runs: list[SeedRun], seed: int = 0) -> Study:
    """Each seed's comparisons and the pooled one, on the pipeline's criteria."""
    criteria = criteria_of(runs[0])
    per_seed = [
        [
            compare_curves(
                r.points["lstm"],
                r.points["gan"],
                c,
                MODELS,
                replicates=(r.replicates["lstm"], r.replicates["gan"]),
            )
            for c in criteria
        ]
        for r in runs
    ]
    points, reps = pool(runs, seed)
    pooled = [
        compare_curves(
            points["lstm"], points["gan"], c, MODELS, replicates=(reps["lstm"], reps["gan"])
        )
        for c in criteria
    ]
    return Study(runs, per_seed, pooled, verdict(pooled, LABELS))


def _gap(c: Comparison) -> str:
    if c.overlap is None:
        return "no common level"
    text = f"{c.mean_gain:+.3f}"
    if c.gain_interval:
        text += f" [{c.gain_interval[0]:+.3f}, {c.gain_interval[1]:+.3f}]"
    return text


def _shares(c: Comparison) -> str:
    if not c.better:
        return "-"
    n = len(c.better)
    return " / ".join(f"{c.better.count(who) / n:.0%}" for who in ("gan", "lstm", None))


def _who(c: Comparison) -> str:
    best = winner(c)
    return LABELS[best] if best else "no clear winner"


def _headline(run: SeedRun, model: str) -> str:
    figures = run.results.get(model, {})
    keys = ("nll_oracle", "nll_test") if "nll_oracle" in figures else ("test_nll_nats",)
    return ", ".join(f"{figures[k]:.3f}" for k in keys if k in figures)


def judge_strength(runs: list[SeedRun]) -> dict | None:
    """The judge behind the LM score beside the contestants, by test NLL per token (the main
    pipeline's; the oracle benchmark has none): its figure, theirs, and those it is weaker
    than. A study's runs share one judge (its params are alike, its seed its own)."""
    key = "test_nll_nats"
    if not all(key in r.results.get("judge", {}) for r in runs):
        return None
    judge = max(r.results["judge"][key] for r in runs)
    contestants = {f"{LABELS[m]}, seed {r.seed}": r.results[m][key] for r in runs for m in MODELS}
    return {
        key: judge,
        "contestants": contestants,
        "weaker_than": [name for name, nll in contestants.items() if nll < judge],
    }


def _judge_line(strength: dict) -> str:
    nll = strength["contestants"].values()
    text = (
        f"**The judge** behind the LM score: test NLL {strength['test_nll_nats']:.3f} nats per "
        f"token; the contestants' {min(nll):.3f} to {max(nll):.3f}. "
    )
    weaker = strength["weaker_than"]
    if not weaker:
        return text + "It is at least as strong as every contestant."
    return text + (
        f"It is weaker than {len(weaker)} of the {len(nll)} contestants ({'; '.join(weaker)}): "
        "the LM score says how likely a weaker model finds the samples."
    )


def render(s: Study, title: str) -> str:
    """The study as Markdown: a row per seed and the pooled row, per criterion."""
    heads = (
        "NLL oracle, NLL test at T=1"
        if "nll_oracle" in s.runs[0].results.get("gan", {})
        else "test NLL"
    )
    out = [
        f"# Study: {title}, {len(s.runs)} training seed{'s' if len(s.runs) > 1 else ''}",
        "",
        "Written by `python -m textgen study`. Gap: how much more diverse the GAN is at equal "
        "quality, averaged over the quality range both curves span (> 0: the GAN), with its "
        "95% interval. Shares: the quality levels where the GAN / the MLE is more diverse "
        "beyond the noise / neither. A seed's row covers its sampling noise only; the pooled "
        "row is a hierarchical bootstrap (seeds, then samples within each seed), which "
        "with few seeds understates the seed-to-seed spread.",
        "",
        f"**Verdict over seeds x samples**: {s.verdict}",
        "",
    ]
    strength = judge_strength(s.runs)
    if strength:
        out += [_judge_line(strength), ""]
    for j, c0 in enumerate(s.pooled):
        crit = c0.criterion
        out += [
            f"## {crit.quality_label} vs {crit.diversity_label}",
            "",
            f"| run | seed | GAN: {heads} | MLE: {heads} | gap | GAN / MLE / neither "
            "| crossings | verdict |",
            "|---|---:|---|---|---|---|---:|---|",
        ]
        for run, comps in zip(s.runs, s.per_seed, strict=True):
            c = comps[j]
            out.append(
                f"| {run.name} | {run.seed} | {_headline(run, 'gan')} | {_headline(run, 'lstm')} "
                f"| {_gap(c)} | {_shares(c)} | {len(c.crossings)} | {_who(c)} |"
            )
        out.append(
            f"| **pooled** | all | | | {_gap(c0)} | {_shares(c0)} | {len(c0.crossings)} "
            f"| {_who(c0)} |"
        )
        out.append("")
    return "\n".join(out)


def summary(s: Study) -> dict:
    """The figures as JSON: per seed and pooled, per criterion."""

    def clean(values: dict) -> dict:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()
        }

    return {
        "verdict": s.verdict,
        "bootstrap": "hierarchical: seeds with replacement (pairs), then samples within each seed",
        "pooled": {c.criterion.name: clean(comparison_metrics(c)) for c in s.pooled},
        "judge": judge_strength(s.runs),
        "seeds": [
            {
                "experiment": run.name,
                "seed": run.seed,
                **{c.criterion.name: clean(comparison_metrics(c)) for c in comps},
            }
            for run, comps in zip(s.runs, s.per_seed, strict=True)
        ],
    }
