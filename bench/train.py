"""Training throughput of the LSTM language model: textgen's train() vs. plain Keras, fp32 and bf16.

Every contender is timed in one run on the same batches: ``StreamSource.batches`` over one token
stream drawn from a seeded NumPy Generator (int32 [batch, seq_len] inputs and targets, the
targets shifted by one; Zipf-skewed, so that a few steps have something to learn). Each runs
``model.fit`` for one epoch of warm-up + timed steps; a callback reads ``time.perf_counter`` at
the start of the first timed step and the end of the last, so tracing, compilation, warm-up and
the end-of-epoch validation are outside the timing. The textgen contenders are trained by
``textgen.training.train`` itself (its dataset, Adam with warm-up + cosine decay and
global_clipnorm, its loss and callbacks); the plain ones by ``model.fit`` with Keras defaults.
The loss on one held-out batch afterwards checks that every variant trains (bf16 included); it
is no quality claim. Absolute speed on a shared machine is noise: read the ratios.

    .venv/bin/python bench/train.py [--hidden 192 --layers 2 --embedding 64 --batch 64
        --seq-len 128 --vocab 65 --steps 30 --warmup 3]
"""

import argparse
import contextlib
import math
import time
from collections.abc import Callable, Iterator

import numpy as np

from textgen.backend import keras, tf
from textgen.config import LSTMParams, load_params
from textgen.model import build_model
from textgen.seeding import seed_everything
from textgen.sources import StreamSource
from textgen.training import train


def train_flops_per_token(vocab: int, p: LSTMParams) -> float:
    """Analytic training FLOPs per token: 3x the forward pass (forward + backward), where the
    forward pass is 2*4*h*(in + h) per LSTM layer (four gates; in = embedding size for the first
    layer, h above it) plus 2*h*vocab for the output layer. The embedding lookup is free."""
    h, forward, width = p.hidden, 2 * p.hidden * vocab, p.embedding_dim
    for _ in range(p.layers):
        forward += 2 * 4 * h * (width + h)
        width = h
    return 3.0 * forward


def matmul_gflops(dtype: tf.DType, n: int = 2048, repeats: int = 5) -> float | None:
    """GFLOP/s of an n x n matmul in ``dtype`` (2*n^3 per product); None if it has no kernel."""
    rng = np.random.default_rng(0)
    a, b = (tf.cast(rng.standard_normal((n, n)), dtype) for _ in range(2))
    product = tf.function(tf.linalg.matmul)
    try:
        product(a, b).numpy()  # trace and warm up outside the timing
    except tf.errors.OpError:
        return None
    start = time.perf_counter()
    for _ in range(repeats):
        c = product(a, b)
    c.numpy()  # wait for the last product
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


class StepTimer(keras.callbacks.Callback):
    """Seconds from the start of step ``warmup`` to the end of step ``warmup + steps - 1``.

    Overriding ``on_train_batch_end`` makes Keras run callbacks synchronously (logs turned into
    numbers after every step), so the stamp follows the step's completion; same for everyone."""

    def __init__(self, warmup: int, steps: int) -> None:
        super().__init__()
        self.first, self.last, self.start, self.seconds = warmup, warmup + steps - 1, 0.0, 0.0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if batch == self.first:
            self.start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if batch == self.last:
            self.seconds = time.perf_counter() - self.start


@contextlib.contextmanager
def policy(name: str) -> Iterator[None]:
    """Build layers under a Keras dtype policy, then back to float32 for whatever follows."""
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def plain_model(vocab: int, p: LSTMParams) -> keras.Model:
    """The common baseline. float32 logits even under mixed precision (Keras' guide): a no-op
    under the float32 policy."""
    lstms = [keras.layers.LSTM(p.hidden, return_sequences=True) for _ in range(p.layers)]
    embed = keras.layers.Embedding(vocab, p.embedding_dim)
    logits = keras.layers.Dense(vocab, dtype="float32")
    return keras.Sequential([keras.Input((None,), dtype="int32"), embed, *lstms, logits])


class ProjectedLSTMCell(keras.layers.Layer):
    """An LSTM cell fed its input already multiplied by the input kernel: the lever "precompute
    the input projection over the whole window" (one [batch * time, in] x [in, 4h] matmul ahead
    of the loop instead of one small one per step), measured here before any library change.
    Same gates and FLOPs as Keras' LSTMCell (bias in the projection)."""

    def __init__(self, units: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units, self.state_size, self.output_size = units, [units, units], units

    def build(self, input_shape: tuple) -> None:
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, 4 * self.units), initializer="orthogonal", name="recurrent_kernel"
        )

    def call(self, projected: tf.Tensor, states: list) -> tuple:
        h, c = states
        z = projected + keras.ops.matmul(h, self.recurrent_kernel)
        i, f, g, o = keras.ops.split(z, 4, axis=-1)
        c = keras.ops.sigmoid(f) * c + keras.ops.sigmoid(i) * keras.ops.tanh(g)
        h = keras.ops.sigmoid(o) * keras.ops.tanh(c)
        return h, [h, c]


def forget_bias(units: int) -> Callable:
    def init(shape: tuple, dtype: str | None = None) -> tf.Tensor:
        return tf.concat([tf.zeros(units), tf.ones(units), tf.zeros(2 * units)], 0)

    return init


def projected_model(vocab: int, p: LSTMParams) -> keras.Model:
    embed = keras.layers.Embedding(vocab, p.embedding_dim)
    layers: list = [keras.Input((None,), dtype="int32"), embed]
    for _ in range(p.layers):
        layers += [
            # The input projection, over the whole window; its bias starts as Keras' LSTM's
            # (unit_forget_bias: 1 on the forget gate).
            keras.layers.Dense(4 * p.hidden, bias_initializer=forget_bias(p.hidden)),
            keras.layers.RNN(ProjectedLSTMCell(p.hidden), return_sequences=True),
        ]
    return keras.Sequential([*layers, keras.layers.Dense(vocab, dtype="float32")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--embedding", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=65, help="a character vocabulary")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per contender")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (>= 1)")
    parser.add_argument("--no-xla", action="store_true", help="skip the jit_compile contender")
    args = parser.parse_args()

    tf.get_logger().setLevel("ERROR")  # each model traces its own steps: not "retracing"
    seed = 0
    seed_everything(seed)  # as the pipeline's stages run (op determinism on)
    update = {"embedding_dim": args.embedding, "hidden": args.hidden, "layers": args.layers}
    update |= {"batch_size": args.batch, "seq_len": args.seq_len, "epochs": 1}
    n_steps = max(args.warmup, 1) + args.steps
    update["steps_per_epoch"] = n_steps  # one epoch of exactly the steps fit runs
    p = load_params("params.yaml").lstm.model_copy(update=update)  # the rest as shipped

    zipf = 1.0 / np.arange(1, args.vocab + 1)
    zipf /= zipf.sum()
    rng = np.random.default_rng(seed)
    n_tokens = n_steps * args.batch * args.seq_len + 2 * args.seq_len + 1
    tokens = rng.choice(args.vocab, n_tokens, p=zipf).astype(np.int32)
    val = rng.choice(args.vocab, args.batch * args.seq_len + 1, p=zipf).astype(np.int32)
    val_x, val_y = (v.reshape(args.batch, args.seq_len) for v in (val[:-1], val[1:]))
    source = StreamSource(tokens)

    def textgen(model: keras.Model, timer: StepTimer) -> float:
        result = train(model, source, StreamSource(val), p, seed, callbacks=[timer], verbose=0)
        return result.epoch_logs[-1]["val_loss"]

    def plain(model: keras.Model, timer: StepTimer) -> float:
        # The same batches train() makes: the same seed and epoch length.
        ds = source.batches(args.batch, args.seq_len, seed, n_steps)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        val_data = (val_x, val_y)  # one batch, as train() validates on it
        fit = {"epochs": 1, "steps_per_epoch": n_steps, "shuffle": False, "verbose": 0}
        hist = model.fit(ds, callbacks=[timer], validation_data=val_data, **fit)
        return hist.history["val_loss"][-1]

    def textgen_xla(model: keras.Model, timer: StepTimer) -> float:
        # train() compiles the model itself: bind jit_compile=True into this model's compile.
        # Keras refuses XLA under op determinism (seed_everything), so lift it for this one.
        from tensorflow.python.framework import config as tf_config  # after TF's quiet import

        compile_ = model.compile
        model.compile = lambda **kw: compile_(**kw, jit_compile=True)
        tf_config.disable_op_determinism()
        try:
            loss = textgen(model, timer)
        finally:
            tf_config.enable_op_determinism()
        if not model.jit_compile:
            raise RuntimeError("Keras fell back to jit_compile=False")
        return loss

    vocab = args.vocab
    size = p.architecture
    contenders: list[tuple[str, str, Callable[[], keras.Model], Callable]] = [
        ("textgen (train_lstm)", "float32", lambda: build_model(vocab, **size), textgen),
        ("plain Keras fp32", "float32", lambda: plain_model(vocab, p), plain),
        ("plain Keras mixed_bfloat16", "mixed_bfloat16", lambda: plain_model(vocab, p), plain),
        ("plain, input projection hoisted", "float32", lambda: projected_model(vocab, p), plain),
        # build_model has no say over the logits' dtype: they come out bf16 (the loss casts
        # them to float32 before the softmax).
        (
            "textgen + mixed_bfloat16 *",
            "mixed_bfloat16",
            lambda: build_model(vocab, **size),
            textgen,
        ),
    ]
    xla = (
        "textgen + jit_compile (XLA)",
        "float32",
        lambda: build_model(vocab, **size),
        textgen_xla,
    )
    contenders += [] if args.no_xla else [xla]

    fp32_peak = matmul_gflops(tf.float32)
    bf16_peak = matmul_gflops(tf.bfloat16)
    flops = train_flops_per_token(vocab, p)
    print(f"model {args.layers}x{args.hidden} LSTM, embedding {args.embedding}, vocab {vocab}")
    print(
        f"batch {args.batch} x {args.seq_len} tokens, {args.steps} timed steps after "
        f"{n_steps - args.steps} warm-up, model.fit; {flops / 1e6:.2f} MFLOP/token (train)"
    )
    print(
        f"matmul 2048^3 peak: fp32 {fp32_peak:.1f} GFLOP/s, bf16 "
        + (f"{bf16_peak:.1f} GFLOP/s" if bf16_peak else "unsupported (skipped)")
    )
    entropy = -(zipf * np.log(zipf)).sum()
    print(
        f"loss reference: uniform ln({vocab}) = {math.log(vocab):.3f}, "
        f"token entropy = {entropy:.3f} nats\n"
    )

    rows = []
    for name, dtype_policy, build, run in contenders:
        keras.utils.set_random_seed(seed)  # the same initial draws for every contender
        with policy(dtype_policy):
            model = build()
        timer = StepTimer(n_steps - args.steps, args.steps)
        try:
            loss = run(model, timer)
        except Exception as err:  # e.g. XLA on CPU: report and go on
            print(f"{name}: skipped ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
            continue
        rows.append((name, args.batch * args.seq_len * args.steps / timer.seconds, loss))

    base = next((tps for name, tps, _ in rows if name == "plain Keras fp32"), math.nan)
    print(
        f"{'contender':30s}{'tokens/s':>10s}{'GFLOP/s':>9s}{'vs fp32':>9s}"
        f"{'% fp32 pk':>11s}{'% bf16 pk':>11s}{'val loss':>10s}"
    )
    for name, tps, loss in rows:
        achieved = tps * flops / 1e9
        bf16_share = f"{100 * achieved / bf16_peak:10.1f}%" if bf16_peak else f"{'-':>11s}"
        print(
            f"{name:30s}{tps:10.0f}{achieved:9.2f}{tps / base:8.2f}x"
            f"{100 * achieved / fp32_peak:10.1f}%{bf16_share}{loss:10.4f}"
        )
    print("* textgen's logits layer follows the policy: bf16 logits, cast to fp32 in the loss")


if __name__ == "__main__":
    main()
