"""``python -m serve [--host 127.0.0.1] [--port 8000] [--root .] [--commits 10]``: the page on
uvicorn."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
    args = parser.parse_args(argv)
    if not (args.root / "dvc.yaml").is_file():
        sys.exit(f"error: {args.root.resolve()} has no dvc.yaml: point --root at the pipeline")
    if not 0 < args.port < 65536:
        sys.exit("error: --port must be from 1 to 65535")
    if args.commits < 1:
        sys.exit("error: --commits must be positive")

    import uvicorn

    from serve.app import create_app
    from textgen.errors import configure_logging

    configure_logging()
    print(f"textgen page on http://{args.host}:{args.port}/ (Ctrl-C stops it)")
    uvicorn.run(
        create_app(args.root, args.commits), host=args.host, port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
