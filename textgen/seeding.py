"""Seeding: every random choice in a stage flows from the ``seed`` in params.yaml."""

from textgen.backend import keras, tf

_MIX = 1_000_003  # a prime: sub-streams of different seeds and indices do not meet in practice


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def derive_seed(seed: int, *index: int | tf.Tensor) -> int | tf.Tensor:
    """The seed of a sub-stream of ``seed``: ``seed * P + i`` for one index, ``(seed * P +
    i) * P + j`` for two, ... (P = 1,000,003). The one way a stage splits its seed into the
    seeds of separate draws; an index may be an int64 tensor (inside compiled steps)."""
    out = seed
    for i in index:
        if isinstance(out, int) and isinstance(i, int):
            out = (out * _MIX + i) % 2**63
        else:
            out = tf.cast(out, tf.int64) * _MIX + tf.cast(i, tf.int64)
    return out
