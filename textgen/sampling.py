"""The one generation loop (``rollout``) and the sampler on it: batched, stateful, compiled;
temperature, top-k, top-p, prompt priming, and the Gumbel relaxation the GAN trains through."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from textgen.backend import keras, tf
from textgen.model import forward, state_spec, vocab_size, zero_state
from textgen.vocab import Vocabulary

log = logging.getLogger(__name__)

# ``Sampler.stream``'s largest chunk: a call of the compiled loop costs about as much as a few
# steps, so at this size the calls are a small share of a stream's time, while a chunk still
# arrives often enough to look live on the page.
MAX_CHUNK = 128


@dataclass(frozen=True)
class Decoding:
    """How logits become tokens: temperature 0 is greedy (argmax); top_k 0 and top_p 1 are off.

    Inside compiled code the fields may be tensors (one trace serves every setting); Python
    numbers are checked here, and a filter that is off costs nothing.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.temperature, (int, float)):
            return
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def as_dict(self) -> dict:
        return asdict(self)

    def scale(self, logits: tf.Tensor) -> tf.Tensor:
        """``logits`` [batch, vocab] tempered and filtered: what a token is drawn from."""
        scaled = logits / tf.maximum(tf.cast(self.temperature, logits.dtype), 1e-6)
        if isinstance(self.top_k, int) and self.top_k == 0 and self.top_p == 1.0:
            return scaled
        # Filtering sorts the vocabulary twice per step: skip it when it would keep everything.
        return tf.cond(
            tf.logical_or(self.top_k > 0, self.top_p < 1.0),
            lambda: filter_logits(scaled, self.top_k, self.top_p),
            lambda: scaled,
        )


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


def choose_tokens(logits: tf.Tensor, decoding: Decoding, seed: tf.Tensor) -> tf.Tensor:
    """One token id per row of ``logits`` [batch, vocab]; ``seed`` is a stateless seed pair."""
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    drawn = tf.random.stateless_categorical(decoding.scale(logits), 1, seed, dtype=tf.int32)
    return tf.where(decoding.temperature > 0, drawn[:, 0], greedy)


def gumbel_choice(
    logits: tf.Tensor, decoding: Decoding, beta: tf.Tensor, seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """A token per row drawn by the Gumbel-max trick, and its relaxation (RelGAN).

    argmax(logits + Gumbel noise) is an exact sample; softmax(beta * (logits + noise)) is a
    differentiable stand-in for its one-hot [batch, vocab], sharper as ``beta`` grows.
    """
    scaled = decoding.scale(logits)
    u = tf.random.stateless_uniform(tf.shape(scaled), seed, minval=1e-10, maxval=1.0)
    noisy = scaled - tf.math.log(-tf.math.log(u))
    return tf.argmax(noisy, axis=-1, output_type=tf.int32), tf.nn.softmax(beta * noisy, axis=-1)


def prime(model: keras.Model, prompt: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, list]:
    """Read ``prompt`` [batch, prompt_len] in one pass: the masked logits of the next token
    [batch, vocab] and the LSTM state after the prompt (where every rollout starts)."""
    state = zero_state(model, tf.shape(prompt)[0])
    logits, state = forward(model, prompt, state)  # [batch, prompt_len, vocab]
    return logits[:, -1, :] + mask, state


def _step(
    model: keras.Model,
    decoding: Decoding,
    seed: tf.Tensor,
    mask: tf.Tensor,
    relax: tf.Tensor | None,
    start: tf.Tensor | None = None,
):
    """The body of the generation loop, shared by ``rollout`` and ``rollout_steps``: draw step
    ``t``'s tokens with the stateless seed ``(seed, t)``, feed them back. ``start`` (a chunk's
    first step) only shifts where a token is written; the seed always uses the global ``t``,
    so a rollout cut into chunks draws what one rollout draws."""

    def step(t, last, state, ids, soft):
        step_seed = tf.stack([seed, tf.cast(t, tf.int64)])
        at = t if start is None else t - start
        if relax is None:
            token = choose_tokens(last, decoding, step_seed)
        else:
            token, relaxed = gumbel_choice(last, decoding, relax, step_seed)
            soft = soft.write(at, relaxed)
        logits, state = forward(model, token[:, None], state)
        return t + 1, logits[:, -1, :] + mask, state, ids.write(at, token), soft

    return step


def rollout_steps(
    model: keras.Model,
    last: tf.Tensor,
    state: list,
    start: tf.Tensor,
    length: tf.Tensor,
    decoding: Decoding,
    seed: tf.Tensor,
    mask: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor, list]:
    """Steps ``start`` .. ``start + length - 1`` of ``rollout`` from a carried ``last`` logits
    and ``state`` (``prime``'s, or a previous chunk's): the raw ids [batch, length] (no end
    padding: that needs the whole row, see ``Sampler.stream``), the next logits and state."""
    ids = tf.TensorArray(tf.int32, size=length)
    soft = tf.TensorArray(tf.float32, size=0)
    step = _step(model, decoding, seed, mask, None, start)
    loop = (start, last, state, ids, soft)
    _, last, state, ids, _ = tf.while_loop(lambda t, *_: t < start + length, step, loop)
    return tf.transpose(ids.stack()), last, state


def rollout(
    model: keras.Model,
    prompt: tf.Tensor,
    length: tf.Tensor | int,
    decoding: Decoding,
    seed: tf.Tensor,
    mask: tf.Tensor,
    eos_id: tf.Tensor | int = -1,
    relax: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor | None]:
    """The one generation loop: [batch, prompt_len] prompts -> ids [batch, length].

    The prompt is read in one pass to build the LSTM state; each step then feeds the last
    token and the state (graph-level, so it runs inside other compiled functions, and the GAN's
    training steps generate with it too). ``mask`` is added to every step's logits: -inf at the
    ids never drawn (``never_mask``). After an ``eos_id`` token the rest of a row is padding
    (0). With ``relax`` (the inverse
    temperature beta), tokens are drawn by ``gumbel_choice`` and the relaxed one-hots
    [batch, length, vocab] come back too, padding rows one-hot at id 0 like the ids.
    """
    last, state = prime(model, prompt, mask)
    ids = tf.TensorArray(tf.int32, size=length)
    soft = tf.TensorArray(tf.float32, size=length if relax is not None else 0)
    step = _step(model, decoding, seed, mask, relax)

    # An explicit loop: it compiles the same inside fit's train_step, where AutoGraph does not
    # reach, as inside the sampler's own function.
    loop = (tf.constant(0), last, state, ids, soft)
    _, _, _, ids, soft = tf.while_loop(lambda t, *_: t < length, step, loop)
    ids = tf.transpose(ids.stack())  # [batch, length]
    alive = after_end(ids, eos_id)
    ids = tf.where(alive > 0, ids, tf.zeros_like(ids))
    if relax is None:
        return ids, None
    soft = tf.transpose(soft.stack(), [1, 0, 2])  # [batch, length, vocab]
    pad = tf.one_hot(tf.zeros_like(ids), tf.shape(soft)[-1])
    return ids, soft * alive[..., None] + pad * (1.0 - alive[..., None])


class Sampler:
    """Generates a batch of continuations at once with ``rollout``, compiled once per model:
    every prompt length, sample count and decoding setting reuses the same trace."""

    def __init__(self, model: keras.Model, never: list[int] = (), eos_id: int | None = None):
        """``never``: ids never drawn (padding, begin token); after ``eos_id`` a sequence
        is over, and the rest of its row is padding (id 0)."""
        self.model = model
        self.mask = never_mask(vocab_size(model), never)
        self.eos_id = -1 if eos_id is None else eos_id
        spec = tf.TensorSpec
        self._generate = tf.function(
            lambda prompt, length, temperature, top_k, top_p, seed, mask, eos_id: rollout(
                model, prompt, length, Decoding(temperature, top_k, top_p), seed, mask, eos_id
            )[0],
            input_signature=[
                spec([None, None], tf.int32),
                spec([], tf.int32),
                spec([], tf.float32),
                spec([], tf.int32),
                spec([], tf.float32),
                spec([], tf.int64),
                spec([None], tf.float32),
                spec([], tf.int32),
            ],
        )

        # Streaming: the prompt pass, then chunks of steps from a carried state. The state's
        # spec (one (h, c) pair per layer, any batch) keeps one trace for every request.
        self._prime = tf.function(
            lambda prompt, mask: prime(model, prompt, mask),
            input_signature=[spec([None, None], tf.int32), spec([None], tf.float32)],
        )
        self._steps = tf.function(
            lambda last, state, start, length, temperature, top_k, top_p, seed, mask: rollout_steps(
                model,
                last,
                state,
                start,
                length,
                Decoding(temperature, top_k, top_p),
                seed,
                mask,
            ),
            input_signature=[
                spec([None, None], tf.float32),
                state_spec(model),
                spec([], tf.int32),
                spec([], tf.int32),
                spec([], tf.float32),
                spec([], tf.int32),
                spec([], tf.float32),
                spec([], tf.int64),
                spec([None], tf.float32),
            ],
        )

    def generate(
        self,
        prompt_ids: np.ndarray,
        num_samples: int,
        length: int,
        decoding: Decoding = Decoding(),
        seed: int = 0,
    ) -> np.ndarray:
        """Token ids [num_samples, length] continuing ``prompt_ids`` (at least one token)."""
        prompt = _check_prompt(prompt_ids, num_samples, length)
        return self.generate_batch(np.tile(prompt, (num_samples, 1)), length, decoding, seed)

    def generate_batch(
        self, prompts: np.ndarray, length: int, decoding: Decoding = Decoding(), seed: int = 0
    ) -> np.ndarray:
        """Token ids [batch, length] continuing each row of ``prompts`` [batch, prompt_len]."""
        out = self._generate(
            tf.constant(prompts, tf.int32),
            tf.constant(length, tf.int32),
            *self._decoding_args(decoding, seed),
            tf.constant(self.eos_id, tf.int32),
        )
        return out.numpy()

    def _decoding_args(self, decoding: Decoding, seed: int) -> list[tf.Tensor]:
        """The compiled loops' trailing arguments, in their signatures' order: temperature,
        top-k, top-p, seed and the never-drawn mask (tensors: one trace for every setting)."""
        return [
            tf.constant(decoding.temperature, tf.float32),
            tf.constant(decoding.top_k, tf.int32),
            tf.constant(decoding.top_p, tf.float32),
            tf.constant(seed, tf.int64),
            self.mask,
        ]

    def stream(
        self,
        prompt_ids: np.ndarray,
        num_samples: int,
        length: int,
        decoding: Decoding = Decoding(),
        seed: int = 0,
        chunk: int = 8,
        max_chunk: int = MAX_CHUNK,
    ) -> Iterator[np.ndarray]:
        """``generate``'s ids in chunks: arrays [num_samples, n] whose concatenation equals
        ``generate(prompt_ids, num_samples, length, decoding, seed)``. The first chunk has
        ``chunk`` steps, and each next one twice its predecessor's, up to ``max_chunk``
        (the last one is what is left).

        Why growing: each chunk is one call of the compiled loop, and a call costs about as
        much as a few steps, so small chunks all the way would make a long stream several times
        slower than ``generate``; a small first chunk still shows the first tokens soon.

        The LSTM state and the last logits carry from chunk to chunk and step ``t`` draws with
        the seed ``(seed, t)`` as in ``rollout``; a row is padded (0) after its end token, and
        once every row has ended the rest is padding without running the model.
        """
        prompt = _check_prompt(prompt_ids, num_samples, length)
        if chunk < 1 or max_chunk < chunk:
            raise ValueError(f"need 1 <= chunk <= max_chunk, got {chunk} and {max_chunk}")
        last, state = self._prime(tf.constant(np.tile(prompt, (num_samples, 1))), self.mask)
        decoding_args = self._decoding_args(decoding, seed)
        ended = np.zeros(num_samples, bool)
        start, planned = 0, chunk
        while start < length:
            size = min(planned, length - start)
            planned = min(2 * planned, max_chunk)
            if ended.all():
                ids = np.zeros((num_samples, size), np.int32)
            else:
                ids, last, state = self._steps(
                    last,
                    state,
                    tf.constant(start, tf.int32),
                    tf.constant(size, tf.int32),
                    *decoding_args,
                )
                ids = ids.numpy()
                # rollout's padding rule (after_end) over the whole row, the row's end carried.
                is_end = ids == self.eos_id
                before = np.cumsum(is_end, axis=1) - is_end
                ids = np.where(ended[:, None] | (before > 0), 0, ids)
                ended |= is_end.any(axis=1)
            start += size
            yield ids


def _check_prompt(prompt_ids: np.ndarray, num_samples: int, length: int) -> np.ndarray:
    """``prompt_ids`` as an int32 array, once it and the sizes are checked."""
    prompt = np.asarray(prompt_ids, dtype=np.int32)
    if prompt.ndim != 1 or len(prompt) == 0:
        raise ValueError("the prompt must be a non-empty 1-D sequence of token ids")
    if num_samples < 1 or length < 1:
        raise ValueError("num_samples and length must be positive")
    return prompt


def never_mask(vocab_size: int, never: list[int]) -> tf.Tensor:
    """An additive logit mask: -inf at the ids a sampler must never draw, 0 elsewhere."""
    mask = np.zeros(vocab_size, np.float32)
    mask[list(never)] = -np.inf
    return tf.constant(mask)


def after_end(ids: tf.Tensor, eos_id: tf.Tensor | int) -> tf.Tensor:
    """1.0 where a token still belongs to its sequence (up to and including the first end
    token), 0.0 after it. ``eos_id`` -1: no end token, every position counts."""
    ended = tf.cumsum(tf.cast(ids == eos_id, tf.int32), axis=1, exclusive=True)
    return tf.cast(ended == 0, tf.float32)


def prompt_context(vocab: Vocabulary, prompt: str) -> np.ndarray:
    """The context a sample continues: a stream's prompt (a line break if empty), or
    ``<bos>`` and the prompt for independent sequences."""
    if vocab.bos_id is None:
        return vocab.encode(prompt or "\n")
    return np.concatenate([[vocab.bos_id], vocab.encode(prompt.strip())]).astype(np.int32)


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
    prompt_ids = prompt_context(vocab, prompt)
    if prompt and vocab.unk_id is not None and (prompt_ids == vocab.unk_id).any():
        log.warning("parts of the prompt %r are not in the vocabulary (read as unknown)", prompt)
    return sampler_for(model, vocab).generate(prompt_ids, num_samples, length, decoding, seed)


def sampler_for(model: keras.Model, vocab: Vocabulary) -> Sampler:
    """The sampler of ``model`` under ``vocab``'s special tokens."""
    return Sampler(model, vocab.never_sampled, vocab.eos_id)
