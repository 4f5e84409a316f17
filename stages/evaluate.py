"""evaluate: held-out likelihood, BLEU and diversity of each model -> metrics/evaluate.json."""

from pathlib import Path

from textgen.artifacts import load_model, load_tokens, read_jsonl, write_json
from textgen.config import load_params
from textgen.corpus import Vocabulary
from textgen.errors import exit_on_user_error
from textgen.lstm import sequence_nll, stream_nll
from textgen.metrics import (
    BleuReferences,
    distinct_n,
    likelihood_metrics,
    ngram_set,
    novelty,
    self_bleu,
    sentences,
)
from textgen.seeding import seed_everything

MODELS = {"lstm": "models/lstm.keras", "gan": "models/gan/generator.keras"}
DATA = Path("data/prepared")


def main() -> None:
    params = load_params()
    seed_everything(params.seed)
    test_ids = load_tokens(DATA / "test.npy")
    vocab = Vocabulary.load(DATA / "vocab.json")
    references = BleuReferences(sentences(vocab.decode(test_ids)))  # counted once, for all
    seen_4grams = ngram_set(vocab.decode(load_tokens(DATA / "train.npy")), 4)
    judge, _ = load_model(MODELS["lstm"])  # the LSTM trained on real data scores every sample
    report = {}
    for name, path in MODELS.items():
        model, model_vocab = load_model(path)
        records = read_jsonl(f"samples/{name}.jsonl")
        texts = [r["text"] for r in records]
        generated = [s for text in texts for s in sentences(text)]
        nll = stream_nll(model, test_ids, params.evaluate.batch_size)
        report[name] = {
            **likelihood_metrics(nll, prefix="test_"),
            "lm_score_nats": lm_score(judge, model_vocab, records),
            "novelty_4": novelty(texts, seen_4grams, 4),
            **{f"bleu_{n}": references.bleu(generated, n) for n in range(2, 6)},
            **{f"self_bleu_{n}": self_bleu(generated, n) for n in range(2, 6)},
            **{f"distinct_{n}": distinct_n(texts, n) for n in range(1, 5)},
        }
        m = report[name]
        print(
            f"{name}: test {m['test_nll_nats']:.4f} nats/char ({m['test_bpc']:.4f} bits), "
            f"BLEU-4 {m['bleu_4']:.3f}, Self-BLEU-4 {m['self_bleu_4']:.3f}, "
            f"distinct-1..4 " + " ".join(f"{m[f'distinct_{n}']:.3f}" for n in range(1, 5))
        )
    write_json("metrics/evaluate.json", report)


def lm_score(judge, vocab: Vocabulary, records: list[dict]) -> float:
    """Mean per-character NLL of the samples under the judge LM, each after its prompt."""
    total = count = 0.0
    for r in records:
        context = vocab.encode(r["prompt"] or "\n")[None, :]
        ids = vocab.encode(r["text"])[None, :]
        nll = sequence_nll(judge, context, ids).numpy()
        total, count = total + float(nll.sum()), count + nll.size
    return total / count


if __name__ == "__main__":
    exit_on_user_error(main)
