"""Training throughput of the LSTM language model: textgen's train() vs. plain Keras, fp32 and bf16.

Every contender is timed in one run on the same batches: ``StreamSource.batches`` over one token
stream drawn from a seeded NumPy Generator (int32 [batch, seq_len] inputs and targets, the
targets shifted by one; Zipf-skewed, so that a few steps have something to learn). Each round
runs every contender once, in an order rotated round by round, on the model it built in the
first round (traced once): ``model.fit`` for one epoch of warm-up + timed steps, a callback
reading ``time.perf_counter`` at the start of the first timed step and the end of the last,
so tracing, warm-up and the end-of-epoch validation are outside the timing. Every ratio is
computed within a round (the contenders ran minutes apart at most) and printed as the median
over the rounds, with its spread (lowest and highest): a busy moment moves one round, not the
median.

The stage contender is a real epoch of ``train_lstm`` at the same size: ``train()`` for two
epochs with the token stream read from a memory-mapped ``.npy`` file as the stage reads it,
validation over a split of the stage's relative size (``data.val_fraction`` of the corpus), the
checkpoint written after each epoch; the second epoch is timed, from its first step to its
checkpoint written (fit's start-up, once per run in the stage, stays outside as it does for the
bare step; the first round, which traces, is not counted). Its ratio to the bare step is what a
real epoch costs beyond the steps themselves; at ``--stage-steps`` far below a real epoch's
(about 550 on the built-in corpus) the checkpoint's fixed cost weighs more than in the stage.
The textgen contenders are trained by ``textgen.training.train`` itself (its dataset, Adam with
warm-up + cosine decay and global_clipnorm, its loss and callbacks); the plain ones by
``model.fit`` with Keras defaults.
The loss on one held-out batch afterwards checks that every variant trains (bf16 included); it
is no quality claim. Absolute speed on a shared machine is noise: read the ratios.

    .venv/bin/python bench/train.py [--hidden 192 --layers 2 --embedding 64 --batch 64
        --seq-len 128 --vocab 65 --steps 30 --warmup 3 --rounds 5 --stage-steps 60
        --only textgen stage ...]
"""

import argparse
import itertools
import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from textgen.artifacts import load_tokens, save_tokens
from textgen.backend import keras, tf
from textgen.config import LSTMParams, load_params
from textgen.distribute import policy
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


class EpochTimer(keras.callbacks.Callback):
    """The stage contender's clock: the second epoch, from its first step to the end of its
    end-of-epoch work (this callback goes after validation, early stopping and the checkpoint)."""

    epoch, start, seconds = 0, 0.0, 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self.epoch == 1 and batch == 0:
            self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == 1:
            self.seconds = time.perf_counter() - self.start


# --only's names for the contenders.
SHORT_NAMES = {
    "textgen": "textgen (train_lstm)",
    "plain": "plain Keras fp32",
    "plain-bf16": "plain Keras mixed_bfloat16",
    "hoisted": "plain, input projection hoisted",
    "textgen-bf16": "textgen + mixed_bfloat16",
    "xla": "textgen + jit_compile (XLA)",
    "stage": "stage epoch (train_lstm)",
}


def spread(values: list[float]) -> str:
    """Median [lowest-highest]."""
    return f"{statistics.median(values):.2f}x [{min(values):.2f}-{max(values):.2f}]"


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
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (after one untimed)")
    parser.add_argument("--stage-steps", type=int, default=60, help="the stage epoch's steps")
    parser.add_argument("--no-xla", action="store_true", help="skip the jit_compile contender")
    parser.add_argument("--no-stage", action="store_true", help="skip the stage contender")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(SHORT_NAMES),
        help="run these contenders only (and plain Keras fp32 and textgen: the ratios' bases)",
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.steps < 1 or args.stage_steps < 1:
        parser.error("--rounds, --steps and --stage-steps must be positive")

    tf.get_logger().setLevel("ERROR")  # each model traces its own steps: not "retracing"
    seed = 0
    seed_everything(seed)  # as the pipeline's stages run (op determinism on)
    update = {"embedding_dim": args.embedding, "hidden": args.hidden, "layers": args.layers}
    update |= {"batch_size": args.batch, "seq_len": args.seq_len, "epochs": 1}
    n_steps = max(args.warmup, 1) + args.steps
    update["steps_per_epoch"] = n_steps  # one epoch of exactly the steps fit runs
    shipped = load_params("params.yaml")
    p = shipped.lstm.model_copy(update=update)  # the rest as shipped

    zipf = 1.0 / np.arange(1, args.vocab + 1)
    zipf /= zipf.sum()
    rng = np.random.default_rng(seed)

    def stream(n: int) -> np.ndarray:
        return rng.choice(args.vocab, n, p=zipf).astype(np.int32)

    tokens = stream(n_steps * args.batch * args.seq_len + 2 * args.seq_len + 1)
    val = stream(args.batch * args.seq_len + 1)
    val_x, val_y = (v.reshape(args.batch, args.seq_len) for v in (val[:-1], val[1:]))
    source = StreamSource(tokens)

    # The stage's epoch: its training stream from a memory-mapped file, its validation split
    # in the corpus' proportions (val_fraction of the whole; train is the rest but test).
    scratch = Path(tempfile.mkdtemp(prefix="bench-train-"))
    d = shipped.data
    stage_tokens = args.stage_steps * args.batch * args.seq_len + 2 * args.seq_len + 1
    save_tokens(scratch / "train.npy", stream(stage_tokens))
    stage_source = StreamSource(load_tokens(scratch / "train.npy", args.vocab))
    stage_val = StreamSource(
        stream(int(stage_tokens * d.val_fraction / (1 - d.val_fraction - d.test_fraction)))
    )
    stage_p = p.model_copy(update={"steps_per_epoch": args.stage_steps, "epochs": 2})
    stage_runs = itertools.count()

    def textgen(model: keras.Model, timer: StepTimer) -> float:
        # The same model every round: train() keeps its compiled step (no new trace).
        result = train(model, source, StreamSource(val), p, seed, callbacks=[timer], verbose=0)
        return result.epoch_logs[-1]["val_loss"]

    def stage(model: keras.Model, timer: StepTimer) -> float:
        clock = EpochTimer()
        result = train(
            model,
            stage_source,
            stage_val,
            stage_p,
            seed,
            callbacks=[clock],
            verbose=0,
            checkpoint_dir=scratch / f"checkpoint-{next(stage_runs)}",  # a new run each round
        )
        timer.seconds = clock.seconds
        return result.epoch_logs[-1]["val_loss"]

    def plain(model: keras.Model, timer: StepTimer) -> float:
        # The same batches train() makes: the same seed and epoch length.
        ds = source.batches(args.batch, args.seq_len, seed, n_steps)
        if not model.compiled:  # compiled (and traced) once, as train() does
            model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        val_data = (val_x, val_y)  # one batch, as train() validates on it
        fit = {"epochs": 1, "steps_per_epoch": n_steps, "shuffle": False, "verbose": 0}
        hist = model.fit(ds, callbacks=[timer], validation_data=val_data, **fit)
        return hist.history["val_loss"][-1]

    def textgen_xla(model: keras.Model, timer: StepTimer) -> float:
        # train() compiles the model itself: bind jit_compile=True into this model's compile.
        # Keras refuses XLA under op determinism (seed_everything), so lift it for this one.
        from tensorflow.python.framework import config as tf_config  # after TF's quiet import

        if not hasattr(model, "_bench_xla"):
            compile_ = model.compile
            model.compile = lambda **kw: compile_(**kw, jit_compile=True)
            model._bench_xla = True
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
        # As train_lstm with lstm.precision bf16: float32 logits, validation in float32.
        ("textgen + mixed_bfloat16", "mixed_bfloat16", lambda: build_model(vocab, **size), textgen),
    ]
    if not args.no_xla:
        xla = ("textgen + jit_compile (XLA)", "float32", lambda: build_model(vocab, **size))
        contenders.append((*xla, textgen_xla))
    if not args.no_stage:
        epoch = ("stage epoch (train_lstm)", "float32", lambda: build_model(vocab, **size))
        contenders.append((*epoch, stage))
    if args.only:
        # plain: every ratio is to it; textgen: the stage's is to the bare step.
        keep = {SHORT_NAMES[k] for k in [*args.only, "plain", "textgen"]}
        contenders = [c for c in contenders if c[0] in keep]

    fp32_peak = matmul_gflops(tf.float32)
    bf16_peak = matmul_gflops(tf.bfloat16)
    flops = train_flops_per_token(vocab, p)
    print(f"model {args.layers}x{args.hidden} LSTM, embedding {args.embedding}, vocab {vocab}")
    print(
        f"batch {args.batch} x {args.seq_len} tokens, {args.steps} timed steps after "
        f"{n_steps - args.steps} warm-up, model.fit; {args.rounds} rounds after an untimed "
        f"one; the stage's epoch {args.stage_steps} steps; {flops / 1e6:.2f} MFLOP/token (train)"
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

    models: dict[str, keras.Model] = {}
    rates: dict[str, list[float]] = {name: [] for name, *_ in contenders}
    losses: dict[str, float] = {}
    for round_ in range(args.rounds + 1):  # round 0 builds and traces: not timed
        shift = round_ % len(contenders)
        for name, dtype_policy, build, run in contenders[shift:] + contenders[:shift]:
            if name in models and models[name] is None:
                continue  # skipped in round 0
            if name not in models:
                keras.utils.set_random_seed(seed)  # the same initial draws for every contender
                with policy(dtype_policy):
                    models[name] = build()
            timer = StepTimer(n_steps - args.steps, args.steps)
            try:
                losses[name] = run(models[name], timer)
            except Exception as err:  # e.g. XLA on CPU: report and go on
                print(f"{name}: skipped ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
                models[name] = None
                continue
            if round_:
                steps = args.stage_steps if run is stage else args.steps
                rates[name].append(args.batch * args.seq_len * steps / timer.seconds)
        if round_:
            line = ", ".join(f"{n.split(' (')[0]} {r[-1]:,.0f}" for n, r in rates.items() if r)
            print(f"round {round_}: tokens/s {line}", flush=True)

    base = rates["plain Keras fp32"]
    print(
        f"\n{'contender':32s}{'tokens/s':>10s}{'GFLOP/s':>9s}{'vs plain fp32, median [range]':>31s}"
        f"{'% fp32 pk':>11s}{'% bf16 pk':>11s}{'val loss':>10s}"
    )
    for name, *_ in contenders:
        if not rates[name]:
            continue
        tps = statistics.median(rates[name])
        achieved = tps * flops / 1e9
        bf16_share = f"{100 * achieved / bf16_peak:10.1f}%" if bf16_peak else f"{'-':>11s}"
        ratios = [r / b for r, b in zip(rates[name], base, strict=True)]
        print(
            f"{name:32s}{tps:10.0f}{achieved:9.2f}{spread(ratios):>31s}"
            f"{100 * achieved / fp32_peak:10.1f}%{bf16_share}{losses[name]:10.4f}"
        )
    if rates.get("stage epoch (train_lstm)"):
        bare = rates["textgen (train_lstm)"]
        epoch = rates["stage epoch (train_lstm)"]
        ratios = [e / b for e, b in zip(epoch, bare, strict=True)]
        print(f"\nstage epoch / bare step (same round): {spread(ratios)}")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
