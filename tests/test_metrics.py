import math

import pytest

from textgen.metrics import (
    NgramProfile,
    distinct_n,
    likelihood_metrics,
    ms_jaccard,
    ngram_set,
    ngrams,
    novelty,
    words,
)


def test_words_split_punctuation_and_any_script():
    assert words("Romeo, come hither!") == ["Romeo", ",", "come", "hither", "!"]
    assert words("안녕하세요, 세계.") == ["안녕하세요", ",", "세계", "."]


def test_ngrams():
    assert ngrams(["a", "b", "c"], 2) == [("a", "b"), ("b", "c")]
    assert ngrams(["a"], 2) == []


def test_distinct_n_hand_checked():
    texts = ["a b a b", "a b c"]
    # unigrams: a b a b a b c -> 3 unique / 7
    assert distinct_n(texts, 1) == pytest.approx(3 / 7)
    # bigrams: ab ba ab | ab bc -> {ab, ba, bc} 3 / 5
    assert distinct_n(texts, 2) == pytest.approx(3 / 5)
    assert distinct_n(["a a a a"], 1) == pytest.approx(1 / 4)
    assert distinct_n([""], 3) == 0.0


def test_likelihood_units():
    m = likelihood_metrics(math.log(4), prefix="test_")
    assert m["test_nll_nats"] == pytest.approx(math.log(4))
    assert m["test_bpc"] == pytest.approx(2.0)
    assert m["test_perplexity"] == pytest.approx(4.0)


def test_novelty_counts_unseen_ngram_occurrences():
    seen = ngram_set("to be or not to be", 2)
    # bigrams: (to be) seen, (be or) seen, (or die) new, (to be) seen -> 1 of 4 new
    assert novelty(["to be or die", "to be"], seen, 2) == pytest.approx(1 / 4)
    assert novelty(["a"], seen, 2) == 0.0


def test_ms_jaccard_hand_checked():
    ref = NgramProfile([["a", "b"], ["c", "d"]])
    # The same n-gram frequencies: 1, whatever the number of sentences.
    assert ms_jaccard(NgramProfile([["a", "b"], ["c", "d"]] * 3), ref, 2) == pytest.approx(1.0)
    # Repeating half of the reference: unigrams min 0.5 + 0.5 over max 1 + 1 + 0.5 + 0.5,
    # bigrams 0.5 over 1 + 0.5: both 1/3, and so their geometric mean.
    repetitive = NgramProfile([["a", "b"], ["a", "b"]])
    assert ms_jaccard(repetitive, ref, 1) == pytest.approx(1 / 3)
    assert ms_jaccard(repetitive, ref, 2) == pytest.approx(1 / 3)
    # No shared bigram: the geometric mean is 0 however many unigrams are shared.
    other = NgramProfile([["a", "c"]])
    assert ms_jaccard(other, ref, 1) == pytest.approx(1 / 3)  # 0.5 + 0.5 over 1 + 1 + 0.5 + 0.5
    assert ms_jaccard(other, ref, 2) == 0.0
