"""Training on several devices or machines with TensorFlow's own engine (``tf.distribute``).

``lstm.distribute`` picks the strategy: ``none`` (the default device), ``mirrored`` (every
local GPU, or the CPU, one replica each) or ``multi_worker`` (the machines that ``TF_CONFIG``
names, each running the same stage). The global batch (``batch_size``) is split across the
replicas and the loss is taken over the whole global batch, so the loss curve is the single
device's for the same global batch (to float tolerance; with dropout, each replica draws its
own masks).

Keras 3's ``fit`` runs ``MirroredStrategy`` but not ``MultiWorkerMirroredStrategy``: it
all-reduces the integer data batch when it builds the model, then reduces the scalar logs along
axis 0 (keras-team/keras#20585, open). For that strategy ``fit`` below is a loop of our own:
the same callbacks (progress bar, early stopping) and logs, the same loss and optimizer.
"""

from __future__ import annotations

import contextlib
import json
import os

from textgen.backend import keras, tf
from textgen.config import Distribute, Precision
from textgen.errors import UserError


def make_strategy(kind: Distribute, key: str = "lstm.distribute") -> tf.distribute.Strategy | None:
    """The strategy for ``kind`` (None for ``none``). Create it before any other TensorFlow
    work: the multi-worker runtime must start first."""
    if kind == "none":
        return None
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    config = os.environ.get("TF_CONFIG")
    try:
        cluster = json.loads(config or "")
        task, workers = cluster["task"], cluster["cluster"]["worker"]
        valid = task["type"] == "worker" and 0 <= int(task["index"]) < len(workers)
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise UserError(
            f"{key} is multi_worker, but the TF_CONFIG environment variable "
            f"{'is not set' if config is None else 'is not valid'}: expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}} '
            "(see the README: 'One model on several GPUs or machines')"
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def scope(strategy: tf.distribute.Strategy | None) -> contextlib.AbstractContextManager:
    """Where the model must be built and compiled, so its variables are mirrored."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def stage_strategy(
    kind: Distribute, batch_size: int, section: str
) -> tf.distribute.Strategy | None:
    """A training stage's strategy, from its ``<section>.distribute``, with a global batch that
    its replicas can share evenly."""
    strategy = make_strategy(kind, f"{section}.distribute")
    replicas = 1 if strategy is None else strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UserError(
            f"{section}.batch_size is {batch_size}, which {replicas} replicas cannot share "
            f"evenly: expected a multiple of {replicas}"
        )
    if replicas > 1 or not is_chief(strategy):
        print(f"{section}: {type(strategy).__name__}, {replicas} replicas in sync")
    return strategy


def bf16_units() -> str | None:
    """What gives the training devices bf16 matrix units, or None: a GPU of compute
    capability 8.0 or more (where there are GPUs, they train), else a CPU with AMX or
    AVX-512 BF16 (read from /proc/cpuinfo; other systems: None)."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
        ok = capability is not None and tuple(capability) >= (8, 0)
        return f"GPU compute capability {capability[0]}.{capability[1]}" if ok else None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
    except OSError:
        return None
    return next((f"CPU {flag}" for flag in ("amx_bf16", "avx512_bf16") if flag in flags), None)


def dtype_policy(precision: Precision) -> tuple[str, str]:
    """The Keras dtype policy for ``precision`` and why, in words. bf16 computes in bfloat16
    with float32 weights (``mixed_bfloat16``): 1.33x plain Keras' fp32 step where the CPU has
    bf16 units, 0.86x on AVX2 alone (docs/benchmarks.md)."""
    if precision == "fp32":
        return "float32", "fp32 (as set)"
    if precision == "bf16":
        return "mixed_bfloat16", "bf16 compute, fp32 weights (as set)"
    units = bf16_units()
    if units:
        return "mixed_bfloat16", f"bf16 compute, fp32 weights (auto: {units} has bf16 units)"
    return "float32", "fp32 (auto: no bf16 units on this machine)"


@contextlib.contextmanager
def policy(name: str):
    """Layers built inside take the Keras dtype policy ``name``; float32 again after."""
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process writes the stage's outputs: the only one, or worker 0."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is None or resolver.task_id in (None, 0)


def needs_own_loop(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def fit(
    model: keras.Model,
    ds: tf.data.Dataset,
    *,
    epochs: int,
    initial_epoch: int,
    steps_per_epoch: int,
    callbacks: list[keras.callbacks.Callback],
    verbose: int,
) -> keras.callbacks.History:
    """``model.fit`` for a model compiled under a multi-worker strategy (see the module note).

    Logs ``loss`` as ``fit`` logs it, the mean of the epoch's batch losses; the validation
    loss comes from a callback, as with ``fit`` (``training.Validation``): every worker scores
    the whole validation split itself, so they all stop on the same epoch.
    """
    strategy = model.distribute_strategy
    with strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    options = tf.data.Options()
    # Every worker reads the same files; each keeps its share of every global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    batches = iter(strategy.experimental_distribute_dataset(ds.with_options(options)))
    train_step = _train_step(model)
    history = keras.callbacks.History()
    hooks = keras.callbacks.CallbackList(
        [*callbacks, history],
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=steps_per_epoch,
    )
    model.stop_training = False
    hooks.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        hooks.on_epoch_begin(epoch)
        total = 0.0
        for step in range(steps_per_epoch):
            hooks.on_train_batch_begin(step)
            total += float(train_step(next(batches)))
            hooks.on_train_batch_end(step, {"loss": total / (step + 1)})
        hooks.on_epoch_end(epoch, {"loss": total / steps_per_epoch})
        if model.stop_training:
            break
    hooks.on_train_end()
    return history


def _train_step(model: keras.Model):
    strategy = model.distribute_strategy
    # The compiled loss, summed instead of averaged: each replica holds part of the batch.
    summed = type(model.loss).from_config({**model.loss.get_config(), "reduction": "sum"})

    def replica_step(batch: tuple) -> tf.Tensor:
        x, y, weights = batch
        context = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            loss_sum = summed(y, model(x, training=True), sample_weight=weights)
            # The loss of the whole global batch, as one device would take it: each replica's
            # sum over the weight of every replica's batch; the optimizer sums the gradients.
            loss = loss_sum / context.all_reduce("SUM", tf.reduce_sum(weights))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    @tf.function
    def step(batch: tuple) -> tf.Tensor:
        return strategy.reduce("SUM", strategy.run(replica_step, args=(batch,)), axis=None)

    return step
