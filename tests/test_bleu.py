"""Our BLEU / Self-BLEU against NLTK's, the definition Texygen uses."""

import random

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from textgen.metrics import BleuReferences, mean_score, self_bleu, self_bleu_scores, sentences

SMOOTH = SmoothingFunction().method1
VOCAB = "the a of to and my lord sweet love night , . ! ?".split()


def _nltk_bleu(references, hypotheses, order):
    weights = tuple(1.0 / order for _ in range(order))
    scores = [sentence_bleu(references, h, weights, smoothing_function=SMOOTH) for h in hypotheses]
    return sum(scores) / len(scores)


def _nltk_self_bleu(samples, order):
    weights = tuple(1.0 / order for _ in range(order))
    scores = [
        sentence_bleu(samples[:i] + samples[i + 1 :], h, weights, smoothing_function=SMOOTH)
        for i, h in enumerate(samples)
    ]
    return sum(scores) / len(scores)


def _random_sentences(n, seed, max_len=14):
    rng = random.Random(seed)
    return [[rng.choice(VOCAB) for _ in range(rng.randint(1, max_len))] for _ in range(n)]


@pytest.mark.parametrize("order", [2, 3, 4, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_bleu_equals_nltk(order, seed):
    refs = _random_sentences(60, seed)
    hyps = [*_random_sentences(40, seed + 100), ["zzz"], ["lord"], refs[0], [*refs[1], "love"]]
    ours = BleuReferences(refs).bleu(hyps, order)
    assert ours == pytest.approx(_nltk_bleu(refs, hyps, order), abs=1e-9)


@pytest.mark.parametrize("order", [2, 3, 4, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_self_bleu_equals_nltk(order, seed):
    samples = _random_sentences(50, seed)
    samples += [samples[0], samples[3][:2], ["unique", "words", "only"]]  # duplicates, ties
    assert self_bleu(samples, order) == pytest.approx(_nltk_self_bleu(samples, order), abs=1e-9)


def test_the_scores_a_bootstrap_resamples_are_nltks_per_sentence_scores():
    refs, hyps = _random_sentences(30, 5), _random_sentences(20, 6)
    weights = (0.25,) * 4
    ours = BleuReferences(refs).sentence_scores(hyps, 4)
    nltk = [sentence_bleu(refs, h, weights, smoothing_function=SMOOTH) for h in hyps]
    assert ours == pytest.approx(nltk, abs=1e-9)
    assert mean_score(ours) == BleuReferences(refs).bleu(hyps, 4)  # the same float
    own = self_bleu_scores(hyps, 4)
    nltk = [
        sentence_bleu(hyps[:i] + hyps[i + 1 :], h, weights, smoothing_function=SMOOTH)
        for i, h in enumerate(hyps)
    ]
    assert own == pytest.approx(nltk, abs=1e-9)
    assert mean_score(own) == self_bleu(hyps, 4)
    assert self_bleu_scores(hyps[:1], 4) == [] and mean_score([]) == 0.0


def test_hand_checked_extremes():
    refs = [["the", "cat", "sat", "on", "the", "mat"]]
    assert BleuReferences(refs).bleu(refs, 4) == pytest.approx(1.0)
    assert BleuReferences(refs).bleu([["dog"]], 4) == 0.0
    assert self_bleu([["a", "b", "c"], ["a", "b", "c"]], 3) == pytest.approx(1.0)
    assert self_bleu([["a", "b"]], 2) == 0.0


def test_sentences_are_non_empty_lines_of_words():
    assert sentences("ROMEO.\nO, she doth teach!\n\n  \nJULIET.") == [
        ["ROMEO", "."],
        ["O", ",", "she", "doth", "teach", "!"],
        ["JULIET", "."],
    ]
