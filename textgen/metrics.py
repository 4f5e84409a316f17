"""Evaluation measures shared by every stage: likelihood units, BLEU, sample diversity."""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Iterable

import numpy as np
from pydivsufsort import divsufsort, sa_search

from textgen.vocab import TextSize

_WORD = re.compile(r"\w+|[^\w\s]")


def likelihood_metrics(
    nll_nats: float, prefix: str = "", text: TextSize | None = None
) -> dict[str, float]:
    """Mean per-token NLL in nats, with the same figure as bits per token (``bpc``: bits per
    character for character tokens) and perplexity; with ``text``, first the same NLL per
    character of the text (nats) and per UTF-8 byte (bits), whatever the tokens are."""
    out = {}
    if text is not None and text.characters and text.bytes:
        total = nll_nats * text.tokens
        out[f"{prefix}nats_per_char"] = total / text.characters
        out[f"{prefix}bits_per_byte"] = total / text.bytes / math.log(2)
    return out | {
        f"{prefix}nll_nats": nll_nats,
        f"{prefix}bpc": nll_nats / math.log(2),
        f"{prefix}perplexity": math.exp(nll_nats),
    }


def words(text: str) -> list[str]:
    """Word tokens for text-level metrics: runs of letters/digits, and each punctuation mark.

    Unicode-aware, so Hangul, Cyrillic or accented words count as words too.
    """
    return _WORD.findall(text)


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def ngram_set(text: str, n: int) -> set[int]:
    """Hashes of a text's word n-grams: a compact membership index for novelty."""
    return {hash(g) for g in ngrams(words(text), n)}


def novelty(texts: Iterable[str], seen: set[int], n: int) -> float:
    """Share of the samples' word n-grams (all occurrences) that ``seen`` does not contain."""
    grams = [g for text in texts for g in ngrams(words(text), n)]
    return sum(hash(g) not in seen for g in grams) / len(grams) if grams else 0.0


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct-n (Li et al., 2016): unique word n-grams over all n-grams, across all samples."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        grams = ngrams(words(text), n)
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 0.0


class CopyIndex:
    """A suffix array of the training tokens, to find how much of a sample is copied verbatim.

    Tokens are laid out as fixed-width big-endian bytes (one byte for vocabularies up to 256),
    so byte order is token order and libdivsufsort can index them; a byte-level hit counts only
    if it starts on a token boundary.
    """

    def __init__(self, tokens: np.ndarray):
        tokens = np.asarray(tokens)
        top = int(tokens.max(initial=0))
        self.width = 1 if top < 2**8 else 2 if top < 2**16 else 4
        self.text = self._bytes(tokens)
        self.suffixes = divsufsort(self.text)

    def _bytes(self, tokens: np.ndarray) -> bytes:
        return np.asarray(tokens).astype(f">u{self.width}").tobytes()

    def occurs(self, tokens: np.ndarray) -> bool:
        """Whether this exact token sequence appears in the indexed text."""
        count, first = sa_search(self.text, self.suffixes, self._bytes(tokens))
        if not count:
            return False
        return self.width == 1 or bool(
            (self.suffixes[first : first + count] % self.width == 0).any()
        )

    def longest_copy(self, tokens: np.ndarray) -> int:
        """Length of the longest span of ``tokens`` found verbatim in the indexed text.

        Only spans longer than the best so far are ever tried, so it makes at most
        2 * len(tokens) suffix-array searches.
        """
        best = start = 0
        while start + best < len(tokens):
            if self.occurs(tokens[start : start + best + 1]):
                best += 1
            else:
                start += 1
        return best

    def median_longest_copy(self, samples: Iterable[np.ndarray]) -> float:
        """The median over samples of their longest verbatim span: how much a model memorises."""
        lengths = [self.longest_copy(s) for s in samples]
        return float(np.median(lengths)) if lengths else 0.0


# --- BLEU and Self-BLEU, as Texygen computes them --------------------------------------------
# Texygen scores each generated sentence with NLTK's sentence_bleu (uniform weights over
# 1..n-grams, smoothing method 1) and averages. NLTK recounts every reference for every
# hypothesis, which makes Self-BLEU quadratic; here the references' n-gram counts are built
# once, with the same arithmetic, so the numbers are NLTK's (tests compare to 1e-9).
# Both are means of per-sentence scores, so the per-sentence scores are what a bootstrap over
# samples needs: a replicate re-averages them, and nothing is scored twice.

_EPSILON = 0.1  # NLTK SmoothingFunction().epsilon: method 1 adds it to zero-count precisions


def sentences(text: str) -> list[list[str]]:
    """The word-tokenised sentences BLEU scores: one per non-empty line of text."""
    return [ws for line in text.split("\n") if (ws := words(line))]


def _bleu(clipped: list[int], totals: list[int], hyp_len: int, ref_len: int) -> float:
    """NLTK's sentence BLEU from clipped and total n-gram counts (orders 1..len(clipped))."""
    if clipped[0] == 0:
        return 0.0
    if hyp_len > ref_len:
        penalty = 1.0
    elif hyp_len == 0:
        penalty = 0.0
    else:
        penalty = math.exp(1 - ref_len / hyp_len)
    weight = 1.0 / len(clipped)
    logs = [
        weight * math.log((c if c else _EPSILON) / max(1, t))
        for c, t in zip(clipped, totals, strict=True)
    ]
    return penalty * math.exp(math.fsum(logs))


def _closest(lengths: list[int], hyp_len: int) -> int:
    """The reference length closest to ``hyp_len`` (the shorter on a tie), from sorted lengths."""
    i = bisect.bisect_left(lengths, hyp_len)
    candidates = lengths[max(i - 1, 0) : i + 1]
    return min(candidates, key=lambda n: (abs(n - hyp_len), n))


class BleuReferences:
    """A reference set (e.g. the test split's sentences), counted once, to score many samples."""

    def __init__(self, references: list[list[str]], max_order: int = 5):
        if not references:
            raise ValueError("BLEU needs at least one reference sentence")
        self.lengths = sorted({len(r) for r in references})
        self.max_counts: list[dict[tuple[str, ...], int]] = []
        for n in range(1, max_order + 1):
            best: dict[tuple[str, ...], int] = {}
            for ref in references:
                for gram, count in Counter(ngrams(ref, n)).items():
                    if count > best.get(gram, 0):
                        best[gram] = count
            self.max_counts.append(best)

    def sentence_bleu(self, hypothesis: list[str], order: int) -> float:
        clipped, totals = [], []
        for n in range(1, order + 1):
            counts = Counter(ngrams(hypothesis, n))
            best = self.max_counts[n - 1]
            clipped.append(sum(min(c, best.get(g, 0)) for g, c in counts.items()))
            totals.append(sum(counts.values()))
        return _bleu(clipped, totals, len(hypothesis), _closest(self.lengths, len(hypothesis)))

    def sentence_scores(self, hypotheses: list[list[str]], order: int) -> list[float]:
        """Sentence BLEU-``order`` of each hypothesis against these references."""
        return [self.sentence_bleu(h, order) for h in hypotheses]

    def bleu(self, hypotheses: list[list[str]], order: int) -> float:
        """Mean sentence BLEU-``order`` of ``hypotheses`` against these references."""
        return mean_score(self.sentence_scores(hypotheses, order))


class NgramProfile:
    """A sentence set's word n-gram counts (orders 1..``max_order``), per sentence of the
    set: what MS-Jaccard compares, counted once for a reference set scored many times."""

    def __init__(self, sentences: list[list[str]], max_order: int = 4):
        self.size = max(len(sentences), 1)
        self.counts = [
            Counter(g for s in sentences for g in ngrams(s, n)) for n in range(1, max_order + 1)
        ]


def ms_jaccard(generated: NgramProfile, reference: NgramProfile, order: int) -> float:
    """MS-Jaccard-``order`` (Alihosseini et al., 2019): for each n up to ``order``, the
    Jaccard similarity of the two sets' n-gram multisets, each count divided by its set's
    number of sentences (sum of the minima over sum of the maxima); their geometric mean.

    Model-free, and quality and diversity at once: 1 when the samples use the reference's
    n-grams as often as it does; a set that repeats a few good n-grams, or invents unseen
    ones, scores lower. Independent of how many sentences either set has.
    """
    logs = []
    for n in range(order):
        g, r = generated.counts[n], reference.counts[n]
        gs, rs = generated.size, reference.size
        low = math.fsum(min(c / gs, r[gram] / rs) for gram, c in g.items() if gram in r)
        high = math.fsum(max(c / gs, r.get(gram, 0) / rs) for gram, c in g.items()) + math.fsum(
            c / rs for gram, c in r.items() if gram not in g
        )
        if low == 0.0:
            return 0.0
        logs.append(math.log(low / high))
    return math.exp(math.fsum(logs) / order)


def mean_score(scores: list[float]) -> float:
    """The mean of per-sentence scores, as BLEU and Self-BLEU report it (0 for none)."""
    return math.fsum(scores) / len(scores) if scores else 0.0


def self_bleu(samples: list[list[str]], order: int) -> float:
    """Mean BLEU-``order`` of each sample against all the others (lower = more diverse)."""
    return mean_score(self_bleu_scores(samples, order))


def self_bleu_scores(samples: list[list[str]], order: int) -> list[float]:
    """BLEU-``order`` of each sample against all the others (none for fewer than two)."""
    if len(samples) < 2:
        return []
    per_sample = [[Counter(ngrams(s, n)) for n in range(1, order + 1)] for s in samples]
    # For every n-gram, its highest count in any sample, which sample that is, and the
    # runner-up: "the max over the other samples" is then one lookup per n-gram.
    top: list[dict[tuple[str, ...], tuple[int, int, int]]] = [{} for _ in range(order)]
    for i, counters in enumerate(per_sample):
        for k, counts in enumerate(counters):
            table = top[k]
            for gram, c in counts.items():
                best, who, second = table.get(gram, (0, -1, 0))
                if c > best:
                    table[gram] = (c, i, best)
                elif c > second:
                    table[gram] = (best, who, c)
    length_count = Counter(len(s) for s in samples)
    lengths = sorted(length_count)
    scores = []
    for i, counters in enumerate(per_sample):
        clipped, totals = [], []
        for k, counts in enumerate(counters):
            table = top[k]
            hits = 0
            for gram, c in counts.items():
                best, who, second = table[gram]
                hits += min(c, second if who == i else best)
            clipped.append(hits)
            totals.append(sum(counts.values()))
        own = len(samples[i])
        others = lengths if length_count[own] > 1 else [n for n in lengths if n != own]
        scores.append(_bleu(clipped, totals, own, _closest(others, own)))
    return scores
