"""Quality per minute: held-out NLL after a fixed wall-clock of training, ours vs. plain Keras.

On nanoGPT's split of a character corpus (tinyshakespeare by default: the first 90% trains, the
last 10% is held out), two models of the same size train one after the other in one run, each
for the same wall-clock budget (``--budget-s``): textgen's LSTM through ``textgen.training.train``
(its dataset, warm-up + cosine schedule, clipping, early stopping on a validation subset) and a
plain Keras ``Sequential`` LSTM (Adam at Keras' defaults, constant learning rate) on the same
batches. Each run's number of steps comes from its own rate, measured on a throwaway copy first
(so a schedule can end where the budget does); a clock stops it at the budget in any case.
Validation time is outside the clock for both.

The held-out NLL is scored as nanoGPT scores it (every position of independent 256-character
windows, mean nats per character) and, for textgen's model, also with the LSTM state carried
through the whole text (``textgen.scoring.heldout``). The curve (validation NLL on an eighth of
the held-out windows against training seconds) is written as JSON records for DVC:
``dvc plots show bench-quality.json -x seconds -y nll``.

    .venv/bin/python bench/quality.py [--corpus ../shared/data/tinyshakespeare.txt
        --budget-s 600 --set dropout=0.2 --set hidden=256 ... --out bench-quality.json]

Quality per token (``--tokens``): textgen's model alone, trained for a token budget, its
held-out NLL (256-character windows) printed at every budget beside the reference's figure
where one is known (``REFERENCE``: the same architecture and schedule written in another
framework with its default initialisation, dropout 0.2, batch 64 x 128, issue 25). The
cosine schedule ends at ``--schedule-tokens`` (default: the last budget). ``--keras-init`` and
``--embedding-dropout`` put back the model's earlier choices, so each lever is measured alone:

    .venv/bin/python bench/quality.py --tokens 7.0M --set dropout=0.2 --keras-init
    .venv/bin/python bench/quality.py --tokens 7.5M 15M 22M --schedule-tokens 44.9M \
        --set dropout=0.2 --set learning_rate=0.02
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import yaml

from textgen.backend import keras, tf
from textgen.config import LSTMParams, load_params
from textgen.model import build_model
from textgen.scoring import heldout_nll, score
from textgen.seeding import seed_everything
from textgen.sources import StreamSource
from textgen.training import Validation, train
from textgen.vocab import Vocabulary

ROOT = Path(__file__).resolve().parents[1]
NANOGPT_WINDOW = 256  # nanoGPT's block_size for shakespeare_char
OUT_NAME = "bench-quality.json"  # the curve's file name, also inside an --out folder

# The reference's held-out NLL (tinyshakespeare, last 10%, 256-character windows), by (peak
# learning rate, tokens of the cosine schedule) and then tokens seen: issue 25's figures.
REFERENCE = {
    (5e-3, 7.0e6): {7.0e6: "1.599-1.616"},
    (1e-2, 7.0e6): {7.0e6: "1.562"},
    (2e-2, 7.0e6): {7.0e6: "1.556"},
    (2e-2, 44.9e6): {7.5e6: "1.557", 15e6: "1.510", 22e6: "1.490"},
}


def token_count(text: str) -> float:
    """7.0M, 15M, 44.9M, 7000000 -> tokens."""
    scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(text[-1:].upper(), 1.0)
    number = text[:-1] if scale != 1.0 else text
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a count such as 7.0M or 22000000") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be positive")
    return value


class Budgets(keras.callbacks.Callback):
    """Scores the held-out text after each budget's step (the model as it is then: the run
    goes on) and stops training after the last."""

    def __init__(self, steps: list[int], scorer) -> None:
        super().__init__()
        self.steps, self.scorer, self.step, self.nll = steps, scorer, 0, {}

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.step += 1
        if self.step in self.steps:
            self.nll[self.step] = self.scorer(self.model)
            print(f"  step {self.step}: held-out {self.nll[self.step]:.4f}", flush=True)
            if self.step == self.steps[-1]:
                self.model.stop_training = True


def model_variant(
    vocab: int,
    p: LSTMParams,
    keras_init: bool,
    embedding_dropout: bool,
    output_dropout: bool = True,
):
    """``build_model`` with other choices, each a lever of its own: Keras' uniform(-0.05, 0.05)
    embedding initialisation, dropout on the embedding's output too, and (``output_dropout``
    False) dropout between the LSTMs only, as PyTorch's ``nn.LSTM(dropout=...)``, none before
    the logits."""
    model = build_model(vocab, **p.architecture)
    if keras_init:
        embedding = model.get_layer("embedding")
        embedding.embeddings.assign(
            keras.initializers.RandomUniform(-0.05, 0.05)(embedding.embeddings.shape)
        )
    if not embedding_dropout and output_dropout:
        return model
    x = model.get_layer("embedding").output
    if embedding_dropout:
        x = keras.layers.Dropout(p.dropout, name="dropout_embedding")(x)
    for i in range(p.layers):
        x, _, _ = model.get_layer(f"lstm_{i}")(x)
        if output_dropout or i < p.layers - 1:
            x = model.get_layer(f"dropout_{i}")(x)
    return keras.Model(model.input, model.get_layer("logits")(x), name="lstm_lm")


class Clock(keras.callbacks.Callback):
    """Training seconds (each epoch's, from its start to its last batch: validation and the
    other end-of-epoch work left out); stops training once they pass ``budget``, and records
    the validation loss at every epoch's end against them."""

    def __init__(self, budget: float) -> None:
        super().__init__()
        self.budget, self.curve, self.done = budget, [], 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_start, self.in_epoch = time.perf_counter(), 0.0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.in_epoch = time.perf_counter() - self.epoch_start
        if self.done + self.in_epoch >= self.budget:
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.done += self.in_epoch
        self.curve.append({"seconds": round(self.done, 1), "nll": float(logs["val_loss"])})


def plain_model(vocab: int, p: LSTMParams) -> keras.Model:
    lstms = [keras.layers.LSTM(p.hidden, return_sequences=True) for _ in range(p.layers)]
    embed = keras.layers.Embedding(vocab, p.embedding_dim)
    return keras.Sequential(
        [keras.Input((None,), dtype="int32"), embed, *lstms, keras.layers.Dense(vocab)]
    )


def steps_per_second(build, fit_steps, probe_steps: int) -> float:
    """Steps per second of a throwaway model, after its first (tracing) steps."""
    model = build()
    times = []

    class Stamp(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            times.append(time.perf_counter())

    fit_steps(model, probe_steps + 4, [Stamp()], epochs=1)  # no validation inside the probe
    return (len(times) - 4) / (times[-1] - times[3])


def windows_nll(model: keras.Model, tokens: np.ndarray, batch: int = 64) -> float:
    """Mean NLL over every position of independent windows of 256 (nanoGPT's estimate_loss,
    on all the windows instead of random ones)."""
    return score(model, StreamSource(tokens).validation_layout(NANOGPT_WINDOW), batch).value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=ROOT.parent / "shared/data/tinyshakespeare.txt"
    )
    parser.add_argument("--budget-s", type=float, default=600.0, help="training seconds each")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="an lstm param"
    )
    parser.add_argument("--probe-steps", type=int, default=20)
    parser.add_argument("--curve-points", type=int, default=10)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--tokens",
        type=token_count,
        nargs="+",
        metavar="N",
        help="quality per token: train textgen's model for these budgets (7.0M, 15M, ...)",
    )
    parser.add_argument(
        "--schedule-tokens", type=token_count, help="where the cosine ends (default: the last N)"
    )
    parser.add_argument("--keras-init", action="store_true", help="embedding uniform(-0.05, 0.05)")
    parser.add_argument(
        "--embedding-dropout", action="store_true", help="dropout on the embedding too"
    )
    parser.add_argument(
        "--no-output-dropout",
        action="store_true",
        help="dropout between the LSTMs only (none before the logits), as PyTorch's nn.LSTM",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(OUT_NAME),
        help=f"the curve's JSON file, or a folder to write {OUT_NAME} in (checked before training)",
    )
    args = parser.parse_args()
    # Checked now: the curve is written after minutes of training.
    out = args.out / OUT_NAME if args.out.is_dir() else args.out
    if not out.parent.is_dir():
        parser.error(f"--out: the folder {out.parent} does not exist")

    tf.get_logger().setLevel("ERROR")
    if not args.corpus.is_file():
        parser.error(
            f"--corpus: {args.corpus} not found (tinyshakespeare is nanoGPT's and char-rnn's "
            "input.txt; pass its path, or any UTF-8 text)"
        )
    text = args.corpus.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    vocab = Vocabulary.from_text(text[:cut])
    train_ids, val_ids = vocab.encode(text[:cut]), vocab.encode(text[cut:])
    source, curve = StreamSource(train_ids), StreamSource(val_ids[: len(val_ids) // 8])
    overrides = dict(item.split("=", 1) for item in args.set)
    p = load_params(ROOT / "params.yaml").lstm.model_copy(
        update={key: yaml.safe_load(value) for key, value in overrides.items()}
    )
    p = type(p).model_validate(p.model_dump())  # the overrides, validated
    seed = 0
    seed_everything(seed)
    print(
        f"{args.corpus.name}: {len(train_ids):,} train / {len(val_ids):,} held-out characters, "
        f"vocabulary {len(vocab)} (unknown held-out: {np.mean(val_ids == vocab.unk_id):.1e})"
        + ("" if args.tokens else f"; budget {args.budget_s:.0f} s of training each")
    )
    print(f"model {p.layers}x{p.hidden} LSTM, embedding {p.embedding_dim}; overrides {overrides}")

    def ours(model: keras.Model, steps: int, callbacks: list, epochs: int = 0) -> None:
        epochs = epochs or min(args.curve_points, steps)
        q = p.model_copy(update={"epochs": epochs, "steps_per_epoch": max(steps // epochs, 1)})
        train(model, source, curve, q, seed, callbacks=callbacks, verbose=0)

    def plain(model: keras.Model, steps: int, callbacks: list, epochs: int = 0) -> None:
        epochs = epochs or min(args.curve_points, steps)
        ds = source.batches(p.batch_size, p.seq_len, seed, max(steps // epochs, 1))
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        # Validated as train() validates, by the same scorer on the same windows.
        val = Validation(curve.validation_layout(p.seq_len), p.eval_batch_size)
        fit = {"epochs": epochs, "steps_per_epoch": max(steps // epochs, 1), "verbose": 0}
        model.fit(ds, callbacks=[val, *callbacks], shuffle=False, **fit)

    def build() -> keras.Model:
        return model_variant(
            len(vocab), p, args.keras_init, args.embedding_dropout, not args.no_output_dropout
        )

    if args.tokens:
        per_token(args, build, p, source, curve, val_ids, seed)
        return
    contenders = [("textgen", build, ours)]
    if not args.no_baseline:
        contenders.append(("plain Keras", lambda: plain_model(len(vocab), p), plain))
    records, rows = [], []
    for name, build, fit_steps in contenders:
        rate = steps_per_second(build, fit_steps, args.probe_steps)
        steps = int(rate * args.budget_s)
        keras.utils.set_random_seed(seed)
        model, clock = build(), Clock(args.budget_s)
        fit_steps(model, steps, [clock])
        nll = windows_nll(model, val_ids)
        held_out = StreamSource(val_ids)
        carried = heldout_nll(model, held_out, 64) if name == "textgen" else float("nan")
        rows.append((name, rate, steps, clock.curve[-1]["seconds"], nll, carried))
        records += [{"model": name, **point} for point in clock.curve]
        print(f"{name}: {clock.curve}", flush=True)

    print(
        f"\n{'model':<12} {'steps/s':>8} {'steps':>6} {'train s':>8} "
        f"{'NLL (256 windows)':>18} {'NLL (state carried)':>20}"
    )
    for name, rate, steps, seconds, nll, carried in rows:
        print(f"{name:<12} {rate:>8.2f} {steps:>6} {seconds:>8.0f} {nll:>18.4f} {carried:>20.4f}")
    out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"curve: {out} (dvc plots show {out} -x seconds -y nll)")


def per_token(args, build, p: LSTMParams, source, curve, val_ids, seed: int) -> None:
    """Quality per token: one run to the last budget, scored at every budget."""
    budgets = sorted(args.tokens)
    per_step = p.batch_size * p.seq_len
    steps = [max(1, round(t / per_step)) for t in budgets]
    schedule = max(round((args.schedule_tokens or budgets[-1]) / per_step), steps[-1])
    # An epoch is at most one pass over the training split (StreamSource caps it): as many
    # epochs as the schedule needs, so that train()'s cosine ends where it should.
    per_epoch = min(
        -(-schedule // args.curve_points), source.steps_per_epoch(p.batch_size, p.seq_len)
    )
    epochs = -(-schedule // per_epoch)
    schedule = epochs * per_epoch
    # Early stopping off: a budget is trained whole, as the reference's runs were.
    q = p.model_copy(update={"epochs": epochs, "steps_per_epoch": per_epoch, "patience": epochs})
    print(
        f"budgets {', '.join(f'{t / 1e6:g}M' for t in budgets)} tokens = steps {steps}; "
        f"cosine over {schedule} steps ({schedule * per_step / 1e6:.1f}M tokens); "
        f"peak learning rate {p.learning_rate:g}, dropout {p.dropout:g}, "
        f"{'Keras' if args.keras_init else 'N(0, 1)'} embedding init, "
        f"dropout {'on' if args.embedding_dropout else 'not on'} the embedding, "
        f"{'not ' if args.no_output_dropout else ''}before the logits",
        flush=True,
    )
    keras.utils.set_random_seed(seed)
    model = build()
    budgets_ = Budgets(steps, lambda m: windows_nll(m, val_ids))
    start = time.perf_counter()
    train(model, source, curve, q, seed, callbacks=[budgets_], verbose=0)
    seconds = time.perf_counter() - start
    if budgets_.step < steps[-1]:
        raise SystemExit(f"training stopped after {budgets_.step} steps, before the last budget")
    # The reference run of this peak and schedule (within 1%: whole epochs round the schedule).
    known = [
        r
        for (rate, tokens), r in REFERENCE.items()
        if rate == round(p.learning_rate, 6) and abs(schedule * per_step - tokens) / tokens < 0.01
    ]
    reference = known[0] if known else {}
    print(f"\n{'tokens':>8} {'steps':>6} {'held-out NLL':>13} {'reference':>12}")
    for tokens, step in zip(budgets, steps, strict=True):
        near = [r for t, r in reference.items() if abs(t - step * per_step) / t < 0.02]
        print(
            f"{tokens / 1e6:>7.2f}M {step:>6} {budgets_.nll.get(step, float('nan')):>13.4f} "
            f"{near[0] if near else '-':>12}"
        )
    print(f"{seconds:.0f} s ({steps[-1] * per_step / seconds:,.0f} tokens/s, scoring included)")


if __name__ == "__main__":
    main()
