"""The text GAN: a discriminator over (soft) one-hot sequences, and adversarial training.

Text is discrete, so sampled tokens carry no gradient back to the generator. Two remedies, as
in the literature, behind ``gan.algorithm``:

- ``gumbel`` (RelGAN): the generator rolls a sequence out feeding back argmax(logits + Gumbel
  noise), while the discriminator sees softmax(beta * (logits + noise)), a differentiable
  relaxation whose temperature 1/beta is annealed towards 1/beta_max.
- ``reinforce`` (SeqGAN, ScratchGAN): sampled sequences are scored by the discriminator; each
  token's reward, minus a moving-average baseline, weights its log-probability.

The generator is the LSTM language model itself (same layers, same sampler), warm-started
from MLE training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from textgen.backend import keras, tf
from textgen.config import GANParams
from textgen.lstm import (
    PAD_ID,
    forward,
    heldout_nll,
    row_dataset,
    sequence_nll,
    window_dataset,
    zero_state,
)
from textgen.metrics import distinct_n
from textgen.sampling import Sampler, after_end, never_mask, sample_ids

layers = keras.layers


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


def beta_at(step: int, p: GANParams) -> float:
    """Inverse temperature of the relaxation: 1 at step 0, ``beta_max`` at the last step."""
    frac = min(step / max(p.steps - 1, 1), 1.0)
    if p.beta_schedule == "constant":
        return p.beta_max
    if p.beta_schedule == "linear":
        return 1.0 + (p.beta_max - 1.0) * frac
    return p.beta_max**frac


def gumbel_rollout(
    gen: keras.Model,
    first: tf.Tensor,
    length: int,
    beta: tf.Tensor,
    seed: tf.Tensor,
    never: tf.Tensor | None = None,
    eos_id: int = -1,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Differentiable rollout: (soft one-hots [batch, length, vocab], token ids [batch, length]).

    The fed-back token is the hard argmax of logits + Gumbel noise (a true sample); only the
    relaxed one-hot carries gradient, through the logits, to the generator's weights.
    ``never`` masks ids out (padding, begin token); after ``eos_id`` a row is padding, hard
    and soft alike, as in real rows.
    """
    vocab_size = int(gen.get_layer("logits").units)
    if never is None:
        never = tf.zeros([vocab_size])
    batch = tf.shape(first)[0]
    state = zero_state(gen, batch)
    logits, state = forward(gen, first, state)
    logits = logits[:, -1, :] + never
    soft = tf.TensorArray(tf.float32, size=length)
    ids = tf.TensorArray(tf.int32, size=length)
    for t in tf.range(length):
        u = tf.random.stateless_uniform(
            tf.shape(logits), tf.stack([seed, tf.cast(t, tf.int64)]), minval=1e-10, maxval=1.0
        )
        noisy = logits - tf.math.log(-tf.math.log(u))
        token = tf.argmax(noisy, axis=-1, output_type=tf.int32)
        soft = soft.write(t, tf.nn.softmax(beta * noisy, axis=-1))
        ids = ids.write(t, token)
        logits, state = forward(gen, token[:, None], state)
        logits = logits[:, -1, :] + never
    soft, ids = tf.transpose(soft.stack(), [1, 0, 2]), tf.transpose(ids.stack())
    alive = after_end(ids, eos_id)
    pad = tf.one_hot(tf.fill(tf.shape(ids), PAD_ID), vocab_size)
    soft = soft * alive[..., None] + pad * (1.0 - alive[..., None])
    return soft, tf.where(alive > 0, ids, tf.zeros_like(ids))


@dataclass
class GANResult:
    steps: int
    seconds: float
    final: dict
    history: list[dict] = field(default_factory=list)


class GANTrainer:
    """Alternating discriminator / generator updates with compiled steps.

    ``lm`` is the frozen MLE language model: it scores generated text (quality) and is never
    updated. ``generator`` starts as a copy of it.
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        lm: keras.Model,
        p: GANParams,
        seed: int,
        never: list[int] = (),
        eos_id: int | None = None,
        seq_len: int | None = None,
    ):
        """``never``, ``eos_id``: the vocabulary's special tokens (see ``Sampler``);
        ``seq_len``: the rows' length for independent sequences (else ``gan.seq_len``)."""
        self.gen, self.disc, self.lm, self.p, self.seed = generator, discriminator, lm, p, seed
        self.vocab_size = int(generator.get_layer("logits").units)
        self.seq_len = seq_len or p.seq_len
        self.never = never_mask(self.vocab_size, never)
        self.eos_id = -1 if eos_id is None else eos_id
        self.g_opt = keras.optimizers.Adam(p.g_learning_rate, global_clipnorm=p.clipnorm)
        self.d_opt = keras.optimizers.Adam(p.d_learning_rate, global_clipnorm=p.clipnorm)
        self.baseline = tf.Variable(0.5, trainable=False, dtype=tf.float32)
        self.sampler = Sampler(generator, never, eos_id)
        self.d_step = tf.function(self._d_step, reduce_retracing=True)
        self.g_step = tf.function(
            self._g_gumbel if p.algorithm == "gumbel" else self._g_reinforce,
            reduce_retracing=True,
        )

    # -- compiled steps ------------------------------------------------------------------
    def _fakes(self, first, beta, seed):
        """What D is trained to reject: the relaxed samples G is trained through (as RelGAN
        does, so D never meets an input kind it was not trained on), or plain samples."""
        if self.p.algorithm == "gumbel":
            soft, _ = self._rollout(first, beta, seed)
            return tf.stop_gradient(soft)
        return tf.one_hot(self._sample(first, seed), self.vocab_size)

    def _rollout(self, first, beta, seed):
        return gumbel_rollout(self.gen, first, self.seq_len, beta, seed, self.never, self.eos_id)

    def _sample(self, first, seed):
        return sample_ids(self.gen, first, self.seq_len, 1.0, 0, 1.0, seed, self.never, self.eos_id)

    def _d_step(self, first, real_ids, beta, seed):
        fake = self._fakes(first, beta, seed)
        real = tf.one_hot(real_ids, self.vocab_size)
        with tf.GradientTape() as tape:
            loss = d_loss(
                self.disc(real, training=True), self.disc(fake, training=True), self.p.loss
            )
        grads = tape.gradient(loss, self.disc.trainable_variables)
        self.d_opt.apply_gradients(zip(grads, self.disc.trainable_variables, strict=True))
        return loss

    def _mle(self, x, y):
        if self.p.mle_weight == 0:
            return tf.constant(0.0)
        # x is y shifted right by one token, so this is teacher forcing on the real window.
        nll = sequence_nll(self.gen, x[:, :1], y, training=True)
        weight = tf.cast(y != PAD_ID, tf.float32) if self.eos_id >= 0 else tf.ones_like(nll)
        return tf.reduce_sum(nll * weight) / tf.reduce_sum(weight)

    def _g_gumbel(self, x, y, beta, seed):
        real = self.disc(tf.one_hot(y, self.vocab_size), training=False)
        with tf.GradientTape() as tape:
            soft, _ = self._rollout(x[:, :1], beta, seed)
            adv = g_loss(real, self.disc(soft, training=False), self.p.loss)
            loss = adv + self.p.mle_weight * self._mle(x, y)
        grads = tape.gradient(loss, self.gen.trainable_variables)
        self.g_opt.apply_gradients(zip(grads, self.gen.trainable_variables, strict=True))
        return adv

    def _g_reinforce(self, x, y, beta, seed):
        first = x[:, :1]
        ids = self._sample(first, seed)
        real = self.disc(tf.one_hot(y, self.vocab_size), training=False)
        fake = self.disc(tf.one_hot(ids, self.vocab_size), training=False)
        # Per-token rewards from a per-position discriminator; a sequence score otherwise.
        reward = tf.broadcast_to(realness(real, fake, self.p.loss), tf.shape(ids))
        advantage = tf.stop_gradient(reward - self.baseline)
        alive = after_end(ids, self.eos_id)  # no credit for the padding after an end token
        with tf.GradientTape() as tape:
            log_prob = -sequence_nll(self.gen, first, ids, training=True)
            pg = -tf.reduce_sum(advantage * log_prob * alive) / tf.reduce_sum(alive)
            loss = pg + self.p.mle_weight * self._mle(x, y)
        grads = tape.gradient(loss, self.gen.trainable_variables)
        self.g_opt.apply_gradients(zip(grads, self.gen.trainable_variables, strict=True))
        decay = self.p.baseline_decay
        self.baseline.assign(decay * self.baseline + (1 - decay) * tf.reduce_mean(reward))
        return pg

    # -- the loop ------------------------------------------------------------------------
    def evaluate(self, val_ids: np.ndarray, decode: Callable[[np.ndarray], str], seed: int) -> dict:
        """Where the generator stands: D's accuracy, likelihood on val, sample quality."""
        p = self.p
        rng = np.random.default_rng(seed)
        if val_ids.ndim == 2:
            windows = val_ids[rng.integers(0, len(val_ids), p.eval_samples)]
            held_out = val_ids[: max(1, p.eval_val_tokens // val_ids.shape[1])]
        else:
            starts = rng.integers(0, len(val_ids) - self.seq_len - 1, p.eval_samples)
            windows = val_ids[starts[:, None] + np.arange(self.seq_len + 1)]
            held_out = val_ids[: p.eval_val_tokens]
        first, real_ids = windows[:, :1], windows[:, 1:]
        fake_ids = self.sampler.generate_batch(first, self.seq_len, seed=seed)
        real = self.disc(tf.one_hot(real_ids, self.vocab_size), training=False)
        fake = self.disc(tf.one_hot(fake_ids, self.vocab_size), training=False)
        acc_real, acc_fake = d_accuracy(real, fake, p.loss)
        lm_nll = sequence_nll(self.lm, tf.constant(first), tf.constant(fake_ids))
        alive = after_end(tf.constant(fake_ids), self.eos_id)
        return {
            "d_accuracy_real": acc_real,
            "d_accuracy_fake": acc_fake,
            "val_nll_nats": heldout_nll(self.gen, held_out, 16),
            "sample_lm_nll_nats": float(tf.reduce_sum(lm_nll * alive) / tf.reduce_sum(alive)),
            "distinct_2": distinct_n([decode(row) for row in fake_ids], 2),
        }

    def train(
        self,
        train_ids: np.ndarray,
        val_ids: np.ndarray,
        decode: Callable[[np.ndarray], str],
        log: Callable[[int, dict], None] = lambda step, m: None,
    ) -> GANResult:
        p = self.p
        if train_ids.ndim == 2:
            ds, _ = row_dataset(train_ids, p.batch_size, self.seed)
            ds = ds.map(lambda x, y, w: (x, y))
        else:
            ds, _ = window_dataset(train_ids, p.seq_len, p.batch_size, self.seed)
        batches = iter(ds)
        start = time.perf_counter()
        counter = 0

        def next_seed() -> tf.Tensor:
            nonlocal counter
            counter += 1
            return tf.constant(self.seed * 1_000_003 + counter, tf.int64)

        for _ in range(p.d_pretrain_steps):
            x, y = next(batches)
            self.d_step(x[:, :1], y, tf.constant(1.0), next_seed())
        # Step 0: where the warm-started generator stands, the baseline for every curve.
        start_point = {
            "d_loss": float("nan"),
            "g_loss": float("nan"),
            "beta": beta_at(0, p),
            **self.evaluate(val_ids, decode, self.seed),
        }
        history = [{"step": 0, **start_point}]
        log(0, start_point)
        first_distinct = start_point["distinct_2"]
        d_loss_value = g_loss_value = float("nan")
        for step in range(p.steps):
            beta = beta_at(step, p)
            beta_t = tf.constant(beta, tf.float32)
            for _ in range(p.d_steps):
                x, y = next(batches)
                d_loss_value = float(self.d_step(x[:, :1], y, beta_t, next_seed()))
            x, y = next(batches)
            g_loss_value = float(self.g_step(x, y, beta_t, next_seed()))
            if (step + 1) % p.log_every == 0 or step + 1 == p.steps:
                metrics = {
                    "d_loss": d_loss_value,
                    "g_loss": g_loss_value,
                    "beta": beta,
                    **self.evaluate(val_ids, decode, self.seed),
                }
                if metrics["distinct_2"] < 0.5 * first_distinct:
                    print(
                        f"warning: step {step + 1}: sample diversity collapsed (distinct-2 "
                        f"{metrics['distinct_2']:.3f}, was {first_distinct:.3f}); lower "
                        "gan.g_learning_rate or raise gan.mle_weight"
                    )
                history.append({"step": step + 1, **metrics})
                log(step + 1, metrics)
        seconds = time.perf_counter() - start
        return GANResult(steps=p.steps, seconds=seconds, final=history[-1], history=history)


def copy_model(model: keras.Model) -> keras.Model:
    """A fresh model with the same architecture and weights (the generator's warm start)."""
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin
