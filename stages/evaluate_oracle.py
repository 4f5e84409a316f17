"""evaluate (oracle benchmark): both models against the oracle -> metrics/evaluate.json,
plots/sweep/, reports/ (report.md and its quality-diversity chart).

``nll_oracle``: the oracle's NLL of a model's samples (quality, exact); ``nll_test``: the
model's NLL of held-out oracle sequences (coverage); both over ``evaluate.temperatures``, with
95% bootstrap intervals (generated rows and test rows resampled).
"""

from _common import LABELS, MODELS, ORACLE, PREPARED, REPLICATES, stage_params

from textgen.artifacts import atomic_dir, load_model, load_tokens, save_replicates, write_json
from textgen.comparison import ORACLE_CRITERION, compare_curves, comparison_metrics, verdict
from textgen.errors import UserError, exit_on_user_error
from textgen.evaluation import RESAMPLING
from textgen.oracle import oracle_sweep
from textgen.report import curve_figures, render_oracle_report, write_report
from textgen.seeding import derive_seed, seed_everything
from textgen.tracking import write_results

# What dvc.yaml declares as metrics (the rest goes to results/evaluate.json): each model's
# figures at temperature 1, and the GAN's mean gain in NLL test at equal NLL oracle with its
# 95% interval.
GAIN = ["gan_mean_diversity_gain", "gan_mean_diversity_gain_low", "gan_mean_diversity_gain_high"]
HEADLINE = [
    *(f"{model}.{key}" for model in ("lstm", "gan") for key in ("nll_oracle", "nll_test")),
    *(f"compare.oracle.{key}" for key in GAIN),
]


def main() -> None:
    params = stage_params("evaluate")
    p = params.evaluate
    seed_everything(params.seed)
    oracle, vocab = load_model(ORACLE)
    test = load_tokens(PREPARED / "test.npy", len(vocab))
    if test.ndim != 2:
        raise UserError(f"{PREPARED}/test.npy: expected oracle sequences (run the oracle stage)")
    metrics, sweeps = {}, {}
    for i, (name, path) in enumerate(MODELS.items()):
        model, _ = load_model(path)
        print(f"{name}: temperature sweep {p.temperatures}, {p.num_samples} samples each")
        args = (model, oracle, vocab, test)
        # Each model's samples get their own bootstrap draws: the two sets are independent.
        resample = derive_seed(params.seed, RESAMPLING, i + 1)
        sweeps[name] = oracle_sweep(
            *args, p.temperatures, p.num_samples, params.seed, name, resample_seed=resample
        )
        # The headline figures are at temperature 1 (the model as trained), as published.
        at_one = [pt for pt in sweeps[name].points if pt["temperature"] == 1.0]
        at_one = at_one or oracle_sweep(*args, [1.0], p.num_samples, params.seed, name).points
        metrics[name] = {k: v for k, v in at_one[0].items() if k != "temperature"}
    with atomic_dir("plots/sweep") as tmp:  # both curves or neither
        for name, sweep in sweeps.items():
            write_json(tmp / f"{name}.json", sweep.points)
    save_replicates(REPLICATES, {name: sweep.replicates for name, sweep in sweeps.items()})
    lstm, gan = sweeps["lstm"], sweeps["gan"]
    comparison = compare_curves(
        lstm.points,
        gan.points,
        ORACLE_CRITERION,
        ("lstm", "gan"),
        replicates=(lstm.replicates, gan.replicates),
    )
    metrics["compare"] = {"oracle": comparison_metrics(comparison)}
    answer = verdict([comparison], LABELS)
    write_results("evaluate", metrics, HEADLINE)
    points = {name: sweep.points for name, sweep in sweeps.items()}
    report = render_oracle_report(metrics, points, comparison, answer, LABELS)
    write_report("reports", report, curve_figures(points, [ORACLE_CRITERION], LABELS))
    print(answer)


if __name__ == "__main__":
    exit_on_user_error(main)
