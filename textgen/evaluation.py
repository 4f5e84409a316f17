"""The evaluation protocol, the same for every model: sample quality and diversity, their
bootstrap intervals, and the temperature sweep (``comparison`` turns two sweeps into a verdict).

Why a sweep: lowering a language model's sampling temperature raises its "quality" (BLEU, LM
score) and lowers its diversity, so one point per model says little; a model is only better
if it is more diverse at equal quality ("Language GANs Falling Short", Caccia et al., 2020).

Why a bootstrap: a sample set is a random draw, so every metric of it, and the gap between
two curves, has sampling noise. Resampling the samples (the generated texts or rows) shows
how large; a model wins a criterion only where the gap's 95% interval excludes zero.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from textgen.backend import keras
from textgen.config import EvaluateParams, LSTMParams
from textgen.metrics import (
    BleuReferences,
    CopyIndex,
    NgramProfile,
    distinct_n,
    mean_score,
    ms_jaccard,
    ngram_set,
    novelty,
    self_bleu_scores,
    sentences,
)
from textgen.model import build_model
from textgen.sampling import Decoding, prompt_context, sampler_for
from textgen.scoring import Ratio, heldout, score
from textgen.seeding import derive_seed
from textgen.sources import TokenSource, continuation_layout
from textgen.training import train
from textgen.vocab import CharTokenizer, TextSize, Vocabulary

log = logging.getLogger(__name__)


@dataclass
class RealData:
    """What samples are judged against: the training split (copies, novelty), the test split
    (BLEU references, the reverse LM's score) and the LM trained on real text (LM score)."""

    vocab: Vocabulary
    train: TokenSource
    test: TokenSource
    judge: keras.Model
    test_text: TextSize | None = None  # how much text the test split is (per-character NLLs)
    references: BleuReferences = field(init=False)
    profile: NgramProfile = field(init=False)  # the test split's n-grams, for MS-Jaccard
    seen_4grams: set[int] = field(init=False)
    copies: CopyIndex = field(init=False)  # the training text's characters
    # The training text's own characters, as ids (one never seen in training: the unknown id).
    alphabet: CharTokenizer = field(init=False)

    def __post_init__(self) -> None:
        test_sentences = sentences(self.test.text(self.vocab))
        self.references = BleuReferences(test_sentences)
        self.profile = NgramProfile(test_sentences)
        train_text = self.train.text(self.vocab)
        self.seen_4grams = ngram_set(train_text, 4)
        # Copies are found in characters of the decoded text, whatever the tokens are, so
        # the figure compares across tokenizers.
        seen = sorted(set(train_text))
        self.alphabet = CharTokenizer(tuple(seen), n_specials=0, unk_id=len(seen))
        self.copies = CopyIndex(self.characters(train_text))

    def characters(self, text: str) -> np.ndarray:
        """A text's characters as ``copies`` indexes them."""
        return self.alphabet.encode(text)


# --- Uncertainty: a bootstrap over samples ----------------------------------------------------

BOOTSTRAP_REPLICATES = 1000
RESAMPLING = 101  # the derive_seed index of every bootstrap draw (sampling uses 1 to 3)


def sentence_ratio(scores: list[float], owner: np.ndarray, units: int) -> Ratio:
    """A mean over sentences (BLEU, Self-BLEU) as a ratio over the ``units`` samples that own
    them: each sample's sum of sentence scores over its number of sentences. No scores
    (Self-BLEU of fewer than two sentences) count as no sentences: 0 throughout."""
    if not scores:
        return Ratio(np.zeros(units), np.zeros(units))
    totals = np.bincount(owner, weights=scores, minlength=units).astype(np.float64)
    return Ratio(totals, np.bincount(owner, minlength=units).astype(np.float64))


def scored_sentences(
    per_text: list[list[list[str]]], limit: int | None
) -> tuple[list[list[str]], np.ndarray]:
    """The sentences BLEU and Self-BLEU score, and the sample each belongs to: all of them, or
    the first ``limit`` taken round-robin (every sample's first sentence, then every sample's
    second, ...), so that every sample contributes and two models' sets compare at one count
    (Self-BLEU rises with the number of sentences). A set with fewer gives all it has."""
    order = [(position, text) for text, ss in enumerate(per_text) for position in range(len(ss))]
    if limit is not None and len(order) > limit:
        kept = sorted(order)[:limit]  # by position first: round-robin over the samples
        order = sorted(kept, key=lambda pt: (pt[1], pt[0]))  # back to reading order
    chosen = [per_text[text][position] for position, text in order]
    return chosen, np.array([text for _, text in order], dtype=np.int64)


def bootstrap(
    stats: dict[str, Ratio], seed: int, replicates: int = BOOTSTRAP_REPLICATES
) -> dict[str, np.ndarray]:
    """``replicates`` bootstrap values [replicates] of each ratio: the units drawn with
    replacement, as many as there are, the same draws for every ratio (so the metrics of one
    sample set move together, as the quality-diversity curve needs)."""
    (units,) = {len(r.totals) for r in stats.values()}
    rng = np.random.default_rng(seed)
    out = {name: np.empty(replicates) for name in stats}
    chunk = max(1, 2**20 // max(units, 1))  # draws in blocks of about a million indices
    for start in range(0, replicates, chunk):
        draws = rng.integers(0, units, (min(chunk, replicates - start), units))
        for name, r in stats.items():
            totals, counts = r.totals[draws].sum(axis=1), r.counts[draws].sum(axis=1)
            ratio = np.divide(totals, counts, out=np.zeros_like(totals), where=counts > 0)
            out[name][start : start + len(draws)] = ratio
    return out


def interval(replicates: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap replicates (those defined)."""
    low, high = np.nanpercentile(replicates, [2.5, 97.5])
    return float(low), float(high)


def with_intervals(point: dict[str, float], replicates: dict[str, np.ndarray]) -> dict[str, float]:
    """``point`` with ``<metric>_low`` and ``<metric>_high`` after each bootstrapped metric."""
    out = {}
    for name, value in point.items():
        out[name] = value
        if name in replicates:
            out[f"{name}_low"], out[f"{name}_high"] = interval(replicates[name])
    return out


def sample_metrics(
    samples: np.ndarray,
    context: np.ndarray,
    real: RealData,
    reverse_lm: LSTMParams,
    seed: int,
    resample_seed: int,
    bleu_sentences: int | None = None,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Every quality and diversity measure of one set of samples [n, length] (token ids,
    padded after an end token), each continuing its row of ``context`` [n, >=1] (the prompt;
    ``<bos>`` first for independent sequences), with ``<m>_low``/``<m>_high``, the 95%
    bootstrap interval of each curve metric; and those metrics' bootstrap replicates. BLEU
    and Self-BLEU score ``bleu_sentences`` sentences (``scored_sentences``; None: all).

    The samples are resampled with ``resample_seed``; the reverse LM's test units with one
    stream of ``seed``, the same for every sample set, since they are the common yardstick.
    """
    vocab = real.vocab
    texts = vocab.decode_rows(samples)
    generated, owner = scored_sentences([sentences(text) for text in texts], bleu_sentences)
    bleu = {n: real.references.sentence_scores(generated, n) for n in range(2, 6)}
    selfb = {n: self_bleu_scores(generated, n) for n in range(2, 6)}
    judged = lm_ratio(real.judge, context, samples, vocab.pad_id)
    reverse = reverse_lm_nll(samples, context, real.test, len(vocab), reverse_lm, seed)
    point = {
        "bleu_sentences": len(generated),
        **{f"bleu_{n}": mean_score(bleu[n]) for n in range(2, 6)},
        **{f"self_bleu_{n}": mean_score(selfb[n]) for n in range(2, 6)},
        **{f"distinct_{n}": distinct_n(texts, n) for n in range(1, 5)},
        "ms_jaccard_4": ms_jaccard(NgramProfile(generated), real.profile, 4),
        "novelty_4": novelty(texts, real.seen_4grams, 4),
        "longest_copy_chars": real.copies.median_longest_copy(
            real.characters(text) for text in texts
        ),
        "lm_score_nats": judged.value,
        "reverse_lm_nats": reverse.value,
    }
    if real.test_text is not None:
        # Per character of text: the samples' own characters (an ended line counts its line
        # break, as prepare counts it), and the test split's for the reverse LM.
        ended = (samples == vocab.eos_id).any(axis=1) if vocab.eos_id is not None else 0
        characters = sum(len(t) for t in texts) + int(np.sum(ended))
        point["lm_score_nats_per_char"] = float(judged.totals.sum()) / max(characters, 1)
        t = real.test_text
        point["reverse_lm_nats_per_char"] = reverse.value * t.tokens / t.characters
    n = len(texts)
    replicates = {
        **bootstrap(
            {
                "bleu_4": sentence_ratio(bleu[4], owner, n),
                # Self-BLEU: each sentence keeps its score against the full set; only the
                # average is resampled (rescoring against every replicate would be quadratic).
                "self_bleu_4": sentence_ratio(selfb[4], owner, n),
                "lm_score_nats": judged,
            },
            resample_seed,
        ),
        **bootstrap({"reverse_lm_nats": reverse}, derive_seed(seed, RESAMPLING)),
    }
    return with_intervals(point, replicates), replicates


def lm_score(
    judge: keras.Model,
    context: np.ndarray,
    samples: np.ndarray,
    pad_id: int | None = None,
    batch: int = 64,
) -> float:
    """Mean per-token NLL (nats) of the samples under ``judge``, each after its context
    (padding, if ``pad_id`` is given, not counted)."""
    return lm_ratio(judge, context, samples, pad_id, batch).value


def lm_ratio(
    lm: keras.Model,
    context: np.ndarray,
    rows: np.ndarray,
    pad_id: int | None = None,
    batch: int = 64,
    temperature: float = 1.0,
) -> Ratio:
    """``lm_score`` with its per-row NLL sums and token counts, the units a bootstrap draws
    (under softmax(logits / ``temperature``))."""
    weights = (rows != pad_id) if pad_id is not None else None
    return score(lm, continuation_layout(context, rows, weights), batch, temperature)


def reverse_lm_nll(
    samples: np.ndarray,
    context: np.ndarray,
    test: TokenSource,
    vocab_size: int,
    p: LSTMParams,
    seed: int,
) -> Ratio:
    """Reverse LM score: NLL (nats/token) of the real test split under a fresh LM trained on
    the samples only, with its units: the test split's rows or windows. Low when the samples
    cover the real distribution, high when they are repetitive or collapsed, which a score of
    the samples themselves cannot see.

    Every call starts from the same initial weights and data order (seeded here), so two
    models' samples are compared on equal terms. The last tenth of the samples is held out
    for early stopping.

    The LM is trained once per sample set (once per replicate would multiply the stage's
    time by the replicates), so a bootstrap of this ratio covers the scoring side only: the
    test split's sampling noise, not the noise of training on another draw of samples.
    """
    rows = np.concatenate([context, samples], axis=1)
    held_out = max(1, len(rows) // 10)
    keras.utils.set_random_seed(seed)
    lm = _reverse_lm(vocab_size, p, seed)
    train(lm, test.like(rows[:-held_out]), test.like(rows[-held_out:]), p, seed, verbose=0)
    return heldout(lm, test, p.eval_batch_size)


# One reverse LM per size, vocabulary and seed, put back to its initial variables (weights
# and dropout seeds) for every sample set: ``train`` then reuses its compiled step, which a
# new model would trace again.
_reverse_lms: dict[tuple, tuple[keras.Model, list[np.ndarray]]] = {}


def _reverse_lm(vocab_size: int, p: LSTMParams, seed: int) -> keras.Model:
    key = (vocab_size, tuple(p.architecture.items()), seed)
    if key not in _reverse_lms:
        lm = build_model(vocab_size, **p.architecture)
        _reverse_lms[key] = (lm, [v.numpy() for v in lm.variables])
    lm, initial = _reverse_lms[key]
    for variable, value in zip(lm.variables, initial, strict=True):
        variable.assign(value)
    return lm


@dataclass
class Sweep:
    """One model's sweep: a point of metrics per temperature (with the curve metrics' 95%
    intervals), those metrics' bootstrap replicates per point, and a few samples of each."""

    points: list[dict[str, float]]
    replicates: list[dict[str, np.ndarray]]
    examples: dict[float, list[str]] = field(default_factory=dict)


def temperature_sweep(
    model: keras.Model,
    real: RealData,
    p: EvaluateParams,
    prompt: str,
    seed: int,
    name: str = "model",
    resample_seed: int | None = None,
) -> Sweep:
    """Samples at every temperature in ``p.temperatures`` and their metrics.

    Temperature ``i`` uses the same sampling seed for every model, so two models differ only
    by their weights. Its samples are resampled with ``derive_seed(resample_seed, i)``: give
    each model its own ``resample_seed`` (default: one derived from ``seed``) so that the two
    models' bootstraps are independent draws.
    """
    if resample_seed is None:
        resample_seed = derive_seed(seed, RESAMPLING)
    sampler = sampler_for(model, real.vocab)
    prompt_ids = prompt_context(real.vocab, prompt)
    context = np.tile(prompt_ids, (p.num_samples, 1))
    points, replicates, examples = [], [], {}
    for i, temperature in enumerate(p.temperatures):
        start = time.perf_counter()
        ids = sampler.generate(prompt_ids, p.num_samples, p.length, Decoding(temperature), seed + i)
        metrics, reps = sample_metrics(
            ids, context, real, p.reverse_lm, seed, derive_seed(resample_seed, i), p.bleu_sentences
        )
        point = {"temperature": temperature, **metrics}
        points.append(point)
        replicates.append(reps)
        examples[temperature] = real.vocab.decode_rows(ids[: p.report_samples])
        log.info(
            "  %s T=%g: BLEU-4 %.3f, Self-BLEU-4 %.3f, LM score %.3f, reverse LM %.3f (%.1f s)",
            name,
            temperature,
            point["bleu_4"],
            point["self_bleu_4"],
            point["lm_score_nats"],
            point["reverse_lm_nats"],
            time.perf_counter() - start,
        )
    return Sweep(points, replicates, examples)
