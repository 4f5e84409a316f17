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
from textgen.discriminator import LOSSES, AdversarialLoss
from textgen.metrics import distinct_n
from textgen.model import sequence_nll
from textgen.sampling import Decoding, Sampler, after_end, never_mask, rollout
from textgen.scoring import heldout_nll, score
from textgen.seeding import derive_seed
from textgen.sources import TokenSource, continuation_layout
from textgen.vocab import Vocabulary

log = logging.getLogger(__name__)


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


def beta_at(
    step: int, steps: int, beta_max: float, schedule: str = "exp", span: int | None = None
) -> float:
    """Inverse temperature of the relaxation at generator step ``step`` (from 0) of ``steps``.

    ``span`` None: 1 at the first step, ``beta_max`` at the last (``exp``: geometric,
    ``linear``, or ``constant``). ``span`` N: RelGAN's ``get_fixed_temperature(beta_max, step,
    N, adapt)`` exactly, whatever the run's length: ``exp`` beta_max ** (step / N), ``linear``
    1 + step / (N - 1) * (beta_max - 1), with no cap (RelGAN fixes N = 5000, so its 3,000-step
    oracle run ends at 100 ** 0.6 = 15.8 and a 300-step run at 1.32)."""
    if schedule == "constant":
        return beta_max
    if span is not None:
        if schedule == "linear":
            return 1.0 + step / (span - 1) * (beta_max - 1.0)
        return beta_max ** (step / span)
    frac = min(step / max(steps - 1, 1), 1.0)
    if schedule == "linear":
        return 1.0 + (beta_max - 1.0) * frac
    return beta_max**frac


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
    """A generator (the LSTM language model) and a discriminator trained against each other;
    the algorithm by which G learns from D is the subclass's (``GumbelGAN``,
    ``ReinforceGAN``).

    Shaped like Keras' ``wgan_gp.py``: built from the two networks and scalars,
    ``compile(d_optimizer, g_optimizer, loss)``, and a ``train_step`` that takes
    ``d_steps + 1`` batches [k, batch, time] (inputs, targets, weights), updates D on the
    first ``d_steps`` and G on the last. ``fit_gan`` brings what training needs as callbacks:
    ``GeneratorSteps`` (the step's settings, the end), ``GANMonitor`` (evaluation, curves,
    the collapse warning) and a ``checkpoints.Checkpoint`` (resume).

    Every random draw is a stateless function of the seed and the update's index (counted
    by the optimisers, which checkpoints restore), so a resumed run draws what the
    uninterrupted one would have.
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        conditions: Conditions,
        seed: int,
        d_steps: int = 1,
        d_pretrain_steps: int = 0,
        mle_weight: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.conditions, self.noise_seed = conditions, seed
        self.d_steps, self.d_pretrain_steps, self.mle_weight = d_steps, d_pretrain_steps, mle_weight
        self.vocab_size = conditions.vocab_size
        self.logit_mask = never_mask(conditions.vocab_size, conditions.never)
        self.built = True  # both networks are built; nothing of this model's own to build

    def compile(
        self,
        d_optimizer: keras.optimizers.Optimizer,
        g_optimizer: keras.optimizers.Optimizer,
        loss: AdversarialLoss,
    ) -> None:
        # No XLA: the rollout's while loop and TensorArrays are what it compiles worst.
        super().compile(optimizer=None, jit_compile=False)
        self.d_optimizer, self.g_optimizer, self.adversarial_loss = d_optimizer, g_optimizer, loss
        # Built now, so that a checkpoint restores their state before the first step.
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)

    @property
    def optimizers(self) -> list[keras.optimizers.Optimizer]:
        """Both optimisers (what a checkpoint saves besides ``variables``)."""
        return [self.d_optimizer, self.g_optimizer]

    # -- what a subclass decides ---------------------------------------------------------
    def fakes(self, first: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """What D is trained to reject: one-hots [batch, seq_len, vocab] continuing ``first``."""
        raise NotImplementedError

    def generator_loss(self, x: tf.Tensor, y: tf.Tensor, seed: tf.Tensor, tape) -> tf.Tensor:
        """The adversarial part of G's loss on a batch whose first tokens are ``x[:, :1]``,
        computed (inside the generator's ``tape``) so that its gradient improves G."""
        raise NotImplementedError

    def settings_at(self, step: int) -> dict[str, float]:
        """The training settings of generator step ``step`` (logged on the curves)."""
        return {}

    def start_step(self, step: int) -> None:
        """Puts ``settings_at(step)`` in force before generator step ``step``."""

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

    def d_step(self, first: tf.Tensor, real_ids: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        fake = self.fakes(first, seed)
        real = tf.one_hot(real_ids, self.vocab_size)
        with tf.GradientTape() as tape:
            d = self.discriminator
            loss = self.adversarial_loss.d_loss(d(real, training=True), d(fake, training=True))
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(
            zip(tape.gradient(loss, variables), variables, strict=True)
        )
        return loss

    def mle_loss(self, x: tf.Tensor, y: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """Teacher forcing on the real batch (``x`` is ``y`` shifted right by one), per real
        token (``weights``: 0 on padding)."""
        nll = sequence_nll(self.generator, x[:, :1], y, training=True)
        return tf.reduce_sum(nll * weights) / tf.reduce_sum(weights)

    def g_step(self, x: tf.Tensor, y: tf.Tensor, weights: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """One generator update: the adversarial loss, plus ``mle_weight`` x the MLE loss."""
        with tf.GradientTape() as tape:
            adv = self.generator_loss(x, y, seed, tape)
            loss = adv
            if self.mle_weight:
                loss += self.mle_weight * self.mle_loss(x, y, weights)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(
            zip(tape.gradient(loss, variables), variables, strict=True)
        )
        return adv

    # -- what fit runs -------------------------------------------------------------------
    def train_step(self, data: tuple[tf.Tensor, tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        x, y, w = data  # [d_steps + 1, batch, time] each
        # Updates so far: the pre-training, then d_steps + 1 per generator step.
        g_steps = tf.cast(self.g_optimizer.iterations, tf.int64)
        done = self.d_pretrain_steps + g_steps * (self.d_steps + 1)
        for j in range(self.d_steps):
            d_loss_value = self.d_step(x[j][:, :1], y[j], self.noise(done + j + 1))
        g_loss_value = self.g_step(x[-1], y[-1], w[-1], self.noise(done + self.d_steps + 1))
        return {"d_loss": d_loss_value, "g_loss": g_loss_value}

    def pretrain_discriminator(self, batches: tf.data.Dataset) -> None:
        """D updates against the warm-started generator before the first G update."""
        step = tf.function(
            lambda x, y: self.d_step(x[:, :1], y, self.noise(self.d_optimizer.iterations + 1))
        )
        for x, y, _ in batches:
            step(x, y)


class GumbelGAN(TextGAN):
    """RelGAN: the generator rolls a sequence out feeding back argmax(logits + Gumbel noise),
    while D sees softmax(beta * (logits + noise)), a differentiable relaxation whose inverse
    temperature beta is annealed from 1 to ``beta_max`` over the ``steps`` generator steps,
    or on RelGAN's fixed span of ``beta_span`` steps (``beta_at``), so D's gradient reaches G."""

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        conditions: Conditions,
        seed: int,
        steps: int,
        beta_max: float,
        beta_schedule: str = "exp",
        beta_span: int | None = None,
        **kwargs,
    ):
        super().__init__(generator, discriminator, conditions, seed, **kwargs)
        self.steps, self.beta_max, self.beta_schedule = steps, beta_max, beta_schedule
        self.beta_span = beta_span
        self.beta = keras.Variable(1.0, trainable=False, name="beta")  # set by start_step

    def settings_at(self, step: int) -> dict[str, float]:
        beta = beta_at(step, self.steps, self.beta_max, self.beta_schedule, self.beta_span)
        return {"beta": beta}

    def start_step(self, step: int) -> None:
        self.beta.assign(self.settings_at(step)["beta"])

    def fakes(self, first: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        # The relaxed samples G is trained through (as RelGAN does), so D never meets an
        # input kind it was not trained on.
        _, soft = self.generate(first, seed, relax=self.beta)
        return tf.stop_gradient(soft)

    def generator_loss(self, x: tf.Tensor, y: tf.Tensor, seed: tf.Tensor, tape) -> tf.Tensor:
        real = self.discriminator(tf.one_hot(y, self.vocab_size), training=False)
        _, soft = self.generate(x[:, :1], seed, relax=self.beta)
        return self.adversarial_loss.g_loss(real, self.discriminator(soft, training=False))


class ReinforceGAN(TextGAN):
    """SeqGAN, ScratchGAN: sampled sequences are scored by D; each token's log-probability is
    weighted by its discounted return (the rewards of its own and of every later position,
    all of which it influences), minus a per-position moving-average baseline."""

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        conditions: Conditions,
        seed: int,
        discount: float = 1.0,
        baseline_decay: float = 0.9,
        **kwargs,
    ):
        super().__init__(generator, discriminator, conditions, seed, **kwargs)
        self.discount, self.baseline_decay = discount, baseline_decay
        # Per position, a moving average of the mean return over the rows still alive
        # there; set to the first batch's means (``baseline_set``) so that it is never pulled
        # towards an arbitrary initial value.
        self.baseline = keras.Variable(
            np.zeros(conditions.seq_len, np.float32), trainable=False, name="reward_baseline"
        )
        self.baseline_set = keras.Variable(
            np.zeros(conditions.seq_len, np.float32), trainable=False, name="baseline_set"
        )

    def fakes(self, first: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        ids, _ = self.generate(first, seed)
        return tf.one_hot(ids, self.vocab_size)

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
        returns = discounted_returns(rewards, self.discount)
        count = tf.reduce_sum(alive, axis=0)
        seen = count > 0  # positions some row reached: only those have a mean return
        mean = tf.reduce_sum(returns * alive, axis=0) / tf.maximum(count, 1.0)
        ready = self.baseline_set > 0
        baseline = tf.where(ready, self.baseline, mean)
        advantage = tf.stop_gradient(returns - baseline)
        log_p = tf.where(alive > 0, self.log_probs(first, ids), 0.0)
        decay = self.baseline_decay
        updated = tf.where(ready, decay * self.baseline + (1 - decay) * mean, mean)
        self.baseline.assign(tf.where(seen, updated, self.baseline))
        self.baseline_set.assign(tf.where(seen, 1.0, self.baseline_set))
        return -tf.reduce_sum(advantage * log_p * alive) / tf.reduce_sum(alive)

    def generator_loss(self, x: tf.Tensor, y: tf.Tensor, seed: tf.Tensor, tape) -> tf.Tensor:
        first = x[:, :1]
        with tape.stop_recording():  # the samples and their rewards carry no gradient
            real = self.discriminator(tf.one_hot(y, self.vocab_size), training=False)
            ids, _ = self.generate(first, seed)
            fake = self.discriminator(tf.one_hot(ids, self.vocab_size), training=False)
            alive = after_end(ids, self.conditions.eos_id)  # no credit after an end token
            rewards = position_rewards(self.adversarial_loss.realness(real, fake), alive)
        return self.reinforce_loss(first, ids, rewards, alive)


def build_gan(
    p: GANParams,
    generator: keras.Model,
    discriminator: keras.Model,
    conditions: Conditions,
    seed: int,
) -> TextGAN:
    """The ``gan`` section's GAN, compiled: its algorithm's class, built from scalars."""
    common = dict(d_steps=p.d_steps, d_pretrain_steps=p.d_pretrain_steps, mle_weight=p.mle_weight)
    if p.algorithm == "gumbel":
        gan: TextGAN = GumbelGAN(
            generator,
            discriminator,
            conditions,
            seed,
            p.steps,
            p.beta_max,
            p.beta_schedule,
            p.beta_span,
            **common,
        )
    else:
        gan = ReinforceGAN(
            generator, discriminator, conditions, seed, p.discount, p.baseline_decay, **common
        )
    gan.compile(
        d_optimizer=keras.optimizers.Adam(p.d_learning_rate, global_clipnorm=p.clipnorm),
        g_optimizer=keras.optimizers.Adam(p.g_learning_rate, global_clipnorm=p.clipnorm),
        loss=LOSSES[p.loss],
    )
    return gan


def fit_gan(
    gan: TextGAN,
    train: TokenSource,
    batch_size: int,
    steps: int,
    log_every: int,
    callbacks: list[keras.callbacks.Callback],
    checkpoint: Checkpoint | None = None,
) -> None:
    """``gan.d_pretrain_steps`` D updates (unless resuming), then ``steps`` G steps through
    ``fit``: an epoch is ``log_every`` generator steps (the last may be shorter). Real text
    comes from ``train`` in batches of ``batch_size`` examples of the generator's length.
    With a ``checkpoint`` (made for ``gan``), a killed run goes on from its last saved epoch."""
    epochs = math.ceil(steps / log_every)
    first_epoch = checkpoint.initial_epoch(epochs) if checkpoint else 0
    ds = train.batches(batch_size, gan.conditions.seq_len, gan.noise_seed)
    if first_epoch == 0:
        gan.pretrain_discriminator(ds.take(gan.d_pretrain_steps))
    done = gan.d_pretrain_steps + first_epoch * log_every * (gan.d_steps + 1)
    saved = [checkpoint] if checkpoint else []
    gan.fit(
        ds.skip(done).batch(gan.d_steps + 1),
        epochs=epochs,
        initial_epoch=first_epoch,
        steps_per_epoch=log_every,
        # The checkpoint saves what the callbacks before it did.
        callbacks=[*callbacks, *saved, GeneratorSteps(steps, log_every)],
        shuffle=False,  # the dataset shuffles itself, reproducibly
        verbose=0,
    )


class GeneratorSteps(keras.callbacks.Callback):
    """Counts generator steps (``steps_per_epoch`` an epoch): puts each step's settings in
    force before it (``TextGAN.start_step``), and ends training after ``steps`` (the last
    epoch may be short)."""

    def __init__(self, steps: int, steps_per_epoch: int):
        super().__init__()
        self.steps, self.steps_per_epoch = steps, steps_per_epoch

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.model.start_step(self.epoch * self.steps_per_epoch + batch)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.epoch * self.steps_per_epoch + batch + 1 >= self.steps:
            self.model.stop_training = True


class GANMonitor(keras.callbacks.Callback):
    """Evaluates the generator at the warm start and after every epoch, keeps the points in
    ``history`` (the curves, saved by a checkpoint), logs each, and warns when sample
    diversity collapses to under half the warm start's.

    ``lm`` is the frozen MLE model (the generator's warm start): it judges the quality of
    the generator's samples and is never updated. Every evaluation uses the same ``samples``
    real examples of ``val`` (their first token prompts the generator), its first
    ``val_tokens`` tokens for the held-out NLL, and the same ``seed``.
    """

    def __init__(
        self,
        lm: keras.Model,
        val: TokenSource,
        decode: Callable[[np.ndarray], str],
        seed: int,
        samples: int,
        val_tokens: int,
        steps: int,
        steps_per_epoch: int,
        seq_len: int,
    ):
        super().__init__()
        self.lm, self.decode, self.seed = lm, decode, seed
        self.steps, self.steps_per_epoch = steps, steps_per_epoch
        self.examples = val.examples(np.random.default_rng(seed), samples, seq_len)
        self.held_out = val.head(val_tokens)
        self.history: list[dict] = []

    def get_state(self) -> tuple[dict, list[np.ndarray]]:
        return {"history": self.history}, []

    def set_state(self, meta: dict, arrays: list[np.ndarray]) -> None:
        self.history = list(meta["history"])

    def evaluate(self, gan: TextGAN) -> dict[str, float]:
        """Where the generator stands: D's accuracy, likelihood on val, sample quality under
        the judge, and diversity.

        ``d_accuracy_fake`` is judged on what D is trained to reject (``TextGAN.fakes``: the
        relaxed one-hots at the current beta with ``GumbelGAN``), ``d_accuracy_fake_hard`` on
        hard samples (what the sampler emits); with ``ReinforceGAN`` the two are the same.
        """
        c, generator = gan.conditions, gan.generator
        first, real_ids = self.examples[:, :1], self.examples[:, 1:]
        sampler = self.samplers.setdefault(id(generator), Sampler(generator, c.never, c.eos_id))
        fake_ids = sampler.generate_batch(first, c.seq_len, seed=self.seed)
        if self._fakes is None:
            self._fakes = tf.function(gan.fakes)  # traced once, not eager at every point
        trained_on = self._fakes(tf.constant(first, tf.int32), tf.constant(self.seed, tf.int64))
        real = gan.discriminator(tf.one_hot(real_ids, gan.vocab_size), training=False)
        fake = gan.discriminator(trained_on, training=False)
        hard = gan.discriminator(tf.one_hot(fake_ids, gan.vocab_size), training=False)
        accuracy = gan.adversarial_loss.accuracy
        acc_real, acc_fake = accuracy(real, fake)
        _, acc_fake_hard = accuracy(real, hard)
        alive = after_end(tf.constant(fake_ids), c.eos_id).numpy()
        judged = score(self.lm, continuation_layout(first, fake_ids, alive), len(fake_ids))
        return {
            "d_accuracy_real": acc_real,
            "d_accuracy_fake": acc_fake,
            "d_accuracy_fake_hard": acc_fake_hard,
            "val_nll_nats": heldout_nll(generator, self.held_out, 16),
            "sample_lm_nll_nats": judged.value,
            "distinct_2": distinct_n([self.decode(row) for row in fake_ids], 2),
        }

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.samplers: dict[int, Sampler] = {}  # one compiled sampler per model
        self._fakes = None  # compiled on first use, for this fit's model
        if not self.history:  # (a resumed run has its warm start on the curve already)
            point = {"d_loss": float("nan"), "g_loss": float("nan")}
            point.update(self.model.settings_at(0))
            point.update(self.evaluate(self.model))
            self._record(0, point)
        self.first_distinct = self.history[0]["distinct_2"]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        step = min((epoch + 1) * self.steps_per_epoch, self.steps)
        point = {
            "d_loss": float(logs["d_loss"]),
            "g_loss": float(logs["g_loss"]),
            **self.model.settings_at(step - 1),
            **self.evaluate(self.model),
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
        settings = "".join(f"  {k} {p[k]:.1f}" for k in self.model.settings_at(0))
        log.info(
            f"step {step:5d}  D loss {p['d_loss']:.3f}  acc real/fake/fake hard "
            f"{p['d_accuracy_real']:.2f}/{p['d_accuracy_fake']:.2f}/"
            f"{p['d_accuracy_fake_hard']:.2f}  G loss {p['g_loss']:.3f}{settings}"
            f"  val NLL {p['val_nll_nats']:.3f}  sample LM NLL "
            f"{p['sample_lm_nll_nats']:.3f}  distinct-2 {p['distinct_2']:.3f}"
        )
