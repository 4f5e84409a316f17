import numpy as np
import pytest

from tests.conftest import make_play
from textgen.backend import keras, tf
from textgen.config import GANParams, LSTMParams
from textgen.corpus import Vocabulary
from textgen.gan import (
    GANTrainer,
    beta_at,
    build_discriminator,
    copy_model,
    d_loss,
    gumbel_rollout,
)
from textgen.lstm import build_model, train
from textgen.seeding import seed_everything

LM = LSTMParams(
    embedding_dim=16,
    hidden=32,
    layers=1,
    seq_len=32,
    batch_size=16,
    epochs=2,
    steps_per_epoch=40,
    learning_rate=0.01,
    warmup_steps=0,
)
SMALL_GAN = dict(
    seq_len=16,
    batch_size=16,
    d_filters=16,
    d_filter_widths=[2, 3],
    d_hidden=16,
    d_embedding_dim=16,
    d_dropout=0.0,
    log_every=5,
    eval_samples=16,
    eval_val_tokens=500,
)


@pytest.fixture(scope="module")
def corpus():
    text = make_play(600, seed=3)
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    cut = int(len(ids) * 0.9)
    return vocab, ids[:cut], ids[cut:]


@pytest.fixture(scope="module")
def lm(corpus):
    vocab, train_ids, val_ids = corpus
    seed_everything(0)
    model = build_model(len(vocab), LM)
    train(model, train_ids, val_ids, LM, seed=0, verbose=0)
    return model


def _windows(ids, n, length, seed):
    starts = np.random.default_rng(seed).integers(0, len(ids) - length - 1, n)
    return ids[starts[:, None] + np.arange(length + 1)]


def _corrupt(windows, vocab_size, seed):
    """Real text with half its characters replaced at random: easy to tell apart, if D learns."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(1, vocab_size, windows.shape)
    return np.where(rng.random(windows.shape) < 0.5, noise, windows).astype(np.int32)


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_discriminator_shapes_and_soft_inputs(kind):
    p = GANParams(discriminator=kind, **SMALL_GAN)
    disc = build_discriminator(7, p)
    hard = tf.one_hot(np.zeros((3, 16), np.int32), 7)
    soft = tf.nn.softmax(tf.random.normal((3, 16, 7)))
    expected = (3, 1) if kind == "cnn" else (3, 16)
    assert tuple(disc(hard).shape) == tuple(disc(soft).shape) == expected


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_discriminator_learns_to_separate_real_from_corrupted(corpus, kind):
    vocab, train_ids, val_ids = corpus
    seed_everything(1)
    p = GANParams(discriminator=kind, **SMALL_GAN)
    disc = build_discriminator(len(vocab), p)
    opt = keras.optimizers.Adam(3e-3)
    v = len(vocab)
    for step in range(60):
        real = _windows(train_ids, 32, 16, step)[:, 1:]
        fake = _corrupt(real, v, step)
        with tf.GradientTape() as tape:
            loss = d_loss(
                disc(tf.one_hot(real, v), training=True),
                disc(tf.one_hot(fake, v), training=True),
                "standard",
            )
        grads = tape.gradient(loss, disc.trainable_variables)
        opt.apply_gradients(zip(grads, disc.trainable_variables, strict=True))
    real = _windows(val_ids, 200, 16, 99)[:, 1:]
    fake = _corrupt(real, v, 99)
    acc_real = np.mean(disc(tf.one_hot(real, v)).numpy()[:, -1] > 0)  # whole-sequence verdict
    acc_fake = np.mean(disc(tf.one_hot(fake, v)).numpy()[:, -1] < 0)
    assert (acc_real + acc_fake) / 2 > 0.85, (acc_real, acc_fake)


def test_gumbel_gradients_reach_the_generator(lm, corpus):
    vocab = corpus[0]
    p = GANParams(**SMALL_GAN)
    gen, disc = copy_model(lm), build_discriminator(len(vocab), p)
    first = tf.constant(np.ones((4, 1), np.int32))
    with tf.GradientTape() as tape:
        soft, ids = gumbel_rollout(gen, first, 16, tf.constant(5.0), tf.constant(1, tf.int64))
        score = tf.reduce_mean(disc(soft))
    grads = tape.gradient(score, gen.trainable_variables)
    assert soft.shape == (4, 16, len(vocab)) and ids.shape == (4, 16)
    np.testing.assert_allclose(tf.reduce_sum(soft, -1).numpy(), 1.0, rtol=1e-5)
    assert all(g is not None for g in grads)
    assert sum(float(tf.norm(g)) for g in grads) > 0
    # The fed-back tokens are the argmax of the relaxed sample: hard and soft agree.
    np.testing.assert_array_equal(tf.argmax(soft, -1).numpy(), ids.numpy())


def _mean_score(trainer, val_ids, seed):
    first = _windows(val_ids, 64, 16, seed)[:, :1]
    ids = trainer.sampler.generate_batch(first, 16, seed=seed)
    return float(tf.reduce_mean(trainer.disc(tf.one_hot(ids, trainer.vocab_size))))


@pytest.mark.parametrize("algorithm", ["gumbel", "reinforce"])
def test_generator_steps_raise_a_frozen_discriminators_score(lm, corpus, algorithm):
    vocab, train_ids, val_ids = corpus
    seed_everything(2)
    p = GANParams(algorithm=algorithm, loss="standard", g_learning_rate=3e-3, **SMALL_GAN)
    trainer = GANTrainer(copy_model(lm), build_discriminator(len(vocab), p), lm, p, seed=2)
    for step in range(40):  # teach D first, then freeze it
        x = _windows(train_ids, 16, 16, step)
        trainer.d_step(
            tf.constant(x[:, :1]),
            tf.constant(x[:, 1:]),
            tf.constant(5.0),
            tf.constant(step, tf.int64),
        )
    before = _mean_score(trainer, val_ids, 7)
    for step in range(15):
        x = _windows(train_ids, 16, 16, 100 + step)
        trainer.g_step(
            tf.constant(x[:, :-1]),
            tf.constant(x[:, 1:]),
            tf.constant(5.0),
            tf.constant(100 + step, tf.int64),
        )
    after = _mean_score(trainer, val_ids, 7)
    assert after > before, (before, after)


@pytest.mark.parametrize("algorithm", ["gumbel", "reinforce"])
def test_training_is_reproducible_and_reports(lm, corpus, algorithm):
    vocab, train_ids, val_ids = corpus
    p = GANParams(algorithm=algorithm, steps=6, d_pretrain_steps=3, **SMALL_GAN)
    results = []
    for _ in range(2):
        seed_everything(4)
        trainer = GANTrainer(copy_model(lm), build_discriminator(len(vocab), p), lm, p, seed=4)
        results.append((trainer.train(train_ids, val_ids, vocab.decode), trainer))
    (a, ta), (b, tb) = results
    assert a.final == b.final
    for wa, wb in zip(ta.gen.get_weights(), tb.gen.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert {
        "d_accuracy_real",
        "d_accuracy_fake",
        "val_nll_nats",
        "sample_lm_nll_nats",
        "distinct_2",
        "d_loss",
        "g_loss",
        "beta",
    } <= a.final.keys()
    assert [h["step"] for h in a.history] == [0, 5, 6]  # the warm start, then every log_every


def test_beta_schedules():
    p = GANParams(steps=11, beta_max=100.0)
    assert beta_at(0, p) == pytest.approx(1.0)
    assert beta_at(10, p) == pytest.approx(100.0)
    assert beta_at(5, p) == pytest.approx(10.0)  # exponential: geometric midpoint
    lin = p.model_copy(update={"beta_schedule": "linear"})
    assert beta_at(5, lin) == pytest.approx(50.5)
