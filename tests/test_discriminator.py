"""The discriminator: its shapes on hard and relaxed one-hots, and that it learns to tell
real text from corrupted text under each adversarial loss."""

import numpy as np
import pytest

from tests.params import gan_params
from tests.test_gan import SMALL_GAN, _corrupt, _windows
from textgen.backend import keras, tf
from textgen.discriminator import LOSSES, build_discriminator
from textgen.seeding import seed_everything


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_discriminator_shapes_and_soft_inputs(kind):
    p = gan_params(discriminator=kind, **SMALL_GAN)
    disc = build_discriminator(7, **p.discriminator_args)
    hard = tf.one_hot(np.zeros((3, 16), np.int32), 7)
    soft = tf.nn.softmax(tf.random.normal((3, 16, 7)))
    expected = (3, 1) if kind == "cnn" else (3, 16)
    assert tuple(disc(hard).shape) == tuple(disc(soft).shape) == expected


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_discriminator_learns_to_separate_real_from_corrupted(corpus, kind):
    vocab, train_ids, val_ids = corpus
    seed_everything(1)
    p = gan_params(discriminator=kind, **SMALL_GAN)
    disc = build_discriminator(len(vocab), **p.discriminator_args)
    opt = keras.optimizers.Adam(3e-3)
    v = len(vocab)

    @tf.function  # one trace for the 60 steps
    def step(real, fake):
        with tf.GradientTape() as tape:
            loss = LOSSES["standard"].d_loss(
                disc(tf.one_hot(real, v), training=True),
                disc(tf.one_hot(fake, v), training=True),
            )
        grads = tape.gradient(loss, disc.trainable_variables)
        opt.apply_gradients(zip(grads, disc.trainable_variables, strict=True))

    for i in range(60):
        real = _windows(train_ids, 32, 16, i)[:, 1:]
        step(real, _corrupt(real, v, i))
    real = _windows(val_ids, 200, 16, 99)[:, 1:]
    fake = _corrupt(real, v, 99)
    acc_real = np.mean(disc(tf.one_hot(real, v)).numpy()[:, -1] > 0)  # whole-sequence verdict
    acc_fake = np.mean(disc(tf.one_hot(fake, v)).numpy()[:, -1] < 0)
    assert (acc_real + acc_fake) / 2 > 0.85, (acc_real, acc_fake)
