"""The one sampler: batched, stateful, compiled; temperature, top-k, top-p and prompt priming."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from textgen.backend import keras, tf
from textgen.corpus import Vocabulary
from textgen.lstm import forward, zero_state


@dataclass(frozen=True)
class Decoding:
    """How logits become tokens: temperature 0 is greedy (argmax); top_k 0 and top_p 1 are off."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def as_dict(self) -> dict:
        return asdict(self)


def filter_logits(logits: tf.Tensor, top_k: tf.Tensor, top_p: tf.Tensor) -> tf.Tensor:
    """Set logits outside the top-k / nucleus (top-p) sets to -inf; 0 and 1 disable each filter."""
    vocab = tf.shape(logits)[-1]
    neg_inf = tf.fill(tf.shape(logits), tf.constant(-np.inf, logits.dtype))
    sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    kth = tf.gather(sorted_logits, k - 1, axis=-1)[..., None]
    logits = tf.where(logits < kth, neg_inf, logits)
    # Nucleus: keep the smallest prefix of the sorted distribution whose mass reaches top_p;
    # a token is kept if the mass strictly before it is below top_p (so the top-1 always is).
    sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")
    probs = tf.nn.softmax(sorted_logits, axis=-1)
    mass_before = tf.cumsum(probs, axis=-1, exclusive=True)
    keep = tf.cast(mass_before < tf.cast(top_p, probs.dtype), tf.int32)
    n_keep = tf.maximum(tf.reduce_sum(keep, axis=-1), 1)
    threshold = tf.gather(sorted_logits, n_keep - 1, axis=-1, batch_dims=len(logits.shape) - 1)
    return tf.where(logits < threshold[..., None], neg_inf, logits)


def choose_tokens(
    logits: tf.Tensor, temperature: tf.Tensor, top_k: tf.Tensor, top_p: tf.Tensor, seed: tf.Tensor
) -> tf.Tensor:
    """One token id per row of ``logits`` [batch, vocab]; ``seed`` is a stateless seed pair."""
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    scaled = logits / tf.maximum(temperature, 1e-6)
    filtered = filter_logits(scaled, top_k, top_p)
    drawn = tf.random.stateless_categorical(filtered, 1, seed, dtype=tf.int32)[:, 0]
    return tf.where(temperature > 0, drawn, greedy)


class Sampler:
    """Generates a batch of continuations at once, feeding one token and the LSTM state per step.

    The prompt is read in one pass to build the state; each step then runs the model on the
    last token only, inside one compiled loop (no Python per token, no re-reading a window).
    """

    def __init__(self, model: keras.Model):
        self.model = model
        self._generate = tf.function(lambda *args: sample_ids(model, *args), reduce_retracing=True)

    def generate(
        self,
        prompt_ids: np.ndarray,
        num_samples: int,
        length: int,
        decoding: Decoding = Decoding(),
        seed: int = 0,
    ) -> np.ndarray:
        """Token ids [num_samples, length] continuing ``prompt_ids`` (at least one token)."""
        prompt = np.asarray(prompt_ids, dtype=np.int32)
        if prompt.ndim != 1 or len(prompt) == 0:
            raise ValueError("the prompt must be a non-empty 1-D sequence of token ids")
        if num_samples < 1 or length < 1:
            raise ValueError("num_samples and length must be positive")
        return self.generate_batch(np.tile(prompt, (num_samples, 1)), length, decoding, seed)

    def generate_batch(
        self, prompts: np.ndarray, length: int, decoding: Decoding = Decoding(), seed: int = 0
    ) -> np.ndarray:
        """Token ids [batch, length] continuing each row of ``prompts`` [batch, prompt_len]."""
        out = self._generate(
            tf.constant(prompts, tf.int32),
            tf.constant(length, tf.int32),
            tf.constant(decoding.temperature, tf.float32),
            tf.constant(decoding.top_k, tf.int32),
            tf.constant(decoding.top_p, tf.float32),
            tf.constant(seed, tf.int64),
        )
        return out.numpy()


def sample_ids(model, prompt, length, temperature, top_k, top_p, seed) -> tf.Tensor:
    """Graph-level sampling loop: [batch, prompt_len] prompts -> [batch, length] token ids.

    Usable inside other compiled functions (the GAN's training steps sample with it too).
    """
    batch = tf.shape(prompt)[0]
    state = zero_state(model, batch)
    logits, state = forward(model, prompt, state)
    last = logits[:, -1, :]
    tokens = tf.TensorArray(tf.int32, size=length)
    for t in tf.range(length):
        step_seed = tf.stack([seed, tf.cast(t, tf.int64)])
        token = choose_tokens(last, temperature, top_k, top_p, step_seed)
        tokens = tokens.write(t, token)
        logits, state = forward(model, token[:, None], state)
        last = logits[:, -1, :]
    return tf.transpose(tokens.stack())


def generate_texts(
    model: keras.Model,
    vocab: Vocabulary,
    prompt: str,
    num_samples: int,
    length: int,
    decoding: Decoding = Decoding(),
    seed: int = 0,
) -> list[str]:
    """Continuations of ``prompt`` as text (the prompt itself not included)."""
    prompt_ids = vocab.encode(prompt or "\n")
    if prompt and (prompt_ids == vocab.unk_id).any():
        unknown = sorted({c for c, i in zip(prompt, prompt_ids, strict=False) if i == vocab.unk_id})
        print(f"warning: prompt characters not in the vocabulary, read as unknown: {unknown}")
    ids = Sampler(model).generate(prompt_ids, num_samples, length, decoding, seed)
    return [vocab.decode(row) for row in ids]
