"""The page (serve/): settings checks and chart specs on their own; then, on a tiny pipeline
repository with a commit and an experiment, the HTTP API (streams, revisions, refusals,
concurrency) and the page itself in headless Chromium."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install '.[serve]')")

import uvicorn
from starlette.datastructures import Headers

import serve.models
import serve.revisions
from serve.app import MAX_LENGTH, GenerateRequest, allowed_hosts, create_app, refusal
from serve.charts import _verdict, plot_spec, read_revision
from serve.models import Loaded, ModelCache
from serve.revisions import Revision, RevisionStore, UnknownRevision, parse_exp_show
from tests.browser import chromium
from tests.repos import run
from textgen.cli import main as cli_main
from textgen.figures import sweep_chart
from textgen.vocab import Vocabulary

# --- no repository needed ------------------------------------------------------------------


def test_exp_show_becomes_revisions():
    entries = [
        {"rev": "workspace", "name": None, "data": {}, "error": None, "experiments": None},
        {
            "rev": "a" * 40,
            "name": "main",
            "data": {"timestamp": "2026-11-26T18:55:50"},
            "experiments": [{"revs": [{"rev": "b" * 40, "name": "fast-gan", "data": {}}]}],
        },
        {"rev": "c" * 40, "name": None, "data": {}, "error": {"msg": "broken"}},
    ]
    revs = parse_exp_show(entries)
    assert [(r.id[:1], r.kind) for r in revs] == [
        ("w", "workspace"),
        ("a", "commit"),
        ("b", "experiment"),
    ]
    assert revs[1].label == "main (aaaaaaa, 2026-11-26 18:55)"
    assert revs[2].label.startswith("exp fast-gan")
    assert revs[0].problem is None


def test_a_workspace_dvc_cannot_read_is_listed_with_the_reason():
    entries = [
        {"rev": "workspace", "error": {"msg": "'./dvc.yaml' validation failed"}},
        {"rev": "a" * 40, "name": "main", "data": {}},
    ]
    revs = parse_exp_show(entries)
    assert [r.kind for r in revs] == ["workspace", "commit"]
    assert "dvc.yaml' validation failed" in revs[0].problem


def test_generate_request_bounds_and_names():
    assert GenerateRequest(temperature=0, length=MAX_LENGTH).length == MAX_LENGTH
    assert GenerateRequest(length=3, stop=["\n", "abc"]).stop == ["\n", "abc"]
    for bad in [
        {"temperature": -1},
        {"top_p": 0},
        {"length": MAX_LENGTH + 1},
        {"n": 0},
        {"seed": -1},
        {"rev": "../models"},
        {"model": "models/lstm.keras"},
        {"repetition_penalty": 0},
        {"repetition_penalty": float("nan")},
        {"no_repeat_ngram": -1},
        {"min_length": -1},
        {"stop": [""]},
        {"stop": ["abcd"], "length": 3},
        {"stop": ["a"] * 5},
    ]:
        with pytest.raises(ValueError):
            GenerateRequest(**bad)


def test_plot_spec_from_dvc_yaml_entry():
    entry = {
        "template": "errorbars",
        "x": "self_bleu_4",
        "y": {"plots/sweep/lstm.json": "bleu_4", "plots/sweep/gan.json": "bleu_4"},
    }
    rows = [{"self_bleu_4": 0.2, "bleu_4": 0.3, "bleu_4_low": 0.25, "bleu_4_high": 0.35}]
    spec = plot_spec("q-d", entry, {"plots/sweep/lstm.json": rows})
    assert spec["title"] == "q-d"
    assert spec["data"]["values"] == [
        {"x": 0.2, "y": 0.3, "series": "lstm: bleu_4", "i": 0, "y_low": 0.25, "y_high": 0.35}
    ]
    assert len(spec["layer"]) == 2  # the line, and the y error bars
    tsv = [{"step": "0", "loss": "2.5"}, {"step": "1", "loss": "2.0"}]  # a TSV's rows
    curve = plot_spec(
        "loss", {"x": "step", "y": {"dvclive/t/plots/metrics/eval/loss.tsv": "loss"}}, {}
    )
    assert curve is None  # no file at this revision: no chart
    curve = plot_spec(
        "loss",
        {"x": "step", "y": {"dvclive/t/plots/metrics/eval/loss.tsv": "loss"}},
        {"dvclive/t/plots/metrics/eval/loss.tsv": tsv},
    )
    assert [v["series"] for v in curve["data"]["values"]] == ["eval/loss", "eval/loss"]


def test_the_page_and_the_report_place_a_sweep_alike():
    """One row-to-point rule (figures.chart_point) for the page's file rows and the report's
    sweep points: the same points, a row without a number for an axis left out by both."""
    rows = [
        {"temperature": 0.5, "self_bleu_4": 0.2, "bleu_4": 0.3, "bleu_4_low": 0.25},
        {"temperature": 1.0, "self_bleu_4": 0.1, "bleu_4": None},  # e.g. no samples scored
        {"temperature": 1.5, "self_bleu_4": 0.05, "self_bleu_4_high": 0.07, "bleu_4": 0.2},
    ]
    entry = {"template": "errorbars", "x": "self_bleu_4", "y": {"plots/sweep/lstm.json": "bleu_4"}}
    page = plot_spec("q", entry, {"plots/sweep/lstm.json": rows})["data"]["values"]
    report = sweep_chart("q", {"lstm: bleu_4": rows}, "self_bleu_4", "bleu_4", "x", "y")
    assert len(page) == 2
    assert page == [
        {k: v for k, v in point.items() if k != "label"} for point in report["data"]["values"]
    ]


def test_verdict_is_the_report_section():
    report = (
        "# T\n\n## Verdict\n\nThe LSTM wins.\n\n- on BLEU\n- on LM\n\nWhy.\n\n## Metrics\n\nx\n"
    )
    assert _verdict(report) == ["The LSTM wins.", "- on BLEU", "- on LM"]


def _within(seconds: float, call):
    """``call()``'s result, or a failure if it has not returned within ``seconds`` (it was
    waiting on something it must not wait on)."""
    out: dict = {}

    def target() -> None:
        try:
            out["value"] = call()
        except Exception as err:
            out["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "it waited (for the listing?)"
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_a_request_never_waits_for_the_listing(tmp_path, monkeypatch):
    """`dvc exp show` takes seconds: the workspace and listed revisions resolve while it runs,
    the first listing and every refresh happen in the background, and names are exact."""
    listing = json.dumps([{"rev": "workspace"}, {"rev": "a" * 40, "name": "main", "data": {}}])
    release, calls = threading.Event(), []

    def slow_exp_show(command, **kwargs):
        calls.append(command)
        assert release.wait(60), "never released"
        return subprocess.CompletedProcess(command, 0, listing, "")

    monkeypatch.setattr(serve.revisions.subprocess, "run", slow_exp_show)
    store = RevisionStore(tmp_path)
    try:
        assert _within(5, lambda: store.resolve("workspace")).kind == "workspace"
        assert _within(5, store.list) == [serve.revisions.workspace()] and store.pending
        with pytest.raises(UnknownRevision, match="still being read"):
            _within(5, lambda: store.resolve("a" * 40))
        release.set()
        assert store.wait_listed(30)
        assert store.resolve("a" * 40).kind == "commit"
        # Stale: requests start one refresh in the background and answer from the last list.
        monkeypatch.setattr(serve.revisions, "LISTING_TTL_S", 0.0)
        release.clear()
        before = len(calls)
        for _ in range(3):
            assert _within(5, lambda: store.resolve("a" * 40)).kind == "commit"
        assert len(calls) == before + 1, "one refresh at a time"
        for prefix in ["a" * 7, "a" * 39, "workspa"]:
            with pytest.raises(UnknownRevision):
                store.resolve(prefix)
    finally:
        release.set()
    assert store.wait_listed(30)


def test_a_failed_listing_keeps_the_workspace_and_says_why(tmp_path, monkeypatch):
    def failing(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: not a git repository\n")

    monkeypatch.setattr(serve.revisions.subprocess, "run", failing)
    store = RevisionStore(tmp_path)
    store.refresh()
    assert store.wait_listed(30)
    [ws] = store.list()
    assert ws.kind == "workspace" and "not a git repository" in ws.problem


class FakeStore:
    """A revision's files from a dict: what read_revision and ModelCache need of a store."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files

    def read_bytes(self, rev, path):
        return self.files.get(f"{rev.id}:{path}", self.files.get(path))

    def read_text(self, rev, path):
        data = self.read_bytes(rev, path)
        return None if data is None else data.decode("utf-8")

    def list_dir(self, rev, path):
        return sorted(p for p in self.files if p.startswith(path + "/"))


WS = Revision("workspace", "workspace", "workspace")
PLOTS_YAML = """
plots:
  - Loss:
      x: step
      y:
        plots/good.json: loss
        plots/truncated.json: loss
        dvclive/t/plots/metrics/loss.tsv: loss
metrics:
  - metrics/lstm.json
  - metrics/gan.json
"""


def test_one_bad_file_costs_its_own_entry_only():
    """A truncated plot, a non-UTF-8 metrics file, a TSV caught mid-write, a bad samples file:
    each skipped and named, everything else still read."""
    good = json.dumps([{"step": 0, "loss": 2.0}, {"step": 1, "loss": 1.5}]).encode()
    store = FakeStore(
        {
            "dvc.yaml": PLOTS_YAML.encode(),
            "plots/good.json": good,
            "plots/truncated.json": good[:9],
            "dvclive/t/plots/metrics/loss.tsv": b"step\tloss\n0\t2.5\n1\t2.",  # mid-write
            "results/lstm.json": b'{"val_nll_nats": 1.5}',
            "results/gan.json": b'{"d_accuracy": \xff\xfe}',
            "metrics/gan.json": b"{",
            "samples/lstm.jsonl": b'{"text": "ROMEO"}\n',
            "samples/gan.jsonl": b"\xff\n",
        }
    )
    data = read_revision(store, WS)
    [chart] = data["charts"]
    assert {v["series"] for v in chart["data"]["values"]} == {"good: loss", "loss"}
    assert data["metrics"] == [{"file": "results/lstm.json", "rows": [["val_nll_nats", 1.5]]}]
    assert data["samples"] == [{"file": "samples/lstm.jsonl", "texts": ["ROMEO"]}]
    skipped = {p["file"]: p["error"] for p in data["problems"]}
    assert skipped.keys() == {
        "plots/truncated.json", "results/gan.json", "metrics/gan.json", "samples/gan.jsonl",
    }  # fmt: skip
    assert "not valid JSON" in skipped["plots/truncated.json"]
    assert skipped["results/gan.json"] == "not UTF-8 text"
    json.dumps(data)  # what the route sends


@pytest.mark.parametrize(
    "dvc_yaml", [b"plots: [\n", b"- a list\n", b"plots: 3\nmetrics: {a: 1}\n", b"\xff"]
)
def test_a_bad_dvc_yaml_is_named_not_fatal(dvc_yaml):
    data = read_revision(FakeStore({"dvc.yaml": dvc_yaml}), WS)
    assert data["charts"] == [] and data["metrics"] == []
    assert all(p["file"] == "dvc.yaml" for p in data["problems"])


def test_refusal_of_other_hosts_origins_and_sites():
    hosts = allowed_hosts("127.0.0.1", ["textgen.lan"])

    def why(path="/api/generate", **headers):
        return refusal(Headers({k.replace("_", "-"): v for k, v in headers.items()}), path, hosts)

    for host in ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "textgen.lan", "LOCALHOST"]:
        assert why(host=host) is None, host
    assert "--allowed-host attacker.example" in why(host="attacker.example:8000")
    assert why(host="") is not None
    assert why(host="localhost:8000", origin="http://localhost:8000") is None
    assert "refused" in why(host="localhost:8000", origin="http://attacker.example")
    assert why(host="localhost:8000", origin="http://localhost:3000") is not None
    assert why(host="localhost:8000", origin="null") is not None
    assert why(host="localhost:8000", sec_fetch_site="same-origin") is None
    assert why(host="localhost:8000", sec_fetch_site="cross-site") is not None
    assert why(host="localhost:8000", sec_fetch_site="same-site") is not None
    # A link from elsewhere may open the page; nothing else of it.
    assert (
        why("/", host="localhost:8000", sec_fetch_site="cross-site", sec_fetch_mode="navigate")
        is None
    )
    assert why(
        "/api/read", host="localhost:8000", sec_fetch_site="cross-site", sec_fetch_mode="navigate"
    )
    assert allowed_hosts("0.0.0.0") == allowed_hosts()  # every address is no name
    assert refusal(Headers({"host": "anything"}), "/", allowed_hosts(extra=["*"])) is None


def test_models_beyond_the_bound_are_dropped_least_recent_first(monkeypatch):
    loads = []

    def fake_load(data, vocab, filename, digest):
        loads.append(data)
        return Loaded(sampler=None, vocab=None, digest=digest)

    monkeypatch.setattr(serve.models, "_load", fake_load)
    revs = [Revision(c * 40, c, "commit") for c in "abc"]
    files = {f"{r.id}:models/lstm.keras": r.id.encode() for r in revs}
    cache = ModelCache(FakeStore({**files, "models/lstm.vocab.json": b"{}"}), max_models=2)
    for rev in [*revs, revs[2], revs[0]]:
        cache.get(rev, "lstm")
    assert len(cache) == 2
    assert [d[:1] for d in loads] == [b"a", b"b", b"c", b"a"]  # c was cached; a was dropped


def test_revision_filesystems_beyond_the_bound_are_closed(tmp_path, monkeypatch):
    opened = []

    class FakeFS:
        def __init__(self, root, rev=None):
            self.rev, self.closed = rev, False
            opened.append(self)

        def open(self, path, mode="rb"):
            raise FileNotFoundError(path)

        def close(self):
            self.closed = True

    monkeypatch.setattr(serve.revisions, "DVCFileSystem", FakeFS)
    store = RevisionStore(tmp_path, max_revisions=2)
    revs = [Revision(c * 40, c, "commit") for c in "abc"]
    for rev in [revs[0], revs[1], revs[0], revs[2]]:
        assert store.read_bytes(rev, "dvc.yaml") is None
    assert store.open_filesystems() == 2
    assert [(fs.rev[:1], fs.closed) for fs in opened] == [("a", False), ("b", True), ("c", False)]


# --- over HTTP ------------------------------------------------------------------------------


@contextmanager
def serving(app):
    """``app`` on uvicorn on a free loopback port, for the ``with`` block: its base URL."""
    # The socket is bound here and handed to uvicorn: a port picked, closed and bound again
    # later can be taken meanwhile by another worker's server.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config None: uvicorn would point logging at the stderr pytest captures, then closes.
    srv = uvicorn.Server(uvicorn.Config(app, log_config=None))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(30)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers or {}), timeout=300
        ) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _events(body: bytes) -> list[tuple[str, dict]]:
    out = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def _generate(base: str, **params) -> tuple[list[str], list[tuple[str, dict]]]:
    status, body = _get(f"{base}/api/generate?{urllib.parse.urlencode(params, doseq=True)}")
    assert status == 200, body
    events = _events(body)
    texts = [""] * events[0][1]["n"]
    for name, data in events:
        if name == "tokens":
            for i, t in enumerate(data["texts"]):
                texts[i] = t if i in data["replace"] else texts[i] + t
    assert events[-1][0] == "done", events[-1]
    assert events[-1][1]["texts"] == texts
    return texts, events


def _revisions(base: str) -> list[dict]:
    """The listed revisions, once the server's first listing (in the background) has ended."""
    deadline = time.monotonic() + 120
    while (data := json.loads(_get(f"{base}/api/revisions")[1]))["pending"]:
        assert time.monotonic() < deadline, "the first listing never ended"
        time.sleep(0.2)
    return data["revisions"]


# --- a small repository and stand-in models: the request path, its guards and its bounds ---

BROKEN_DVC_YAML = (
    """stages:
  train:
    cmd: echo trained
    dep: [data]
"""
    + PLOTS_YAML
)


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory):
    """A git + DVC repository with one commit, whose workspace's dvc.yaml DVC's schema refuses
    (``dep:`` for ``deps:``), beside a good plot, a truncated one and a metrics file that is
    not UTF-8."""
    repo = tmp_path_factory.mktemp("small")
    run("git init -q -b main && dvc init -q && git add -A && git commit -qm init", repo)
    (repo / "dvc.yaml").write_text(BROKEN_DVC_YAML)
    for path, data in {
        "plots/good.json": json.dumps([{"step": 0, "loss": 2.0}, {"step": 1, "loss": 1.5}]),
        "plots/truncated.json": '[{"step": 0, "lo',
        "results/lstm.json": b'{"val_nll_nats": \xff}',
    }.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        data = data.encode() if isinstance(data, str) else data
        (repo / path).write_bytes(data)
    return repo


class FakeSampler:
    """Streams token 1, one step per event, each step after ``gate`` opens and ``step_s``."""

    def __init__(self, gate: threading.Event, step_s: float):
        self.gate, self.step_s = gate, step_s

    def stream(self, prompt_ids, n, length, decoding, seed, chunk=8):
        for _ in range(length):
            assert self.gate.wait(60), "the gate never opened"
            time.sleep(self.step_s)
            yield np.ones((n, 1), dtype=np.int32)


@contextmanager
def stand_in_page(root, load_s: float = 0.0, step_s: float = 0.0, **options):
    """The page over ``root`` with every model a FakeSampler (loading takes ``load_s``): the
    base URL and the gate its streams wait on (open)."""
    gate = threading.Event()
    gate.set()
    app = create_app(root, **options)
    loaded = Loaded(FakeSampler(gate, step_s), Vocabulary.from_text("ab"), "stand-in")

    def get(rev, name):
        time.sleep(load_s)
        return loaded

    app.state.models.get = get
    with serving(app) as base:
        yield base, gate


def test_the_workspace_stays_when_dvc_cannot_read_its_pipeline(small_repo):
    with stand_in_page(small_repo) as (base, _):
        revs = _revisions(base)
        assert [r["kind"] for r in revs] == ["workspace", "commit"]
        problem = revs[0]["problem"]
        assert "validation failed" in problem and "dep" in problem, problem
        status, body = _get(f"{base}/api/read?rev=workspace")
        assert status == 200, body
        data = json.loads(body)
        assert data["problem"] == problem
        assert [c["title"] for c in data["charts"]] == ["Loss"]
        assert {p["file"] for p in data["problems"]} == {
            "plots/truncated.json",
            "results/lstm.json",
        }
        texts, _ = _generate(base, rev="workspace", length=3)
        assert len(texts[0]) == 3


def test_stop_strings_end_the_text_and_the_stream(small_repo):
    """The stand-in writes "a" each step: the text ends before the first stop string found
    after the first min_length tokens, and no step runs once every sample has stopped."""
    with stand_in_page(small_repo) as (base, _):
        texts, events = _generate(base, length=1000, n=2, stop=["b", "aaa"], min_length=2)
        assert texts == ["aa", "aa"]
        assert events[-2][1]["step"] == 5, "the stream ends as the stop string is complete"
        texts, _ = _generate(base, length=4, stop=["aaaa"], min_length=1)
        assert texts == ["aaaa"]  # a stop string must begin after the first min_length tokens


def test_timings_count_from_the_requests_arrival(small_repo):
    with stand_in_page(small_repo, load_s=0.5) as (base, _):
        _, events = _generate(base, length=3)
    done = events[-1][1]
    assert done["first_token_s"] >= 0.5 and done["seconds"] >= done["first_token_s"], done


def test_other_sites_cannot_drive_the_page(small_repo):
    with stand_in_page(small_repo, hosts=allowed_hosts(extra=["textgen.lan"])) as (base, _):
        port = base.rsplit(":", 1)[1]
        refused = [
            ("/api/generate?length=3", {"Host": "attacker.example"}),  # DNS rebinding
            ("/api/read", {"Host": f"attacker.example:{port}"}),
            ("/", {"Host": "attacker.example"}),
            ("/api/generate?length=3", {"Origin": "http://attacker.example"}),
            ("/api/read", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}),
            ("/api/generate?length=3", {"Sec-Fetch-Site": "same-site"}),
        ]
        for path, headers in refused:
            status, body = _get(base + path, headers)
            assert status == 403, (path, headers, body)
            assert "Traceback" not in json.loads(body)["error"]
        allowed = [
            ("/api/revisions", {"Host": f"textgen.lan:{port}"}),
            ("/api/revisions", {"Origin": base, "Sec-Fetch-Site": "same-origin"}),
            ("/", {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}),  # a link
        ]
        for path, headers in allowed:
            assert _get(base + path, headers)[0] == 200, (path, headers)


def _open_stream(base: str, **params) -> http.client.HTTPConnection:
    """A generation request whose response has begun (its ``start`` event read)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("GET", f"/api/generate?{urllib.parse.urlencode(params)}")
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    assert resp.readline().startswith(b"event: start")
    conn.resp = resp
    return conn


def test_generations_beyond_the_cap_get_429_and_slots_come_back(small_repo):
    with stand_in_page(small_repo, step_s=0.01, max_streams=2) as (base, gate):
        gate.clear()  # the streams hold their slots
        streams = [_open_stream(base, length=5, seed=i) for i in range(2)]
        status, body = _get(f"{base}/api/generate?length=3")
        assert status == 429, body
        assert "busy: 2 generations" in json.loads(body)["error"]
        gate.set()
        for conn in streams:
            assert b"event: done" in conn.resp.read()
            conn.close()
        assert _generate(base, length=3)[1][-1][0] == "done"
        # Clients that leave mid-stream give their slots back long before their 1,000 steps.
        gate.clear()
        streams = [_open_stream(base, length=1000, seed=i) for i in range(2)]
        for conn in streams:
            conn.close()
        gate.set()
        deadline = time.monotonic() + 5
        while (status := _get(f"{base}/api/generate?length=1")[0]) == 429:
            assert time.monotonic() < deadline, "abandoned streams kept their slots"
            time.sleep(0.1)
        assert status == 200


def test_unknown_repeated_and_inexact_settings_are_named(small_repo):
    with stand_in_page(small_repo) as (base, _):
        cases = [
            ("/api/generate?lenght=5", 400, "unknown setting 'lenght'"),
            ("/api/generate?seed=1&seed=2", 400, "seed: given more than once"),
            ("/api/generate?n=1&n=1", 400, "samples: given more than once"),
            ("/api/generate?temperature=nan", 400, "temperature: Input should be a finite"),
            ("/api/generate?top_p=inf", 400, "top-p: Input should be a finite"),
            ("/api/generate?repetition_penalty=0", 400, "repetition penalty: Input should be"),
            ("/api/generate?length=3&stop=.&stop=abcd", 400, "stop: Value error, stop string"),
            ("/api/generate?stop=", 400, "stop: Value error, a stop string must be a non-empty"),
            ("/api/generate?rev=workspa", 404, "unknown revision 'workspa'"),
            ("/api/read?rev=workspace&x=1", 400, "unknown setting 'x'"),
            ("/api/read?rev=workspa", 404, "unknown revision"),
            ("/api/revisions?all=1", 400, "unknown setting 'all'"),
        ]
        for path, code, words in cases:
            status, body = _get(base + path)
            assert status == code, (path, body)
            assert words in json.loads(body)["error"], (path, body)


# --- a tiny pipeline repository with a commit and an experiment --------------------------

PROMPT = "ROMEO."
CLI_ARGS = ["--prompt", PROMPT, "-n", "2", "--length", "30", "--temperature", "0.9", "--seed", "5"]


@pytest.fixture(scope="module")
def pipeline(tiny_pipeline, tmp_path_factory):
    """A repo whose HEAD holds a whole pipeline run, an experiment whose GAN learnt at a far
    higher rate, and what `python -m textgen generate` printed at HEAD."""
    repo = tmp_path_factory.mktemp("serve") / "repo"
    shutil.copytree(tiny_pipeline, repo, symlinks=True)
    run("git add -A && git commit -qm trained", repo)
    head = run("git rev-parse HEAD", repo).stdout.strip()
    cli = {}
    for model in ["models/lstm.keras", "models/gan/generator.keras"]:
        out, cwd = io.StringIO(), os.getcwd()
        os.chdir(repo)  # `python -m textgen generate` in the repository, in this process
        try:
            with contextlib.redirect_stdout(out):
                cli_main(["generate", "--model", model, *CLI_ARGS])
        finally:
            os.chdir(cwd)
        cli[model] = out.getvalue()
    run("dvc exp run -q train_gan -S gan.g_learning_rate=0.05 --name fast-gan", repo)
    return {"repo": repo, "head": head, "cli": cli}


@pytest.fixture(scope="module")
def app(pipeline):
    return create_app(pipeline["repo"], max_streams=10)  # ten concurrent streams, below


@pytest.fixture(scope="module")
def server(app):
    # Tests name commits and experiments: the first listing (in the background) must be in.
    assert app.state.store.wait_listed(120), "the first listing never ended"
    with serving(app) as base:
        yield base


def _exp_id(base: str) -> str:
    return next(r["id"] for r in _revisions(base) if r["kind"] == "experiment")


def _cli_texts(output: str) -> list[str]:
    return [t.strip("\n").removeprefix(PROMPT) for t in output.split("-" * 40)]


@pytest.mark.slow
def test_revisions_list_workspace_commit_and_experiment(server, pipeline):
    revs = _revisions(server)
    kinds = {r["kind"] for r in revs}
    assert kinds == {"workspace", "commit", "experiment"}, revs
    assert pipeline["head"] in {r["id"] for r in revs}
    assert any("fast-gan" in r["label"] for r in revs)


@pytest.mark.slow
def test_stream_gives_the_cli_text_and_experiments_differ(server, pipeline):
    settings = {"prompt": PROMPT, "n": 2, "length": 30, "temperature": 0.9, "seed": 5}
    for name, path in [("lstm", "models/lstm.keras"), ("gan", "models/gan/generator.keras")]:
        texts, events = _generate(server, rev=pipeline["head"], model=name, **settings)
        assert len([e for e in events if e[0] == "tokens"]) > 1, "tokens come in several events"
        assert [t.strip("\n") for t in texts] == _cli_texts(pipeline["cli"][path])
    exp = _exp_id(server)
    head_gan, _ = _generate(server, rev=pipeline["head"], model="gan", **settings)
    exp_gan, _ = _generate(server, rev=exp, model="gan", **settings)
    exp_lstm, _ = _generate(server, rev=exp, model="lstm", **settings)
    head_lstm, _ = _generate(server, rev=pipeline["head"], model="lstm", **settings)
    assert exp_gan != head_gan, "the experiment's GAN learnt 500x faster: other weights, other text"
    assert exp_lstm == head_lstm, "the experiment did not retrain the LSTM"


@pytest.mark.slow
def test_models_load_once(server, pipeline, app):
    for rev in [pipeline["head"], _exp_id(server)]:
        for model in ["lstm", "gan"]:
            _generate(server, rev=rev, model=model, length=5)
    # HEAD's LSTM, HEAD's GAN, the experiment's GAN: its LSTM is HEAD's file, loaded once.
    assert len(app.state.models) == 3


@pytest.mark.slow
def test_bad_requests_get_one_message(server, pipeline):
    cases = [
        ("temperature=-1", 400, "temperature"),
        ("temperature=hot", 400, "temperature"),
        (f"length={MAX_LENGTH + 1}", 400, "length"),
        ("n=100", 400, "samples:"),
        ("top_p=0", 400, "top-p"),
        ("rev=..%2F..%2Fetc", 400, "revision"),
        ("rev=0123456789abcdef", 404, "unknown revision"),
        ("model=judge", 404, "unknown model"),
    ]
    for query, status, words in cases:
        code, body = _get(f"{server}/api/generate?{query}")
        assert code == status, (query, body)
        message = json.loads(body)["error"]
        assert words in message and "Traceback" not in message, (query, message)
    assert _get(f"{server}/api/read?rev=nope")[0] == 404
    assert _get(f"{server}/static/app.py")[0] == 404


@pytest.mark.slow
def test_ten_concurrent_generations_do_not_mix(server, pipeline):
    params = [
        {"rev": pipeline["head"], "model": ["lstm", "gan"][i % 2], "seed": i, "length": 40}
        for i in range(10)
    ]
    alone = [_generate(server, **p)[0] for p in params]
    with ThreadPoolExecutor(10) as pool:
        together = list(pool.map(lambda p: _generate(server, **p)[0], params))
    assert together == alone
    assert len({t[0] for t in alone}) > 5, "different seeds, different texts"


@pytest.mark.slow
def test_read_gives_charts_and_metrics(server, pipeline):
    status, body = _get(f"{server}/api/read?rev={pipeline['head']}")
    assert status == 200, body
    data = json.loads(body)
    titles = {c["title"] for c in data["charts"]}
    assert "LSTM loss (nats per character)" in titles and "GAN losses" in titles
    assert data["problems"] == [] and data["problem"] is None
    files = {m["file"] for m in data["metrics"]}
    assert {"results/lstm.json", "results/gan.json"} <= files  # every figure, not the headline
    verdict = data["verdict"][0] if data["verdict"] else ""  # the report's, at that commit
    assert "better here" in verdict or verdict.startswith("No clear winner"), data["verdict"]


# --- the page in a real browser ----------------------------------------------------------


@pytest.mark.slow
def test_page_in_headless_chromium(server, pipeline, tmp_path):
    with chromium() as driver:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select, WebDriverWait

        wait = WebDriverWait(driver, 120)
        driver.get(server + "/")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#revision option")) >= 3)
        field = driver.find_element(By.ID, "prompt")
        field.clear()
        field.send_keys(PROMPT)
        for name, value in [("length", "60"), ("seed", "3")]:
            box = driver.find_element(By.ID, name)
            box.clear()
            box.send_keys(value)
        driver.find_element(By.ID, "generate").click()
        for panel in ["panel-a", "panel-b"]:
            wait.until(
                lambda d, p=panel: d.find_element(By.ID, p).get_attribute("data-done") == "1"
            )
            text = driver.find_element(By.CSS_SELECTOR, f"#{panel} .out .text").text
            assert len(text) > 10, (panel, text)
        # Another revision: the experiment's charts render (an <svg> inside each chart element).
        exp = _exp_id(server)
        Select(driver.find_element(By.ID, "revision")).select_by_value(exp)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-read") == exp)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#charts .chart svg"))
        assert len(driver.find_elements(By.CSS_SELECTOR, "#metrics table")) >= 2
        # A bad setting: one inline message, not a crash.
        box = driver.find_element(By.ID, "temperature")
        box.clear()
        box.send_keys("-2")
        driver.find_element(By.ID, "generate").click()
        wait.until(lambda d: d.find_element(By.ID, "message").is_displayed())
        message = driver.find_element(By.ID, "message").text
        assert "temperature" in message and "Traceback" not in message
        driver.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 0


def test_serve_refuses_a_folder_without_dvc_yaml(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "serve", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=120,
    )
    assert proc.returncode != 0 and "dvc.yaml" in proc.stderr and "Traceback" not in proc.stderr
