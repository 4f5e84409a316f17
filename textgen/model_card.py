"""The model card of an export: Markdown with the YAML front matter model hubs read, written
from the pipeline's own facts (the corpus, the model, its params, its held-out and evaluate
figures, two of its samples), never from hand-kept text."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass(frozen=True)
class CardFacts:
    """What a card says. ``figures``: the evaluate stage's figures of this model
    (``results/evaluate.json``'s entry); ``params``: the params sections that made it."""

    name: str  # lstm, gan
    title: str  # what reports call it
    language: list[str]
    corpus: str  # data.corpus
    corpus_files: list[str]
    corpus_sha256: str
    prepared: dict  # data/prepared/stats.json
    architecture: dict  # embedding_dim, hidden, layers
    parameters: int
    params: dict  # section name -> its keys
    validation: dict  # the training stage's results (val_nll_nats, ...)
    figures: dict
    verdict: str
    samples: list[str] = field(default_factory=list)


def corpus_sha256(files: list[str | Path]) -> str:
    """One hash of the corpus: each file's name and bytes, in the order prepare read them."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(Path(path).as_posix().encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _front_matter(f: CardFacts) -> dict:
    tokenizer = f.prepared.get("tokenizer", "char")
    results = [
        {"type": kind, "name": label, "value": round(f.figures[key], 4)}
        for key, kind, label in [
            ("test_nats_per_char", "nll", "held-out NLL (nats/character)"),
            ("test_nll_nats", "nll", "held-out NLL (nats/token)"),
            ("test_bpc", "bpc", "bits per token"),
            ("bleu_4", "bleu", "BLEU-4 against the test split"),
            ("self_bleu_4", "self-bleu", "Self-BLEU-4"),
        ]
        if key in f.figures
    ]
    dataset = Path(f.corpus).name
    return {
        "language": f.language,
        "library_name": "tensorflow",
        "pipeline_tag": "text-generation",
        "tags": ["text-generation", "lstm", f"{tokenizer}-level", "textgen", "dvc"]
        + (["gan"] if f.name == "gan" else []),
        "datasets": [dataset],
        "metrics": ["perplexity", "bleu"],
        "model-index": [
            {
                "name": f"textgen-{f.name}",
                "results": [
                    {
                        "task": {"type": "text-generation"},
                        "dataset": {"name": dataset, "type": dataset, "split": "test"},
                        "metrics": results,
                    }
                ],
            }
        ],
    }


def _params_block(params: dict) -> str:
    return yaml.safe_dump(params, sort_keys=False, allow_unicode=True).rstrip()


def render_card(f: CardFacts) -> str:
    """The card's Markdown: front matter, then what the model is, how it was made and
    measured, how to use it, and what it is not."""
    s = f.prepared
    tokenizer, unit = s.get("tokenizer", "char"), s.get("unit", "stream")
    arch = f.architecture
    shape = f"{arch['layers']} x {arch['hidden']} LSTM, embedding {arch['embedding_dim']}"
    fig = f.figures
    sample = f.params.get("sample", {})
    lines = [
        "---",
        yaml.safe_dump(_front_matter(f), sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# textgen {f.name}: {f.title}",
        "",
        f"A {tokenizer}-level language model ({shape}, {f.parameters:,} parameters) trained by "
        f"the textgen pipeline on `{f.corpus}`"
        + (
            " and then adversarially (a text GAN warm-started from the LSTM)."
            if f.name == "gan"
            else " by maximum likelihood (next-token loss at every position)."
        ),
        "",
        "## Data",
        "",
        f"- Corpus: `{f.corpus}`, {len(f.corpus_files)} file(s), "
        f"{s.get('characters', 0):,} characters, sha256 `{f.corpus_sha256}`.",
        f"- Tokens: {tokenizer} (`data.unit: {unit}`), vocabulary {s['vocab_size']}; split "
        f"`{s.get('split', 'per_file')}`: {s['train_tokens']:,} train, {s['val_tokens']:,} "
        f"validation, {s['test_tokens']:,} test tokens.",
        "",
        "## Figures (held out; from this pipeline's own run)",
        "",
        "| figure | value |",
        "|---|---:|",
    ]
    rows = [
        ("validation NLL, nats/character (training stage)", f.validation.get("val_nats_per_char")),
        ("validation NLL, nats/token (training stage)", f.validation.get("val_nll_nats")),
        ("test NLL, nats/character", fig.get("test_nats_per_char")),
        ("test NLL, nats/token", fig.get("test_nll_nats")),
        ("test bits per token", fig.get("test_bpc")),
        ("test perplexity", fig.get("test_perplexity")),
        ("BLEU-4 of its samples against the test split", fig.get("bleu_4")),
        ("Self-BLEU-4 (lower = more diverse)", fig.get("self_bleu_4")),
        ("distinct-4", fig.get("distinct_4")),
        ("novelty-4 (share of 4-grams not in the training split)", fig.get("novelty_4")),
        ("LM score under the independent judge, nats/token", fig.get("lm_score_nats")),
        ("reverse LM score, nats/token", fig.get("reverse_lm_nats")),
    ]
    lines += [f"| {name} | {value:.4f} |" for name, value in rows if value is not None]
    lines += [
        "",
        f"Sample figures: the `sample` stage's {sample.get('num_samples')} samples of "
        f"{sample.get('length')} tokens at temperature {sample.get('temperature')}. "
        f"The comparison of both models (evaluate stage): {f.verdict}",
        "",
        "## Training",
        "",
        "The params that made it (`params.yaml`):",
        "",
        "```yaml",
        _params_block(f.params),
        "```",
        "",
        "## Use",
        "",
        "With TensorFlow alone (no textgen):",
        "",
        "```python",
        "import tensorflow as tf",
        "",
        'model = tf.saved_model.load("saved_model")',
        "out = model.generate(",
        f"    prompt=[{sample.get('prompt', '')!r}], num_samples=2, length=200,",
        f"    temperature={float(sample.get('temperature', 0.8))!r}, top_k=0, top_p=1.0, seed=0,",
        "    repetition_penalty=1.0, no_repeat_ngram=0, min_length=0, stop=[],",
        ")",
        'print(out["text"].numpy()[0, 0].decode())',
        "```",
        "",
        "`step.tflite` is one step of the model (a token and the state in, logits and the new "
        "state out) for TFLite; `vocab.json` maps ids to tokens. The textgen README shows a "
        "generation loop with `tf.lite.Interpreter`.",
        "",
        "## Intended use and limitations",
        "",
        f"- A small {tokenizer}-level model of one corpus ({s.get('characters', 0):,} "
        "characters): it imitates that text's surface (spelling, layout, common words), not its "
        "meaning. It is not a general text generator, knows nothing outside the corpus, and "
        "states no facts.",
        "- For teaching, experiments on text generation and GANs, and as a baseline; not for "
        "text that people will take as written by a person or as true.",
        "- Its output repeats what the corpus holds, biases included; it can copy stretches of "
        "the training text (see novelty and the longest copy in the evaluate report).",
        "",
    ]
    if f.samples:
        lines += ["## Samples", ""]
        for text in f.samples[:2]:
            lines += ["```text", text.rstrip("\n").replace("```", "'''"), "```", ""]
    return "\n".join(lines)
