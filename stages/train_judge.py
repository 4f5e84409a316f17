"""train_judge: data/prepared/ -> models/judge.keras (+ vocabulary), metrics/judge.json.

The independent judge of sample quality: a language model of its own size and seed (the
`judge` section), neither contestant. It depends on the data and its own params only, so it
trains once per corpus: experiments on `lstm` or `gan` reuse it from the run-cache.
"""

import shutil
from pathlib import Path

from _common import JUDGE, PREPARED, stage_params

from textgen.artifacts import load_tokens, load_vocab, read_text_size, save_model
from textgen.checkpoints import checkpoint_dir
from textgen.distribute import is_chief, stage_strategy
from textgen.errors import exit_on_user_error
from textgen.metrics import likelihood_metrics
from textgen.scoring import heldout_nll
from textgen.seeding import seed_everything
from textgen.sources import TokenSource
from textgen.tracking import write_results
from textgen.training import train_language_model

HEADLINE = ["val_nats_per_char", "val_nll_nats"]  # metrics/; the rest in results/


def main() -> None:
    p = stage_params("train_judge").judge
    strategy = stage_strategy(p.distribute, p.batch_size, "judge")  # before any other TF work
    seed_everything(p.seed)
    vocab = load_vocab(PREPARED / "vocab.json")
    train, val = (
        TokenSource.of(load_tokens(PREPARED / f"{split}.npy", len(vocab)))
        for split in ["train", "val"]
    )
    run_dir = checkpoint_dir(
        "train_judge",
        p.model_dump_json(),
        [PREPARED / "train.npy", PREPARED / "val.npy", PREPARED / "vocab.json", Path(__file__)],
    )
    model, result = train_language_model(
        "judge", p, p.seed, strategy, len(vocab), (train, val), run_dir
    )
    if not is_chief(strategy):
        print("judge: trained; worker 0 (the chief) writes the outputs")
        return
    val_nll = heldout_nll(model, val, p.eval_batch_size)
    save_model(model, vocab, JUDGE)
    text = read_text_size(PREPARED / "stats.json", "val")
    metrics = {**likelihood_metrics(val_nll, "val_", text), "epochs": result.epochs}
    write_results("judge", metrics, HEADLINE)
    shutil.rmtree(run_dir, ignore_errors=True)  # only now: a kill before resumes at the end
    print(
        f"judge: validation {val_nll:.4f} nats/token after {result.epochs} epoch(s), "
        f"{result.seconds:.0f} s"
    )


if __name__ == "__main__":
    exit_on_user_error(main)
