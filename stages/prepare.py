"""prepare: the corpus under data/raw/ -> data/prepared/ (token ids, vocabulary, statistics)."""

import os
from pathlib import Path

from _common import PREPARED, stage_params

from textgen.artifacts import atomic_dir, save_vocab, write_json
from textgen.corpus import corpus_files, prepare_files
from textgen.errors import UserError, exit_on_user_error
from textgen.tracking import write_results

RAW = Path("data/raw")  # the stage's declared input: the corpus must live below it
HEADLINE = ["train_tokens", "vocab_size", "unk_rate_test"]  # metrics/; the rest in results/


def main() -> None:
    p = stage_params("prepare").data
    files = corpus_files(p.corpus)
    outside = [f for f in files if not Path(os.path.abspath(f)).is_relative_to(RAW.absolute())]
    if outside:
        raise UserError(
            f"data.corpus: {outside[0]} is outside {RAW}/, the folder dvc.yaml declares as this "
            f"stage's input; copy or symlink your text under {RAW}/"
        )
    with atomic_dir(PREPARED) as tmp:
        corpus = prepare_files(
            files,
            tmp,
            p.val_fraction,
            p.test_fraction,
            p.lowercase,
            per_file=p.split == "per_file",
            unit=p.unit,
            tokenizer=p.tokenizer,
            max_vocab=p.max_vocab,
            max_len=p.max_len,
        )
        metrics = corpus.metrics
        stats = {
            **metrics,
            "files": [str(f) for f in files],
            "characters": corpus.characters,
            "split": p.split,
            "unit": p.unit,
            "tokenizer": p.tokenizer,
            "lowercase": p.lowercase,
        }
        save_vocab(corpus.vocab, tmp / "vocab.json")
        write_json(tmp / "stats.json", stats)
    write_results("prepare", metrics, HEADLINE)
    print(
        f"prepared {len(files)} file(s): {metrics['train_tokens']:,} / "
        f"{metrics['val_tokens']:,} / {metrics['test_tokens']:,} train/val/test {p.tokenizer} "
        f"tokens{' in lines' if p.unit == 'line' else ''}, "
        f"vocabulary {metrics['vocab_size']}, "
        f"unknown rate val {metrics['unk_rate_val']:.2e} test {metrics['unk_rate_test']:.2e}"
    )


if __name__ == "__main__":
    exit_on_user_error(main)
