"""Sampler throughput: our stateful batched sampler vs. the tutorial loop, side by side.

The baseline is the common tutorial decoder: for every new character, run the model on the
whole window generated so far (batch of 1, a Python loop per token). Both decode the same
randomly initialised model (speed does not depend on the weights); the report is a ratio
measured in one run, since absolute speed on a shared machine is noise.

    .venv/bin/python bench/sampler.py [--hidden 192 --layers 2 --length 200 --samples 16]
"""

import argparse
import time

import numpy as np

from textgen.config import load_params
from textgen.model import build_model
from textgen.sampling import Decoding, Sampler
from textgen.seeding import seed_everything


def tutorial_sampler(model, prompt: np.ndarray, length: int, window: int, rng) -> list[int]:
    seq = list(prompt)
    for _ in range(length):
        logits = model(np.array([seq[-window:]], np.int32), training=False)[0, -1].numpy()
        probs = np.exp(logits - logits.max())
        seq.append(int(rng.choice(len(probs), p=probs / probs.sum())))
    return seq[len(prompt) :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=85)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--window", type=int, default=128, help="baseline's context window")
    args = parser.parse_args()

    seed_everything(0)
    shipped = load_params("params.yaml").lstm  # every other setting as the pipeline has it
    size = shipped.architecture | {"hidden": args.hidden, "layers": args.layers}
    model = build_model(args.vocab, **size)
    prompt = np.array([1, 2, 3], np.int32)

    sampler = Sampler(model)
    sampler.generate(prompt, args.samples, args.length, Decoding(), seed=0)  # compile once
    start = time.perf_counter()
    sampler.generate(prompt, args.samples, args.length, Decoding(), seed=1)
    ours = args.samples * args.length / (time.perf_counter() - start)

    rng = np.random.default_rng(0)
    tutorial_sampler(model, prompt, 5, args.window, rng)  # warm up
    n_base = max(args.length // 4, 20)  # the baseline is slow; time fewer tokens
    start = time.perf_counter()
    tutorial_sampler(model, prompt, n_base, args.window, rng)
    base = n_base / (time.perf_counter() - start)

    print(f"model: {args.layers}x{args.hidden} LSTM, vocabulary {args.vocab}")
    print(f"stateful batched sampler ({args.samples} x {args.length}): {ours:10.0f} tokens/s")
    print(f"tutorial window re-run loop (1 x {n_base}):       {base:10.0f} tokens/s")
    print(f"ratio: {ours / base:.1f}x")


if __name__ == "__main__":
    main()
