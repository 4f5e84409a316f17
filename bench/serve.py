"""The page's token streams under load: time to first token (from the request's arrival) and
tokens/s per stream, with 1 and with 10 concurrent clients (each a separate /api/generate
request, one sample each), with the revision listing warm (just read) and cold (expired when
the requests arrive, as after any quiet spell: they must not wait for `dvc exp show`).

Starts the app in this process on a free loopback port over a pipeline repository with
trained models (default: this checkout, after `make run`), with as many generation slots as
clients, warms the model cache (the first request loads and compiles), then measures. A
stream's tokens/s counts from its first token to its last, so loading and queueing show in
the time to first token only. The baseline,
in the same run: the same sample drawn in-process by ``Sampler.generate`` in one call (no
server, no chunks), so the ratio is what streaming over HTTP costs; beside it
``Sampler.stream`` in-process, with chunks that grow (what the page gets) and with every
chunk as small as the first (the schedule before chunks grew).

Without a trained model (no ``models/lstm.keras`` before `make run`), ``--fresh`` measures
an untrained LSTM of ``params.yaml``'s size in a scratch repository: speed does not depend on
the weights.

    .venv/bin/python bench/serve.py [--root .] [--rev workspace] [--model lstm] [--length 400]
        [--fresh] [--chunk 8] [--max-chunk 128]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # serve/ lives beside textgen/

import uvicorn

import serve.app
import serve.revisions
from serve.app import create_app
from serve.models import MODELS
from textgen.artifacts import load_model, save_model
from textgen.config import load_params
from textgen.model import build_model
from textgen.sampling import MAX_CHUNK, Decoding, prompt_context, sampler_for
from textgen.vocab import Vocabulary

ROOT = Path(__file__).resolve().parents[1]
# The listing's lifetime here: a cold round waits this long first, so that every one of its
# requests finds the listing expired.
LISTING_TTL_S = 1.0


def stream(base: str, params: dict) -> dict:
    """One client: read the event stream, time its first tokens event and its end."""
    url = f"{base}/api/generate?{urllib.parse.urlencode(params)}"
    t0 = time.perf_counter()
    first = None
    tokens = 0
    with urllib.request.urlopen(url, timeout=600) as resp:
        event = None
        for raw in resp:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "tokens":
                data = json.loads(line[6:])
                first = first if first is not None else time.perf_counter() - t0
                tokens = data["step"]
            elif line.startswith("data: ") and event == "error":
                raise RuntimeError(line)
    total = time.perf_counter() - t0
    return {"ttft": first, "total": total, "tokens": tokens}


def run(base: str, clients: int, params: dict) -> list[dict]:
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda i: stream(base, {**params, "seed": i}), range(clients)))


def in_process_rates(
    root: Path, model: str, length: int, chunk: int, max_chunk: int
) -> dict[str, float]:
    """Tokens/s (median of 3) of one sample drawn in-process, no server: by one
    ``Sampler.generate`` call, by ``Sampler.stream`` with chunks growing from ``chunk`` to
    ``max_chunk``, and by ``Sampler.stream`` with every chunk ``chunk`` steps."""
    keras_model, vocab = load_model(root / MODELS[model])
    sampler = sampler_for(keras_model, vocab)
    prompt = prompt_context(vocab, "")
    runs = {
        "generate": lambda seed: sampler.generate(prompt, 1, length, Decoding(0.8), seed),
        "growing": lambda seed: list(
            sampler.stream(prompt, 1, length, Decoding(0.8), seed, chunk, max_chunk)
        ),
        "fixed": lambda seed: list(
            sampler.stream(prompt, 1, length, Decoding(0.8), seed, chunk, max_chunk=chunk)
        ),
    }
    rates = {}
    for name, draw in runs.items():
        draw(0)  # trace
        times = []
        for seed in range(3):
            t0 = time.perf_counter()
            draw(seed)
            times.append(time.perf_counter() - t0)
        rates[name] = length / statistics.median(times)
    return rates


def fresh_repository(folder: Path) -> Path:
    """A scratch pipeline repository (git and DVC, nothing committed) whose workspace holds an
    untrained LSTM of ``params.yaml``'s size over printable ASCII, where the page finds it."""
    p = load_params(ROOT / "params.yaml").lstm
    vocab = Vocabulary.from_text(string.printable)
    net = build_model(len(vocab), p.embedding_dim, p.hidden, p.layers)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for cmd in (
        ["git", "init", "-q"],
        [sys.executable, "-m", "dvc", "init", "-q"],
        [*git, "commit", "-qm", "dvc init"],  # a commit to list, as a real repository has
    ):
        subprocess.run(cmd, cwd=folder, check=True, capture_output=True)
    save_model(net, vocab, folder / MODELS["lstm"])
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--rev", default="workspace")
    parser.add_argument("--model", default="lstm", choices=["lstm", "gan"])
    parser.add_argument("--length", type=int, default=400)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10])
    parser.add_argument(
        "--chunk", type=int, default=serve.app.CHUNK, help="sampling steps of the first event"
    )
    parser.add_argument(
        "--max-chunk",
        type=int,
        default=MAX_CHUNK,
        help="the in-process stream's largest chunk (the page's is Sampler.stream's default)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="measure an untrained LSTM of params.yaml's size in a scratch repository",
    )
    args = parser.parse_args()
    if args.fresh and args.model != "lstm":
        parser.error("--fresh: builds the lstm model only")
    if args.fresh and args.rev != "workspace":
        parser.error("--fresh: the scratch repository has the workspace only")
    model_file = args.root / MODELS[args.model]
    if not args.fresh and args.rev == "workspace" and not model_file.is_file():
        parser.error(
            f"--root: {model_file} not found (train it with `make run`, or pass --fresh to "
            "measure an untrained model of params.yaml's size)"
        )
    serve.app.CHUNK = args.chunk  # read by each stream as it starts
    if args.fresh:
        with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
            measure(fresh_repository(Path(scratch)), args)
    else:
        measure(args.root, args)


def measure(root: Path, args: argparse.Namespace) -> None:
    """The streams over HTTP, then the in-process rates, printed as a table."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.revisions.LISTING_TTL_S = LISTING_TTL_S  # read by the store at each request
    app = create_app(root, max_streams=max(args.clients))
    store = app.state.store
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    params = {"rev": args.rev, "model": args.model, "length": args.length, "n": 1}
    store.wait_listed(300)
    stream(base, {**params, "length": 16})  # load the model, trace the sampler

    print(
        f"{args.model} at {args.rev}{' (untrained, --fresh)' if args.fresh else ''}, "
        f"{args.length} tokens per stream, one sample each, first event {args.chunk} steps"
    )
    print("time to first token from the request's arrival; tokens/s from the first token")
    print("listing  clients  ttft median / max (s)  tokens/s per stream (median)  total tokens/s")
    solo_rate = None
    for listing in ("warm", "cold"):
        for clients in args.clients:
            if listing == "warm":
                store.refresh()  # a fresh listing: no request of the round finds it expired
                store.wait_listed(300)
            else:
                time.sleep(LISTING_TTL_S + 0.1)  # every request of the round finds it expired
            t0 = time.perf_counter()
            results = run(base, clients, params)
            wall = time.perf_counter() - t0
            ttft = [r["ttft"] for r in results]
            rates = [r["tokens"] / max(r["total"] - r["ttft"], 1e-9) for r in results]
            total = sum(r["tokens"] for r in results) / wall
            if clients == 1 and listing == "warm":
                # The whole request (first chunk included), as generate's rate is timed: with
                # large chunks a stream has few events and the rate after the first means little.
                solo_rate = statistics.median(r["tokens"] / r["total"] for r in results)
            print(
                f"{listing:7s}  {clients:7d}  {statistics.median(ttft):8.3f} / {max(ttft):6.3f}"
                f"  {statistics.median(rates):27.0f}  {total:14.0f}"
            )
    server.should_exit = True
    rates = in_process_rates(root, args.model, args.length, args.chunk, args.max_chunk)
    alone = rates["generate"]
    print(f"baseline, in-process, one sample: Sampler.generate {alone:.0f} tokens/s")
    print(
        f"  Sampler.stream, chunks {args.chunk} doubling to {args.max_chunk}: "
        f"{rates['growing'] / alone:.2f}x generate"
    )
    print(
        f"  Sampler.stream, every chunk {args.chunk} (before chunks grew): "
        f"{rates['fixed'] / alone:.2f}x generate"
    )
    if solo_rate is not None:
        print(f"  one stream over HTTP, whole request: {solo_rate / alone:.2f}x generate")


if __name__ == "__main__":
    main()
