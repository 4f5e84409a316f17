"""evaluate: held-out likelihood and sample diversity of each model -> metrics/evaluate.json."""

from pathlib import Path

from textgen.artifacts import load_model, load_tokens, read_jsonl, write_json
from textgen.config import load_params
from textgen.errors import exit_on_user_error
from textgen.lstm import stream_nll
from textgen.metrics import distinct_n, likelihood_metrics
from textgen.seeding import seed_everything

MODELS = {"lstm": "models/lstm.keras", "gan": "models/gan/generator.keras"}
TEST = Path("data/prepared/test.npy")


def main() -> None:
    params = load_params()
    seed_everything(params.seed)
    test_ids = load_tokens(TEST)
    report = {}
    for name, path in MODELS.items():
        model, _ = load_model(path)
        texts = [r["text"] for r in read_jsonl(f"samples/{name}.jsonl")]
        nll = stream_nll(model, test_ids, params.evaluate.batch_size)
        report[name] = {
            **likelihood_metrics(nll, prefix="test_"),
            **{f"distinct_{n}": distinct_n(texts, n) for n in range(1, 5)},
        }
        m = report[name]
        print(
            f"{name}: test {m['test_nll_nats']:.4f} nats/char ({m['test_bpc']:.4f} bits), "
            f"distinct-1..4 " + " ".join(f"{m[f'distinct_{n}']:.3f}" for n in range(1, 5))
        )
    write_json("metrics/evaluate.json", report)


if __name__ == "__main__":
    exit_on_user_error(main)
