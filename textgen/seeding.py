"""Seeding: every random choice in a stage flows from the ``seed`` in params.yaml."""

from textgen.backend import keras, tf


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
