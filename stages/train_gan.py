"""train_gan: the LSTM + data/prepared/ -> models/gan/ (generator, discriminator), metrics."""

import shutil
import time
from pathlib import Path

from _common import MODELS, PREPARED, stage_params

from textgen.artifacts import (
    atomic_dir,
    load_model,
    load_tokens,
    read_text_size,
    save_keras,
    save_model,
    write_json,
)
from textgen.checkpoints import Checkpoint, checkpoint_dir
from textgen.discriminator import build_discriminator
from textgen.errors import UserError, exit_on_user_error
from textgen.gan import Conditions, GANMonitor, build_gan, fit_gan
from textgen.metrics import likelihood_metrics
from textgen.model import float32_copy
from textgen.seeding import seed_everything
from textgen.sources import TokenSource
from textgen.tracking import write_results, write_step_curves

# metrics/; the rest in results/
HEADLINE = ["val_nats_per_char", "d_accuracy_real", "d_accuracy_fake", "val_nll_nats"]


def main() -> None:
    params = stage_params("train_gan")
    p = params.gan
    seed_everything(params.seed)
    lm, vocab = load_model(MODELS["lstm"])
    train, val = (
        TokenSource.of(load_tokens(PREPARED / f"{split}.npy", len(vocab)))
        for split in ["train", "val"]
    )
    generator = float32_copy(lm)  # MLE warm start; `lm` stays frozen as the judge of quality
    discriminator = build_discriminator(len(vocab), **p.discriminator_args)
    # Independent sequences (data.unit: line) are whole rows; gan.seq_len cuts streams only.
    conditions = Conditions.of(vocab, train.width(p.seq_len))
    gan = build_gan(p, generator, discriminator, conditions, params.seed)
    returns = f", returns discounted by {p.discount}" if p.algorithm == "reinforce" else ""
    print(
        f"text GAN ({p.algorithm}{returns}, {p.loss}, {p.discriminator} discriminator with "
        f"{discriminator.count_params():,} parameters): {p.d_pretrain_steps} discriminator "
        f"pre-training steps, then {p.steps} generator steps"
    )
    # A killed run resumes from its last curve point (an epoch is gan.log_every steps): both
    # networks, both optimisers, the reward baseline, dropout seeds and the curve so far.
    run_dir = checkpoint_dir(
        "train_gan",
        f"{params.seed} {p.model_dump_json()}",
        [MODELS["lstm"], PREPARED / "train.npy", PREPARED / "val.npy", Path(__file__)],
    )
    start = time.perf_counter()
    try:
        monitor = GANMonitor(
            lm,
            val,
            vocab.decode,
            params.seed,
            samples=p.eval_samples,
            val_tokens=p.eval_val_tokens,
            steps=p.steps,
            steps_per_epoch=p.log_every,
            seq_len=conditions.seq_len,
        )
        checkpoint = Checkpoint(run_dir, gan, [monitor])
        fit_gan(gan, train, p.batch_size, p.steps, p.log_every, [monitor], checkpoint)
    except ValueError as err:  # data too small for the window/batch settings
        raise UserError(f"gan: {err}; lower gan.seq_len or gan.batch_size") from None
    seconds = time.perf_counter() - start

    with atomic_dir(MODELS["gan"].parent) as tmp:
        save_model(generator, vocab, tmp / MODELS["gan"].name)
        save_keras(discriminator, tmp / "discriminator.keras")
    final = monitor.history[-1]
    scores = {k: v for k, v in final.items() if k not in {"step", "d_loss", "g_loss", "beta"}}
    # Per character too (the val split's tokens per character), where the tokens are text.
    text = read_text_size(PREPARED / "stats.json", "val")
    likelihood = likelihood_metrics(final["val_nll_nats"], "val_", text)
    scores = {
        k: likelihood[k] for k in ("val_nats_per_char", "val_bits_per_byte") if k in likelihood
    } | scores
    write_results("gan", {**scores, "steps": p.steps}, HEADLINE)
    with atomic_dir("dvclive/train_gan") as tmp:
        write_step_curves(tmp, monitor.history)
    shutil.rmtree(run_dir)  # only now: a kill before this resumes at the end of training
    # Wall-clock time differs run to run: kept out of the hashed outputs.
    write_json("timings/train_gan.json", {"train_seconds": round(seconds, 1)})
    print(f"train_gan: {p.steps} generator steps in {seconds:.0f} s")


if __name__ == "__main__":
    exit_on_user_error(main)
