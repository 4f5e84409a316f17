"""The web app: FastAPI routes for the page, the revisions, what to read at one, and token
streams (server-sent events) from the pipeline's one sampler.

Only the page itself may drive it: requests must name a host it answers to (no DNS rebinding)
and come from its own origin (no other site's scripts, images or forms), and a few
generations run at once (beyond, 429)."""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from serve import MAX_MODELS, MAX_REVISIONS, MAX_STREAMS
from serve.charts import read_revision
from serve.models import LABELS, MODELS, ModelCache, UnknownModel
from serve.revisions import RevisionStore, UnknownRevision, as_dicts
from textgen.config import SEED_LIMIT
from textgen.errors import UserError
from textgen.figures import javascript_bundle
from textgen.sampling import Decoding, check_stops, prompt_context, stream_texts

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"

# Caps: one request may not hold the CPU for minutes or fill the page.
MAX_LENGTH = 1000
MAX_SAMPLES = 8
MAX_PROMPT_CHARS = 500
MAX_STOPS = 4  # stop strings per request, as OpenAI's API allows
CHUNK = 8  # tokens per streamed event: small enough to look live, large enough to be cheap
# The names a page on this machine is reached by; --host and --allowed-host add others.
LOOPBACK = ("localhost", "127.0.0.1", "::1")


class GenerateRequest(BaseModel):
    """A generation's settings; every bound is checked here, before any model is loaded."""

    rev: str = Field("workspace", max_length=64)
    model: str = Field("lstm", max_length=32)
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    temperature: float = Field(0.8, ge=0, le=5, allow_inf_nan=False)
    top_k: int = Field(0, ge=0, le=100_000)
    top_p: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
    length: int = Field(200, ge=1, le=MAX_LENGTH)
    seed: int = Field(0, ge=0, lt=SEED_LIMIT)
    n: int = Field(1, ge=1, le=MAX_SAMPLES)
    repetition_penalty: float = Field(1.0, gt=0, le=10, allow_inf_nan=False)
    no_repeat_ngram: int = Field(0, ge=0, le=MAX_LENGTH)
    min_length: int = Field(0, ge=0, le=MAX_LENGTH)
    # After length: its check reads the length.
    stop: list[str] = Field(default_factory=list, max_length=MAX_STOPS)

    @field_validator("rev", "model")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value.replace("-", "").replace("_", "").isalnum():
            raise ValueError("must be a name from the list")
        return value

    @field_validator("stop")
    @classmethod
    def _stops_can_occur(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # A bad length has its own message; the stops are then checked against the cap.
        return check_stops(value, info.data.get("length", MAX_LENGTH))


# Settings named as the page labels them.
LABEL_OF = {
    "n": "samples",
    "top_k": "top-k",
    "top_p": "top-p",
    "rev": "revision",
    "repetition_penalty": "repetition penalty",
    "no_repeat_ngram": "no-repeat n-gram",
    "min_length": "min length",
}


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


class BadQuery(ValueError):
    """A query parameter the route does not take, or one given twice."""


def _query(
    request: Request, names: Iterable[str], lists: Iterable[str] = ()
) -> dict[str, str | list[str]]:
    """The request's query parameters, each one of ``names`` and each at most once, except
    ``lists``' (a list of every value given): a typo such as ``lenght=5`` is named, not
    silently replaced by the default."""
    allowed, lists = list(names), set(lists)
    seen: dict[str, str | list[str]] = {key: [] for key in lists}
    for key, value in request.query_params.multi_items():
        if key not in allowed:
            known = f"one of {', '.join(allowed)}" if allowed else "none"
            raise BadQuery(f"unknown setting {key!r} (this request takes {known})")
        if key in lists:
            seen[key].append(value)
        elif key in seen:
            raise BadQuery(f"{LABEL_OF.get(key, key)}: given more than once")
        else:
            seen[key] = value
    return seen


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@lru_cache(maxsize=1)
def _vega_bundle() -> str:
    return javascript_bundle()  # vega, vega-lite and vega-embed, from the installed vl-convert


def allowed_hosts(host: str = "127.0.0.1", extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names a request may carry: loopback, the address bound (unless it is every
    address), and ``extra`` (``*``: any, which lets other sites drive the page by DNS
    rebinding)."""
    names = {*LOOPBACK, *(h.strip("[]").lower() for h in extra)}
    if host not in ("", "0.0.0.0", "::"):
        names.add(host.strip("[]").lower())
    return frozenset(names)


def refusal(headers: Headers, path: str, hosts: frozenset[str]) -> str | None:
    """Why a request must be refused, or None. Three checks, as Jupyter's server does: the Host
    header names this page (another site's name resolving to 127.0.0.1 does not); an Origin,
    when sent, is the page's own; the browser's ``Sec-Fetch-Site`` does not say another site
    made the request (an <img> or <form> aimed at the API sends no Origin) - except a plain
    navigation to the page, which runs nothing."""
    host = headers.get("host", "")
    name = urlsplit(f"//{host}").hostname or ""
    if "*" not in hosts and name not in hosts:
        return (
            f"host {host!r} is not one this page answers to ({', '.join(sorted(hosts))}); "
            f"to reach it by that name, start it with --allowed-host {name or 'NAME'}"
        )
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
        return f"requests from {origin} are refused: only the page itself may call it"
    site = headers.get("sec-fetch-site", "")
    navigation = headers.get("sec-fetch-mode") == "navigate" and path == "/"
    if site in ("cross-site", "same-site") and not navigation:
        return "requests from another site are refused: only the page itself may call it"
    return None


class SameOriginOnly:
    """ASGI middleware: a request ``refusal`` names gets 403 and that line."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            why = refusal(Headers(scope=scope), scope.get("path", ""), self.hosts)
            if why is not None:
                await _error(403, why)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Slots:
    """At most ``size`` generations at once. A slot is taken before the model loads and
    given back when its stream ends, however it ends (finished, failed, abandoned by the
    client, or never started)."""

    def __init__(self, size: int):
        self.size = size
        self._free = threading.BoundedSemaphore(size)

    def take(self) -> Callable[[], None] | None:
        """A function that gives the slot back (once, however often called), or None."""
        if not self._free.acquire(blocking=False):
            return None
        once = threading.Lock()  # held for good by the first give_back

        def give_back() -> None:
            if once.acquire(blocking=False):
                self._free.release()

        return give_back


def create_app(
    root: str | Path = ".",
    num_commits: int = 10,
    *,
    hosts: frozenset[str] = allowed_hosts(),
    max_streams: int = MAX_STREAMS,
    max_models: int = MAX_MODELS,
    max_revisions: int = MAX_REVISIONS,
) -> FastAPI:
    """The app over the pipeline repository at ``root``, offering its workspace, its last
    ``num_commits`` commits and their experiments, answering requests for ``hosts`` only,
    with at most ``max_streams`` generations at once and the ``max_models`` models and
    ``max_revisions`` revisions' repositories last used kept open."""
    store = RevisionStore(root, num_commits, max_revisions=max_revisions)
    models = ModelCache(store, max_models=max_models)
    slots = Slots(max_streams)
    app = FastAPI(title="textgen", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SameOriginOnly, hosts=hosts)
    app.state.store, app.state.models, app.state.slots = store, models, slots
    store.refresh()  # the first listing, in the background: nothing waits for it

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
    def revisions(request: Request) -> Response:
        try:
            _query(request, [])
        except BadQuery as err:
            return _error(400, str(err))
        return JSONResponse(
            {
                "revisions": as_dicts(store.list()),
                "pending": store.pending,  # the first listing is still running: ask again
                "models": [{"name": k, "label": LABELS[k], "path": v} for k, v in MODELS.items()],
                "limits": {"length": MAX_LENGTH, "n": MAX_SAMPLES, "prompt": MAX_PROMPT_CHARS},
            }
        )

    @app.get("/api/read")
    def read(request: Request) -> Response:
        try:
            rev = store.resolve(_query(request, ["rev"]).get("rev", "workspace"))
        except BadQuery as err:
            return _error(400, str(err))
        except UnknownRevision as err:
            return _error(404, str(err))
        return JSONResponse(read_revision(store, rev))

    @app.get("/api/generate")
    def generate(request: Request) -> Response:
        arrived = time.perf_counter()  # the timings the page shows include any wait here
        try:
            req = GenerateRequest(**_query(request, GenerateRequest.model_fields, ["stop"]))
            decoding = Decoding(
                req.temperature,
                req.top_k,
                req.top_p,
                req.repetition_penalty,
                req.no_repeat_ngram,
                req.min_length,
            )
            rev = store.resolve(req.rev)
        except ValidationError as err:
            return _error(400, _message(err))
        except (ValueError, UserError) as err:  # BadQuery too
            return _error(400, str(err))
        except UnknownRevision as err:
            return _error(404, str(err))
        give_back = slots.take()
        if give_back is None:
            return _error(
                429,
                f"busy: {slots.size} generations are running, the most this page runs at once "
                "(--max-streams); try again when one ends",
            )
        try:
            loaded = models.get(rev, req.model)
            prompt_ids = prompt_context(loaded.vocab, req.prompt)
        except UnknownModel as err:
            give_back()
            return _error(404, str(err))
        except BaseException:
            give_back()
            raise
        events = _stream(loaded, prompt_ids, req, decoding, rev.label, arrived, give_back)
        # A stream the client drops before it starts never runs its `finally`: the slot is
        # given back when the generator is collected.
        weakref.finalize(events, give_back)
        return StreamingResponse(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


def _stream(
    loaded,
    prompt_ids,
    req: GenerateRequest,
    decoding: Decoding,
    label: str,
    t0: float,
    give_back: Callable[[], None],
) -> Iterator[str]:
    """Server-sent events: ``start``, a ``tokens`` event per chunk (each sample's new text,
    as ``stream_texts`` lets it grow up to a stop string), ``done`` with the timings, counted
    from ``t0`` (the request's arrival). A sync generator: Starlette runs it in its thread
    pool, so the TensorFlow work never blocks the event loop. However it ends, its generation
    slot is given back."""
    try:
        yield from _events(loaded, prompt_ids, req, decoding, label, t0)
    finally:
        give_back()


def _events(
    loaded, prompt_ids, req: GenerateRequest, decoding: Decoding, label: str, t0: float
) -> Iterator[str]:
    yield _sse("start", {"model": req.model, "revision": label, "n": req.n, "seed": req.seed})
    shown = [""] * req.n
    first = None
    steps = 0
    try:
        chunks = loaded.sampler.stream(
            prompt_ids, req.n, req.length, decoding, req.seed, chunk=CHUNK
        )
        # Whole rows decoded (word tokens join with spaces, which a chunk alone loses), text
        # that may begin a stop string held back; no more model steps once every row stopped.
        for texts, steps in stream_texts(chunks, loaded.vocab, req.n, req.stop, req.min_length):
            first = first if first is not None else time.perf_counter() - t0
            deltas, full = [], []
            for i, text in enumerate(texts):
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
