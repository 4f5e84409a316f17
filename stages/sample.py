"""sample: each model (LSTM, GAN generator) -> samples/<model>.jsonl, one JSON object per sample."""

from _common import MODELS, stage_params

from textgen.artifacts import load_model, write_jsonl
from textgen.corpus import real_tokens
from textgen.errors import exit_on_user_error
from textgen.sampling import Decoding, generate_ids
from textgen.seeding import seed_everything


def main() -> None:
    params = stage_params("sample")
    p = params.sample
    seed_everything(params.seed)
    decoding = Decoding(p.temperature, p.top_k, p.top_p)
    for name, path in MODELS.items():
        model, vocab = load_model(path)
        rows = generate_ids(model, vocab, p.prompt, p.num_samples, p.length, decoding, params.seed)
        texts = vocab.decode_rows(rows)
        records = [
            {
                "model": name,
                **decoding.as_dict(),
                "length": p.length,
                "seed": params.seed,
                "index": i,
                "prompt": p.prompt,
                "text": text,
                "ids": real_tokens(row, vocab).tolist(),  # exact tokens, end token included
            }
            for i, (text, row) in enumerate(zip(texts, rows, strict=True))
        ]
        write_jsonl(f"samples/{name}.jsonl", records)
        print(f"{name}: {len(records)} samples of up to {p.length} tokens -> samples/{name}.jsonl")
        print(p.prompt + texts[0][:300])


if __name__ == "__main__":
    exit_on_user_error(main)
