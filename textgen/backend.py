"""TensorFlow and Keras, imported once, with TensorFlow's C++ start-up chatter kept off stderr.

TensorFlow 2.21 prints CUDA probes and CPU-feature notes through absl before any log level
applies, burying the one line a user needs (a params error, a progress bar). Python-level
import errors still raise as usual.
"""

import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def _quiet_stderr():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


with _quiet_stderr():
    import keras
    import tensorflow as tf

__all__ = ["keras", "tf"]
