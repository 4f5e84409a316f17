"""The comparison over training seeds: the hierarchical bootstrap, and reading experiments."""

import numpy as np
import pytest

from textgen.artifacts import save_replicates, write_json
from textgen.comparison import ORACLE_CRITERION, compare_curves, winner
from textgen.errors import UserError
from textgen.study import SeedRun, pool, read_run, render, study, summary

TEMPERATURES = [0.5, 0.75, 1.0, 1.25, 1.5]


def synthetic_run(seed: int, gap: float, noise: float = 0.002, replicates: int = 400) -> SeedRun:
    """One seed's oracle-style sweep: the GAN's NLL test lower by ``gap`` at every NLL oracle
    (its coverage better: > 0 favours the GAN), with sampling noise ``noise`` per point."""
    rng = np.random.default_rng(seed)
    points, reps = {}, {}
    for model, shift in [("lstm", 0.0), ("gan", gap)]:
        points[model], reps[model] = [], []
        for t in TEMPERATURES:
            quality, coverage = 9.0 + t, 8.5 - 0.6 * t - shift
            points[model].append({"temperature": t, "nll_oracle": quality, "nll_test": coverage})
            reps[model].append(
                {
                    "nll_oracle": quality + rng.normal(0, noise, replicates),
                    "nll_test": coverage + rng.normal(0, noise, replicates),
                }
            )
    results = {
        m: {"nll_oracle": points[m][2]["nll_oracle"], "nll_test": points[m][2]["nll_test"]}
        for m in points
    }
    params = {"seed": seed, "gan": {"steps": 10}}
    return SeedRun(f"s-seed-{seed}", seed, points, reps, results, params)


def gap_interval(runs: list[SeedRun]) -> tuple[float, float]:
    points, reps = pool(runs, seed=0)
    c = compare_curves(
        points["lstm"],
        points["gan"],
        ORACLE_CRITERION,
        ("lstm", "gan"),
        replicates=(reps["lstm"], reps["gan"]),
    )
    return c.gain_interval


def test_seeds_that_disagree_widen_the_interval_to_their_spread_and_name_no_winner():
    # Each seed alone is sure of itself (tiny sampling noise); retraining flips the sign.
    runs = [synthetic_run(1, 0.05), synthetic_run(2, -0.04), synthetic_run(3, 0.01)]
    s = study(runs)
    alone = [winner(comps[0]) for comps in s.per_seed]
    assert alone == ["gan", "lstm", "gan"]
    low, high = s.pooled[0].gain_interval
    # Three seeds: a replicate is all one seed with probability 1/27 > 2.5%, so the interval
    # reaches the extreme seeds' gaps.
    assert low < -0.035 and high > 0.045
    assert abs(s.pooled[0].mean_gain - (0.05 - 0.04 + 0.01) / 3) < 1e-6
    assert winner(s.pooled[0]) is None
    assert s.verdict.startswith("No clear winner")
    # Pooling the samples alone (one seed's noise) would have been sure: the within-seed
    # interval of each seed is narrow.
    for comps in s.per_seed:
        lo, hi = comps[0].gain_interval
        assert hi - lo < 0.01


def test_seeds_that_agree_name_the_winner():
    s = study([synthetic_run(1, 0.05), synthetic_run(2, 0.03), synthetic_run(3, 0.04)])
    assert winner(s.pooled[0]) == "gan"
    low, high = s.pooled[0].gain_interval
    assert 0.025 < low < 0.04 < high < 0.055
    assert s.verdict.startswith("The GAN is better here")


def test_one_seed_is_that_seeds_own_comparison():
    run = synthetic_run(4, 0.02, noise=0.01)
    s = study([run])
    own, pooled = s.per_seed[0][0], s.pooled[0]
    assert pooled.levels == own.levels and pooled.diversity == own.diversity
    assert pooled.mean_gain == pytest.approx(own.mean_gain)
    # The pooled replicates resample the seed's own replicates: the same spread.
    (lo, hi), (olo, ohi) = pooled.gain_interval, own.gain_interval
    assert (hi - lo) == pytest.approx(ohi - olo, rel=0.2)


def test_pairs_stay_together_a_seeds_lstm_with_its_gan():
    # Seeds differ a lot in level (both models shift together) but not in the gap: pairing
    # keeps the gap's interval narrow; resampling the models' seeds independently would not.
    runs = []
    for seed, level in [(1, 0.0), (2, 0.3), (3, -0.3)]:
        run = synthetic_run(seed, 0.02)
        for model in ("lstm", "gan"):
            for point, reps in zip(run.points[model], run.replicates[model], strict=True):
                point["nll_test"] += level
                reps["nll_test"] = reps["nll_test"] + level
        runs.append(run)
    low, high = gap_interval(runs)
    assert 0.01 < low < 0.02 < high < 0.03


def test_sweeps_at_other_temperatures_or_a_shared_seed_are_refused():
    a, b = synthetic_run(1, 0.0), synthetic_run(2, 0.0)
    b.points["gan"][0]["temperature"] = 0.6
    with pytest.raises(UserError, match="temperatures"):
        pool([a, b], seed=0)
    with pytest.raises(UserError, match="share a training seed"):
        pool([a, synthetic_run(1, 0.0)], seed=0)
    c = synthetic_run(3, 0.0)
    c.params["gan"]["steps"] = 20
    with pytest.raises(UserError, match=r"differ in gan\.steps \(20 vs 10\), not only in seed"):
        pool([a, c], seed=0)


def test_a_run_is_read_from_what_evaluate_writes_and_rendered_with_a_row_per_seed(tmp_path):
    runs = []
    for seed, gap in [(5, 0.03), (6, 0.01)]:
        made = synthetic_run(seed, gap)
        folder = tmp_path / str(seed)
        (folder / "plots/sweep").mkdir(parents=True)
        (folder / "params.yaml").write_text(f"seed: {seed}\ngan:\n  steps: 10\n")
        for model in ("lstm", "gan"):
            write_json(folder / f"plots/sweep/{model}.json", made.points[model])
        save_replicates(folder / "results/replicates", made.replicates)
        write_json(folder / "results/evaluate.json", made.results)
        run = read_run(
            f"s-seed-{seed}",
            lambda path, f=folder: (f / path).read_bytes(),
            lambda path, f=folder: [p.name for p in (f / path).iterdir()],
        )
        assert run.seed == seed and run.points == made.points
        np.testing.assert_array_equal(
            run.replicates["gan"][3]["nll_test"], made.replicates["gan"][3]["nll_test"]
        )
        runs.append(run)
    s = study(runs)
    text = render(s, "tiny")
    assert "| s-seed-5 | 5 |" in text and "| s-seed-6 | 6 |" in text and "**pooled**" in text
    figures = summary(s)
    assert [row["seed"] for row in figures["seeds"]] == [5, 6]
    assert figures["pooled"]["oracle"]["gan_mean_diversity_gain"] == pytest.approx(0.02)


def test_a_replicates_file_that_is_not_an_array_is_named(tmp_path):
    def read(path: str) -> bytes:
        if path == "params.yaml":
            return b"seed: 1\n"
        if path.endswith(".json"):
            return b"[]" if "sweep" in path else b"{}"
        return b"not numpy"

    with pytest.raises(UserError, match=r"results/replicates/lstm/x\.npy: not a replicates"):
        read_run("e", read, lambda folder: ["x.npy"])


def test_a_queued_experiment_gets_the_corpus_that_git_ignores(tmp_path, monkeypatch):
    from tests.repos import run
    from textgen.study import _untracked_inputs

    (tmp_path / "data/raw/mine").mkdir(parents=True)
    (tmp_path / "data/raw/mine/a.txt").write_text("text")
    (tmp_path / "data/raw/README.md").write_text("tracked")
    (tmp_path / "data/raw/notes").mkdir()
    (tmp_path / "data/raw/notes/n.txt").write_text("tracked too")
    run("git init -q && git add data/raw/README.md data/raw/notes", tmp_path)
    monkeypatch.chdir(tmp_path)
    assert _untracked_inputs() == ["data/raw/mine"]
    monkeypatch.chdir(tmp_path / "data")  # no data/raw here (the oracle's folder, say)
    assert _untracked_inputs() == []


def _judged(run: SeedRun, judge: float, lstm: float, gan: float) -> SeedRun:
    """``run`` with the main pipeline's test NLLs: the contestants' and the judge's."""
    results = {m: {"test_nll_nats": v} for m, v in [("judge", judge), ("lstm", lstm), ("gan", gan)]}
    return SeedRun(run.name, run.seed, run.points, run.replicates, results, run.params)


def test_the_study_says_whether_its_judge_is_as_strong_as_every_contestant():
    strong = [_judged(synthetic_run(s, 0.01), 1.37, 1.39 + s / 100, 1.44) for s in (1, 2)]
    text = render(study(strong), "judged")
    assert "test NLL 1.370 nats per token; the contestants' 1.400 to 1.440" in text
    assert "at least as strong as every contestant" in text
    assert summary(study(strong))["judge"]["weaker_than"] == []

    weak = [_judged(synthetic_run(s, 0.01), 1.42, 1.39 + s / 100, 1.44) for s in (1, 2)]
    text = render(study(weak), "judged")
    assert (
        "weaker than 2 of the 4 contestants (the LSTM (MLE), seed 1; the LSTM (MLE), seed 2)"
        in text
    )
    assert summary(study(weak))["judge"]["weaker_than"] == [
        "the LSTM (MLE), seed 1",
        "the LSTM (MLE), seed 2",
    ]
    # The oracle benchmark has no judge: no line, no figure.
    oracle = [synthetic_run(s, 0.01) for s in (1, 2)]
    assert "The judge" not in render(study(oracle), "oracle")
    assert summary(study(oracle))["judge"] is None
