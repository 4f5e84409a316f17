"""export: each model (LSTM, GAN generator) -> exports/<model>/: a SavedModel that generates
text with TensorFlow alone, a TFLite step model, its vocabulary and its model card."""

import time
from pathlib import Path

from _common import LABELS, MODELS, PREPARED, stage_params

from textgen.artifacts import load_model, read_json, read_jsonl
from textgen.errors import exit_on_user_error
from textgen.export import export
from textgen.model import lstm_layers
from textgen.model_card import CardFacts, corpus_sha256, render_card

EXPORTS = Path("exports")
TRAINED_BY = {"lstm": ["lstm"], "gan": ["lstm", "gan"]}  # the params sections behind each


def main() -> None:
    params = stage_params("export")
    stats = read_json(PREPARED / "stats.json")
    evaluated = read_json(Path("results/evaluate.json"))
    training = {name: read_json(Path(f"results/{name}.json")) for name in MODELS}
    files = stats.get("files", [])
    digest = corpus_sha256(files)
    for name, path in MODELS.items():
        start = time.perf_counter()
        model, vocab = load_model(path)
        layers = lstm_layers(model)
        sections = {s: getattr(params, s).model_dump() for s in TRAINED_BY[name]}
        facts = CardFacts(
            name=name,
            title=LABELS[name],
            language=params.export.language,
            corpus=params.data.corpus,
            corpus_files=files,
            corpus_sha256=digest,
            prepared=stats,
            architecture={
                "embedding_dim": model.get_layer("embedding").output_dim,
                "hidden": layers[0].units,
                "layers": len(layers),
            },
            parameters=model.count_params(),
            params={**sections, "sample": params.sample.model_dump()},
            validation=training[name],
            figures=evaluated.get(name, {}),
            verdict=evaluated.get("verdict", "(not measured)"),
            samples=[r["text"] for r in read_jsonl(f"samples/{name}.jsonl")[:2]],
        )
        done = export(model, vocab, EXPORTS / name, render_card(facts), source=path)
        print(
            f"{name}: {EXPORTS / name}/ in {time.perf_counter() - start:.0f} s: SavedModel "
            f"{done.saved_model_bytes / 1e6:.2f} MB, TFLite {done.tflite_bytes / 1e6:.2f} MB "
            f"(weights {done.weights_bytes / 1e6:.2f} MB), model card"
        )


if __name__ == "__main__":
    exit_on_user_error(main)
