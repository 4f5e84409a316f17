"""train_gan: the LSTM + data/prepared/ -> models/gan/ (generator, discriminator), metrics."""

import math
from pathlib import Path

from _common import stage_params

from textgen.artifacts import load_model, load_tokens, save_keras, save_model, write_json
from textgen.errors import UserError, exit_on_user_error
from textgen.gan import GANTrainer, build_discriminator, copy_model
from textgen.seeding import seed_everything
from textgen.tracking import open_live

DATA = Path("data/prepared")
OUT = Path("models/gan")


def main() -> None:
    params = stage_params("train_gan")
    p = params.gan
    seed_everything(params.seed)
    lm, vocab = load_model("models/lstm.keras")
    train_ids, val_ids = load_tokens(DATA / "train.npy"), load_tokens(DATA / "val.npy")
    # Independent sequences (data.unit: line) are whole rows; gan.seq_len cuts streams only.
    seq_len = train_ids.shape[1] - 1 if train_ids.ndim == 2 else p.seq_len
    if train_ids.ndim == 1 and len(val_ids) < p.seq_len + 2:
        raise UserError(f"gan.seq_len: {p.seq_len} is longer than the validation split")

    live = open_live("dvclive/train_gan")

    generator = copy_model(lm)  # MLE warm start; `lm` stays frozen as the judge of quality
    discriminator = build_discriminator(len(vocab), p)
    print(
        f"text GAN ({p.algorithm}, {p.loss}, {p.discriminator} discriminator with "
        f"{discriminator.count_params():,} parameters): {p.d_pretrain_steps} discriminator "
        f"pre-training steps, then {p.steps} generator steps"
    )

    def log(step: int, metrics: dict) -> None:
        # dvclive's step counts points; the x axis must be the generator step itself.
        live.step = step
        for name, value in metrics.items():
            if math.isfinite(value):  # no D/G loss yet at the warm start (step 0)
                live.log_metric(name, value, plot=True)
        live.next_step()
        print(
            f"step {step:5d}  D loss {metrics['d_loss']:.3f}  acc real/fake "
            f"{metrics['d_accuracy_real']:.2f}/{metrics['d_accuracy_fake']:.2f}  G loss "
            f"{metrics['g_loss']:.3f}  beta {metrics['beta']:.1f}  val NLL "
            f"{metrics['val_nll_nats']:.3f}  sample LM NLL {metrics['sample_lm_nll_nats']:.3f}  "
            f"distinct-2 {metrics['distinct_2']:.3f}",
            flush=True,
        )

    trainer = GANTrainer(
        generator, discriminator, lm, p, params.seed, vocab.never_sampled, vocab.eos_id, seq_len
    )
    try:
        result = trainer.train(train_ids, val_ids, vocab.decode, log)
    except ValueError as err:  # data too small for the window/batch settings
        raise UserError(f"gan: {err}; lower gan.seq_len or gan.batch_size") from None
    live.end()

    save_model(generator, vocab, OUT / "generator.keras")
    save_keras(discriminator, OUT / "discriminator.keras")
    final = {k: v for k, v in result.final.items() if k not in {"step", "d_loss", "g_loss", "beta"}}
    write_json("metrics/gan.json", {**final, "steps": result.steps})
    # Wall-clock time differs run to run: kept out of the hashed outputs.
    write_json("timings/train_gan.json", {"train_seconds": round(result.seconds, 1)})
    print(f"train_gan: {result.steps} generator steps in {result.seconds:.0f} s")


if __name__ == "__main__":
    exit_on_user_error(main)
