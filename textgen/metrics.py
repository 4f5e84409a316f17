"""Evaluation measures shared by every stage: likelihood units and sample diversity."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

_WORD = re.compile(r"\w+|[^\w\s]")


def likelihood_metrics(nll_nats: float, prefix: str = "") -> dict[str, float]:
    """Mean per-character NLL in nats, with the same figure as bits per character and perplexity."""
    return {
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


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct-n (Li et al., 2016): unique word n-grams over all n-grams, across all samples."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        grams = ngrams(words(text), n)
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 0.0
