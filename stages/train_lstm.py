"""train_lstm: data/prepared/ -> models/lstm.keras (+ vocabulary), metrics/lstm.json, curves."""

import shutil
from pathlib import Path

from _common import MODELS, PREPARED, stage_params

from textgen.artifacts import (
    atomic_dir,
    load_tokens,
    load_vocab,
    read_text_size,
    save_model,
    write_json,
)
from textgen.checkpoints import checkpoint_dir
from textgen.distribute import is_chief, stage_strategy
from textgen.errors import exit_on_user_error
from textgen.metrics import likelihood_metrics
from textgen.scoring import heldout_nll
from textgen.seeding import seed_everything
from textgen.sources import TokenSource
from textgen.tracking import write_epoch_curves, write_results
from textgen.training import train_language_model

# metrics/ (per character first: it compares across tokenizers); the rest in results/
HEADLINE = ["val_nats_per_char", "val_bits_per_byte", "val_nll_nats", "val_bpc"]


def main() -> None:
    params = stage_params("train_lstm")
    p = params.lstm
    strategy = stage_strategy(p.distribute, p.batch_size, "lstm")  # before any other TF work
    seed_everything(params.seed)
    vocab = load_vocab(PREPARED / "vocab.json")
    train, val = (
        TokenSource.of(load_tokens(PREPARED / f"{split}.npy", len(vocab)))
        for split in ["train", "val"]
    )
    # A killed run resumes from its last finished epoch: the whole training state is saved
    # after each, outside the stage's outputs (which DVC deletes before a run).
    run_dir = checkpoint_dir(
        "train_lstm",
        f"{params.seed} {p.model_dump_json()}",
        [PREPARED / "train.npy", PREPARED / "val.npy", PREPARED / "vocab.json", Path(__file__)],
    )
    model, result = train_language_model(
        "lstm", p, params.seed, strategy, len(vocab), (train, val), run_dir
    )
    if not is_chief(strategy):
        print("lstm: trained; worker 0 (the chief) writes the outputs")
        return

    val_nll = heldout_nll(model, val, p.eval_batch_size)
    metrics = {
        **likelihood_metrics(val_nll, "val_", read_text_size(PREPARED / "stats.json", "val")),
        "epochs": result.epochs,
        "steps": result.steps,
        "parameters": model.count_params(),
    }
    save_model(model, vocab, MODELS["lstm"])
    write_results("lstm", metrics, HEADLINE)
    with atomic_dir("dvclive/train_lstm") as tmp:
        write_epoch_curves(tmp, result.epoch_logs)
    shutil.rmtree(run_dir, ignore_errors=True)  # only now: a kill before resumes at the end
    # Wall-clock figures differ run to run: kept out of the hashed outputs.
    timings = {"train_seconds": result.seconds, "train_tokens_per_s": result.tokens_per_s}
    write_json("timings/train_lstm.json", {k: round(v, 1) for k, v in timings.items()})
    per_char = (
        f"{metrics['val_nats_per_char']:.4f} nats/char, " if "val_nats_per_char" in metrics else ""
    )
    print(
        f"validation: {per_char}{metrics['val_nll_nats']:.4f} nats/token, "
        f"{metrics['val_bpc']:.4f} bits/token, "
        f"perplexity {metrics['val_perplexity']:.2f} after {result.epochs} epoch(s), "
        f"{result.seconds:.0f} s, {result.tokens_per_s:,.0f} tokens/s"
    )


if __name__ == "__main__":
    exit_on_user_error(main)
