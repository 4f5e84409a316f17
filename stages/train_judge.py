"""train_judge: data/prepared/ -> models/judge.keras (+ vocabulary), metrics/judge.json.

The independent judge of sample quality: a language model of its own size and seed (the
`judge` section), neither contestant. It depends on the data and its own params only, so it
trains once per corpus: experiments on `lstm` or `gan` reuse it from the run-cache.
"""

import shutil
from pathlib import Path

from _common import JUDGE, PREPARED, stage_params

from textgen.artifacts import load_tokens, load_vocab, save_model, write_json
from textgen.checkpoints import checkpoint_dir
from textgen.distribute import is_chief, scope, stage_strategy
from textgen.errors import UserError, exit_on_user_error
from textgen.lstm import build_model, heldout_nll, train
from textgen.metrics import likelihood_metrics
from textgen.seeding import seed_everything


def main() -> None:
    p = stage_params("train_judge").judge
    strategy = stage_strategy(p.distribute, p.batch_size, "judge")  # before any other TF work
    seed_everything(p.seed)
    vocab = load_vocab(PREPARED / "vocab.json")
    train_ids, val_ids = (
        load_tokens(PREPARED / f"{split}.npy", len(vocab)) for split in ["train", "val"]
    )
    # One scope for the model, its optimizer and its training (strategy none: no scope).
    with scope(strategy):
        model = build_model(len(vocab), p)
        print(f"judge: {p.layers} x {p.hidden} LSTM, {model.count_params():,} parameters")
        run_dir = checkpoint_dir(
            "train_judge",
            p.model_dump_json(),
            [PREPARED / "train.npy", PREPARED / "val.npy", PREPARED / "vocab.json", Path(__file__)],
        )
        try:
            result = train(model, train_ids, val_ids, p, p.seed, checkpoint_dir=run_dir)
        except ValueError as err:  # data too small for the window/batch settings
            raise UserError(f"judge: {err}; lower judge.seq_len or judge.batch_size") from None
    if not is_chief(strategy):
        print("judge: trained; worker 0 (the chief) writes the outputs")
        return
    val_nll = heldout_nll(model, val_ids, p.eval_batch_size)
    save_model(model, vocab, JUDGE)
    write_json(
        "metrics/judge.json",
        {**likelihood_metrics(val_nll, prefix="val_"), "epochs": result.epochs},
    )
    if run_dir.exists():  # only now: a kill before this resumes at the end of training
        shutil.rmtree(run_dir)
    print(
        f"judge: validation {val_nll:.4f} nats/token after {result.epochs} epoch(s), "
        f"{result.seconds:.0f} s"
    )


if __name__ == "__main__":
    exit_on_user_error(main)
