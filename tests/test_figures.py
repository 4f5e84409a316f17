"""Charts without a browser or network: the report's quality-diversity SVGs (content, same
bytes from the same points), and the offline template `dvc plots show` uses (the Vega bundle
inline, no CDN), which the repository's configs point at."""

from __future__ import annotations

import configparser
import json
import math
import re
import subprocess
import xml.etree.ElementTree as ET

import vl_convert

import textgen.figures
from tests.repos import CLI, ROOT, run_in_process
from textgen.cli import PLOTS_TEMPLATE
from textgen.comparison import CRITERIA
from textgen.figures import (
    SCHEMA,
    curve_chart,
    offline_plots_template,
    sweep_chart,
    write_svg,
)
from textgen.report import curve_figures, figure_links, figure_name

LABELS = {"lstm": "LSTM (MLE)", "gan": "GAN"}


def _points(offset: float) -> list[dict]:
    points = []
    for k, t in enumerate([0.5, 1.0, 1.5]):
        point = {"temperature": t}
        for field, value in [
            ("bleu_4", 0.2 - 0.03 * k + offset),
            ("self_bleu_4", 0.25 - 0.05 * k),
            ("lm_score_nats", 1.4 + 0.2 * k),
            ("reverse_lm_nats", 2.9 - 0.1 * k + offset),
        ]:
            point |= {field: value, f"{field}_low": value - 0.01, f"{field}_high": value + 0.01}
        points.append(point)
    return points


SWEEPS = {"lstm": _points(0.0), "gan": _points(0.02)}


def test_sweep_chart_carries_every_point_its_interval_and_temperature():
    spec = sweep_chart(
        "t", {"A": SWEEPS["lstm"], "B": SWEEPS["gan"]}, "self_bleu_4", "bleu_4", "x", "y"
    )
    values = spec["data"]["values"]
    assert [v["series"] for v in values] == ["A"] * 3 + ["B"] * 3
    assert [v["label"] for v in values[:3]] == ["T=0.5", "T=1", "T=1.5"]
    first = values[3]
    assert first["x"] == SWEEPS["gan"][0]["self_bleu_4"]
    assert first["y"] == SWEEPS["gan"][0]["bleu_4"]
    assert (first["y_low"], first["y_high"]) == (first["y"] - 0.01, first["y"] + 0.01)
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks == ["line", "rule", "rule", "text"]  # curves, x and y error bars, labels


def test_sweep_chart_leaves_out_a_point_without_numbers():
    broken = {"temperature": 2.0, "self_bleu_4": 0.1, "bleu_4": math.nan}
    spec = sweep_chart("t", {"A": [*SWEEPS["lstm"], broken]}, "self_bleu_4", "bleu_4", "x", "y")
    assert [v["label"] for v in spec["data"]["values"]] == ["T=0.5", "T=1", "T=1.5"]


def test_curve_chart_draws_error_bars_only_when_asked_and_present():
    values = [{"x": 1.0, "y": 2.0, "series": "s", "i": 0, "y_low": 1.5, "y_high": 2.5}]
    assert len(curve_chart("t", values, "x", "y", errorbars=False)["layer"]) == 1
    rules = curve_chart("t", values, "x", "y", errorbars=True)["layer"][1:]
    assert [r["encoding"].get("y2") for r in rules] == [{"field": "y_high"}]  # no x bars


def test_report_figures_are_svg_with_both_models_and_the_same_bytes_twice(tmp_path):
    figures = curve_figures(SWEEPS, CRITERIA, LABELS)
    assert list(figures) == ["quality_diversity_bleu.svg", "quality_diversity_lm.svg"]
    for name, spec in figures.items():
        write_svg(spec, tmp_path / f"a_{name}")
        write_svg(spec, tmp_path / f"b_{name}")
        first = (tmp_path / f"a_{name}").read_bytes()
        assert first == (tmp_path / f"b_{name}").read_bytes(), "rendering must be deterministic"
        root = ET.fromstring(first)
        assert root.tag.endswith("svg")
        text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
        assert "LSTM (MLE)" in text and "GAN" in text and "T=1.5" in text, text
    bleu = ET.fromstring((tmp_path / "a_quality_diversity_bleu.svg").read_bytes())
    text = " ".join(t.text or "" for t in bleu.iter() if t.tag.endswith("text"))
    assert "Self-BLEU-4 (lower = more diverse)" in text and "BLEU-4 (higher = better)" in text


def test_report_links_each_chart_by_its_file_name():
    links = "\n".join(figure_links(CRITERIA))
    for criterion in CRITERIA:
        assert f"]({figure_name(criterion)})" in links
    # Relative links: the images sit beside report.md (a code host renders them).
    assert "/" not in "".join(re.findall(r"\]\(([^)]*)\)", links))


def test_offline_template_inlines_vega_and_links_no_cdn():
    html = offline_plots_template()
    assert html.count("{plot_divs}") == 1  # where DVC puts the charts
    assert "{scripts}" not in html  # DVC fills it with <script src> tags to a public CDN
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert "vegaEmbed" in html and len(html) > 100_000  # the bundle itself, inline
    # Exactly one inline script: nothing inside the bundle may close the tag early.
    assert html.count("<script>") == 1 and html.count("</script") == 1


def test_offline_template_inlines_the_bundle_the_page_serves(monkeypatch):
    # One source of the Vega scripts (figures.javascript_bundle) for the template and the page.
    monkeypatch.setattr(textgen.figures, "javascript_bundle", lambda: "/* the bundle */")
    assert "<script>\n/* the bundle */\n</script>" in offline_plots_template()


def test_specs_declare_the_vega_lite_the_bundle_runs():
    """vega-embed warns in the console when a spec's major version is not the bundle's (the
    newest vl-convert ships); DVC's own templates still say v5, ours need not."""
    newest = max(vl_convert.get_vegalite_versions(), key=lambda v: tuple(map(int, v.split("."))))
    expected = f"https://vega.github.io/schema/vega-lite/v{newest.split('.')[0]}.json"
    template = json.loads((ROOT / ".dvc/plots/errorbars.json").read_text())
    assert SCHEMA == template["$schema"] == expected


def _template_setting(config: str) -> str:
    parser = configparser.ConfigParser(inline_comment_prefixes=("#",))
    parser.read_string(config)
    return parser["plots"]["html_template"]


def test_both_projects_point_dvc_plots_at_the_template_setup_writes():
    for project in [ROOT, ROOT / "oracle"]:
        setting = _template_setting((project / ".dvc/config").read_text())
        # DVC resolves a relative html_template against the project's .dvc folder.
        assert (project / ".dvc" / setting).resolve() == (ROOT / PLOTS_TEMPLATE).resolve()
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(PLOTS_TEMPLATE)], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "the template is a set-up result, not tracked"


def test_plots_template_command_writes_the_template_and_fails_in_one_line(tmp_path):
    out = tmp_path / "plots/offline.html"
    code, stderr = run_in_process(tmp_path, f"{CLI} plots-template --out {out}")
    assert code == 0, stderr
    assert out.read_text(encoding="utf-8") == offline_plots_template()
    (tmp_path / "file").write_text("")
    code, stderr = run_in_process(tmp_path, f"{CLI} plots-template --out {tmp_path}/file/x.html")
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "plots-template" in lines[0], stderr
