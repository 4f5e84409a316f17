"""The one generation loop (``rollout``) and the sampler on it: batched, stateful, compiled;
temperature, top-k, top-p, the repetition controls (penalty, no-repeat n-grams, a minimum
length), prompt priming, and the Gumbel relaxation the GAN trains through. Stop strings act
on the text afterwards (``cut_at_stop``, ``decode_texts``, ``stream_texts``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from textgen.backend import keras, tf
from textgen.model import forward, state_spec, vocab_size, zero_state
from textgen.vocab import Vocabulary

log = logging.getLogger(__name__)

# ``Sampler.stream``'s largest chunk: a call of the compiled loop costs about as much as a few
# steps, so at this size the calls are a small share of a stream's time, while a chunk still
# arrives often enough to look live on the page.
MAX_CHUNK = 128

# Each repetition control's value when it is off.
_OFF = {"repetition_penalty": 1.0, "no_repeat_ngram": 0, "min_length": 0}
# What each field of ``Decoding`` must satisfy when it is a number (a tensor is not checked).
_BOUNDS: list[tuple[str, Callable[[Any], bool], str]] = [
    ("temperature", lambda v: v >= 0, ">= 0"),
    ("top_k", lambda v: v >= 0, ">= 0"),
    ("top_p", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("repetition_penalty", lambda v: 0 < v < math.inf, "> 0 (1 = off)"),
    ("no_repeat_ngram", lambda v: v >= 0, ">= 0 (0 = off)"),
    ("min_length", lambda v: v >= 0, ">= 0"),
]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number))


@dataclass(frozen=True)
class Decoding:
    """How logits become tokens: temperature 0 is greedy (argmax); top_k 0 and top_p 1 are off.

    Before those, three controls act on a row's logits, each off at its default:
    ``repetition_penalty`` (CTRL, Keskar et al. 2019): the logit of every id already in the
    row (prompt included) is divided by it if positive, multiplied by it if negative;
    ``no_repeat_ngram`` n: a token that would complete an n-gram already in the row (prompt
    included) is not drawn; ``min_length``: no end token before that many tokens.

    Inside compiled code the fields may be tensors (one trace serves every setting); Python
    numbers are checked here, and a filter or control that is off costs nothing.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram: int = 0
    min_length: int = 0

    def __post_init__(self) -> None:
        for name, ok, bound in _BOUNDS:
            value = getattr(self, name)
            if _is_number(value) and not ok(value):
                raise ValueError(f"{name} must be {bound}, got {value}")

    def as_dict(self) -> dict:
        return asdict(self)

    def _may_use(self, control: str) -> bool:
        """Whether ``control`` may be on: not when it is a number at its off value, and then
        its code is not even built (the GAN's training steps pay nothing for it)."""
        value = getattr(self, control)
        return not (_is_number(value) and value == _OFF[control])

    @property
    def controlled(self) -> bool:
        """Whether any repetition control may be on: the loop then carries a ``History``."""
        return any(self._may_use(control) for control in _OFF)

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

    def constrain(
        self, logits: tf.Tensor, t: tf.Tensor, history: History, eos_id: tf.Tensor | int
    ) -> tf.Tensor:
        """Step ``t``'s ``logits`` [batch, vocab] under the repetition controls, in the order
        of transformers' logits processors: the penalty, the banned n-grams, the end token."""
        penalty, n, min_length = self.repetition_penalty, self.no_repeat_ngram, self.min_length
        checks = {
            "repetition_penalty": _differs(penalty, 1.0),
            "no_repeat_ngram": _differs(n, 0),
            "min_length": t < min_length,
        }
        on = {control: check for control, check in checks.items() if self._may_use(control)}

        def controlled() -> tf.Tensor:
            out = logits
            if "repetition_penalty" in on:
                out = _when(
                    on["repetition_penalty"], lambda: penalize(out, history.seen, penalty), out
                )
            if "no_repeat_ngram" in on:
                out = _when(
                    on["no_repeat_ngram"],
                    lambda: ban(out, repeats(history, n, tf.shape(out)[-1])),
                    out,
                )
            if "min_length" in on:
                is_end = (tf.range(tf.shape(out)[-1]) == eos_id)[None, :]
                out = _when(on["min_length"], lambda: ban(out, is_end), out)
            return out

        # One check for all three when they are tensors: a step with every control off pays
        # for one tf.cond, not three.
        return _when(_any(*on.values()), controlled, logits)


def _differs(value: Any, off: Any) -> Any:
    """``value != off``: a Python bool for a number, a boolean tensor for a tensor."""
    return value != off if _is_number(value) else tf.not_equal(value, off)


def _when(cond: Any, then: Callable[[], Any], otherwise: Any) -> Any:
    """``then()`` if ``cond`` holds, else ``otherwise``: decided in Python for a Python bool,
    by ``tf.cond`` for a tensor, so that work which is off is skipped rather than masked."""
    if isinstance(cond, (bool, np.bool_)):
        return then() if cond else otherwise
    return tf.cond(cond, then, lambda: otherwise)


def _any(*conds: Any) -> Any:
    """Whether any of ``conds`` holds: a Python bool if they all are, else a boolean tensor."""
    if all(isinstance(c, (bool, np.bool_)) for c in conds):
        return any(conds)
    return tf.reduce_any(tf.stack([tf.convert_to_tensor(c) for c in conds]))


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


class History(NamedTuple):
    """What the repetition controls know of each row: ``remember``'s, then carried by the loop
    (and by a stream from chunk to chunk). A field whose control is off in Python is ``()``.

    ``match[k]`` is how many tokens before position ``k`` equal the last tokens written (the
    common suffix of ``tokens[:k]`` and ``tokens[:end]``): the token at ``k`` would repeat an
    n-gram where ``match[k] >= n - 1``. Writing a token moves every match on by one where the
    token before continues it, and resets the rest: O(length) a step, not a search.
    """

    seen: tf.Tensor | tuple  # [batch, vocab] 1.0 at the ids in the prompt or the output so far
    tokens: tf.Tensor | tuple  # [batch, prompt_len + length]: the prompt, the output, then 0s
    match: tf.Tensor | tuple  # [batch, prompt_len + length] (see above; 0 from ``end`` on)
    end: tf.Tensor | tuple  # how many of ``tokens`` are written


def penalize(logits: tf.Tensor, seen: tf.Tensor, penalty: tf.Tensor | float) -> tf.Tensor:
    """CTRL's repetition penalty: where ``seen`` [batch, vocab] is set, a positive logit is
    divided by ``penalty`` and a negative one multiplied by it (both less likely above 1)."""
    penalty = tf.cast(penalty, logits.dtype)
    scaled = tf.where(logits > 0, logits / penalty, logits * penalty)
    return tf.where(seen > 0, scaled, logits)


def ban(logits: tf.Tensor, banned: tf.Tensor) -> tf.Tensor:
    """-inf at ``banned`` (booleans broadcast to ``logits``). A row the ban would leave without
    any token keeps its logits: a repeat beats drawing from nothing (an undefined id)."""
    out = tf.where(banned, tf.constant(-np.inf, logits.dtype), logits)
    left = tf.reduce_any(out > -np.inf, axis=-1, keepdims=True)
    return tf.where(left, out, logits)


def repeats(history: History, n: tf.Tensor | int, vocab: tf.Tensor | int) -> tf.Tensor:
    """[batch, vocab] booleans: the tokens that would complete an ``n``-gram already written."""
    tokens, match = history.tokens, history.match
    hit = (tf.range(tf.shape(tokens)[1]) < history.end) & (match >= n - 1)
    batch = tf.shape(tokens)[0]
    # Gathered into the vocabulary by segment (row * vocab + id), not one-hot per position
    # (word vocabularies are large); a segment max is ~10x faster than tensor_scatter_nd_max.
    segments = tf.reshape(tf.range(batch)[:, None] * vocab + tokens, [-1])
    hits = tf.reshape(tf.cast(hit, tf.float32), [-1])
    banned = tf.math.unsorted_segment_max(hits, segments, batch * vocab)  # empty: -max float
    return tf.reshape(banned, [batch, vocab]) > 0


def _mark(seen: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """``seen`` [batch, vocab] set at each row's ``ids`` [batch, n]."""
    rows = tf.broadcast_to(tf.range(tf.shape(ids)[0])[:, None], tf.shape(ids))
    index = tf.reshape(tf.stack([rows, ids], axis=-1), [-1, 2])
    return tf.tensor_scatter_nd_max(seen, index, tf.ones([tf.shape(index)[0]]))


def _extend(match: tf.Tensor, tokens: tf.Tensor, end: tf.Tensor, token: tf.Tensor) -> tf.Tensor:
    """``match`` once ``token`` [batch] is written at position ``end`` (``tokens`` read only
    before it): match[k] = match[k - 1] + 1 where tokens[k - 1] is ``token``, else 0."""
    k = tf.range(tf.shape(tokens)[1])
    before = tf.pad(tokens[:, :-1], [[0, 0], [1, 0]])
    run = tf.pad(match[:, :-1], [[0, 0], [1, 0]]) + 1
    extends = (before == token[:, None]) & (k >= 1) & (k <= end)
    return tf.where(extends, run, tf.zeros_like(match))


def remember(
    prompt: tf.Tensor, length: tf.Tensor | int, vocab: tf.Tensor | int, decoding: Decoding
) -> History:
    """The ``History`` after the ``prompt`` [batch, prompt_len], with room for ``length``
    tokens: the prompt's ids are seen, and its n-grams banned like the output's."""
    batch, prompt_len = tf.shape(prompt)[0], tf.shape(prompt)[1]
    seen = tokens = match = end = ()
    if decoding._may_use("repetition_penalty"):
        zeros = tf.zeros([batch, vocab])
        seen = _when(
            _differs(decoding.repetition_penalty, 1.0), lambda: _mark(zeros, prompt), zeros
        )
    if decoding._may_use("no_repeat_ngram"):
        tokens = tf.pad(prompt, [[0, 0], [0, length]])
        end = prompt_len

        def prompt_matches() -> tf.Tensor:
            # The prompt's tokens through the same recurrence as the output's, one by one.
            def body(k, match):
                return k + 1, _extend(match, tokens, k, tf.gather(tokens, k, axis=1))

            start = (tf.constant(1), tf.zeros_like(tokens))
            return tf.while_loop(lambda k, _: k < prompt_len, body, start)[1]

        match = _when(_differs(decoding.no_repeat_ngram, 0), prompt_matches, tf.zeros_like(tokens))
    return History(seen, tokens, match, end)


def _advance(history: History, token: tf.Tensor, decoding: Decoding) -> History:
    """``history`` once ``token`` [batch] is written."""
    seen, tokens, match, end = history
    penalizes = decoding._may_use("repetition_penalty")
    bans = decoding._may_use("no_repeat_ngram")
    penalty_on = _differs(decoding.repetition_penalty, 1.0)
    ngram_on = _differs(decoding.no_repeat_ngram, 0)

    def write() -> tuple:
        new_seen, new_tokens, new_match = seen, tokens, match
        if penalizes:
            new_seen = _when(penalty_on, lambda: _mark(seen, token[:, None]), seen)
        if bans:

            def put() -> tuple[tf.Tensor, tf.Tensor]:
                rows = tf.range(tf.shape(token)[0])
                at = tf.stack([rows, tf.fill(tf.shape(rows), end)], axis=1)
                written = tf.tensor_scatter_nd_update(tokens, at, token)
                return written, _extend(match, tokens, end, token)

            new_tokens, new_match = _when(ngram_on, put, (tokens, match))
        return new_seen, new_tokens, new_match

    checks = [check for check, used in [(penalty_on, penalizes), (ngram_on, bans)] if used]
    seen, tokens, match = _when(_any(*checks), write, (seen, tokens, match))
    return History(seen, tokens, match, end + 1 if bans else end)


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
    eos_id: tf.Tensor | int = -1,
):
    """The body of the generation loop, shared by ``rollout`` and ``rollout_steps``: draw step
    ``t``'s tokens with the stateless seed ``(seed, t)``, feed them back. ``start`` (a chunk's
    first step) only shifts where a token is written; the seed always uses the global ``t``,
    so a rollout cut into chunks draws what one rollout draws. With the repetition controls,
    the loop carries a ``History`` too (last); without, the loop is what it was before them."""

    def step(t, last, state, ids, soft, *history):
        step_seed = tf.stack([seed, tf.cast(t, tf.int64)])
        at = t if start is None else t - start
        if history:
            last = decoding.constrain(last, t, history[0], eos_id)
        if relax is None:
            token = choose_tokens(last, decoding, step_seed)
        else:
            token, relaxed = gumbel_choice(last, decoding, relax, step_seed)
            soft = soft.write(at, relaxed)
        logits, state = forward(model, token[:, None], state)
        history = tuple(_advance(h, token, decoding) for h in history)
        return (t + 1, logits[:, -1, :] + mask, state, ids.write(at, token), soft, *history)

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
    history: History | None = None,
    eos_id: tf.Tensor | int = -1,
) -> tuple[tf.Tensor, tf.Tensor, list, History | None]:
    """Steps ``start`` .. ``start + length - 1`` of ``rollout`` from a carried ``last`` logits,
    ``state`` and ``history`` (``prime``'s and ``remember``'s, or a previous chunk's; the
    history is needed when ``decoding.controlled``): the raw ids [batch, length] (no end
    padding: that needs the whole row, see ``Sampler.stream``), the next logits, state and
    history."""
    ids = tf.TensorArray(tf.int32, size=length)
    soft = tf.TensorArray(tf.float32, size=0)
    step = _step(model, decoding, seed, mask, None, start, eos_id)
    carried = () if history is None else (history,)
    loop = (start, last, state, ids, soft, *carried)
    _, last, state, ids, _, *carried = tf.while_loop(lambda t, *_: t < start + length, step, loop)
    return tf.transpose(ids.stack()), last, state, (carried[0] if carried else None)


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
    ids never drawn (``never_mask``). ``decoding``'s repetition controls see the prompt and
    the row so far (``History``); ``min_length`` holds ``eos_id`` back. After an ``eos_id``
    token the rest of a row is padding (0). With ``relax`` (the inverse
    temperature beta), tokens are drawn by ``gumbel_choice`` and the relaxed one-hots
    [batch, length, vocab] come back too, padding rows one-hot at id 0 like the ids.
    """
    last, state = prime(model, prompt, mask)
    ids = tf.TensorArray(tf.int32, size=length)
    soft = tf.TensorArray(tf.float32, size=length if relax is not None else 0)
    step = _step(model, decoding, seed, mask, relax, eos_id=eos_id)
    history = (
        (remember(prompt, length, tf.shape(mask)[0], decoding),) if decoding.controlled else ()
    )

    # An explicit loop: it compiles the same inside fit's train_step, where AutoGraph does not
    # reach, as inside the sampler's own function.
    loop = (tf.constant(0), last, state, ids, soft, *history)
    _, _, _, ids, soft, *_ = tf.while_loop(lambda t, *_: t < length, step, loop)
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
        # Every decoding setting is a tensor (``_decoding_args``): one trace for all of them;
        # a control that is off costs a tf.cond per step, not its work. Then the seed, the mask.
        settings = (
            spec([], tf.float32),  # temperature
            spec([], tf.int32),  # top_k
            spec([], tf.float32),  # top_p
            spec([], tf.float32),  # repetition_penalty
            spec([], tf.int32),  # no_repeat_ngram
            spec([], tf.int32),  # min_length
        )
        decoding_spec = [settings, spec([], tf.int64), spec([None], tf.float32)]
        self._generate = tf.function(
            lambda prompt, length, eos_id, settings, seed, mask: rollout(
                model, prompt, length, Decoding(*settings), seed, mask, eos_id
            )[0],
            input_signature=[
                spec([None, None], tf.int32),
                spec([], tf.int32),
                spec([], tf.int32),
                *decoding_spec,
            ],
        )

        # Streaming: the prompt pass, then chunks of steps from a carried state and history.
        # Their specs (one (h, c) pair per layer, any batch) keep one trace for every request.
        def prime_all(prompt, mask, length, penalty, ngram):
            last, state = prime(model, prompt, mask)
            decoding = Decoding(repetition_penalty=penalty, no_repeat_ngram=ngram)
            return last, state, remember(prompt, length, tf.shape(mask)[0], decoding)

        self._prime = tf.function(
            prime_all,
            input_signature=[
                spec([None, None], tf.int32),
                spec([None], tf.float32),
                spec([], tf.int32),
                spec([], tf.float32),
                spec([], tf.int32),
            ],
        )
        history_spec = History(
            spec([None, None], tf.float32),
            spec([None, None], tf.int32),
            spec([None, None], tf.int32),
            spec([], tf.int32),
        )
        self._steps = tf.function(
            lambda last, state, history, start, length, eos_id, settings, seed, mask: rollout_steps(
                model,
                last,
                state,
                start,
                length,
                Decoding(*settings),
                seed,
                mask,
                history,
                eos_id,
            ),
            input_signature=[
                spec([None, None], tf.float32),
                state_spec(model),
                history_spec,
                spec([], tf.int32),
                spec([], tf.int32),
                spec([], tf.int32),
                *decoding_spec,
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
            tf.constant(self.eos_id, tf.int32),
            *self._decoding_args(decoding, seed),
        )
        return out.numpy()

    def _decoding_args(self, decoding: Decoding, seed: int) -> list:
        """The compiled loops' trailing arguments, in their signatures' order: the decoding's
        settings (temperature, top-k, top-p, the repetition controls), the seed and the
        never-drawn mask (tensors: one trace for every setting)."""
        settings = (
            tf.constant(decoding.temperature, tf.float32),
            tf.constant(decoding.top_k, tf.int32),
            tf.constant(decoding.top_p, tf.float32),
            tf.constant(decoding.repetition_penalty, tf.float32),
            tf.constant(decoding.no_repeat_ngram, tf.int32),
            tf.constant(decoding.min_length, tf.int32),
        )
        return [settings, tf.constant(seed, tf.int64), self.mask]

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

        The LSTM state, the last logits and the repetition controls' ``History`` carry from
        chunk to chunk and step ``t`` draws with the seed ``(seed, t)`` as in ``rollout``; a
        row is padded (0) after its end token, and once every row has ended the rest is
        padding without running the model. A consumer that stops reading (``stream_texts``,
        once every row has met a stop string) runs no more of the model either.
        """
        prompt = _check_prompt(prompt_ids, num_samples, length)
        if chunk < 1 or max_chunk < chunk:
            raise ValueError(f"need 1 <= chunk <= max_chunk, got {chunk} and {max_chunk}")
        decoding_args = self._decoding_args(decoding, seed)
        last, state, history = self._prime(
            tf.constant(np.tile(prompt, (num_samples, 1))),
            self.mask,
            tf.constant(length, tf.int32),
            *decoding_args[0][3:5],  # what the History needs: the penalty and the n-gram size
        )
        eos_id = tf.constant(self.eos_id, tf.int32)
        ended = np.zeros(num_samples, bool)
        start, planned = 0, chunk
        while start < length:
            size = min(planned, length - start)
            planned = min(2 * planned, max_chunk)
            if ended.all():
                ids = np.zeros((num_samples, size), np.int32)
            else:
                ids, last, state, history = self._steps(
                    last,
                    state,
                    history,
                    tf.constant(start, tf.int32),
                    tf.constant(size, tf.int32),
                    eos_id,
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


# --- stop strings: on the text, after the tokens -----------------------------------------


def check_stops(stops: Sequence[str], length: int) -> list[str]:
    """``stops`` as a list, once each is checked: a non-empty string no longer than ``length``
    (in characters: a character model's ``length`` tokens could never spell a longer one)."""
    checked = list(stops)
    for stop in checked:
        if not isinstance(stop, str) or not stop:
            raise ValueError(f"a stop string must be a non-empty string, got {stop!r}")
        if len(stop) > length:
            raise ValueError(
                f"stop string {stop!r} has {len(stop)} characters, more than the {length} "
                "tokens generated"
            )
    return checked


def cut_at_stop(text: str, stops: Sequence[str], start: int = 0) -> str:
    """``text`` up to where the first occurrence of any of ``stops`` at or after ``start``
    begins, the stop string itself left out (as OpenAI's API does); all of it if none occurs."""
    found = [at for at in (text.find(stop, start) for stop in stops if stop) if at >= 0]
    return text[: min(found)] if found else text


def _settled(text: str, stops: Sequence[str], start: int) -> int:
    """How much of ``text`` no later token can cut: all of it but a tail (beginning at or after
    ``start``) that is the start of a stop string."""
    settled = len(text)
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text) - start), 0, -1):
            if text.endswith(stop[:size]):
                settled = min(settled, len(text) - size)
                break
    return settled


def _row_text(vocab: Vocabulary, row: Sequence[int], stops: Sequence[str], min_length: int) -> str:
    text = vocab.decode(row)
    if not stops:
        return text
    # A token only ever appends to the text, so the first min_length tokens' is a prefix.
    return cut_at_stop(text, stops, len(vocab.decode(row[:min_length])))


def decode_texts(
    vocab: Vocabulary, rows: np.ndarray, stop: Sequence[str] = (), min_length: int = 0
) -> list[str]:
    """Each row's text (``Vocabulary.decode``: up to its end token), cut at the first of the
    ``stop`` strings that begins after the text of the row's first ``min_length`` tokens."""
    return [_row_text(vocab, row, stop, min_length) for row in rows]


def kept_tokens(vocab: Vocabulary, tokens: np.ndarray, text: str) -> np.ndarray:
    """The longest prefix of ``tokens`` (a row's, e.g. ``corpus.real_tokens``) whose text lies
    within ``text`` (``decode_texts``' of the row): all of them, end token included, when no
    stop string cut it; else the tokens before the cut (one the stop begins inside is left out)."""
    tokens = np.asarray(tokens)
    if vocab.decode(tokens) == text:
        return tokens
    # A token only ever appends to the text: the decoded length grows with the prefix.
    fits, too_long = 0, len(tokens)
    while too_long - fits > 1:
        mid = (fits + too_long) // 2
        if len(vocab.decode(tokens[:mid])) <= len(text):
            fits = mid
        else:
            too_long = mid
    return tokens[:fits]


def stream_texts(
    chunks: Iterable[np.ndarray],
    vocab: Vocabulary,
    num_samples: int,
    stop: Sequence[str] = (),
    min_length: int = 0,
) -> Iterator[tuple[list[str], int]]:
    """Each row's text so far, and the steps read, after each chunk of ids (``Sampler.stream``'s,
    [num_samples, n] each). A row's text only ever grows, and the last texts are
    ``decode_texts``' of the whole rows: text that may be the start of a stop string is held
    back until a later chunk tells, then released or cut. Once every row has met a stop
    string or its end token, no more chunks are read (the model runs no further)."""
    rows: list[list[int]] = [[] for _ in range(num_samples)]
    texts = [""] * num_samples
    over = [False] * num_samples
    steps = 0
    chunks = iter(chunks)
    try:
        for ids in chunks:
            steps += ids.shape[1]
            for i, row in enumerate(np.asarray(ids).tolist()):
                if over[i]:
                    continue
                rows[i].extend(row)
                text = vocab.decode(rows[i])
                start = len(vocab.decode(rows[i][:min_length]))
                cut = cut_at_stop(text, stop, start)
                over[i] = len(cut) < len(text) or (vocab.eos_id is not None and vocab.eos_id in row)
                settled = min(_settled(text, stop, start), vocab.settled(text))
                texts[i] = cut if over[i] else text[:settled]
            yield list(texts), steps
            if all(over):
                return
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    final = decode_texts(vocab, rows, stop, min_length)  # the tails held back, released
    if final != texts:
        yield final, steps


def generate_texts(
    model: keras.Model,
    vocab: Vocabulary,
    prompt: str,
    num_samples: int,
    length: int,
    decoding: Decoding = Decoding(),
    seed: int = 0,
    stop: Sequence[str] = (),
) -> list[str]:
    """Continuations of ``prompt`` as text (the prompt itself not included), each cut at the
    first of the ``stop`` strings after its first ``decoding.min_length`` tokens' text."""
    rows = generate_ids(model, vocab, prompt, num_samples, length, decoding, seed)
    return decode_texts(vocab, rows, stop, decoding.min_length)


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
