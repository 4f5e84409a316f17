"""Generation speed of an export: the SavedModel's ``generate`` (loaded with TensorFlow alone)
vs. textgen's in-process sampler, and the TFLite step model in a Python loop, side by side.

All three generate from the same model file (a pipeline's ``models/lstm.keras``, or a randomly
initialised one of the shipped size when it is absent): the SavedModel and the sampler the same
samples (the same seed: the texts are checked equal), the TFLite loop one sample token by token
(how a phone app would drive it). Rounds alternate the contenders; the ratio of each round is
the figure, printed as the median [lowest-highest] over the rounds.

    .venv/bin/python bench/export.py [--model models/lstm.keras --samples 16 --length 400
        --rounds 5]
"""

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from textgen.artifacts import load_model
from textgen.backend import tf
from textgen.config import load_params
from textgen.export import TFLITE, export
from textgen.model import build_model
from textgen.sampling import Decoding, decode_texts, prompt_context, sampler_for
from textgen.seeding import seed_everything
from textgen.vocab import Vocabulary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/lstm.keras"))
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--length", type=int, default=400)
    parser.add_argument("--tflite-length", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    seed_everything(0)
    if args.model.is_file():
        model, vocab = load_model(args.model)
        source = str(args.model)
    else:
        vocab = Vocabulary.from_text("".join(map(chr, range(32, 127))) + "\n")
        model = build_model(len(vocab), **load_params("params.yaml").lstm.architecture)
        source = "a random model of the shipped size"
    scratch = Path(tempfile.mkdtemp(prefix="bench-export-"))
    folder = scratch / "export"
    start = time.perf_counter()
    done = export(model, vocab, folder)
    print(
        f"{source}: exported in {time.perf_counter() - start:.0f} s; SavedModel "
        f"{done.saved_model_bytes / 1e6:.2f} MB, TFLite {done.tflite_bytes / 1e6:.2f} MB, "
        f"weights {done.weights_bytes / 1e6:.2f} MB (float32)"
    )
    saved = tf.saved_model.load(str(folder / "saved_model"))
    prompt, decoding = "\n", Decoding(0.8)

    def exported(seed: int) -> list[str]:
        out = saved.generate(
            prompt=tf.constant([prompt]),
            num_samples=tf.constant(args.samples),
            length=tf.constant(args.length),
            temperature=tf.constant(0.8),
            top_k=tf.constant(0),
            top_p=tf.constant(1.0),
            seed=tf.constant(seed, tf.int64),
            repetition_penalty=tf.constant(1.0),
            no_repeat_ngram=tf.constant(0),
            min_length=tf.constant(0),
            stop=tf.constant([], tf.string),
        )
        return [t.decode() for t in out["text"].numpy()[0]]

    sampler, context = sampler_for(model, vocab), prompt_context(vocab, prompt)

    def in_process(seed: int) -> list[str]:  # generate_texts on one compiled sampler
        rows = sampler.generate(context, args.samples, args.length, decoding, seed)
        return decode_texts(vocab, rows)

    step = tf.lite.Interpreter(model_path=str(folder / TFLITE)).get_signature_runner("step")
    inputs = step.get_input_details()
    rng = np.random.default_rng(0)

    def tflite(seed: int) -> None:
        state = {k: np.zeros(d["shape"], np.float32) for k, d in inputs.items() if k != "token"}
        token = int(vocab.encode(prompt)[-1])
        for _ in range(args.tflite_length):
            out = step(token=np.array([token], np.int32), **state)
            state = {k: out[k] for k in state}
            p = np.exp((out["logits"][0] - out["logits"][0].max()) / 0.8)
            token = int(rng.choice(len(p), p=p / p.sum()))

    assert exported(0) == in_process(0), "the SavedModel and the sampler disagree"  # + traces
    tflite(0)
    batch = args.samples * args.length
    runs = {  # name: (run, tokens per run)
        "SavedModel generate": (exported, batch),
        "in-process sampler": (in_process, batch),
        "TFLite step loop": (tflite, args.tflite_length),
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds):
        names = list(runs)[round_ % 3 :] + list(runs)[: round_ % 3]
        for name in names:
            run, tokens = runs[name]
            start = time.perf_counter()
            run(round_ + 1)
            rates[name].append(tokens / (time.perf_counter() - start))
    base = rates["in-process sampler"]
    print(f"{args.samples} samples x {args.length} tokens; TFLite: 1 x {args.tflite_length}")
    for name, values in rates.items():
        ratios = [r / b for r, b in zip(values, base, strict=True)]
        print(
            f"{name:22s} {statistics.median(values):10,.0f} tokens/s   vs the sampler "
            f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"
        )
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
