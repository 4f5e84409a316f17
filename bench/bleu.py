"""BLEU and Self-BLEU speed: ours vs. NLTK's sentence_bleu (Texygen's way), same numbers.

Samples are real-looking sentences drawn from a text (default: the prepared test split, if
the pipeline has run; else a synthetic word salad), scored both ways in one run; the report
is the ratio of the two timings and the largest difference between the scores.

    .venv/bin/python bench/bleu.py [--samples 1000 --order 4]
"""

import argparse
import random
import time
from pathlib import Path

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from textgen.metrics import BleuReferences, self_bleu, sentences

SMOOTH = SmoothingFunction().method1


def corpus_sentences() -> list[list[str]]:
    test, vocab = Path("data/prepared/test.npy"), Path("data/prepared/vocab.json")
    if test.is_file() and vocab.is_file():
        from textgen.artifacts import load_tokens, load_vocab

        return sentences(load_vocab(vocab).decode(load_tokens(test)))
    rng = random.Random(0)
    words = [f"w{i}" for i in range(300)]
    return [[rng.choice(words) for _ in range(rng.randint(3, 15))] for _ in range(20000)]


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--order", type=int, default=4)
    args = parser.parse_args()
    weights = tuple(1.0 / args.order for _ in range(args.order))

    pool = corpus_sentences()
    rng = random.Random(1)
    samples = rng.sample(pool, args.samples)
    refs = pool[: len(pool) // 2]
    print(f"{args.samples} samples, {len(refs)} references, order {args.order}")

    def nltk_self():
        return sum(
            sentence_bleu(samples[:i] + samples[i + 1 :], h, weights, smoothing_function=SMOOTH)
            for i, h in enumerate(samples)
        ) / len(samples)

    def nltk_bleu():
        return sum(
            sentence_bleu(refs, h, weights, smoothing_function=SMOOTH) for h in samples
        ) / len(samples)

    for name, ours_fn, theirs_fn in [
        ("Self-BLEU", lambda: self_bleu(samples, args.order), nltk_self),
        ("BLEU", lambda: BleuReferences(refs).bleu(samples, args.order), nltk_bleu),
    ]:
        ours, t_ours = timed(ours_fn)
        theirs, t_theirs = timed(theirs_fn)
        print(
            f"{name:9s} ours {t_ours:8.3f} s  NLTK {t_theirs:8.3f} s  "
            f"{t_theirs / t_ours:7.1f}x faster  |diff| {abs(ours - theirs):.1e}  ({ours:.6f})"
        )


if __name__ == "__main__":
    main()
