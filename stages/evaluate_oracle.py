"""evaluate (oracle benchmark): both models against the oracle -> metrics/evaluate.json,
plots/sweep/, reports/report.md.

``nll_oracle``: the oracle's NLL of a model's samples (quality, exact); ``nll_test``: the
model's NLL of held-out oracle sequences (coverage); both over ``evaluate.temperatures``.
"""

from _common import LABELS, MODELS, ORACLE, PREPARED, stage_params

from textgen.artifacts import load_model, load_tokens, write_json, write_text_atomic
from textgen.errors import UserError, exit_on_user_error
from textgen.evaluation import Criterion, compare_curves, comparison_metrics, verdict
from textgen.oracle import oracle_sweep
from textgen.report import render_oracle_report
from textgen.seeding import seed_everything

# NLL test is exact for a model (no sampling); 0.01 nats is below any gap worth a verdict.
ORACLE_CRITERION = Criterion(
    "oracle", "nll_oracle", False, "nll_test", False, "NLL oracle", "NLL test", tie=0.01
)


def main() -> None:
    params = stage_params("evaluate")
    p = params.evaluate
    seed_everything(params.seed)
    oracle, vocab = load_model(ORACLE)
    test = load_tokens(PREPARED / "test.npy", len(vocab))
    if test.ndim != 2:
        raise UserError(f"{PREPARED}/test.npy: expected oracle sequences (run the oracle stage)")
    metrics, sweeps = {}, {}
    for name, path in MODELS.items():
        model, _ = load_model(path)
        print(f"{name}: temperature sweep {p.temperatures}, {p.num_samples} samples each")
        args = (model, oracle, vocab, test)
        sweeps[name] = oracle_sweep(*args, p.temperatures, p.num_samples, params.seed, name)
        write_json(f"plots/sweep/{name}.json", sweeps[name])
        # The headline figures are at temperature 1 (the model as trained), as published.
        at_one = [pt for pt in sweeps[name] if pt["temperature"] == 1.0]
        at_one = at_one or oracle_sweep(*args, [1.0], p.num_samples, params.seed, name)
        metrics[name] = {k: v for k, v in at_one[0].items() if k != "temperature"}
    comparison = compare_curves(sweeps["lstm"], sweeps["gan"], ORACLE_CRITERION, ("lstm", "gan"))
    metrics["compare"] = {"oracle": comparison_metrics(comparison)}
    answer = verdict([comparison], LABELS)
    write_json("metrics/evaluate.json", metrics)
    report = render_oracle_report(metrics, sweeps, comparison, answer, LABELS)
    write_text_atomic("reports/report.md", report)
    print(answer)


if __name__ == "__main__":
    exit_on_user_error(main)
