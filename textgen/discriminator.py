"""The discriminator of the text GAN, and how its logits become losses.

``build_discriminator`` reads one-hot sequences, hard (real text, sampled tokens) or relaxed
(the Gumbel-softmax), so its gradient can reach the generator. An ``AdversarialLoss`` (the
``gan.loss`` a ``gan.TextGAN`` is compiled with) turns its logits into D's and G's losses, the
realness reward of REINFORCE, and D's accuracies.
"""

from __future__ import annotations

from collections.abc import Sequence

from textgen.backend import keras, tf

layers = keras.layers


def build_discriminator(
    vocab_size: int,
    kind: str = "cnn",
    embedding_dim: int = 64,
    filters: int = 64,
    filter_widths: Sequence[int] = (2, 3, 4, 5),
    hidden: int = 64,
    dropout: float = 0.25,
) -> keras.Model:
    """Real-vs-generated classifier over one-hot [batch, time, vocab] inputs (soft or hard).

    The first layer is a bias-free Dense: on a hard one-hot it is an embedding lookup, and on a
    relaxed (soft) one-hot it is the matching weighted mix of embeddings, so gradients reach the
    generator. ``cnn``: SeqGAN/RelGAN style, ``filters`` per width of ``filter_widths``,
    max-over-time pooling, a highway layer, dropout; one logit per sequence, shape [batch, 1].
    ``lstm``: an LSTM of ``hidden`` units, one logit per position, [batch, time], each judging
    the prefix up to it (per-token rewards).
    """
    one_hot = keras.Input(shape=(None, vocab_size), name="one_hot")
    x = layers.Dense(embedding_dim, use_bias=False, name="d_embedding")(one_hot)
    if kind == "cnn":
        pooled = [
            layers.GlobalMaxPooling1D(name=f"pool_{w}")(
                layers.Conv1D(filters, w, activation="relu", name=f"conv_{w}")(x)
            )
            for w in filter_widths
        ]
        h = layers.Concatenate(name="features")(pooled) if len(pooled) > 1 else pooled[0]
        width = filters * len(filter_widths)
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
        h = layers.Dropout(dropout, name="d_dropout")(h)
        logits = layers.Dense(1, name="d_logit")(h)  # [batch, 1]
    else:
        h = layers.LSTM(hidden, return_sequences=True, name="d_lstm")(x)
        h = layers.Dropout(dropout, name="d_dropout")(h)
        logits = layers.Reshape((-1,), name="d_logit")(layers.Dense(1, name="d_score")(h))
    return keras.Model(one_hot, logits, name=f"discriminator_{kind}")


class AdversarialLoss:
    """How D's logits become losses for D and G, a realness reward, and accuracies: the
    ``gan.loss`` a ``TextGAN`` is compiled with (``LOSSES``)."""

    def d_loss(self, real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def g_loss(self, real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
        """The discriminator's loss with the roles of real and fake swapped."""
        return self.d_loss(fake, real)

    def realness(self, real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
        """Per-token probability that each fake looks real, under this loss's reading of D."""
        raise NotImplementedError

    def accuracy(self, real: tf.Tensor, fake: tf.Tensor) -> tuple[float, float]:
        """Shares of real and of fake sequences D classifies correctly, judged on the last
        logit (a per-position discriminator's view of the whole sequence)."""
        raise NotImplementedError


class Standard(AdversarialLoss):
    """The standard GAN loss; G's is the non-saturating one."""

    def d_loss(self, real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(tf.nn.softplus(-real)) + tf.reduce_mean(tf.nn.softplus(fake))

    def g_loss(self, real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(tf.nn.softplus(-fake))  # non-saturating

    def realness(self, real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
        return tf.sigmoid(fake)

    def accuracy(self, real: tf.Tensor, fake: tf.Tensor) -> tuple[float, float]:
        real, fake = real[:, -1], fake[:, -1]  # by the sign of the logit
        return (
            float(tf.reduce_mean(tf.cast(real > 0, tf.float32))),
            float(tf.reduce_mean(tf.cast(fake < 0, tf.float32))),
        )


class Relativistic(AdversarialLoss):
    """RSGAN (RelGAN's choice): real judged against fake. Its logits mean something only
    relative to each other, so a real counts as correct when it scores above the fakes'
    mean, and vice versa."""

    def d_loss(self, real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(tf.nn.softplus(-(real - fake)))

    def realness(self, real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
        return tf.sigmoid(fake - tf.reduce_mean(real))

    def accuracy(self, real: tf.Tensor, fake: tf.Tensor) -> tuple[float, float]:
        real, fake = real[:, -1], fake[:, -1]
        return (
            float(tf.reduce_mean(tf.cast(real > tf.reduce_mean(fake), tf.float32))),
            float(tf.reduce_mean(tf.cast(fake < tf.reduce_mean(real), tf.float32))),
        )


LOSSES: dict[str, AdversarialLoss] = {"standard": Standard(), "rsgan": Relativistic()}
