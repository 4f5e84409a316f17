"""train_lstm: data/prepared/ -> models/lstm.keras (+ vocabulary), metrics/lstm.json, curves."""

import shutil
from pathlib import Path

from _common import MODELS, PREPARED, stage_params

from textgen.artifacts import atomic_dir, load_tokens, load_vocab, save_model, write_json
from textgen.checkpoints import checkpoint_dir
from textgen.distribute import is_chief, scope, stage_strategy
from textgen.errors import UserError, exit_on_user_error
from textgen.lstm import build_model, heldout_nll, train
from textgen.metrics import likelihood_metrics
from textgen.seeding import seed_everything
from textgen.tracking import write_epoch_curves


def main() -> None:
    params = stage_params("train_lstm")
    p = params.lstm
    strategy = stage_strategy(p.distribute, p.batch_size, "lstm")  # before any other TF work
    seed_everything(params.seed)
    vocab = load_vocab(PREPARED / "vocab.json")
    train_ids, val_ids = (
        load_tokens(PREPARED / f"{split}.npy", len(vocab)) for split in ["train", "val"]
    )

    # One scope for the model, its optimizer and its training (strategy none: no scope).
    with scope(strategy):
        model = build_model(len(vocab), p)
        print(f"LSTM language model: {model.count_params():,} parameters, vocabulary {len(vocab)}")
        # A killed run resumes from its last finished epoch: the whole training state is saved
        # after each, outside the stage's outputs (which DVC deletes before a run).
        run_dir = checkpoint_dir(
            "train_lstm",
            f"{params.seed} {p.model_dump_json()}",
            [PREPARED / "train.npy", PREPARED / "val.npy", PREPARED / "vocab.json", Path(__file__)],
        )
        try:
            result = train(model, train_ids, val_ids, p, params.seed, checkpoint_dir=run_dir)
        except ValueError as err:  # data too small for the window/batch settings
            raise UserError(f"lstm: {err}; lower lstm.seq_len or lstm.batch_size") from None
    if not is_chief(strategy):
        print("lstm: trained; worker 0 (the chief) writes the outputs")
        return

    val_nll = heldout_nll(model, val_ids, p.eval_batch_size)
    metrics = {
        **likelihood_metrics(val_nll, prefix="val_"),
        "epochs": result.epochs,
        "steps": result.steps,
        "parameters": model.count_params(),
    }
    save_model(model, vocab, MODELS["lstm"])
    write_json("metrics/lstm.json", metrics)
    with atomic_dir("dvclive/train_lstm") as tmp:
        write_epoch_curves(tmp, result.epoch_logs)
    if run_dir.exists():  # only now: a kill before this resumes at the end of training
        shutil.rmtree(run_dir)
    # Wall-clock figures differ run to run: kept out of the hashed outputs.
    timings = {"train_seconds": result.seconds, "train_tokens_per_s": result.tokens_per_s}
    write_json("timings/train_lstm.json", {k: round(v, 1) for k, v in timings.items()})
    print(
        f"validation: {metrics['val_nll_nats']:.4f} nats/token, "
        f"{metrics['val_bpc']:.4f} bits/token, "
        f"perplexity {metrics['val_perplexity']:.2f} after {result.epochs} epoch(s), "
        f"{result.seconds:.0f} s, {result.tokens_per_s:,.0f} tokens/s"
    )


if __name__ == "__main__":
    exit_on_user_error(main)
