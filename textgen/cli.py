"""Command line: ``python -m textgen generate ...``, ``python -m textgen export ...``,
``python -m textgen fetch-corpus``, ``python -m textgen plots-template`` and
``python -m textgen study``."""

from __future__ import annotations

import argparse
from pathlib import Path

from textgen.errors import UserError, configure_logging, exit_on_user_error

BUILTIN_DEST = Path("data/raw/shakespeare")
# Where .dvc/config's plots.html_template points (a path relative to .dvc/).
PLOTS_TEMPLATE = Path(".dvc/plots/offline.html")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m textgen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="sample text from a trained model")
    gen.add_argument("--model", type=Path, default=Path("models/lstm.keras"))
    gen.add_argument("--prompt", default="\n", help="text to continue (default: a new line)")
    gen.add_argument("-n", "--num-samples", type=int, default=1)
    gen.add_argument("--length", type=int, default=400, help="tokens to generate per sample")
    gen.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    gen.add_argument("--top-k", type=int, default=0, help="0 = off")
    gen.add_argument("--top-p", type=float, default=1.0, help="1 = off")
    gen.add_argument(
        "--repetition-penalty",
        type=float,
        default=1.0,
        help="1 = off; above 1, tokens already in the prompt or the sample are less likely",
    )
    gen.add_argument(
        "--no-repeat-ngram",
        type=int,
        default=0,
        metavar="N",
        help="0 = off; no N-gram occurs twice in a sample (prompt included)",
    )
    gen.add_argument(
        "--min-length",
        type=int,
        default=0,
        help="tokens before the end token may end a sample or a stop string may match",
    )
    gen.add_argument(
        "--stop",
        action="append",
        default=[],
        metavar="TEXT",
        help="end a sample's text before this string (repeatable; the first one found wins)",
    )
    gen.add_argument("--seed", type=int, default=0)

    exp = sub.add_parser(
        "export",
        help="write a trained model for use without textgen (SavedModel, TFLite step model)",
        description="Write MODEL (a .keras file with its .vocab.json beside it) into the folder "
        "OUT: a SavedModel whose `generate` signature turns prompts into text with TensorFlow "
        "alone, a TFLite step model and the vocabulary (docs/shipping.md). The pipeline's "
        "export stage does the same for both models and adds their model cards. OUT must be "
        "new, empty, or an earlier export.",
    )
    exp.add_argument("model", type=Path, help="e.g. models/lstm.keras")
    exp.add_argument("out", type=Path, help="the export's folder")

    fetch = sub.add_parser(
        "fetch-corpus",
        help="download and unpack the built-in corpus",
        description="Install the built-in corpus into a new or empty folder, or one it installed "
        "before (its manifest, .textgen-corpus.json, lists the files it put there; only those "
        "are ever replaced or removed). When the folder is already complete, nothing is fetched.",
    )
    fetch.add_argument(
        "--corpus",
        choices=["shakespeare", "korean"],
        default="shakespeare",
        help="shakespeare (the default run's), or korean: Korean laws and bills, 65,000 "
        "characters, for the tokenizers' comparison (docs/korean.md)",
    )
    fetch.add_argument(
        "--dest",
        type=Path,
        help=f"a folder of its own for the corpus (default: {BUILTIN_DEST}, or "
        "data/raw/korean with --corpus korean)",
    )
    fetch.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="fetch only if this file's data.corpus uses the built-in corpus",
    )

    template = sub.add_parser(
        "plots-template",
        help="write the HTML template `dvc plots show` uses, with Vega inline (offline charts)",
        description="Write an HTML template for `dvc plots show` (.dvc/config: "
        "plots.html_template) that carries vega, vega-lite and vega-embed inline, from the "
        "installed vl-convert, instead of DVC's links to a public CDN: the charts then draw "
        "without network. `make setup` runs this.",
    )
    template.add_argument("--out", type=Path, default=PLOTS_TEMPLATE)

    study = sub.add_parser(
        "study",
        help="the LSTM-vs-GAN verdict over several training seeds, each a DVC experiment",
        description="Run in a pipeline's folder (the root, or oracle/). With --queue: queue one "
        "experiment per seed of params.yaml's study.seeds, named NAME-seed-S, with -S seed=S "
        "and the overrides given; run them with `dvc queue start`. Without: read those "
        "experiments' sweeps and bootstrap replicates and write study/NAME.md and "
        "study/NAME.json: a row per seed and the verdict pooled over seeds x samples (a "
        "hierarchical bootstrap; docs/evaluation.md).",
    )
    study.add_argument("name", nargs="?", default="study", help="the study (default: study)")
    study.add_argument("--queue", action="store_true", help="queue the experiments")
    study.add_argument(
        "-S",
        "--set-param",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --queue: a params.yaml override for every seed (repeatable)",
    )
    study.add_argument("--seeds", type=int, nargs="+", help="instead of study.seeds")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    configure_logging()
    exit_on_user_error(lambda: _run(args))


def _run(args: argparse.Namespace) -> None:
    if args.command == "study":
        _study(args)
        return

    if args.command == "fetch-corpus":
        from textgen.config import load_params
        from textgen.datasets import KOREAN, SHAKESPEARE, install_builtin

        if args.corpus == "korean":  # asked for by name: always installed
            corpus, dest = KOREAN, args.dest or Path("data/raw/korean")
        else:
            corpus, dest = SHAKESPEARE, args.dest or BUILTIN_DEST
            if args.params.is_file():
                used = Path(load_params(args.params).data.corpus)
                if not used.is_relative_to(dest):
                    print(f"data.corpus is {used}, not the built-in corpus: nothing to fetch")
                    return
        try:
            dest = install_builtin(dest, corpus=corpus)
        except OSError as err:  # a folder it cannot write, a full disk: the user can fix those
            raise UserError(f"fetch-corpus: {err}") from None
        print(f"{corpus.name} corpus ready in {dest}")
        return

    if args.command == "export":
        from textgen.artifacts import load_model
        from textgen.export import check_destination, export

        check_destination(args.out)  # before the model is read: nothing is written on refusal
        model, vocab = load_model(args.model)
        done = export(model, vocab, args.out, source=args.model)
        print(
            f"wrote {done.folder}/: SavedModel {done.saved_model_bytes / 1e6:.2f} MB, TFLite "
            f"step model {done.tflite_bytes / 1e6:.2f} MB (weights {done.weights_bytes / 1e6:.2f}"
            " MB), vocabulary"
        )
        return

    if args.command == "plots-template":
        from textgen.artifacts import write_text_atomic
        from textgen.figures import offline_plots_template

        try:
            write_text_atomic(args.out, offline_plots_template())
        except OSError as err:
            raise UserError(f"plots-template: {err}") from None
        print(f"wrote {args.out} (dvc plots show: charts drawn offline)")
        return

    from textgen.artifacts import load_model
    from textgen.config import SEED_LIMIT
    from textgen.sampling import Decoding, check_stops, generate_texts

    try:
        decoding = Decoding(
            args.temperature,
            args.top_k,
            args.top_p,
            args.repetition_penalty,
            args.no_repeat_ngram,
            args.min_length,
        )
    except ValueError as err:
        raise UserError(str(err)) from None
    if args.num_samples < 1 or args.length < 1:
        raise UserError("--num-samples and --length must be positive")
    try:
        stops = check_stops(args.stop, args.length)
    except ValueError as err:
        raise UserError(f"--stop: {err}") from None
    if not 0 <= args.seed < SEED_LIMIT:
        raise UserError(f"--seed must be an integer from 0 to {SEED_LIMIT - 1}")
    model, vocab = load_model(args.model)
    texts = generate_texts(
        model, vocab, args.prompt, args.num_samples, args.length, decoding, args.seed, stops
    )
    for i, text in enumerate(texts):
        if i:
            print("\n" + "-" * 40)
        print(args.prompt + text)


def _study(args: argparse.Namespace) -> None:
    from textgen import study
    from textgen.artifacts import write_json, write_text_atomic
    from textgen.config import load_params

    params = load_params()
    seeds = args.seeds
    if seeds is None:
        if params.study is None:
            raise UserError("params.yaml: no study section (study.seeds: the training seeds)")
        seeds = params.study.seeds
    if args.queue:
        if any(o.split("=", 1)[0].strip() == "seed" for o in args.overrides):
            raise UserError("study: -S seed=... is the study's to set (study.seeds or --seeds)")
        names = study.queue(args.name, seeds, args.overrides)
        print(
            f"queued {', '.join(names)}: run them with `dvc queue start -j 1`, follow with "
            f"`dvc queue status`, then `python -m textgen study {args.name}`"
        )
        return
    if args.overrides:
        raise UserError("study: -S only with --queue (the experiments carry their params)")
    runs = []
    for seed in seeds:
        name = study.experiment_name(args.name, seed)
        print(f"reading {name}")
        runs.append(study.read_experiment(name))
    result = study.study(runs, seed=params.seed)
    text = study.render(result, args.name)
    write_text_atomic(Path("study") / f"{args.name}.md", text + "\n")
    write_json(Path("study") / f"{args.name}.json", study.summary(result))
    print(text)
    print(f"wrote study/{args.name}.md and study/{args.name}.json")
