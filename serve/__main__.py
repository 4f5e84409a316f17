"""``python -m serve [--host 127.0.0.1] [--port 8000] [--root .] [--commits 10]
[--allowed-host NAME ...] [--max-streams 4] [--max-models 4] [--max-revisions 8]``: the page on
uvicorn."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from serve import MAX_MODELS, MAX_REVISIONS, MAX_STREAMS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serve", description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default loopback: the page runs models for whoever reaches it)",
    )
    parser.add_argument("--root", type=Path, default=Path("."), help="the pipeline repository")
    parser.add_argument(
        "--commits", type=int, default=10, help="how many recent commits (and their experiments)"
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another host name the page answers to (repeatable; loopback names and --host "
        "always are); '*' accepts any, which lets other sites drive the page by DNS rebinding",
    )
    parser.add_argument(
        "--max-streams",
        type=int,
        default=MAX_STREAMS,
        help=f"generations at once; beyond, 429 (default {MAX_STREAMS})",
    )
    parser.add_argument(
        "--max-models",
        type=int,
        default=MAX_MODELS,
        help=f"models kept loaded, least recently used dropped (default {MAX_MODELS})",
    )
    parser.add_argument(
        "--max-revisions",
        type=int,
        default=MAX_REVISIONS,
        help=f"revisions whose repository is kept open for reading (default {MAX_REVISIONS})",
    )
    args = parser.parse_args(argv)
    if not (args.root / "dvc.yaml").is_file():
        sys.exit(f"error: {args.root.resolve()} has no dvc.yaml: point --root at the pipeline")
    if not 0 < args.port < 65536:
        sys.exit("error: --port must be from 1 to 65535")
    for flag in ("commits", "max_streams", "max_models", "max_revisions"):
        if getattr(args, flag) < 1:
            sys.exit(f"error: --{flag.replace('_', '-')} must be positive")

    import uvicorn

    from serve.app import allowed_hosts, create_app
    from textgen.errors import configure_logging

    configure_logging()
    hosts = allowed_hosts(args.host, args.allowed_host)
    app = create_app(
        args.root,
        args.commits,
        hosts=hosts,
        max_streams=args.max_streams,
        max_models=args.max_models,
        max_revisions=args.max_revisions,
    )
    print(f"textgen page on http://{args.host}:{args.port}/ (Ctrl-C stops it)")
    print(f"answering requests for: {', '.join(sorted(hosts))} (--allowed-host adds a name)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
