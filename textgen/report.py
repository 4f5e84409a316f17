"""reports/report.md: the comparison a person reads, from the numbers evaluate computed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from textgen.artifacts import atomic_dir
from textgen.comparison import Comparison, Criterion, describe
from textgen.evaluation import BOOTSTRAP_REPLICATES, Sweep
from textgen.figures import sweep_chart, write_svg

# metric -> (what it measures, whether higher is better); None: no better direction.
# Per-character figures first: they compare across tokenizers (a run whose tokens are not text,
# the oracle's, has none: their rows are left out).
METRICS: dict[str, tuple[str, bool | None]] = {
    "test_nats_per_char": ("held-out NLL, nats per character of the test text", False),
    "test_bits_per_byte": ("the same in bits per UTF-8 byte", False),
    "test_nll_nats": ("held-out NLL, nats per token (test split)", False),
    "test_bpc": ("the same in bits per token (per character with `char` tokens)", False),
    "test_perplexity": ("the same as perplexity", False),
    **{
        f"bleu_{n}": (f"BLEU-{n} against the test split's sentences (quality)", True)
        for n in (2, 3, 4, 5)
    },
    "bleu_sentences": ("lines BLEU and Self-BLEU score (`evaluate.bleu_sentences`)", None),
    **{
        f"self_bleu_{n}": (
            f"Self-BLEU-{n}, samples against each other (lower = more diverse)",
            False,
        )
        for n in (2, 3, 4, 5)
    },
    **{
        f"distinct_{n}": (f"distinct {n}-grams / all {n}-grams (diversity)", True)
        for n in (1, 2, 3, 4)
    },
    "ms_jaccard_4": (
        "MS-Jaccard-4: n-gram frequencies shared with the test split (quality and diversity)",
        True,
    ),
    "novelty_4": ("share of word 4-grams not in the training split", None),
    "longest_copy_chars": ("median longest span copied verbatim from the training split", None),
    "lm_score_nats": (
        "NLL of the samples under the independent judge LM, trained on real text (quality)",
        False,
    ),
    "reverse_lm_nats": (
        "NLL of the test split under an LM trained on the samples (coverage)",
        False,
    ),
    "lm_score_nats_per_char": ("the LM score per character of the samples' text", False),
    "reverse_lm_nats_per_char": ("the reverse LM score per character of the test text", False),
}

SWEEP_COLUMNS = {
    "temperature": "T",
    "bleu_4": "BLEU-4",
    "self_bleu_4": "Self-BLEU-4",
    "bleu_sentences": "lines",
    "lm_score_nats": "LM score",
    "reverse_lm_nats": "reverse LM",
    "distinct_4": "distinct-4",
    "novelty_4": "novelty-4",
    "longest_copy_chars": "longest copy",
}


def render_report(
    metrics: dict[str, dict[str, float]],
    sweeps: dict[str, Sweep],
    comparisons: list[Comparison],
    verdict: str,
    labels: dict[str, str],
    setting: str,
    judge: str = "the judge LM",
    horizon: str = "",
) -> str:
    """The report; ``judge`` names the LM that gives the LM score (e.g. its file and size),
    ``horizon`` says how the adversary's sequence length compares with the scored samples'."""
    names = list(sweeps)
    out = [
        f"# Which generator is better here: {' or '.join(labels[n] for n in names)}?",
        "",
        "Written by the `evaluate` stage (`dvc repro`); every chart is in `dvc plots show`.",
        "",
        "## Verdict",
        "",
        verdict,
        "",
        *[f"- {describe(c, labels)}" for c in comparisons],
        "",
        *figure_links([c.criterion for c in comparisons]),
        "A model is only better if it is more diverse *at equal quality*: lowering the "
        "sampling temperature buys any model quality at the price of diversity, so single "
        "points say little (Caccia et al., *Language GANs Falling Short*). Each model is "
        "sampled at every temperature of the sweep below; its curve is the best diversity "
        "it offers at each quality level.",
        "",
        INTERVALS,
        "",
        f"LM score: NLL of the samples under {judge}.",
        "",
        *([horizon, ""] if horizon else []),
        f"## Metrics at the sampling settings ({setting})",
        "",
        f"| metric | {' | '.join(labels[n] for n in names)} | better | what it measures |",
        f"|---|{'---:|' * len(names)}---|---|",
    ]
    for key, (meaning, higher) in METRICS.items():
        if any(key not in metrics[n] for n in names):
            continue
        values = [metrics[n][key] for n in names]
        best = ""
        if higher is not None and len(set(values)) > 1:
            pick = max if higher else min
            best = labels[names[values.index(pick(values))]]
        cells = " | ".join(_with_interval(metrics[n], key) for n in names)
        out.append(f"| `{key}` | {cells} | {best} | {meaning} |")

    out += ["", "## Temperature sweep", ""]
    for name in names:
        out += [
            f"**{_capital(labels[name])}**",
            "",
            "| " + " | ".join(SWEEP_COLUMNS.values()) + " |",
            "|" + "---:|" * len(SWEEP_COLUMNS),
        ]
        for point in sweeps[name].points:
            rest = [_with_interval(point, k) for k in list(SWEEP_COLUMNS)[1:]]
            cells = [f"{point['temperature']:g}", *rest]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")

    out += ["## Samples", ""]
    for name in names:
        examples = sweeps[name].examples
        temps = sorted(examples)
        shown = sorted({temps[0], temps[len(temps) // 2], temps[-1]})
        for t in shown:
            for i, text in enumerate(examples[t]):
                out += [
                    f"{_capital(labels[name])}, T={t:g}, sample {i + 1}:",
                    "",
                    "```text",
                    text[:400].strip("\n"),
                    "```",
                    "",
                ]
    return "\n".join(out)


def describe_judge(
    path: str, sizes: list[int], nll: float, contestants: dict[str, float], labels: dict[str, str]
) -> str:
    """The judge as the report names it: its file and LSTM sizes (read from the loaded model,
    not from params, which could describe another model than the file evaluate read), and its
    test NLL beside the contestants'; a judge weaker than a contestant is said to be one."""
    shape = f"{len(sizes)} x {sizes[0]}" if len(set(sizes)) == 1 else " + ".join(map(str, sizes))
    against = ", ".join(f"{labels[name]} {value:.3f}" for name, value in contestants.items())
    text = (
        f"the independent judge ({path}: {shape} LSTM, neither contestant; test NLL "
        f"{nll:.3f} nats/token, against {against})"
    )
    weaker = [labels[name] for name, value in contestants.items() if nll > value]
    if weaker:
        text += (
            f". The judge is weaker than {' and '.join(weaker)}: the LM score says how likely "
            "a weaker model finds the samples (the `judge` section of params.yaml sizes it)"
        )
    return text


def describe_horizon(adversarial: int, scored: int) -> str:
    """How much of each scored sample the adversary shaped: the GAN is trained on
    ``gan.seq_len``-token examples, the sweep scores ``evaluate.length``-token samples."""
    text = (
        f"Horizon: the GAN was trained adversarially on {adversarial}-token sequences "
        f"(`gan.seq_len`); the sweep scores {scored}-token samples (`evaluate.length`)"
    )
    if scored <= adversarial:
        return text + ", all within the horizon the discriminator judged."
    return (
        text + f": past token {adversarial}, the GAN generates beyond anything its "
        f"discriminator judged ({1 - adversarial / scored:.0%} of each sample)."
    )


def figure_name(criterion: Criterion) -> str:
    """The file, beside the report, of ``criterion``'s quality-diversity chart."""
    return f"quality_diversity_{criterion.name}.svg"


def figure_title(criterion: Criterion) -> str:
    return f"Quality vs diversity: {criterion.quality_label} against {criterion.diversity_label}"


def figure_links(criteria: Sequence[Criterion]) -> list[str]:
    """The report's Markdown for its charts (relative links: they render on a code host)."""
    return [line for c in criteria for line in (f"![{figure_title(c)}]({figure_name(c)})", "")]


def curve_figures(
    sweeps: dict[str, list[dict[str, float]]],
    criteria: Sequence[Criterion],
    labels: dict[str, str],
) -> dict[str, dict]:
    """The report's charts: file name -> Vega-Lite spec, one per criterion, with every model's
    sweep (``plots/sweep/*.json`` points) as a curve of quality against diversity."""

    def axis(label: str, higher: bool, good: str) -> str:
        return f"{label} ({'higher' if higher else 'lower'} = {good})"

    curves = {labels[name]: points for name, points in sweeps.items()}
    return {
        figure_name(c): sweep_chart(
            figure_title(c),
            curves,
            x=c.diversity,
            y=c.quality,
            x_title=axis(c.diversity_label, c.diversity_higher_is_better, "more diverse"),
            y_title=axis(c.quality_label, c.quality_higher_is_better, "better"),
        )
        for c in criteria
    }


def write_report(folder: str | Path, text: str, figures: dict[str, dict]) -> None:
    """``folder``/report.md and its charts (``curve_figures``) as SVG: all of them or none."""
    with atomic_dir(folder) as tmp:
        for filename, spec in figures.items():
            write_svg(spec, tmp / filename)
        (tmp / "report.md").write_text(text, encoding="utf-8")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _with_interval(values: dict[str, float], key: str) -> str:
    """``0.164 [0.151, 0.178]``: a value and its 95% interval, where it has one."""
    text = _number(values[key])
    if f"{key}_low" in values:
        text += f" [{values[f'{key}_low']:.3f}, {values[f'{key}_high']:.3f}]"
    return text


def _number(value: float) -> str:
    if value is None:
        return "n/a"
    if float(value).is_integer() and abs(value) < 1e6:
        return f"{value:g}"
    return f"{value:.3f}"


INTERVALS = (
    f"Brackets: 95% bootstrap intervals ({BOOTSTRAP_REPLICATES} replicates; the unit is one "
    "sample, resampled with replacement). BLEU-4 and the LM score resample the generated "
    "samples. Self-BLEU-4 "
    "re-averages each sentence's score against the full sample set (its references are not "
    "resampled). The reverse LM score is **scoring-side only**: its LM is trained once per "
    "sample set, and the interval resamples the test split's rows (or windows of a stream), "
    "so it omits the noise of training on another draw of samples. The gap between two curves "
    "is recomputed on every replicate (each model's samples resampled independently, the test "
    "split both share with the same draws), at every quality level and on average; a model "
    "wins a criterion only if the gap's interval excludes zero at every level of the range "
    "both models reach (curves that cross, or a gap within the noise anywhere, name no "
    "winner: the regions where each is better are given instead). The intervals cover "
    "sampling noise only: each model is one training run (one seed), so the noise of "
    "retraining is not in them; `python -m textgen study` pools several seeds' runs "
    "(docs/evaluation.md). Dominance is descriptive: an exact comparison of the point "
    "curves, without noise."
)

# Published NLL-oracle figures on this setup (vocabulary 5000, length 20, 10,000 samples).
PUBLISHED_ORACLE = [
    ("random generator", "SeqGAN paper, Table 1", 10.310),
    ("MLE", "SeqGAN paper, Table 1", 9.038),
    ("SeqGAN", "SeqGAN paper, Table 1", 8.736),
    ("RelGAN", "RelGAN paper, length 20", 6.680),
]


def render_oracle_report(
    metrics: dict,
    sweeps: dict[str, list[dict[str, float]]],
    comparison: Comparison,
    verdict: str,
    labels: dict[str, str],
) -> str:
    """The synthetic benchmark's report: the verdict, T=1 figures beside published ones, sweeps."""
    names = list(sweeps)
    out = [
        "# Synthetic oracle benchmark: " + " vs ".join(labels[n] for n in names),
        "",
        "Written by `dvc repro` in `oracle/`. NLL oracle: the oracle's NLL of a model's samples "
        "(quality, exact); NLL test: the model's NLL of held-out oracle sequences (coverage). "
        "Lower is better for both; nats per token. Brackets: 95% bootstrap intervals "
        f"({BOOTSTRAP_REPLICATES} replicates) over the generated rows (NLL oracle) and the "
        "test rows (NLL test); the gap "
        "between the curves is recomputed on every replicate, and a model wins only if its "
        "interval excludes zero. Dominance is descriptive (point curves, compared exactly).",
        "",
        "## Verdict",
        "",
        verdict,
        "",
        f"- {describe(comparison, labels)}",
        "",
        *figure_links([comparison.criterion]),
        "## At temperature 1",
        "",
        "| model | NLL oracle | NLL test |",
        "|---|---:|---:|",
        *[
            f"| {labels[n]} | {_with_interval(metrics[n], 'nll_oracle')} | "
            f"{_with_interval(metrics[n], 'nll_test')} |"
            for n in names
        ],
        "",
        "Published NLL oracle on this setup (their oracle draws differ from ours, so compare "
        "distances to each paper's own MLE rather than raw values):",
        "",
        "| model | source | NLL oracle |",
        "|---|---|---:|",
        *[f"| {m} | {src} | {v:.3f} |" for m, src, v in PUBLISHED_ORACLE],
        "",
        "## Temperature sweep",
        "",
    ]
    for name in names:
        out += [
            f"**{_capital(labels[name])}**",
            "",
            "| T | NLL oracle | NLL test |",
            "|---:|---:|---:|",
        ]
        out += [
            f"| {pt['temperature']:g} | {_with_interval(pt, 'nll_oracle')} | "
            f"{_with_interval(pt, 'nll_test')} |"
            for pt in sweeps[name]
        ]
        out.append("")
    return "\n".join(out)
