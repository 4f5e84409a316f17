"""The web app: FastAPI routes for the page, the revisions, what to read at one, and token
streams (server-sent events) from the pipeline's one sampler."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError, field_validator

from serve.charts import read_revision
from serve.models import LABELS, MODELS, ModelCache, UnknownModel
from serve.revisions import RevisionStore, UnknownRevision, as_dicts
from textgen.config import SEED_LIMIT
from textgen.errors import UserError
from textgen.figures import javascript_bundle
from textgen.sampling import Decoding, prompt_context

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"

# Caps: one request may not hold the CPU for minutes or fill the page.
MAX_LENGTH = 1000
MAX_SAMPLES = 8
MAX_PROMPT_CHARS = 500
CHUNK = 8  # tokens per streamed event: small enough to look live, large enough to be cheap


class GenerateRequest(BaseModel):
    """A generation's settings; every bound is checked here, before any model is loaded."""

    rev: str = Field("workspace", max_length=64)
    model: str = Field("lstm", max_length=32)
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    temperature: float = Field(0.8, ge=0, le=5)
    top_k: int = Field(0, ge=0, le=100_000)
    top_p: float = Field(1.0, gt=0, le=1)
    length: int = Field(200, ge=1, le=MAX_LENGTH)
    seed: int = Field(0, ge=0, lt=SEED_LIMIT)
    n: int = Field(1, ge=1, le=MAX_SAMPLES)

    @field_validator("rev", "model")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value.replace("-", "").replace("_", "").isalnum():
            raise ValueError("must be a name from the list")
        return value


# Settings named as the page labels them.
LABEL_OF = {"n": "samples", "top_k": "top-k", "top_p": "top-p", "rev": "revision"}


def _message(err: ValidationError | RequestValidationError) -> str:
    """One line per bad setting, named as on the page (no traceback)."""
    parts = []
    for e in err.errors():
        where = ".".join(
            LABEL_OF.get(str(p), str(p)) for p in e.get("loc", ()) if p not in ("query", "body")
        )
        parts.append(f"{where}: {e.get('msg', 'invalid')}".removeprefix(": "))
    return "; ".join(parts) or "invalid settings"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@lru_cache(maxsize=1)
def _vega_bundle() -> str:
    return javascript_bundle()  # vega, vega-lite and vega-embed, from the installed vl-convert


def create_app(root: str | Path = ".", num_commits: int = 10) -> FastAPI:
    """The app over the pipeline repository at ``root``, offering its workspace, its last
    ``num_commits`` commits and their experiments."""
    store = RevisionStore(root, num_commits)
    models = ModelCache(store)
    app = FastAPI(title="textgen", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store, app.state.models = store, models

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
        return _error(400, _message(err))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        # Logged in full on the console; the page gets one line.
        log.exception("request %s failed", request.url.path)
        return _error(500, f"internal error ({type(err).__name__}); see the server's log")

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)  # none: a quiet console, not a 404 per load

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        # A fixed set of files: the name never becomes a path unless it is one of them.
        files = {"page.js": "text/javascript", "page.css": "text/css"}
        if name == "vega.js":
            return Response(_vega_bundle(), media_type="text/javascript")
        if name not in files:
            return _error(404, f"no static file {name!r}")
        return FileResponse(STATIC / name, media_type=files[name])

    @app.get("/api/revisions")
    def revisions() -> dict:
        return {
            "revisions": as_dicts(store.list()),
            "models": [{"name": k, "label": LABELS[k], "path": v} for k, v in MODELS.items()],
            "limits": {"length": MAX_LENGTH, "n": MAX_SAMPLES, "prompt": MAX_PROMPT_CHARS},
        }

    @app.get("/api/read")
    def read(rev: Annotated[str, Query(max_length=64)] = "workspace") -> Response:
        try:
            return JSONResponse(read_revision(store, store.resolve(rev)))
        except UnknownRevision as err:
            return _error(404, str(err))

    @app.get("/api/generate")
    def generate(request: Request) -> Response:
        try:
            req = GenerateRequest(**dict(request.query_params))
            decoding = Decoding(req.temperature, req.top_k, req.top_p)
            rev = store.resolve(req.rev)
            loaded = models.get(rev, req.model)
        except ValidationError as err:
            return _error(400, _message(err))
        except (ValueError, UserError) as err:
            return _error(400, str(err))
        except (UnknownRevision, UnknownModel) as err:
            return _error(404, str(err))
        prompt_ids = prompt_context(loaded.vocab, req.prompt)
        return StreamingResponse(
            _stream(loaded, prompt_ids, req, decoding, rev.label),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


def _stream(
    loaded, prompt_ids, req: GenerateRequest, decoding: Decoding, label: str
) -> Iterator[str]:
    """Server-sent events: ``start``, a ``tokens`` event per chunk (each sample's new text),
    ``done`` with the timings. A sync generator: Starlette runs it in its thread pool, so the
    TensorFlow work never blocks the event loop."""
    t0 = time.perf_counter()
    yield _sse("start", {"model": req.model, "revision": label, "n": req.n, "seed": req.seed})
    rows: list[list[int]] = [[] for _ in range(req.n)]
    shown = [""] * req.n
    first = None
    steps = 0
    try:
        for ids in loaded.sampler.stream(
            prompt_ids, req.n, req.length, decoding, req.seed, chunk=CHUNK
        ):
            first = first if first is not None else time.perf_counter() - t0
            steps += ids.shape[1]
            deltas, full = [], []
            for i, row in enumerate(ids.tolist()):
                rows[i].extend(row)
                # Decode the whole row: word tokens join with spaces, which a chunk alone loses.
                text = loaded.vocab.decode(rows[i])
                if text.startswith(shown[i]):
                    deltas.append(text[len(shown[i]) :])
                else:  # not an extension (should not happen): the page replaces the row
                    deltas.append(text)
                    full.append(i)
                shown[i] = text
            yield _sse("tokens", {"texts": deltas, "replace": full, "step": steps})
    except Exception as err:  # the stream has started: the page can only be told in-band
        log.exception("generation failed")
        yield _sse("error", {"error": f"generation failed ({type(err).__name__})"})
        return
    total = time.perf_counter() - t0
    yield _sse(
        "done",
        {
            "texts": shown,
            "first_token_s": first,
            "seconds": total,
            "tokens_per_s": steps / max(total - (first or 0), 1e-9) if steps > CHUNK else None,
        },
    )
