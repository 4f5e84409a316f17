"""What the page reads at a revision: dvc.yaml's top-level ``plots:`` as Vega-Lite specs (data
inlined, drawn in the browser by the page's own vega-embed), ``metrics:`` as tables (each
stage's every figure, from results/), the report's verdict and a few samples."""

from __future__ import annotations

import csv
import io
import json
import re

import yaml

from serve.revisions import Revision, RevisionStore
from textgen.figures import chart_point, curve_chart

SAMPLES_SHOWN = 3  # per samples/*.jsonl file
SAMPLE_CHARS = 600  # each sample cut to this many characters


def _rows(path: str, text: str) -> list[dict]:
    """A plot file's rows: a JSON list of objects, or a TSV/CSV with a header (dvclive)."""
    if path.endswith(".json"):
        data = json.loads(text)
        return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
    delimiter = "\t" if path.endswith(".tsv") else ","
    return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))


def _series_name(path: str, field: str) -> str:
    # plots/sweep/lstm.json: bleu_4 -> "lstm: bleu_4"; dvclive/.../eval/loss.tsv -> "eval/loss"
    stem = re.sub(r"\.(json|tsv|csv)$", "", path)
    stem = stem.split("plots/metrics/")[-1] if "plots/metrics/" in stem else stem.split("/")[-1]
    return stem if stem.endswith(field) else f"{stem}: {field}"


def plot_spec(title: str, entry: dict, files: dict[str, str]) -> dict | None:
    """One dvc.yaml plot (``linear`` or ``errorbars`` template) as a Vega-Lite spec; None when
    none of its files is there."""
    x = entry.get("x", "step")
    ys = entry.get("y") or {}
    if isinstance(ys, str):
        ys = {}
    values = []
    for path, fields in ys.items():
        if path not in files:
            continue
        for field in [fields] if isinstance(fields, str) else list(fields):
            series = _series_name(path, field)
            for row in _rows(path, files[path]):
                # "i": the file's row order (temperature, step), which the line follows
                point = chart_point(row, x, field, series, len(values))
                if point is not None:
                    values.append(point)
    if not values:
        return None
    return curve_chart(
        title,
        values,
        entry.get("x_label", x),
        entry.get("y_label", "value"),
        errorbars=entry.get("template") == "errorbars",
    )


def _flatten(data: object, prefix: str = "") -> dict[str, object]:
    if isinstance(data, dict):
        out: dict[str, object] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: data}


def _verdict(report: str) -> list[str]:
    """The paragraphs and bullets of the report's "## Verdict" section, as plain text."""
    match = re.search(r"^## Verdict\s*$(.*?)(?=^## |\Z)", report, re.M | re.S)
    if not match:
        return []
    parts = [p.strip() for p in re.split(r"\n\s*\n|\n(?=- )", match.group(1)) if p.strip()]
    # The verdict and its bullets; the protocol's explanation after them stays in the report.
    out = parts[:1]
    for part in parts[1:]:
        if not part.startswith("- "):
            break
        out.append(part)
    return out


def read_revision(store: RevisionStore, rev: Revision) -> dict:
    """Everything the page's "Read" section shows for ``rev``: missing pieces are left out."""
    dvc_yaml = yaml.safe_load(store.read_text(rev, "dvc.yaml") or "") or {}
    charts = []
    for item in dvc_yaml.get("plots") or []:
        if not isinstance(item, dict):
            continue  # a bare path: no axes to draw it with
        for title, entry in item.items():
            entry = entry or {}
            ys = entry.get("y") if isinstance(entry.get("y"), dict) else {}
            files = {p: t for p in ys if (t := store.read_text(rev, p)) is not None}
            spec = plot_spec(title, entry, files)
            if spec:
                charts.append(spec)
    metrics = []
    for declared in dvc_yaml.get("metrics") or []:
        # A stage's every figure is in results/, its headline in the declared metrics/ file.
        path, text = declared, None
        if declared.startswith("metrics/"):
            path = "results/" + declared.removeprefix("metrics/")
            text = store.read_text(rev, path)
        if text is None:
            path, text = declared, store.read_text(rev, declared)
        if text is None:
            continue
        try:
            flat = _flatten(json.loads(text))
        except json.JSONDecodeError:
            continue
        rows = [[k, v] for k, v in flat.items() if isinstance(v, (int, float, str))]
        metrics.append({"file": path, "rows": rows})
    report = store.read_text(rev, "reports/report.md")
    samples = []
    for path in store.list_dir(rev, "samples"):
        if not path.endswith(".jsonl"):
            continue
        text = store.read_text(rev, path) or ""
        texts = []
        for line in text.splitlines()[:SAMPLES_SHOWN]:
            try:
                texts.append(str(json.loads(line).get("text", ""))[:SAMPLE_CHARS])
            except (json.JSONDecodeError, AttributeError):
                continue
        samples.append({"file": path, "texts": texts})
    return {
        "revision": rev.label,
        "verdict": _verdict(report) if report else [],
        "charts": charts,
        "metrics": metrics,
        "samples": samples,
    }
