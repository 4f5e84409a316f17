"""train_lstm: data/prepared/ -> models/lstm.keras (+ vocabulary), metrics/lstm.json, curves."""

from pathlib import Path

from textgen.artifacts import checkpoint_dir, load_tokens, save_model, write_json
from textgen.config import load_params
from textgen.corpus import Vocabulary
from textgen.errors import UserError, exit_on_user_error
from textgen.lstm import build_model, heldout_nll, resume_epoch, train
from textgen.metrics import likelihood_metrics
from textgen.seeding import seed_everything
from textgen.tracking import open_live

DATA = Path("data/prepared")


def main() -> None:
    params = load_params()
    p = params.lstm
    seed_everything(params.seed)
    vocab = Vocabulary.load(DATA / "vocab.json")
    train_ids, val_ids = load_tokens(DATA / "train.npy"), load_tokens(DATA / "val.npy")

    from dvclive.keras import DVCLiveCallback  # after textgen, which quiets TF start-up logs

    model = build_model(len(vocab), p)
    print(f"LSTM language model: {model.count_params():,} parameters, vocabulary {len(vocab)}")
    backup = checkpoint_dir(
        "train_lstm",
        f"{params.seed} {p.model_dump_json()}",
        [DATA / "train.npy", DATA / "val.npy", DATA / "vocab.json"],
    )
    done = resume_epoch(backup)
    if done:
        print(f"resuming a killed run after epoch {done} (from {backup})")
    live = open_live("dvclive/train_lstm", resume=done > 0)
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
        "train_seconds": round(result.seconds, 1),
        "train_tokens_per_s": round(result.tokens_per_s, 1),
        "parameters": model.count_params(),
    }
    save_model(model, vocab, "models/lstm.keras")
    write_json("metrics/lstm.json", metrics)
    print(
        f"validation: {metrics['val_nll_nats']:.4f} nats/token, "
        f"{metrics['val_bpc']:.4f} bits/token, "
        f"perplexity {metrics['val_perplexity']:.2f} after {result.epochs} epoch(s), "
        f"{result.seconds:.0f} s"
    )


if __name__ == "__main__":
    exit_on_user_error(main)
