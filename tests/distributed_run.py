"""One small training run under a tf.distribute strategy, in a process of its own (a strategy's
devices and a worker's cluster are fixed when TensorFlow starts): ``python -m
tests.distributed_run MODE OUT.json`` with MODE ``single``, ``mirrored`` (two logical CPU
devices) or ``multi_worker`` (the cluster in ``TF_CONFIG``). Every mode trains the same model on
the same global batches; the chief writes the batch losses, epoch logs and final weights."""

import json
import sys

from textgen.backend import tf

MODE, OUT = sys.argv[1], sys.argv[2]
if MODE == "mirrored":  # before anything else starts TensorFlow's runtime
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

from tests.params import lstm_params  # noqa: E402
from textgen import distribute  # noqa: E402
from textgen.backend import keras  # noqa: E402
from textgen.model import build_model  # noqa: E402
from textgen.seeding import seed_everything  # noqa: E402
from textgen.sources import StreamSource  # noqa: E402
from textgen.training import train  # noqa: E402

P = lstm_params(
    embedding_dim=8,
    hidden=16,
    layers=2,
    dropout=0.0,  # each replica draws its own masks: the curves match without dropout
    seq_len=16,
    batch_size=8,
    epochs=3,
    steps_per_epoch=6,
    warmup_steps=2,
    learning_rate=0.02,
    patience=5,
    eval_batch_size=8,
)
VOCAB = 13


def strategy_for(mode: str) -> tf.distribute.Strategy | None:
    if mode == "mirrored":
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    return distribute.make_strategy("multi_worker" if mode == "multi_worker" else "none")


class BatchLosses(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.losses.append(float(logs["loss"]))


def main() -> None:
    strategy = strategy_for(MODE)
    seed_everything(0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, VOCAB, 3000).astype(np.int32)
    train_ids, val_ids = StreamSource(tokens[:2500]), StreamSource(tokens[2500:])
    losses = BatchLosses()
    with distribute.scope(strategy):
        model = build_model(VOCAB, **P.architecture)
        result = train(model, train_ids, val_ids, P, seed=3, callbacks=[losses], verbose=0)
    if distribute.is_chief(strategy):
        record = {
            "replicas": 1 if strategy is None else strategy.num_replicas_in_sync,
            "batch_losses": losses.losses,
            "epoch_logs": result.epoch_logs,
            "weights": [np.asarray(w).ravel().tolist() for w in model.get_weights()],
        }
        with open(OUT, "w") as f:
            json.dump(record, f)


if __name__ == "__main__":
    main()
