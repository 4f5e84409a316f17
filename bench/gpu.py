"""GPU check: LSTM training throughput fp32 vs. mixed_float16 / mixed_bfloat16, cuDNN or not.

The project's own model (``textgen.model.build_model`` with params.yaml's ``lstm`` section) is
trained by ``model.fit`` (Adam, sparse cross-entropy on logits) once per dtype policy, a fresh
model each, on the same batches: ``StreamSource.batches`` over one seeded Zipf-skewed int32 token
stream. A callback times from the start of the first step after the warm-up to the end of the
last. Per contender it reports tokens/s, the ratio to fp32 in this run (absolute figures across
runs are noise), Keras' mean training loss over the epoch (mixed precision should land near
fp32), whether compile() wrapped Adam in a LossScaleOptimizer, and the LSTM kernel in the
model's traced train step: an op ``CudnnRNN*`` (cuDNN) or a while loop (the generic kernel).
Without a GPU it says so, with what TensorFlow was built for, and measures on the CPU.

    .venv/bin/python bench/gpu.py [--steps N --warmup 3 --batch B --seq-len T --vocab 65
        --params params.yaml]
"""

import argparse
import math

import numpy as np
from train import StepTimer  # bench/train.py: a script's own folder is on sys.path

from textgen.backend import keras, tf
from textgen.config import load_params
from textgen.model import build_model, lstm_layers
from textgen.seeding import seed_everything
from textgen.sources import StreamSource

POLICIES = ["float32", "mixed_float16", "mixed_bfloat16"]


def device_line(gpus: list) -> str:
    """The GPU's name and compute capability, or why the run is on the CPU."""
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        cc = ".".join(map(str, details.get("compute_capability", ("?",))))
        return f"device: GPU {details.get('device_name', gpus[0].name)}, compute capability {cc}"
    info = tf.sysconfig.get_build_info()
    found = [d.name for d in tf.config.list_physical_devices()]
    return (
        f"no GPU found, measuring on the CPU: TensorFlow sees {found}; built with CUDA: "
        f"{tf.test.is_built_with_cuda()} (CUDA {info.get('cuda_version', '-')}, "
        f"cuDNN {info.get('cudnn_version', '-')})"
    )


def cudnn_settings_ok(model: keras.Model, layer: keras.layers.LSTM) -> bool:
    """Whether the layer's settings let Keras pick cuDNN on a GPU. Replicates Keras 3's TF
    backend (``cudnn_ok`` and ``LSTM.inner_loop``) rather than importing its private module,
    which also folds in GPU presence; the traced graph (``lstm_kernel``) is the proof."""
    cell = layer.cell
    masked = any(getattr(lay, "mask_zero", False) for lay in model.layers)
    return (
        cell.activation in (keras.activations.tanh, tf.tanh, keras.ops.tanh)
        and cell.recurrent_activation in (keras.activations.sigmoid, tf.sigmoid, keras.ops.sigmoid)
        and not layer.unroll
        and cell.use_bias
        and not cell.recurrent_dropout
        and layer.use_cudnn in (True, "auto")
        and not masked  # cuDNN takes right-padded masks only; build_model masks nothing
    )


def lstm_kernel(model: keras.Model, element_spec: tuple) -> str:
    """The LSTM kernel in the model's own train step, traced (not run) into a graph: Keras 3
    decides at trace time, so a cuDNN step holds CudnnRNN* ops, the generic one while loops.
    Nested functions (loop bodies, gradients) sit in the graph's library, so look there too."""
    try:
        step = tf.function(model.train_step).get_concrete_function(element_spec)
        graph_def = step.graph.as_graph_def()
    except Exception as err:  # the timing stands without it
        return f"trace failed ({type(err).__name__})"
    ops = {node.op for node in graph_def.node}
    ops |= {node.op for f in graph_def.library.function for node in f.node_def}
    cudnn = sorted(op for op in ops if op.startswith("CudnnRNN"))
    if cudnn:
        return "cuDNN (" + ", ".join(cudnn) + ")"
    return "while loop" if {"While", "StatelessWhile"} & ops else "no RNN op found"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="its lstm section: the model")
    parser.add_argument("--batch", type=int, help="default: lstm.batch_size")
    parser.add_argument("--seq-len", type=int, help="default: lstm.seq_len")
    parser.add_argument("--vocab", type=int, default=65, help="a character vocabulary")
    parser.add_argument("--steps", type=int, help="timed steps per contender (GPU 100, CPU 5)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (>= 1)")
    args = parser.parse_args()

    tf.get_logger().setLevel("ERROR")  # each model traces its own steps: not "retracing"
    gpus = tf.config.list_physical_devices("GPU")
    where = "GPU" if gpus else "CPU"
    params = load_params(args.params)
    seed = params.seed
    seed_everything(seed)  # as the pipeline's stages run (op determinism on)
    p = params.lstm
    batch, seq_len = args.batch or p.batch_size, args.seq_len or p.seq_len
    steps = args.steps or (100 if gpus else 5)  # 2 CPU cores: about 0.5 s per step
    warmup = max(args.warmup, 1)
    n_steps = warmup + steps

    zipf = 1.0 / np.arange(1, args.vocab + 1)  # skewed, so that a few steps learn something
    zipf /= zipf.sum()
    rng = np.random.default_rng(seed)
    n_tokens = n_steps * batch * seq_len + 2 * seq_len + 1
    tokens = rng.choice(args.vocab, n_tokens, p=zipf).astype(np.int32)

    print(device_line(gpus))
    print(
        f"model {p.layers}x{p.hidden} LSTM, embedding {p.embedding_dim}, vocab {args.vocab}; "
        f"batch {batch} x {seq_len} tokens, {steps} timed steps after {warmup} warm-up, "
        f"model.fit on the {where}"
    )
    entropy = -(zipf * np.log(zipf)).sum()
    print(
        f"loss reference: uniform ln({args.vocab}) = {math.log(args.vocab):.3f}, "
        f"token entropy = {entropy:.3f} nats"
    )

    rows, checked = [], False
    for policy in POLICIES:
        keras.utils.set_random_seed(seed)  # the same initial draws for every contender
        # build_model has no say over the logits' dtype: under a mixed policy they come out
        # fp16/bf16, and the loss casts them to float32 before the softmax.
        keras.config.set_dtype_policy(policy)
        try:
            model = build_model(args.vocab, **p.architecture)
        finally:
            keras.config.set_dtype_policy("float32")
        if not checked:  # the same layers for every policy
            checked = True
            layers = lstm_layers(model)
            allowed = ", ".join(f"{x.name} {cudnn_settings_ok(model, x)}" for x in layers)
            state = "candidate, see kernel below" if gpus else "not used (no GPU)"
            print(f"cuDNN: {state}; layer settings allow it: {allowed}\n")
        # Keras 3's compile() wraps the optimizer in a LossScaleOptimizer under mixed_float16
        # (auto_scale_loss=True); the "loss scale" column checks it on every run.
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model.compile(keras.optimizers.Adam(), loss)
        scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        ds = StreamSource(tokens).batches(batch, seq_len, seed, n_steps)
        timer = StepTimer(warmup, steps)
        fit = {"epochs": 1, "steps_per_epoch": n_steps, "shuffle": False, "verbose": 0}
        try:
            hist = model.fit(ds, callbacks=[timer], **fit)
        except Exception as err:  # e.g. a dtype without a kernel on this device: go on
            print(f"{policy}: skipped ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
            continue
        tps = batch * seq_len * steps / timer.seconds
        kernel = lstm_kernel(model, ds.element_spec)  # after fit: the optimizer is built
        rows.append((policy, tps, hist.history["loss"][-1], scaled, kernel))

    base = next((tps for name, tps, *_ in rows if name == "float32"), math.nan)
    print(
        f"{'contender (' + where + ')':22s}{'tokens/s':>10s}{'vs fp32':>9s}{'mean loss':>11s}"
        f"{'loss scale':>12s}  LSTM kernel in train step"
    )
    for name, tps, mean_loss, scaled, kernel in rows:
        print(
            f"{name:22s}{tps:10.0f}{tps / base:8.2f}x{mean_loss:11.4f}"
            f"{'yes' if scaled else 'no':>12s}  {kernel}"
        )


if __name__ == "__main__":
    main()
