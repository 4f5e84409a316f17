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
    d_accuracy,
    d_loss,
    discounted_returns,
    fit_gan,
    position_rewards,
    realness,
)
from textgen.lstm import build_model, rows_nll, train
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
    seed = tf.constant(1, tf.int64)
    with tf.GradientTape() as tape:
        ids, soft = rollout(gen, first, 16, Decoding(), seed, never, -1, 5.0)
        score = tf.reduce_mean(disc(soft))
    grads = tape.gradient(score, gen.trainable_variables)
    assert soft.shape == (4, 16, len(vocab)) and ids.shape == (4, 16)
    np.testing.assert_allclose(tf.reduce_sum(soft, -1).numpy(), 1.0, rtol=1e-5)
    assert all(g is not None for g in grads)
    assert sum(float(tf.norm(g)) for g in grads) > 0
    # beta sharpens the relaxation only: the same seed draws the same tokens, closer to one-hot.
    sharp_ids, sharp = rollout(gen, first, 16, Decoding(), seed, never, -1, 50.0)
    np.testing.assert_array_equal(sharp_ids.numpy(), ids.numpy())
    assert float(tf.reduce_mean(tf.reduce_max(sharp, -1))) > float(
        tf.reduce_mean(tf.reduce_max(soft, -1))
    )


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


@pytest.mark.parametrize("loss", ["rsgan", "standard"])
def test_d_steps_lower_the_discriminators_loss_and_raise_its_accuracy(lm, corpus, loss):
    """TextGAN.d_step on one fixed batch (real windows vs the generator's fakes, the same
    seed every step so the same fakes): D's loss falls and it tells them apart."""
    vocab, train_ids, _ = corpus
    seed_everything(6)
    p = gan_params(loss=loss, d_learning_rate=3e-3, **SMALL_GAN)
    gan = make_gan(lm, vocab, p, seed=6)
    gan.beta.assign(5.0)
    x = _windows(train_ids, 32, 16, 6)
    first, real_ids, seed = tf.constant(x[:, :1]), tf.constant(x[:, 1:]), tf.constant(6, tf.int64)
    fakes = gan.fakes(first, seed)
    real = tf.one_hot(real_ids, gan.vocab_size)

    def judged():
        r, f = gan.discriminator(real), gan.discriminator(fakes)
        return float(d_loss(r, f, loss)), np.mean(d_accuracy(r, f, loss))

    loss_before, acc_before = judged()
    step = tf.function(gan.d_step)
    for _ in range(40):
        step(first, real_ids, seed)
    loss_after, acc_after = judged()
    assert loss_after < 0.5 * loss_before, (loss_before, loss_after)
    assert acc_after > max(acc_before, 0.9), (acc_before, acc_after)


def _mean_realness(gan, val_ids, seed):
    """D's mean realness of the generator's samples, under the loss's reading (relative to
    real text for rsgan, whose logits mean nothing alone)."""
    windows = _windows(val_ids, 64, 16, seed)
    ids, _ = gan.generate(tf.constant(windows[:, :1]), tf.constant(seed, tf.int64))
    real = gan.discriminator(tf.one_hot(windows[:, 1:], gan.vocab_size))
    fake = gan.discriminator(tf.one_hot(ids, gan.vocab_size))
    return float(tf.reduce_mean(realness(real, fake, gan.params.loss)))


@pytest.mark.parametrize("loss", ["rsgan", "standard"])
@pytest.mark.parametrize("algorithm", ["gumbel", "reinforce"])
def test_generator_steps_raise_a_frozen_discriminators_score(lm, corpus, algorithm, loss):
    vocab, train_ids, val_ids = corpus
    seed_everything(2)
    p = gan_params(algorithm=algorithm, loss=loss, g_learning_rate=3e-3, **SMALL_GAN)
    gan = make_gan(lm, vocab, p, seed=2)
    gan.beta.assign(5.0)
    d_step, g_step = tf.function(gan.d_step), tf.function(gan.g_step)
    for step in range(40):  # teach D first, then freeze it
        x = _windows(train_ids, 16, 16, step)
        d_step(tf.constant(x[:, :1]), tf.constant(x[:, 1:]), tf.constant(step, tf.int64))
    before = _mean_realness(gan, val_ids, 7)
    d_weights = [w.copy() for w in gan.discriminator.get_weights()]
    for step in range(15):
        x = _windows(train_ids, 16, 16, 100 + step)
        g_step(tf.constant(x[:, :-1]), tf.constant(x[:, 1:]), tf.constant(100 + step, tf.int64))
    after = _mean_realness(gan, val_ids, 7)
    assert after > before, (before, after)
    for a, b in zip(d_weights, gan.discriminator.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # G's step never moves D


def test_returns_sum_the_discounted_rewards_still_to_come():
    rewards = tf.constant([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 0.0]])
    np.testing.assert_allclose(discounted_returns(rewards, 1.0), [[10, 9, 7, 4], [1, 1, 1, 0]])
    np.testing.assert_allclose(
        discounted_returns(rewards, 0.5),
        [[1 + 1 + 0.75 + 0.5, 2 + 1.5 + 1, 3 + 2, 4], [0.25, 0.5, 1, 0]],
    )


def test_rewards_stop_at_the_end_and_a_sequence_score_lands_on_its_last_token():
    alive = tf.constant([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])  # row 1 ended at t=1
    per_position = tf.constant([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]])
    np.testing.assert_allclose(
        position_rewards(per_position, alive), [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0, 0]]
    )
    whole = tf.constant([[0.9], [0.7]])
    np.testing.assert_allclose(position_rewards(whole, alive), [[0, 0, 0, 0.9], [0, 0.7, 0, 0]])


# REINFORCE on a problem with a known answer: 6 tokens, sequences of 4 after a fixed first
# token, a hand-made per-position discriminator, and a tiny generator.
V, T, K = 6, 4, 3


class _Judge(keras.Model):
    """A fixed discriminator: ``score`` maps one-hots [batch, T, V] to logits [batch, T]."""

    def __init__(self, score):
        super().__init__(name="judge")
        self.score = score

    def call(self, one_hot, training=False):
        return self.score(one_hot)


def _at_last_position(logit):
    return tf.where(tf.range(T) == T - 1, logit, 0.0)  # every earlier prefix: a constant 0


def _last_token_is_k(one_hot):
    return _at_last_position(6.0 * (2.0 * one_hot[:, :, K] - 1.0))


def _first_token_is_k(one_hot):
    return _at_last_position(6.0 * (2.0 * one_hot[:, :1, K] - 1.0))


def _tiny_reinforce(score, conditions=None, **overrides):
    seed_everything(0)
    tiny = lstm_params(embedding_dim=8, hidden=16, layers=1, dropout=overrides.pop("dropout", 0.0))
    settings = dict(algorithm="reinforce", loss="standard", discriminator="lstm", seq_len=T)
    settings.update(batch_size=64, g_learning_rate=0.02, mle_weight=0.0)
    settings.update(overrides)
    p = gan_params(**settings)
    gan = TextGAN(build_model(V, tiny), _Judge(score), p, 0, conditions or Conditions(T, V))
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(p.g_learning_rate))
    return gan


def _share_of_k(gan, position):
    ids, _ = gan.generate(tf.ones((2000, 1), tf.int32), tf.constant(999, tf.int64))
    return float(np.mean(ids.numpy()[:, position] == K))


def _reinforce_steps(gan, steps):
    step, rows = tf.function(gan.g_step), tf.ones((gan.params.batch_size, T), tf.int32)
    for i in range(steps):
        step(rows, rows, tf.constant(i, tf.int64))


def test_reinforce_learns_the_token_a_discriminator_rewards():
    gan = _tiny_reinforce(_last_token_is_k)
    before = _share_of_k(gan, T - 1)
    _reinforce_steps(gan, 40)
    assert before < 0.3 and _share_of_k(gan, T - 1) > 0.8


@pytest.mark.parametrize("discount, learns", [(1.0, True), (1e-6, False)])
def test_reinforce_credits_a_token_with_the_later_rewards_it_causes(discount, learns):
    """Only the last prefix's score varies, and it depends on the first token alone: a token
    credited with its own prefix's score (discount -> 0, the old estimator) learns nothing
    about it; credited with the return (discount 1), it learns to open with K."""
    gan = _tiny_reinforce(_first_token_is_k, discount=discount)
    before = _share_of_k(gan, 0)
    _reinforce_steps(gan, 40)
    after = _share_of_k(gan, 0)
    assert before < 0.3
    assert (after > 0.8) if learns else (after < 0.4), (before, after)


def test_reinforce_scores_the_sampling_policy_and_survives_padding():
    """Log-probabilities are those the sampler drew from (no dropout, the never mask), and
    rows padded after an end token (padding is a never-drawn id: -inf) give no NaN."""
    conditions = Conditions(T, V, never=(0,), eos_id=5)
    gan = _tiny_reinforce(_first_token_is_k, conditions, dropout=0.5)
    first = tf.ones((4000, 1), tf.int32)
    ids, _ = gan.generate(first, tf.constant(3, tf.int64))
    log_p = gan.log_probs(first, ids).numpy()
    np.testing.assert_array_equal(log_p, gan.log_probs(first, ids).numpy())  # dropout off
    freq = np.bincount(ids.numpy()[:, 0], minlength=V) / len(ids)
    probs = np.zeros(V)
    probs[ids.numpy()[:, 0]] = np.exp(log_p[:, 0])
    assert probs[0] == freq[0] == 0
    assert np.abs(freq - probs).sum() < 0.06  # the masked distribution the draws came from
    ended = (ids.numpy()[:64] == 5).any(axis=1)
    assert 0 < ended.sum() < 64  # some of the first batch's rows carry padding
    _reinforce_steps(gan, 3)
    assert all(np.isfinite(w).all() for w in gan.generator.get_weights())
    assert np.isfinite(gan.baseline.numpy()).all()


def test_the_mle_loss_is_per_real_token():
    """On padded rows, the generator's MLE term averages over real tokens only (as rows_nll)."""
    gan = _tiny_reinforce(_first_token_is_k, Conditions(T, V, never=(0,), eos_id=5), mle_weight=1.0)
    rows = np.array([[1, 2, 5, 0, 0], [1, 3, 4, 2, 5], [1, 5, 0, 0, 0]], np.int32)
    mle = float(gan.mle_loss(tf.constant(rows[:, :-1]), tf.constant(rows[:, 1:])))
    assert mle == pytest.approx(rows_nll(gan.generator, rows, batch_size=3), rel=1e-5)


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
    seed_everything(4)
    untrained = make_gan(lm, corpus[0], p, 4)  # what _train started from
    for trained, start in [(ga.generator, lm), (ga.discriminator, untrained.discriminator)]:
        # fit_gan trains every weight of both networks, but RSGAN's loss sees only differences
        # of D's logits, which the output bias cancels from.
        still = [
            a.path
            for a, b in zip(trained.trainable_weights, start.trainable_weights, strict=True)
            if np.array_equal(a, b)
        ]
        rsgan_d = trained is ga.discriminator and p.loss == "rsgan"
        assert still == (["d_logit/bias"] if rsgan_d else []), still
    assert {
        "d_accuracy_real",
        "d_accuracy_fake",
        "d_accuracy_fake_hard",
        "val_nll_nats",
        "sample_lm_nll_nats",
        "distinct_2",
        "d_loss",
        "g_loss",
        "beta",
    } <= a.history[-1].keys()
    assert [h["step"] for h in a.history] == [0, 5, 6]  # the warm start, then every log_every
    if algorithm == "reinforce":  # D is trained on hard samples: both accuracies are one
        assert all(h["d_accuracy_fake"] == h["d_accuracy_fake_hard"] for h in a.history)
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
