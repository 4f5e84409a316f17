import numpy as np
import pytest

from tests.params import gan_params, lstm_params
from tests.test_training import KillAt
from textgen.backend import keras, tf
from textgen.checkpoints import Checkpoint
from textgen.discriminator import LOSSES, build_discriminator
from textgen.gan import (
    Conditions,
    GANMonitor,
    ReinforceGAN,
    beta_at,
    build_gan,
    discounted_returns,
    fit_gan,
    position_rewards,
)
from textgen.model import build_model, float32_copy
from textgen.sampling import Decoding, never_mask, rollout
from textgen.scoring import heldout_nll
from textgen.seeding import seed_everything
from textgen.sources import RowSource, StreamSource
from textgen.training import train

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
def lm(corpus):
    vocab, train_ids, val_ids = corpus
    seed_everything(0)
    model = build_model(len(vocab), **LM.architecture)
    train(model, StreamSource(train_ids), StreamSource(val_ids), LM, seed=0, verbose=0)
    return model


def _windows(ids, n, length, seed):
    starts = np.random.default_rng(seed).integers(0, len(ids) - length - 1, n)
    return ids[starts[:, None] + np.arange(length + 1)]


def _corrupt(windows, vocab_size, seed):
    """Real text with half its characters replaced at random: easy to tell apart, if D learns."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(1, vocab_size, windows.shape)
    return np.where(rng.random(windows.shape) < 0.5, noise, windows).astype(np.int32)


def make_gan(lm, vocab, p, seed):
    discriminator = build_discriminator(len(vocab), **p.discriminator_args)
    return build_gan(p, float32_copy(lm), discriminator, Conditions.of(vocab, p.seq_len), seed)


def test_gumbel_gradients_reach_the_generator(lm, corpus):
    vocab = corpus[0]
    p = gan_params(**SMALL_GAN)
    gen, disc = float32_copy(lm), build_discriminator(len(vocab), **p.discriminator_args)
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
        return float(LOSSES[loss].d_loss(r, f)), np.mean(LOSSES[loss].accuracy(r, f))

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
    return float(tf.reduce_mean(gan.adversarial_loss.realness(real, fake)))


@pytest.mark.parametrize("loss", ["rsgan", "standard"])
@pytest.mark.parametrize("algorithm", ["gumbel", "reinforce"])
def test_generator_steps_raise_a_frozen_discriminators_score(lm, corpus, algorithm, loss):
    vocab, train_ids, val_ids = corpus
    seed_everything(2)
    p = gan_params(algorithm=algorithm, loss=loss, g_learning_rate=3e-3, **SMALL_GAN)
    gan = make_gan(lm, vocab, p, seed=2)
    if algorithm == "gumbel":
        gan.beta.assign(5.0)
    d_step, g_step = tf.function(gan.d_step), tf.function(gan.g_step)
    for step in range(40):  # teach D first, then freeze it
        x = _windows(train_ids, 16, 16, step)
        d_step(tf.constant(x[:, :1]), tf.constant(x[:, 1:]), tf.constant(step, tf.int64))
    before = _mean_realness(gan, val_ids, 7)
    d_weights = [w.copy() for w in gan.discriminator.get_weights()]
    for step in range(15):
        x = _windows(train_ids, 16, 16, 100 + step)
        w = tf.ones(x[:, 1:].shape)
        g_step(tf.constant(x[:, :-1]), tf.constant(x[:, 1:]), w, tf.constant(100 + step, tf.int64))
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


def _tiny_reinforce(score, conditions=None, dropout=0.0, **settings):
    seed_everything(0)
    generator = build_model(V, embedding_dim=8, hidden=16, layers=1, dropout=dropout)
    gan = ReinforceGAN(generator, _Judge(score), conditions or Conditions(T, V), 0, **settings)
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(0.02), LOSSES["standard"])
    return gan


def _share_of_k(gan, position):
    ids, _ = gan.generate(tf.ones((2000, 1), tf.int32), tf.constant(999, tf.int64))
    return float(np.mean(ids.numpy()[:, position] == K))


def _reinforce_steps(gan, steps):
    step, rows = tf.function(gan.g_step), tf.ones((64, T), tf.int32)
    for i in range(steps):
        step(rows, rows, tf.ones((64, T)), tf.constant(i, tf.int64))


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
    """On padded rows, the generator's MLE term averages over real tokens only (as the held-out
    NLL does); the weights come with the batch (``sources.RowSource``)."""
    gan = _tiny_reinforce(_first_token_is_k, Conditions(T, V, never=(0,), eos_id=5), mle_weight=1.0)
    rows = np.array([[1, 2, 5, 0, 0], [1, 3, 4, 2, 5], [1, 5, 0, 0, 0]], np.int32)
    x, y, w = next(RowSource(rows).batches(3, T, seed=0).as_numpy_iterator())
    mle = float(gan.mle_loss(tf.constant(x), tf.constant(y), tf.constant(w)))
    assert mle == pytest.approx(heldout_nll(gan.generator, RowSource(rows), 3), rel=1e-5)


def _train(lm, corpus, p, seed, callbacks=(), checkpoint_dir=None):
    vocab, train_ids, val_ids = corpus
    seed_everything(seed)
    gan = make_gan(lm, vocab, p, seed)
    monitor = GANMonitor(
        lm,
        StreamSource(val_ids),
        vocab.decode,
        seed,
        samples=p.eval_samples,
        val_tokens=p.eval_val_tokens,
        steps=p.steps,
        steps_per_epoch=p.log_every,
        seq_len=p.seq_len,
    )
    checkpoint = Checkpoint(checkpoint_dir, gan, [monitor]) if checkpoint_dir else None
    train = StreamSource(train_ids)
    fit_gan(gan, train, p.batch_size, p.steps, p.log_every, [monitor, *callbacks], checkpoint)
    return gan, monitor


@pytest.mark.slow  # whole runs, each traced anew
@pytest.mark.parametrize(("algorithm", "resume"), [("gumbel", False), ("reinforce", True)])
def test_training_reports_and_a_killed_run_resumes_to_the_same_weights(
    lm, corpus, tmp_path, algorithm, resume
):
    """A whole run of fit_gan, and one killed in its last (short) epoch then resumed in fresh
    objects, as a new process would: the same curve and the same weights, draw for draw
    (gumbel's resume, the default algorithm's, is the kill chain's: tests/test_kill.py kills
    train_gan and compares every output with an uninterrupted run's)."""
    p = gan_params(algorithm=algorithm, steps=8, d_pretrain_steps=2, d_steps=2, **SMALL_GAN)
    p = p.model_copy(update={"log_every": 3, "d_dropout": 0.25})  # seeds must resume too
    whole, whole_monitor = _train(lm, corpus, p, 5)
    history = whole_monitor.history
    assert {
        "d_accuracy_real",
        "d_accuracy_fake",
        "d_accuracy_fake_hard",
        "val_nll_nats",
        "sample_lm_nll_nats",
        "distinct_2",
        "d_loss",
        "g_loss",
    } <= history[-1].keys()
    assert ("beta" in history[-1]) == (algorithm == "gumbel")  # the relaxation's setting
    assert [h["step"] for h in history] == [0, 3, 6, 8]  # the warm start, every log_every, end
    if algorithm == "reinforce":  # D is trained on hard samples: both accuracies are one
        assert all(h["d_accuracy_fake"] == h["d_accuracy_fake_hard"] for h in history)
    assert whole.g_optimizer.iterations.numpy() == 8  # gan.steps generator updates
    assert whole.d_optimizer.iterations.numpy() == 2 + 8 * p.d_steps
    seed_everything(5)
    untrained = make_gan(lm, corpus[0], p, 5)  # what _train started from
    for trained, start in [(whole.generator, lm), (whole.discriminator, untrained.discriminator)]:
        # fit_gan trains every weight of both networks, but RSGAN's loss sees only differences
        # of D's logits, which the output bias cancels from.
        still = [
            a.path
            for a, b in zip(trained.trainable_weights, start.trainable_weights, strict=True)
            if np.array_equal(a, b)
        ]
        rsgan_d = trained is whole.discriminator and p.loss == "rsgan"
        assert still == (["d_logit/bias"] if rsgan_d else []), still
    if not resume:
        return

    with pytest.raises(KeyboardInterrupt):
        # Killed before epoch 2's checkpoint (the callback comes first): it resumes after 1.
        _train(lm, corpus, p, 5, [KillAt(2)], checkpoint_dir=tmp_path)
    resumed, monitor = _train(lm, corpus, p, 5, checkpoint_dir=tmp_path)
    np.testing.assert_equal(monitor.history, history)  # the whole curve (nan equals nan)
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # generator, discriminator, reward baseline
    assert resumed.g_optimizer.iterations.numpy() == 8


def test_beta_schedules():
    assert beta_at(0, 11, 100.0) == pytest.approx(1.0)
    assert beta_at(10, 11, 100.0) == pytest.approx(100.0)
    assert beta_at(5, 11, 100.0) == pytest.approx(10.0)  # exponential: geometric midpoint
    assert beta_at(5, 11, 100.0, "linear") == pytest.approx(50.5)
    assert beta_at(0, 11, 100.0, "constant") == 100.0


def relgan_temperature(temper: float, i: int, n: int, adapt: str) -> float:
    """RelGAN's ``get_fixed_temperature`` (its utils), transcribed for the exp and lin forms."""
    if adapt == "lin":
        return 1 + i / (n - 1) * (temper - 1)
    if adapt == "exp":
        return temper ** (i / n)
    raise ValueError(adapt)


@pytest.mark.parametrize(("ours", "theirs"), [("exp", "exp"), ("linear", "lin")])
def test_beta_on_relgans_fixed_span_equals_its_schedule_whatever_the_run_length(ours, theirs):
    for steps in (300, 1000, 3000):
        for step in sorted({0, 1, 150, steps // 2, steps - 1}):
            got = beta_at(step, steps, 100.0, ours, span=5000)
            assert got == pytest.approx(relgan_temperature(100.0, step, 5000, theirs), rel=1e-12)
    # Its 3,000-step oracle run ends near 100 ** 0.6 (15.8), far from beta_max; a 300-step
    # run barely leaves 1; the run's own span reaches beta_max at its last step.
    assert beta_at(2999, 3000, 100.0, "exp", span=5000) == pytest.approx(15.84, abs=0.01)
    assert beta_at(299, 300, 100.0, "exp", span=5000) == pytest.approx(1.317, abs=0.001)
    assert beta_at(299, 300, 100.0, "exp") == pytest.approx(100.0)


def test_a_validation_split_too_short_for_the_monitor_is_refused_before_training(lm):
    with pytest.raises(ValueError, match="too few for windows of 16"):
        GANMonitor(
            lm,
            StreamSource(np.arange(10, dtype=np.int32)),
            str,
            0,
            samples=4,
            val_tokens=10,
            steps=2,
            steps_per_epoch=1,
            seq_len=16,
        )
