"""What the page reads at a revision: dvc.yaml's top-level ``plots:`` as Vega-Lite specs (data
inlined, drawn in the browser by the page's own vega-embed), ``metrics:`` as tables (each
stage's every figure, from results/), the report's verdict and a few samples."""

from __future__ import annotations

import csv
import io
import json
import re
from functools import partial

import yaml

from serve.revisions import Revision, RevisionStore, one_line
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


def plot_spec(title: str, entry: dict, files: dict[str, list[dict]]) -> dict | None:
    """One dvc.yaml plot (``linear`` or ``errorbars`` template) as a Vega-Lite spec from its
    files' rows (``_rows``, by path); None when none of its files is there."""
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
            for row in files[path]:
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


class _Reader:
    """Reads a revision's files for the page: a file that cannot be read or parsed is skipped
    and named in ``problems``, so one bad file (a truncated plot, a metrics file caught
    mid-write, bytes that are not UTF-8) costs its own entry, never the whole answer."""

    def __init__(self, store: RevisionStore, rev: Revision):
        self.store, self.rev = store, rev
        self.problems: list[dict] = []

    def skip(self, path: str, why: str) -> None:
        self.problems.append({"file": path, "error": one_line(why, 200)})

    def parsed(self, path: str, parse=lambda text: text):
        """``parse(text)`` of the file at ``path``; None when it is missing or bad."""
        try:
            text = self.store.read_text(self.rev, path)
            return None if text is None else parse(text)
        except UnicodeDecodeError:
            self.skip(path, "not UTF-8 text")
        except json.JSONDecodeError as err:
            self.skip(path, f"not valid JSON ({err.msg}, line {err.lineno})")
        except yaml.YAMLError as err:
            self.skip(path, f"not valid YAML ({getattr(err, 'problem', None) or err})")
        except Exception as err:  # whatever else a file can do, it is that file's problem
            self.skip(path, f"unreadable ({type(err).__name__}: {err})")
        return None


def _metrics_rows(text: str) -> list[list]:
    flat = _flatten(json.loads(text))
    return [[k, v] for k, v in flat.items() if isinstance(v, (int, float, str))]


def _first_samples(text: str) -> list[str]:
    texts = []
    for line in text.splitlines()[:SAMPLES_SHOWN]:
        try:
            texts.append(str(json.loads(line).get("text", ""))[:SAMPLE_CHARS])
        except (json.JSONDecodeError, AttributeError):
            continue  # a line that is not a sample object: the others still show
    return texts


def read_revision(store: RevisionStore, rev: Revision) -> dict:
    """Everything the page's "Read" section shows for ``rev``: missing pieces are left out, bad
    files are listed in ``problems`` (file and why)."""
    reader = _Reader(store, rev)
    dvc_yaml = reader.parsed("dvc.yaml", yaml.safe_load) or {}
    if not isinstance(dvc_yaml, dict):
        reader.skip("dvc.yaml", "not a mapping of stages, plots and metrics")
        dvc_yaml = {}
    charts = []
    for item in _list(dvc_yaml.get("plots")):
        if not isinstance(item, dict):
            continue  # a bare path: no axes to draw it with
        for title, entry in item.items():
            entry = entry if isinstance(entry, dict) else {}
            ys = entry.get("y") if isinstance(entry.get("y"), dict) else {}
            files = {p: r for p in ys if (r := reader.parsed(str(p), partial(_rows, str(p))))}
            try:
                spec = plot_spec(str(title), entry, files)
            except Exception as err:  # a plot entry of an unexpected shape
                reader.skip("dvc.yaml", f"plot {title!r} cannot be drawn ({err})")
                spec = None
            if spec:
                charts.append(spec)
    metrics = []
    for declared in _list(dvc_yaml.get("metrics")):
        declared = str(declared)
        # A stage's every figure is in results/, its headline in the declared metrics/ file.
        path, rows = declared, None
        if declared.startswith("metrics/"):
            path = "results/" + declared.removeprefix("metrics/")
            rows = reader.parsed(path, _metrics_rows)
        if rows is None:
            path, rows = declared, reader.parsed(declared, _metrics_rows)
        if rows is not None:
            metrics.append({"file": path, "rows": rows})
    report = reader.parsed("reports/report.md")
    samples = []
    for path in store.list_dir(rev, "samples"):
        if path.endswith(".jsonl"):
            texts = reader.parsed(path, _first_samples)
            if texts is not None:
                samples.append({"file": path, "texts": texts})
    return {
        "revision": rev.label,
        "problem": rev.problem,
        "verdict": _verdict(report) if report else [],
        "charts": charts,
        "metrics": metrics,
        "samples": samples,
        "problems": reader.problems,
    }


def _list(value: object) -> list:
    return value if isinstance(value, list) else []
