"""sample: each model (LSTM, GAN generator) -> samples/<model>.jsonl, one JSON object per sample."""

from _common import MODELS, stage_params

from textgen.artifacts import load_model, write_jsonl
from textgen.corpus import real_tokens
from textgen.errors import exit_on_user_error
from textgen.sampling import Decoding, decode_texts, generate_ids, kept_tokens
from textgen.seeding import seed_everything


def main() -> None:
    params = stage_params("sample")
    p = params.sample
    seed_everything(params.seed)
    decoding = Decoding(
        p.temperature, p.top_k, p.top_p, p.repetition_penalty, p.no_repeat_ngram, p.min_length
    )
    for name, path in MODELS.items():
        model, vocab = load_model(path)
        rows = generate_ids(model, vocab, p.prompt, p.num_samples, p.length, decoding, params.seed)
        texts = decode_texts(vocab, rows, p.stop, p.min_length)
        records = [
            {
                "model": name,
                **decoding.as_dict(),
                "stop": p.stop,
                "length": p.length,
                "seed": params.seed,
                "index": i,
                "prompt": p.prompt,
                "text": text,
                # The exact tokens of the text: the end token included, up to a stop string.
                "ids": kept_tokens(vocab, real_tokens(row, vocab), text).tolist(),
            }
            for i, (text, row) in enumerate(zip(texts, rows, strict=True))
        ]
        write_jsonl(f"samples/{name}.jsonl", records)
        print(f"{name}: {len(records)} samples of up to {p.length} tokens -> samples/{name}.jsonl")
        print(p.prompt + texts[0][:300])


if __name__ == "__main__":
    exit_on_user_error(main)
