"""train_lstm: data/prepared/ -> models/lstm.keras (+ vocabulary), metrics/lstm.json, curves."""

import shutil

from _common import MODELS, PREPARED, stage_params

from textgen.artifacts import (
    checkpoint_dir,
    copy_dir,
    load_tokens,
    load_vocab,
    save_model,
    write_json,
)
from textgen.errors import UserError, exit_on_user_error
from textgen.lstm import build_model, heldout_nll, resume_epoch, train
from textgen.metrics import likelihood_metrics
from textgen.seeding import seed_everything
from textgen.tracking import open_live


def main() -> None:
    params = stage_params("train_lstm")
    p = params.lstm
    seed_everything(params.seed)
    vocab = load_vocab(PREPARED / "vocab.json")
    train_ids, val_ids = load_tokens(PREPARED / "train.npy"), load_tokens(PREPARED / "val.npy")

    from dvclive.keras import DVCLiveCallback  # after textgen, which quiets TF start-up logs

    model = build_model(len(vocab), p)
    print(f"LSTM language model: {model.count_params():,} parameters, vocabulary {len(vocab)}")
    # A killed run resumes from here: weights and optimizer after each epoch (backup/) and
    # the curves so far (dvclive/). Outside the stage's outputs, which DVC deletes first.
    run_dir = checkpoint_dir(
        "train_lstm",
        f"{params.seed} {p.model_dump_json()}",
        [PREPARED / "train.npy", PREPARED / "val.npy", PREPARED / "vocab.json"],
    )
    backup = run_dir / "backup"
    done = resume_epoch(backup)
    if done:
        print(f"resuming a killed run after epoch {done} (from {backup})")
    live = open_live(str(run_dir / "dvclive"), resume=done > 0)
    try:
        result = train(
            model,
            train_ids,
            val_ids,
            p,
            params.seed,
            [DVCLiveCallback(live=live)],
            backup_dir=backup,
        )
    except ValueError as err:  # data too small for the window/batch settings
        raise UserError(f"lstm: {err}; lower lstm.seq_len or lstm.batch_size") from None

    val_nll = heldout_nll(model, val_ids, p.eval_batch_size)
    metrics = {
        **likelihood_metrics(val_nll, prefix="val_"),
        "epochs": result.epochs,
        "steps": result.steps,
        "parameters": model.count_params(),
    }
    save_model(model, vocab, MODELS["lstm"])
    write_json("metrics/lstm.json", metrics)
    copy_dir(run_dir / "dvclive", "dvclive/train_lstm")
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
