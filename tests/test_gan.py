import numpy as np
import pytest

from tests.corpora import make_play
from tests.params import gan_params, lstm_params
from textgen.backend import keras, tf
from textgen.checkpoints import Checkpoint
from textgen.gan import (
    Conditions,
    GANMonitor,
    TextGAN,
    beta_at,
    build_discriminator,
    copy_model,
    d_loss,
    fit_gan,
)
from textgen.lstm import build_model, train
from textgen.sampling import Decoding, never_mask, rollout
from textgen.seeding import seed_everything
from textgen.vocab import Vocabulary

LM = lstm_params(
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
    p = gan_params(discriminator=kind, **SMALL_GAN)
    disc = build_discriminator(7, p)
    hard = tf.one_hot(np.zeros((3, 16), np.int32), 7)
    soft = tf.nn.softmax(tf.random.normal((3, 16, 7)))
    expected = (3, 1) if kind == "cnn" else (3, 16)
    assert tuple(disc(hard).shape) == tuple(disc(soft).shape) == expected


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_discriminator_learns_to_separate_real_from_corrupted(corpus, kind):
    vocab, train_ids, val_ids = corpus
    seed_everything(1)
    p = gan_params(discriminator=kind, **SMALL_GAN)
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


def make_gan(lm, vocab, p, seed):
    gan = TextGAN(
        copy_model(lm), build_discriminator(len(vocab), p), p, seed, Conditions.of(vocab, p.seq_len)
    )
    gan.compile(
        d_optimizer=keras.optimizers.Adam(p.d_learning_rate),
        g_optimizer=keras.optimizers.Adam(p.g_learning_rate),
    )
    return gan


def test_gumbel_gradients_reach_the_generator(lm, corpus):
    vocab = corpus[0]
    p = gan_params(**SMALL_GAN)
    gen, disc = copy_model(lm), build_discriminator(len(vocab), p)
    first = tf.constant(np.ones((4, 1), np.int32))
    never = never_mask(len(vocab), [])
    with tf.GradientTape() as tape:
        ids, soft = rollout(gen, first, 16, Decoding(), tf.constant(1, tf.int64), never, -1, 5.0)
        score = tf.reduce_mean(disc(soft))
    grads = tape.gradient(score, gen.trainable_variables)
    assert soft.shape == (4, 16, len(vocab)) and ids.shape == (4, 16)
    np.testing.assert_allclose(tf.reduce_sum(soft, -1).numpy(), 1.0, rtol=1e-5)
    assert all(g is not None for g in grads)
    assert sum(float(tf.norm(g)) for g in grads) > 0
    # The fed-back tokens are the argmax of the relaxed sample: hard and soft agree.
    np.testing.assert_array_equal(tf.argmax(soft, -1).numpy(), ids.numpy())


def test_the_gumbel_rollout_samples_the_models_distribution(lm, corpus):
    """Gumbel-max draws are exact samples: token frequencies match the model's probabilities,
    as the sampler's do (the same rollout loop, the relaxation aside)."""
    vocab, n = corpus[0], 20_000
    first = tf.constant(np.full((n, 1), vocab.encode("\n")[0], np.int32))
    probs = tf.nn.softmax(lm(first[:1])[0, -1]).numpy()
    never = never_mask(len(vocab), [])
    gumbel, _ = rollout(lm, first, 1, Decoding(), tf.constant(5, tf.int64), never, -1, 1.0)
    drawn, _ = rollout(lm, first, 1, Decoding(), tf.constant(6, tf.int64), never)
    for ids in (gumbel, drawn):
        freq = np.bincount(ids.numpy().ravel(), minlength=len(vocab)) / n
        assert np.abs(freq - probs).sum() < 0.06  # L1; about 0.04 expected from 20k draws


def _mean_score(gan, val_ids, seed):
    first = _windows(val_ids, 64, 16, seed)[:, :1]
    ids, _ = gan.generate(tf.constant(first), tf.constant(seed, tf.int64))
    return float(tf.reduce_mean(gan.discriminator(tf.one_hot(ids, gan.vocab_size))))


@pytest.mark.parametrize("algorithm", ["gumbel", "reinforce"])
def test_generator_steps_raise_a_frozen_discriminators_score(lm, corpus, algorithm):
    vocab, train_ids, val_ids = corpus
    seed_everything(2)
    p = gan_params(algorithm=algorithm, loss="standard", g_learning_rate=3e-3, **SMALL_GAN)
    gan = make_gan(lm, vocab, p, seed=2)
    gan.beta.assign(5.0)
    for step in range(40):  # teach D first, then freeze it
        x = _windows(train_ids, 16, 16, step)
        gan.d_step(tf.constant(x[:, :1]), tf.constant(x[:, 1:]), tf.constant(step, tf.int64))
    before = _mean_score(gan, val_ids, 7)
    d_weights = [w.copy() for w in gan.discriminator.get_weights()]
    for step in range(15):
        x = _windows(train_ids, 16, 16, 100 + step)
        gan.g_step(tf.constant(x[:, :-1]), tf.constant(x[:, 1:]), tf.constant(100 + step, tf.int64))
    after = _mean_score(gan, val_ids, 7)
    assert after > before, (before, after)
    for a, b in zip(d_weights, gan.discriminator.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # G's step never moves D


def _train(lm, corpus, p, seed, callbacks=(), checkpoint_dir=None):
    vocab, train_ids, val_ids = corpus
    seed_everything(seed)
    gan = make_gan(lm, vocab, p, seed)
    monitor = GANMonitor(lm, val_ids, vocab.decode, seed)
    checkpoint = Checkpoint(checkpoint_dir, gan, [monitor]) if checkpoint_dir else None
    fit_gan(gan, train_ids, [monitor, *callbacks], checkpoint)
    return gan, monitor


@pytest.mark.parametrize("algorithm", ["gumbel", "reinforce"])
def test_training_is_reproducible_and_reports(lm, corpus, algorithm):
    p = gan_params(algorithm=algorithm, steps=6, d_pretrain_steps=3, **SMALL_GAN)
    (ga, a), (gb, b) = _train(lm, corpus, p, 4), _train(lm, corpus, p, 4)
    np.testing.assert_equal(a.history, b.history)  # nan (no loss at step 0) equals nan
    for wa, wb in zip(ga.get_weights(), gb.get_weights(), strict=True):
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
    } <= a.history[-1].keys()
    assert [h["step"] for h in a.history] == [0, 5, 6]  # the warm start, then every log_every
    assert ga.g_optimizer.iterations.numpy() == 6  # gan.steps generator updates
    assert ga.d_optimizer.iterations.numpy() == 3 + 6 * p.d_steps


class _Kill(keras.callbacks.Callback):
    """Stops a run the way a kill would: at the end of epoch ``after``, before its checkpoint
    (the run resumes after the epoch before)."""

    def __init__(self, after: int):
        super().__init__()
        self.after = after

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after:
            raise KeyboardInterrupt


@pytest.mark.parametrize("algorithm", ["gumbel", "reinforce"])
def test_a_killed_run_resumes_through_fit_to_the_same_weights(lm, corpus, tmp_path, algorithm):
    p = gan_params(algorithm=algorithm, steps=9, d_pretrain_steps=2, d_steps=2, **SMALL_GAN)
    p = p.model_copy(update={"log_every": 3, "d_dropout": 0.25})  # seeds must resume too
    whole, whole_monitor = _train(lm, corpus, p, 5)
    with pytest.raises(KeyboardInterrupt):
        _train(lm, corpus, p, 5, [_Kill(after=2)], checkpoint_dir=tmp_path)
    resumed, monitor = _train(lm, corpus, p, 5, checkpoint_dir=tmp_path)
    np.testing.assert_equal(monitor.history, whole_monitor.history)  # the whole curve
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # generator, discriminator, reward baseline
    assert resumed.g_optimizer.iterations.numpy() == 9


def test_beta_schedules():
    p = gan_params(steps=11, beta_max=100.0)
    assert beta_at(0, p) == pytest.approx(1.0)
    assert beta_at(10, p) == pytest.approx(100.0)
    assert beta_at(5, p) == pytest.approx(10.0)  # exponential: geometric midpoint
    lin = p.model_copy(update={"beta_schedule": "linear"})
    assert beta_at(5, lin) == pytest.approx(50.5)
