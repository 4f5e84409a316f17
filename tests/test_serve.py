"""The page (serve/): settings checks and chart specs on their own; then, on a tiny pipeline
repository with a commit and an experiment, the HTTP API (streams, revisions, refusals,
concurrency) and the page itself in headless Chromium."""

from __future__ import annotations

import json
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
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install '.[serve]')")

import uvicorn

from serve.app import MAX_LENGTH, GenerateRequest, create_app
from serve.charts import _verdict, plot_spec
from serve.revisions import parse_exp_show
from tests.browser import chromium
from tests.repos import run
from textgen.figures import sweep_chart

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


def test_generate_request_bounds_and_names():
    assert GenerateRequest(temperature=0, length=MAX_LENGTH).length == MAX_LENGTH
    for bad in [
        {"temperature": -1},
        {"top_p": 0},
        {"length": MAX_LENGTH + 1},
        {"n": 0},
        {"seed": -1},
        {"rev": "../models"},
        {"model": "models/lstm.keras"},
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
    spec = plot_spec("q-d", entry, {"plots/sweep/lstm.json": json.dumps(rows)})
    assert spec["title"] == "q-d"
    assert spec["data"]["values"] == [
        {"x": 0.2, "y": 0.3, "series": "lstm: bleu_4", "i": 0, "y_low": 0.25, "y_high": 0.35}
    ]
    assert len(spec["layer"]) == 2  # the line, and the y error bars
    tsv = "step\tloss\n0\t2.5\n1\t2.0\n"
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
    page = plot_spec("q", entry, {"plots/sweep/lstm.json": json.dumps(rows)})["data"]["values"]
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
        out = run(" ".join([sys.executable, "-m", "textgen", "generate", "--model", model,
                            *[f"'{a}'" for a in CLI_ARGS]]), repo).stdout  # fmt: skip
        cli[model] = out
    run("dvc exp run -q train_gan -S gan.g_learning_rate=0.05 --name fast-gan", repo)
    return {"repo": repo, "head": head, "cli": cli}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(pipeline):
    return create_app(pipeline["repo"])


@pytest.fixture(scope="module")
def server(app):
    port = _free_port()
    # log_config None: uvicorn would point logging at the stderr pytest captures, then closes.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(30)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=300) as resp:
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
    status, body = _get(f"{base}/api/generate?{urllib.parse.urlencode(params)}")
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
    return json.loads(_get(f"{base}/api/revisions")[1])["revisions"]


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
