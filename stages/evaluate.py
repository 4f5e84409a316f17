"""evaluate: both models on equal terms -> metrics/evaluate.json, plots/sweep/, reports/ (report.md
and its quality-diversity charts).

Per model: held-out likelihood, and the quality and diversity of the `sample` stage's samples;
then a temperature sweep of both, and the verdict from their quality-diversity curves, with
95% bootstrap intervals (the samples resampled, each model's independently).
"""

import time

import numpy as np
from _common import JUDGE, LABELS, MODELS, PREPARED, REPLICATES, stage_params

from textgen.artifacts import (
    atomic_dir,
    load_model,
    load_tokens,
    load_vocab,
    read_jsonl,
    read_text_size,
    save_replicates,
    write_json,
)
from textgen.comparison import CRITERIA, compare_curves, comparison_metrics, verdict
from textgen.errors import UserError, exit_on_user_error
from textgen.evaluation import RESAMPLING, RealData, sample_metrics, temperature_sweep
from textgen.metrics import likelihood_metrics
from textgen.model import lstm_layers
from textgen.report import (
    curve_figures,
    describe_horizon,
    describe_judge,
    render_report,
    write_report,
)
from textgen.sampling import prompt_context
from textgen.scoring import heldout_nll
from textgen.seeding import derive_seed, seed_everything
from textgen.sources import TokenSource
from textgen.tracking import write_results
from textgen.vocab import Vocabulary

# What dvc.yaml declares as metrics (the rest goes to results/evaluate.json): each model's
# held-out likelihood and the judge's, and per criterion the GAN's mean diversity gain at
# equal quality with its 95% interval (above 0 throughout: the GAN is better; below: the LSTM).
GAIN = ["gan_mean_diversity_gain", "gan_mean_diversity_gain_low", "gan_mean_diversity_gain_high"]
# Per character first (it compares across tokenizers); bits per byte and per token in results/.
HEADLINE = [
    *(
        f"{m}.{key}"
        for m in ("lstm", "gan", "judge")
        for key in ("test_nats_per_char", "test_nll_nats")
    ),
    *(f"compare.{c.name}.{key}" for c in CRITERIA for key in GAIN),
]


def main() -> None:
    params = stage_params("evaluate")
    p = params.evaluate
    seed_everything(params.seed)
    start = time.perf_counter()
    vocab = load_vocab(PREPARED / "vocab.json")
    judge, judge_vocab = load_model(JUDGE)  # neither contestant: no model scores itself
    if judge_vocab.tokens != vocab.tokens:
        raise UserError(f"{JUDGE}: trained on another vocabulary than {PREPARED}/vocab.json")
    real = RealData(
        vocab,
        TokenSource.of(load_tokens(PREPARED / "train.npy", len(vocab))),
        TokenSource.of(load_tokens(PREPARED / "test.npy", len(vocab))),
        judge,
        test_text := read_text_size(PREPARED / "stats.json", "test"),
    )
    # Every input read (and refused, if it must be) before any of the work.
    models, samples = {}, {}
    for name, path in MODELS.items():
        models[name], model_vocab = load_model(path)
        if model_vocab.tokens != vocab.tokens:
            raise UserError(f"{path}: trained on another vocabulary than {PREPARED}/vocab.json")
        samples[name] = encode_samples(f"samples/{name}.jsonl", vocab)
    metrics, sweeps = {}, {}
    for k, (name, model) in enumerate(models.items()):
        # Each model's samples get their own bootstrap draws: the two sets are independent.
        resample_seed = derive_seed(params.seed, RESAMPLING, k + 1)
        context, ids = samples[name]
        nll = heldout_nll(model, real.test, p.batch_size)
        try:
            scores, _ = sample_metrics(
                ids,
                context,
                real,
                p.reverse_lm,
                params.seed,
                derive_seed(resample_seed, 0, 0),
                p.bleu_sentences,
            )
            metrics[name] = {**likelihood_metrics(nll, "test_", test_text), **scores}
        except ValueError as err:  # too few samples for the reverse LM's batches
            raise UserError(
                f"evaluate.reverse_lm: {err}; raise sample.num_samples and "
                "evaluate.num_samples or lower evaluate.reverse_lm.batch_size"
            ) from None
        m = metrics[name]
        print(
            f"{name}: test {m.get('test_nats_per_char', float('nan')):.4f} nats/char "
            f"{m['test_nll_nats']:.4f} nats/token, BLEU-4 {m['bleu_4']:.3f}, "
            f"Self-BLEU-4 {m['self_bleu_4']:.3f}, LM score {m['lm_score_nats']:.3f}, "
            f"reverse LM {m['reverse_lm_nats']:.3f}, longest copy {m['longest_copy_chars']:g}"
        )
        print(f"{name}: temperature sweep {p.temperatures}")
        sweeps[name] = temperature_sweep(
            model, real, p, params.sample.prompt, params.seed, name, resample_seed
        )

    # The judge's own NLL of the same test split, beside the contestants': how strong the
    # model behind the LM score is.
    judge_nll = heldout_nll(judge, real.test, p.batch_size)
    metrics["judge"] = likelihood_metrics(judge_nll, "test_", test_text)
    lstm, gan = sweeps["lstm"], sweeps["gan"]
    replicates = (lstm.replicates, gan.replicates)
    comparisons = [
        compare_curves(lstm.points, gan.points, c, ("lstm", "gan"), replicates=replicates)
        for c in CRITERIA
    ]
    metrics["compare"] = {c.criterion.name: comparison_metrics(c) for c in comparisons}
    answer = verdict(comparisons, LABELS)
    metrics["verdict"] = answer  # results/ only (the export's model card quotes it)
    metrics["horizon"] = {"adversarial_tokens": params.gan.seq_len, "scored_tokens": p.length}
    s = params.sample
    setting = f"`sample` stage, T={s.temperature:g}, {s.num_samples} samples x {s.length} tokens"
    with atomic_dir("plots/sweep") as tmp:  # both curves or neither
        for name, sweep in sweeps.items():
            write_json(tmp / f"{name}.json", sweep.points)
    save_replicates(REPLICATES, {name: sweep.replicates for name, sweep in sweeps.items()})
    write_results("evaluate", metrics, HEADLINE)
    report = render_report(
        metrics,
        sweeps,
        comparisons,
        answer,
        LABELS,
        setting,
        describe_judge(
            str(JUDGE),
            [layer.units for layer in lstm_layers(judge)],
            metrics["judge"]["test_nll_nats"],
            {name: metrics[name]["test_nll_nats"] for name in models},
            LABELS,
        ),
        describe_horizon(params.gan.seq_len, p.length),
    )
    points = {name: sweep.points for name, sweep in sweeps.items()}
    write_report("reports", report, curve_figures(points, CRITERIA, LABELS))
    print(answer)
    print(f"evaluate: {time.perf_counter() - start:.0f} s -> metrics/, plots/sweep/, reports/")


def encode_samples(path: str, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """The samples of ``path`` (the sample stage's JSON lines) as token ids [n, length]
    (padded with 0 after an end token), with their prompts [n, prompt_len] as context."""
    records = read_jsonl(path)
    try:
        context = [prompt_context(vocab, r["prompt"]) for r in records]
        ids = np.zeros((len(records), max(r["length"] for r in records)), np.int32)
        for row, r in zip(ids, records, strict=True):
            row[: len(r["ids"])] = r["ids"]
    except (KeyError, TypeError, ValueError) as err:  # a record not written by `sample`
        raise UserError(
            f"{path}: expected records with prompt, length and ids, as the sample stage "
            f"writes them ({type(err).__name__}: {err}); rerun it"
        ) from None
    if len({len(c) for c in context}) > 1:
        raise UserError(f"{path}: every sample must share its prompt")
    return np.stack(context), ids


if __name__ == "__main__":
    exit_on_user_error(main)
