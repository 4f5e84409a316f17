"""Cost of one adversarial generator step relative to one MLE step of the same model.

Both are timed side by side in one run on the same generator (the default 2x192 LSTM unless
told otherwise), batch and sequence length; speed depends on shapes, not on trained weights,
so a freshly initialised model is used. A gumbel step rolls the generator out token by token
(sequential, with backpropagation through the rollout); a reinforce step samples, scores with
the discriminator, and re-reads the sample teacher-forced; the MLE step is one teacher-forced
forward/backward pass.

    .venv/bin/python bench/gan_step.py [--hidden 192 --layers 2 --seq-len 48 --batch 32]
"""

import argparse
import time

import numpy as np

from textgen.backend import keras, tf
from textgen.config import load_params
from textgen.discriminator import build_discriminator
from textgen.gan import Conditions, build_gan
from textgen.model import build_model, float32_copy
from textgen.seeding import seed_everything


def timed(fn, repeats: int) -> float:
    fn(0)  # compile
    start = time.perf_counter()
    for i in range(repeats):
        fn(i + 1)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=85)
    parser.add_argument("--seq-len", type=int, default=48)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    seed_everything(0)
    shipped = load_params("params.yaml")  # every other setting as the pipeline has it
    size = shipped.lstm.architecture | {"hidden": args.hidden, "layers": args.layers}
    lm = build_model(args.vocab, **size)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(1, args.vocab, (args.batch, args.seq_len)), tf.int32)
    y = tf.constant(rng.integers(1, args.vocab, (args.batch, args.seq_len)), tf.int32)

    mle = float32_copy(lm)
    mle.compile(
        keras.optimizers.Adam(1e-4), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    t_mle = timed(lambda i: mle.train_on_batch(x, y), args.repeats)
    print(f"model {args.layers}x{args.hidden} LSTM, batch {args.batch} x {args.seq_len} tokens")
    print(f"MLE step:                    {t_mle * 1000:8.1f} ms   1.0x")
    for algorithm in ["gumbel", "reinforce"]:
        update = {"algorithm": algorithm, "seq_len": args.seq_len, "batch_size": args.batch}
        p = shipped.gan.model_copy(update=update)
        conditions = Conditions(args.seq_len, args.vocab)
        gan = build_gan(
            p,
            float32_copy(lm),
            build_discriminator(args.vocab, **p.discriminator_args),
            conditions,
            0,
        )
        gan.start_step(p.steps // 2)  # mid-run settings (the relaxation's beta)
        # Compiled as fit compiles them (one function per update kind).
        g_compiled = tf.function(lambda seed, gan=gan: gan.g_step(x, y, tf.ones(y.shape), seed))
        d_compiled = tf.function(lambda seed, gan=gan: gan.d_step(x[:, :1], y, seed))

        def g_step(i, g_compiled=g_compiled):
            return g_compiled(tf.constant(i, tf.int64))

        def d_step(i, d_compiled=d_compiled):
            return d_compiled(tf.constant(i, tf.int64))

        t_g, t_d = timed(g_step, args.repeats), timed(d_step, args.repeats)
        print(f"{algorithm:9s} generator step:    {t_g * 1000:8.1f} ms {t_g / t_mle:6.1f}x")
        print(
            f"{algorithm:9s} discriminator step:{t_d * 1000:8.1f} ms {t_d / t_mle:6.1f}x "
            "(includes sampling the fakes)"
        )


if __name__ == "__main__":
    main()
