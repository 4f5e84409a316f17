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
    # Filtering sorts the vocabulary twice per step: skip it when it would keep everything.
    filtered = tf.cond(
        tf.logical_or(top_k > 0, top_p < 1.0),
        lambda: filter_logits(scaled, top_k, top_p),
        lambda: scaled,
    )
    drawn = tf.random.stateless_categorical(filtered, 1, seed, dtype=tf.int32)[:, 0]
    return tf.where(temperature > 0, drawn, greedy)


class Sampler:
    """Generates a batch of continuations at once, feeding one token and the LSTM state per step.

    The prompt is read in one pass to build the state; each step then runs the model on the
    last token only, inside one compiled loop (no Python per token, no re-reading a window).
    """

    def __init__(self, model: keras.Model, never: list[int] = (), eos_id: int | None = None):
        """``never``: ids never drawn (padding, begin token); after ``eos_id`` a sequence
        is over, and the rest of its row is padding (id 0)."""
        self.model = model
        vocab_size = int(model.get_layer("logits").units)
        self.never = never_mask(vocab_size, never)
        self.eos_id = -1 if eos_id is None else eos_id
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
            self.never,
            tf.constant(self.eos_id, tf.int32),
        )
        return out.numpy()


def never_mask(vocab_size: int, never: list[int]) -> tf.Tensor:
    """An additive logit mask: -inf at the ids a sampler must never draw, 0 elsewhere."""
    mask = np.zeros(vocab_size, np.float32)
    mask[list(never)] = -np.inf
    return tf.constant(mask)


def after_end(ids: tf.Tensor, eos_id: tf.Tensor) -> tf.Tensor:
    """1.0 where a token still belongs to its sequence (up to and including the first end
    token), 0.0 after it. ``eos_id`` -1: no end token, every position counts."""
    ended = tf.cumsum(tf.cast(ids == eos_id, tf.int32), axis=1, exclusive=True)
    return tf.cast(ended == 0, tf.float32)


def sample_ids(
    model, prompt, length, temperature, top_k, top_p, seed, never=None, eos_id=-1
) -> tf.Tensor:
    """Graph-level sampling loop: [batch, prompt_len] prompts -> [batch, length] token ids.

    Usable inside other compiled functions (the GAN's training steps sample with it too).
    ``never`` is an additive logit mask (``never_mask``); after an ``eos_id`` token the rest of
    a row is padding (0).
    """
    if never is None:
        never = tf.zeros([int(model.get_layer("logits").units)])
    batch = tf.shape(prompt)[0]
    state = zero_state(model, batch)
    logits, state = forward(model, prompt, state)
    last = logits[:, -1, :] + never
    tokens = tf.TensorArray(tf.int32, size=length)
    for t in tf.range(length):
        step_seed = tf.stack([seed, tf.cast(t, tf.int64)])
        token = choose_tokens(last, temperature, top_k, top_p, step_seed)
        tokens = tokens.write(t, token)
        logits, state = forward(model, token[:, None], state)
        last = logits[:, -1, :] + never
    ids = tf.transpose(tokens.stack())
    return tf.where(after_end(ids, eos_id) > 0, ids, tf.zeros_like(ids))


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
    return [
        vocab.decode(row)
        for row in generate_ids(model, vocab, prompt, num_samples, length, decoding, seed)
    ]


def generate_ids(
    model: keras.Model,
    vocab: Vocabulary,
    prompt: str,
    num_samples: int,
    length: int,
    decoding: Decoding = Decoding(),
    seed: int = 0,
) -> np.ndarray:
    """Continuations of ``prompt`` as token ids [num_samples, length] (padded after an end)."""
    prompt_ids = vocab.prompt_ids(prompt)
    if prompt and vocab.unk_id is not None and (prompt_ids == vocab.unk_id).any():
        print(
            f"warning: parts of the prompt {prompt!r} are not in the vocabulary (read as unknown)"
        )
    return sampler_for(model, vocab).generate(prompt_ids, num_samples, length, decoding, seed)


def sampler_for(model: keras.Model, vocab: Vocabulary) -> Sampler:
    """The sampler of ``model`` under ``vocab``'s special tokens."""
    return Sampler(model, vocab.never_sampled, vocab.eos_id)
