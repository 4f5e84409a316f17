"""The text GAN: a discriminator over (soft) one-hot sequences, and adversarial training.

Text is discrete, so sampled tokens carry no gradient back to the generator. Two remedies, as
in the literature, behind ``gan.algorithm``:

- ``gumbel`` (RelGAN): the generator rolls a sequence out feeding back argmax(logits + Gumbel
  noise), while the discriminator sees softmax(beta * (logits + noise)), a differentiable
  relaxation whose temperature 1/beta is annealed towards 1/beta_max.
- ``reinforce`` (SeqGAN, ScratchGAN): sampled sequences are scored by the discriminator; each
  token's log-probability is weighted by its discounted return (the rewards of its own and of
  every later position, all of which it influences), minus a per-position moving-average
  baseline.

The generator is the LSTM language model itself (same layers, same sampler), warm-started
from MLE training.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from textgen.backend import keras, tf
from textgen.checkpoints import Checkpoint
from textgen.config import GANParams
from textgen.lstm import (
    PAD_ID,
    heldout_nll,
    row_dataset,
    sequence_nll,
    window_dataset,
)
from textgen.metrics import distinct_n
from textgen.sampling import Decoding, Sampler, after_end, never_mask, rollout
from textgen.seeding import derive_seed
from textgen.vocab import Vocabulary

layers = keras.layers
log = logging.getLogger(__name__)


def build_discriminator(vocab_size: int, p: GANParams) -> keras.Model:
    """Real-vs-generated classifier over one-hot [batch, time, vocab] inputs (soft or hard).

    The first layer is a bias-free Dense: on a hard one-hot it is an embedding lookup, and on a
    relaxed (soft) one-hot it is the matching weighted mix of embeddings, so gradients reach the
    generator. ``cnn``: SeqGAN/RelGAN style, several filter widths, max-over-time pooling, a
    highway layer, dropout; one logit per sequence, shape [batch, 1]. ``lstm``: one logit per
    position, [batch, time], each judging the prefix up to it (per-token rewards).
    """
    one_hot = keras.Input(shape=(None, vocab_size), name="one_hot")
    x = layers.Dense(p.d_embedding_dim, use_bias=False, name="d_embedding")(one_hot)
    if p.discriminator == "cnn":
        pooled = [
            layers.GlobalMaxPooling1D(name=f"pool_{w}")(
                layers.Conv1D(p.d_filters, w, activation="relu", name=f"conv_{w}")(x)
            )
            for w in p.d_filter_widths
        ]
        h = layers.Concatenate(name="features")(pooled) if len(pooled) > 1 else pooled[0]
        width = p.d_filters * len(p.d_filter_widths)
        # Highway: h + t * (g - h), with the gate biased towards carrying h through.
        gate = layers.Dense(
            width,
            activation="sigmoid",
            bias_initializer=keras.initializers.Constant(-1.0),
            name="highway_gate",
        )(h)
        transform = layers.Dense(width, activation="relu", name="highway_transform")(h)
        delta = layers.Subtract(name="highway_delta")([transform, h])
        h = layers.Add(name="highway")([h, layers.Multiply(name="highway_mix")([gate, delta])])
        h = layers.Dropout(p.d_dropout, name="d_dropout")(h)
        logits = layers.Dense(1, name="d_logit")(h)  # [batch, 1]
    else:
        h = layers.LSTM(p.d_hidden, return_sequences=True, name="d_lstm")(x)
        h = layers.Dropout(p.d_dropout, name="d_dropout")(h)
        logits = layers.Reshape((-1,), name="d_logit")(layers.Dense(1, name="d_score")(h))
    return keras.Model(one_hot, logits, name=f"discriminator_{p.discriminator}")


def d_loss(real: tf.Tensor, fake: tf.Tensor, kind: str) -> tf.Tensor:
    """Discriminator loss on logits; ``rsgan`` is relativistic (real judged against fake)."""
    if kind == "rsgan":
        return tf.reduce_mean(tf.nn.softplus(-(real - fake)))
    return tf.reduce_mean(tf.nn.softplus(-real)) + tf.reduce_mean(tf.nn.softplus(fake))


def g_loss(real: tf.Tensor, fake: tf.Tensor, kind: str) -> tf.Tensor:
    """Generator loss: the discriminator's loss with the roles of real and fake swapped."""
    if kind == "rsgan":
        return tf.reduce_mean(tf.nn.softplus(-(fake - real)))
    return tf.reduce_mean(tf.nn.softplus(-fake))  # non-saturating


def realness(real: tf.Tensor, fake: tf.Tensor, kind: str) -> tf.Tensor:
    """Per-token probability that each fake looks real, under the loss's own reading of D."""
    score = fake - tf.reduce_mean(real) if kind == "rsgan" else fake
    return tf.sigmoid(score)


def d_accuracy(real: tf.Tensor, fake: tf.Tensor, kind: str) -> tuple[float, float]:
    """Share of real and of fake sequences D classifies correctly.

    Judged on the last logit (a per-position discriminator's view of the whole sequence).
    Standard GAN: by the sign of the logit. RSGAN's logits are only meaningful relative to each
    other, so a real counts as correct when it scores above the fakes' mean, and vice versa.
    """
    real, fake = real[:, -1], fake[:, -1]  # the judgement of the whole sequence
    if kind == "rsgan":
        return (
            float(tf.reduce_mean(tf.cast(real > tf.reduce_mean(fake), tf.float32))),
            float(tf.reduce_mean(tf.cast(fake < tf.reduce_mean(real), tf.float32))),
        )
    return (
        float(tf.reduce_mean(tf.cast(real > 0, tf.float32))),
        float(tf.reduce_mean(tf.cast(fake < 0, tf.float32))),
    )


def position_rewards(score: tf.Tensor, alive: tf.Tensor) -> tf.Tensor:
    """Rewards [batch, time] of sampled sequences from D's ``score`` (realness) of them.

    A per-position D ([batch, time]) rewards every alive position with its realness (its
    judgement of the prefix up to there); a sequence-level D ([batch, 1]) gives its one score
    at the last alive position, where the whole sequence is known. Nothing after the end.
    """
    if score.shape[-1] == 1:
        last = tf.cast(tf.reduce_sum(alive, axis=1), tf.int32) - 1
        return score * tf.one_hot(last, tf.shape(alive)[1])
    return score * alive


def discounted_returns(rewards: tf.Tensor, discount: float) -> tf.Tensor:
    """G_t = sum_{k >= t} discount^(k - t) r_k for rewards [batch, time]: what the token at t
    influences (every later prefix is conditioned on it)."""
    t = tf.range(tf.shape(rewards)[1])
    lag = t[:, None] - t[None, :]  # [k, t]: k - t
    weights = tf.where(
        lag >= 0, tf.pow(tf.constant(discount, rewards.dtype), tf.cast(lag, rewards.dtype)), 0.0
    )
    return tf.matmul(rewards, weights)


def beta_at(step: int, p: GANParams) -> float:
    """Inverse temperature of the relaxation: 1 at step 0, ``beta_max`` at the last step."""
    frac = min(step / max(p.steps - 1, 1), 1.0)
    if p.beta_schedule == "constant":
        return p.beta_max
    if p.beta_schedule == "linear":
        return 1.0 + (p.beta_max - 1.0) * frac
    return p.beta_max**frac


@dataclass(frozen=True)
class Conditions:
    """What a generated sequence must respect: its length, the ids never drawn (padding, the
    begin token) and the end token (-1: none), after which a row is padding."""

    seq_len: int
    vocab_size: int
    never: tuple[int, ...] = ()
    eos_id: int = -1

    @classmethod
    def of(cls, vocab: Vocabulary, seq_len: int) -> Conditions:
        eos_id = -1 if vocab.eos_id is None else vocab.eos_id
        return cls(seq_len, len(vocab), tuple(vocab.never_sampled), eos_id)


class TextGAN(keras.Model):
    """A generator (the LSTM language model) and a discriminator trained against each other.

    Shaped like Keras' ``wgan_gp.py``: ``compile(d_optimizer, g_optimizer)``, and a
    ``train_step`` that takes ``d_steps + 1`` batches [k, batch, time] (inputs, targets),
    updates D on the first ``d_steps`` and G on the last. ``fit`` then brings what training
    needs as callbacks: ``BetaSchedule`` (the relaxation's temperature), ``GANMonitor``
    (evaluation, curves, the collapse warning) and a ``checkpoints.Checkpoint`` (resume).

    Every random draw is a stateless function of the seed and the update's index (counted
    by the optimisers, which checkpoints restore), so a resumed run draws what the uninterrupted
    one would have.
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        p: GANParams,
        seed: int,
        conditions: Conditions,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.params, self.noise_seed, self.conditions = p, seed, conditions
        self.vocab_size = conditions.vocab_size
        self.logit_mask = never_mask(conditions.vocab_size, conditions.never)
        self.beta = keras.Variable(1.0, trainable=False, name="beta")  # set by BetaSchedule
        # REINFORCE's baseline: per position, a moving average of the mean return over the
        # rows still alive there; set to the first batch's means (``baseline_set``) so that it
        # is never pulled towards an arbitrary initial value.
        self.baseline = keras.Variable(
            np.zeros(conditions.seq_len, np.float32), trainable=False, name="reward_baseline"
        )
        self.baseline_set = keras.Variable(
            np.zeros(conditions.seq_len, np.float32), trainable=False, name="baseline_set"
        )
        self.built = True  # both networks are built; nothing of this model's own to build

    def compile(
        self, d_optimizer: keras.optimizers.Optimizer, g_optimizer: keras.optimizers.Optimizer
    ) -> None:
        # No XLA: the rollout's while loop and TensorArrays are what it compiles worst.
        super().compile(optimizer=None, jit_compile=False)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        # Built now, so that a backup restores their state before the first step.
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)

    @property
    def optimizers(self) -> list[keras.optimizers.Optimizer]:
        """Both optimisers (what a checkpoint saves besides ``variables``)."""
        return [self.d_optimizer, self.g_optimizer]

    # -- one update each -----------------------------------------------------------------
    def noise(self, counter: tf.Tensor) -> tf.Tensor:
        """The seed of the ``counter``-th update's random draws (1-based, D and G together)."""
        return derive_seed(self.noise_seed, tf.cast(counter, tf.int64))

    def generate(self, first: tf.Tensor, seed: tf.Tensor, relax: tf.Tensor | None = None):
        """Sequences continuing ``first`` [batch, 1]: ids, and relaxed one-hots with ``relax``."""
        c = self.conditions
        return rollout(
            self.generator, first, c.seq_len, Decoding(), seed, self.logit_mask, c.eos_id, relax
        )

    def fakes(self, first: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """What D is trained to reject: the relaxed samples G is trained through (as RelGAN
        does, so D never meets an input kind it was not trained on), or plain samples."""
        if self.params.algorithm == "gumbel":
            _, soft = self.generate(first, seed, relax=self.beta)
            return tf.stop_gradient(soft)
        ids, _ = self.generate(first, seed)
        return tf.one_hot(ids, self.vocab_size)

    def d_step(self, first: tf.Tensor, real_ids: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        fake = self.fakes(first, seed)
        real = tf.one_hot(real_ids, self.vocab_size)
        with tf.GradientTape() as tape:
            d = self.discriminator
            loss = d_loss(d(real, training=True), d(fake, training=True), self.params.loss)
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(
            zip(tape.gradient(loss, variables), variables, strict=True)
        )
        return loss

    def mle_loss(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        if self.params.mle_weight == 0:
            return tf.constant(0.0)
        # x is y shifted right by one token, so this is teacher forcing on the real window.
        nll = sequence_nll(self.generator, x[:, :1], y, training=True)
        rows = self.conditions.eos_id >= 0  # padded rows: no loss on the padding
        weight = tf.cast(y != PAD_ID, tf.float32) if rows else tf.ones_like(nll)
        return tf.reduce_sum(nll * weight) / tf.reduce_sum(weight)

    def log_probs(self, first: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
        """Log-probabilities [batch, time] of ``ids`` under the policy that sampled them: no
        dropout, the never-sample mask, temperature 1 (as ``generate``). Masked ids (the
        padding after an end token) get -inf: weight them with ``tf.where``, not a product."""
        logits = self.generator(tf.concat([first, ids[:, :-1]], axis=1), training=False)
        log_p = tf.nn.log_softmax(logits + self.logit_mask, axis=-1)
        return tf.gather(log_p, ids, batch_dims=2)

    def reinforce_loss(
        self, first: tf.Tensor, ids: tf.Tensor, rewards: tf.Tensor, alive: tf.Tensor
    ) -> tf.Tensor:
        """The policy-gradient surrogate for sampled ``ids`` with ``rewards`` [batch, time];
        updates the baseline (call inside the generator's tape)."""
        returns = discounted_returns(rewards, self.params.discount)
        count = tf.reduce_sum(alive, axis=0)
        seen = count > 0  # positions some row reached: only those have a mean return
        mean = tf.reduce_sum(returns * alive, axis=0) / tf.maximum(count, 1.0)
        ready = self.baseline_set > 0
        baseline = tf.where(ready, self.baseline, mean)
        advantage = tf.stop_gradient(returns - baseline)
        log_p = tf.where(alive > 0, self.log_probs(first, ids), 0.0)
        decay = self.params.baseline_decay
        updated = tf.where(ready, decay * self.baseline + (1 - decay) * mean, mean)
        self.baseline.assign(tf.where(seen, updated, self.baseline))
        self.baseline_set.assign(tf.where(seen, 1.0, self.baseline_set))
        return -tf.reduce_sum(advantage * log_p * alive) / tf.reduce_sum(alive)

    def g_step(self, x: tf.Tensor, y: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """One generator update: through the relaxation (gumbel) or by REINFORCE."""
        p, first = self.params, x[:, :1]
        real = self.discriminator(tf.one_hot(y, self.vocab_size), training=False)
        if p.algorithm == "gumbel":
            with tf.GradientTape() as tape:
                _, soft = self.generate(first, seed, relax=self.beta)
                adv = g_loss(real, self.discriminator(soft, training=False), p.loss)
                loss = adv + p.mle_weight * self.mle_loss(x, y)
        else:
            ids, _ = self.generate(first, seed)
            fake = self.discriminator(tf.one_hot(ids, self.vocab_size), training=False)
            alive = after_end(ids, self.conditions.eos_id)  # no credit after an end token
            rewards = position_rewards(realness(real, fake, p.loss), alive)
            with tf.GradientTape() as tape:
                adv = self.reinforce_loss(first, ids, rewards, alive)
                loss = adv + p.mle_weight * self.mle_loss(x, y)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(
            zip(tape.gradient(loss, variables), variables, strict=True)
        )
        return adv

    # -- what fit runs -------------------------------------------------------------------
    def train_step(self, data: tuple[tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        x, y = data  # [d_steps + 1, batch, time] each
        p = self.params
        # Updates so far: the pre-training, then d_steps + 1 per generator step.
        done = p.d_pretrain_steps + tf.cast(self.g_optimizer.iterations, tf.int64) * (p.d_steps + 1)
        for j in range(p.d_steps):
            d_loss_value = self.d_step(x[j][:, :1], y[j], self.noise(done + j + 1))
        g_loss_value = self.g_step(x[-1], y[-1], self.noise(done + p.d_steps + 1))
        return {"d_loss": d_loss_value, "g_loss": g_loss_value}

    def pretrain_discriminator(self, batches: tf.data.Dataset) -> None:
        """D updates against the warm-started generator before the first G update."""
        step = tf.function(
            lambda x, y: self.d_step(x[:, :1], y, self.noise(self.d_optimizer.iterations + 1))
        )
        self.beta.assign(1.0)
        for x, y in batches:
            step(x, y)


def gan_dataset(train_ids: np.ndarray, p: GANParams, seed: int) -> tf.data.Dataset:
    """Endless (input, target) batches of real text: rows of independent sequences, or windows
    of ``gan.seq_len`` from a stream."""
    if train_ids.ndim == 2:
        ds, _ = row_dataset(train_ids, p.batch_size, seed)
        return ds.map(lambda x, y, w: (x, y))
    return window_dataset(train_ids, p.seq_len, p.batch_size, seed)[0]


def fit_gan(
    gan: TextGAN,
    train_ids: np.ndarray,
    callbacks: list[keras.callbacks.Callback],
    checkpoint: Checkpoint | None = None,
) -> None:
    """``d_pretrain_steps`` D updates (unless resuming), then ``steps`` G steps through
    ``fit``: an epoch is ``log_every`` generator steps (the last may be shorter). With a
    ``checkpoint`` (made for ``gan``), a killed run goes on from its last saved epoch."""
    p = gan.params
    epochs = math.ceil(p.steps / p.log_every)
    first_epoch = checkpoint.initial_epoch(epochs) if checkpoint else 0
    ds = gan_dataset(train_ids, p, gan.noise_seed)
    if first_epoch == 0:
        gan.pretrain_discriminator(ds.take(p.d_pretrain_steps))
    done = p.d_pretrain_steps + first_epoch * p.log_every * (p.d_steps + 1)
    saved = [checkpoint] if checkpoint else []
    gan.fit(
        ds.skip(done).batch(p.d_steps + 1),
        epochs=epochs,
        initial_epoch=first_epoch,
        steps_per_epoch=p.log_every,
        # The checkpoint saves what the callbacks before it did.
        callbacks=[*callbacks, *saved, BetaSchedule()],
        shuffle=False,  # the dataset shuffles itself, reproducibly
        verbose=0,
    )


class BetaSchedule(keras.callbacks.Callback):
    """Sets the relaxation's inverse temperature before every generator step (``beta_at``),
    and ends training after ``gan.steps`` (the last epoch may be short)."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        p = self.model.params
        self.model.beta.assign(beta_at(self.epoch * p.log_every + batch, p))

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        p = self.model.params
        if self.epoch * p.log_every + batch + 1 >= p.steps:
            self.model.stop_training = True


class GANMonitor(keras.callbacks.Callback):
    """Evaluates the generator at the warm start and after every epoch (``log_every`` steps),
    keeps the points in ``history`` (the curves, saved by a checkpoint), logs each, and warns
    when sample diversity collapses to under half the warm start's.

    ``lm`` is the frozen MLE model (the generator's warm start): it judges the quality of
    the generator's samples and is never updated.
    """

    def __init__(
        self,
        lm: keras.Model,
        val_ids: np.ndarray,
        decode: Callable[[np.ndarray], str],
        seed: int,
    ):
        super().__init__()
        self.lm, self.val_ids, self.decode, self.seed = lm, val_ids, decode, seed
        self.history: list[dict] = []

    def get_state(self) -> tuple[dict, list[np.ndarray]]:
        return {"history": self.history}, []

    def set_state(self, meta: dict, arrays: list[np.ndarray]) -> None:
        self.history = list(meta["history"])

    def evaluate(self, generator: keras.Model) -> dict[str, float]:
        """Where ``generator`` stands: D's accuracy, likelihood on val, sample quality under
        the judge, and diversity; the same val windows and seed every time.

        ``d_accuracy_fake`` is judged on what D is trained to reject (``TextGAN.fakes``: the
        relaxed one-hots at the current beta with ``gumbel``), ``d_accuracy_fake_hard`` on
        hard samples (what the sampler emits); with ``reinforce`` the two are the same draws.
        """
        gan, val_ids = self.model, self.val_ids
        p, c = gan.params, gan.conditions
        rng = np.random.default_rng(self.seed)
        if val_ids.ndim == 2:
            windows = val_ids[rng.integers(0, len(val_ids), p.eval_samples)]
            held_out = val_ids[: max(1, p.eval_val_tokens // val_ids.shape[1])]
        else:
            starts = rng.integers(0, len(val_ids) - c.seq_len - 1, p.eval_samples)
            windows = val_ids[starts[:, None] + np.arange(c.seq_len + 1)]
            held_out = val_ids[: p.eval_val_tokens]
        first, real_ids = windows[:, :1], windows[:, 1:]
        sampler = self.samplers.setdefault(id(generator), Sampler(generator, c.never, c.eos_id))
        fake_ids = sampler.generate_batch(first, c.seq_len, seed=self.seed)
        if getattr(self, "_fakes", None) is None:
            self._fakes = tf.function(gan.fakes)  # traced once, not eager at every point
        trained_on = self._fakes(tf.constant(first, tf.int32), tf.constant(self.seed, tf.int64))
        real = gan.discriminator(tf.one_hot(real_ids, gan.vocab_size), training=False)
        fake = gan.discriminator(trained_on, training=False)
        hard = gan.discriminator(tf.one_hot(fake_ids, gan.vocab_size), training=False)
        acc_real, acc_fake = d_accuracy(real, fake, p.loss)
        _, acc_fake_hard = d_accuracy(real, hard, p.loss)
        lm_nll = sequence_nll(self.lm, tf.constant(first), tf.constant(fake_ids))
        alive = after_end(tf.constant(fake_ids), c.eos_id)
        return {
            "d_accuracy_real": acc_real,
            "d_accuracy_fake": acc_fake,
            "d_accuracy_fake_hard": acc_fake_hard,
            "val_nll_nats": heldout_nll(generator, held_out, 16),
            "sample_lm_nll_nats": float(tf.reduce_sum(lm_nll * alive) / tf.reduce_sum(alive)),
            "distinct_2": distinct_n([self.decode(row) for row in fake_ids], 2),
        }

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.samplers: dict[int, Sampler] = {}  # one compiled sampler per model
        self._fakes = None  # compiled on first use, for this fit's model
        if not self.history:  # (a resumed run has its warm start on the curve already)
            point = {
                "d_loss": float("nan"),
                "g_loss": float("nan"),
                "beta": beta_at(0, self.model.params),
            }
            point.update(self.evaluate(self.model.generator))
            self._record(0, point)
        self.first_distinct = self.history[0]["distinct_2"]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        p = self.model.params
        step = min((epoch + 1) * p.log_every, p.steps)
        point = {
            "d_loss": float(logs["d_loss"]),
            "g_loss": float(logs["g_loss"]),
            "beta": beta_at(step - 1, p),
            **self.evaluate(self.model.generator),
        }
        if point["distinct_2"] < 0.5 * self.first_distinct:
            log.warning(
                "step %d: sample diversity collapsed (distinct-2 %.3f, was %.3f); lower "
                "gan.g_learning_rate or raise gan.mle_weight",
                step,
                point["distinct_2"],
                self.first_distinct,
            )
        self._record(step, point)

    def _record(self, step: int, p: dict) -> None:
        self.history.append({"step": step, **p})
        log.info(
            f"step {step:5d}  D loss {p['d_loss']:.3f}  acc real/fake/fake hard "
            f"{p['d_accuracy_real']:.2f}/{p['d_accuracy_fake']:.2f}/"
            f"{p['d_accuracy_fake_hard']:.2f}  G loss {p['g_loss']:.3f}  "
            f"beta {p['beta']:.1f}  val NLL {p['val_nll_nats']:.3f}  sample LM NLL "
            f"{p['sample_lm_nll_nats']:.3f}  distinct-2 {p['distinct_2']:.3f}"
        )


def copy_model(model: keras.Model) -> keras.Model:
    """A fresh model with the same architecture and weights (the generator's warm start)."""
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin
