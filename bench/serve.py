"""The page's token streams under load: time to first token and tokens/s per stream, with 1
and with 10 concurrent clients (each a separate /api/generate request, one sample each).

Starts the app in this process on a free loopback port over a pipeline repository with
trained models (default: this checkout, after `make run`), warms the model cache (the first
request loads and compiles), then measures. A stream's tokens/s counts from its first token
to its last, so loading and queueing show in the time to first token only. The baseline,
in the same run: the same sample drawn in-process by ``Sampler.generate`` in one call (no
server, no chunks), so the ratio is what streaming over HTTP costs.

    .venv/bin/python bench/serve.py [--root .] [--rev workspace] [--model lstm] [--length 400]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # serve/ lives beside textgen/

import uvicorn

import serve.app
from serve.app import create_app
from serve.models import MODELS
from textgen.artifacts import load_model
from textgen.sampling import Decoding, prompt_context, sampler_for


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


def in_process_rates(root: Path, model: str, length: int, chunk: int) -> tuple[float, float]:
    """Tokens/s (median of 3) of one sample drawn in-process, no server: by one
    ``Sampler.generate`` call, and by ``Sampler.stream`` in chunks of ``chunk`` steps."""
    keras_model, vocab = load_model(root / MODELS[model])
    sampler = sampler_for(keras_model, vocab)
    prompt = prompt_context(vocab, "")
    runs = {
        "generate": lambda seed: sampler.generate(prompt, 1, length, Decoding(0.8), seed),
        "stream": lambda seed: list(
            sampler.stream(prompt, 1, length, Decoding(0.8), seed, chunk=chunk)
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
    return rates["generate"], rates["stream"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--rev", default="workspace")
    parser.add_argument("--model", default="lstm", choices=["lstm", "gan"])
    parser.add_argument("--length", type=int, default=400)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10])
    parser.add_argument(
        "--chunk", type=int, default=serve.app.CHUNK, help="sampling steps per streamed event"
    )
    args = parser.parse_args()
    serve.app.CHUNK = args.chunk  # read by each stream as it starts

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(args.root), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    params = {"rev": args.rev, "model": args.model, "length": args.length, "n": 1}
    stream(base, {**params, "length": 16})  # load the model, trace the sampler

    print(
        f"{args.model} at {args.rev}, {args.length} tokens per stream, one sample each, "
        f"{args.chunk} steps per event"
    )
    print("clients  ttft median / max (s)  tokens/s per stream (median)  total tokens/s")
    solo_rate = None
    for clients in args.clients:
        t0 = time.perf_counter()
        results = run(base, clients, params)
        wall = time.perf_counter() - t0
        ttft = [r["ttft"] for r in results]
        rates = [r["tokens"] / max(r["total"] - r["ttft"], 1e-9) for r in results]
        total = sum(r["tokens"] for r in results) / wall
        if clients == 1:
            # The whole request (first chunk included), as generate's rate is timed: with
            # large chunks a stream has few events and the rate after the first means little.
            solo_rate = statistics.median(r["tokens"] / r["total"] for r in results)
        print(
            f"{clients:7d}  {statistics.median(ttft):8.3f} / {max(ttft):6.3f}"
            f"  {statistics.median(rates):27.0f}  {total:14.0f}"
        )
    server.should_exit = True
    alone, streamed = in_process_rates(args.root, args.model, args.length, args.chunk)
    print(f"baseline, in-process, one sample: Sampler.generate {alone:.0f} tokens/s")
    print(f"  Sampler.stream ({args.chunk} steps a chunk): {streamed / alone:.2f}x generate")
    if solo_rate is not None:
        print(f"  one stream over HTTP, whole request: {solo_rate / alone:.2f}x generate")


if __name__ == "__main__":
    main()
