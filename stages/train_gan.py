"""train_gan: the LSTM + data/prepared/ -> models/gan/ (generator, discriminator), metrics."""

import shutil
import time
from pathlib import Path

from _common import MODELS, PREPARED, stage_params

from textgen.artifacts import (
    atomic_dir,
    load_model,
    load_tokens,
    save_keras,
    save_model,
    write_json,
)
from textgen.backend import keras
from textgen.checkpoints import Checkpoint, checkpoint_dir
from textgen.errors import UserError, exit_on_user_error
from textgen.gan import Conditions, GANMonitor, TextGAN, build_discriminator, copy_model, fit_gan
from textgen.seeding import seed_everything
from textgen.tracking import write_step_curves


def main() -> None:
    params = stage_params("train_gan")
    p = params.gan
    seed_everything(params.seed)
    lm, vocab = load_model(MODELS["lstm"])
    train_ids, val_ids = (
        load_tokens(PREPARED / f"{split}.npy", len(vocab)) for split in ["train", "val"]
    )
    # Independent sequences (data.unit: line) are whole rows; gan.seq_len cuts streams only.
    seq_len = train_ids.shape[1] - 1 if train_ids.ndim == 2 else p.seq_len
    if train_ids.ndim == 1 and len(val_ids) < p.seq_len + 2:
        raise UserError(f"gan.seq_len: {p.seq_len} is longer than the validation split")

    generator = copy_model(lm)  # MLE warm start; `lm` stays frozen as the judge of quality
    discriminator = build_discriminator(len(vocab), p)
    gan = TextGAN(generator, discriminator, p, params.seed, Conditions.of(vocab, seq_len))
    gan.compile(
        d_optimizer=keras.optimizers.Adam(p.d_learning_rate, global_clipnorm=p.clipnorm),
        g_optimizer=keras.optimizers.Adam(p.g_learning_rate, global_clipnorm=p.clipnorm),
    )
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
    monitor = GANMonitor(lm, val_ids, vocab.decode, params.seed)
    checkpoint = Checkpoint(run_dir, gan, [monitor])
    start = time.perf_counter()
    try:
        fit_gan(gan, train_ids, [monitor], checkpoint)
    except ValueError as err:  # data too small for the window/batch settings
        raise UserError(f"gan: {err}; lower gan.seq_len or gan.batch_size") from None
    seconds = time.perf_counter() - start

    with atomic_dir(MODELS["gan"].parent) as tmp:
        save_model(generator, vocab, tmp / MODELS["gan"].name)
        save_keras(discriminator, tmp / "discriminator.keras")
    final = monitor.history[-1]
    scores = {k: v for k, v in final.items() if k not in {"step", "d_loss", "g_loss", "beta"}}
    write_json("metrics/gan.json", {**scores, "steps": p.steps})
    with atomic_dir("dvclive/train_gan") as tmp:
        write_step_curves(tmp, monitor.history)
    shutil.rmtree(run_dir)  # only now: a kill before this resumes at the end of training
    # Wall-clock time differs run to run: kept out of the hashed outputs.
    write_json("timings/train_gan.json", {"train_seconds": round(seconds, 1)})
    print(f"train_gan: {p.steps} generator steps in {seconds:.0f} s")


if __name__ == "__main__":
    exit_on_user_error(main)
