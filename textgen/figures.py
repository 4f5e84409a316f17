"""Charts as Vega-Lite specs, and their rendering without a browser or network: the report's
quality-diversity curves (SVG through vl-convert, which ships Vega), the page's charts, and
the HTML template that lets ``dvc plots show`` draw offline (the Vega bundle inline)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import vl_convert

from textgen.artifacts import atomic_path

# The Vega-Lite major version vl-convert renders and bundles (its default).
SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
WIDTH, HEIGHT = 360, 220


def curve_chart(
    title: str, values: Sequence[Mapping], x_title: str, y_title: str, errorbars: bool = False
) -> dict:
    """A chart of one or more curves: ``values`` are points ``{"x", "y", "series", "i"}``
    (``i`` orders each line: temperature, step), optionally with ``x_low``/``x_high``/
    ``y_low``/``y_high`` (drawn as error bars when ``errorbars``) and a ``label`` written
    beside the point."""
    values = [dict(v) for v in values]
    enc_x = {"field": "x", "type": "quantitative", "title": x_title, "scale": {"zero": False}}
    enc_y = {"field": "y", "type": "quantitative", "title": y_title, "scale": {"zero": False}}
    # Series in the order given (the pipeline's model order), not alphabetical.
    color = {"field": "series", "type": "nominal", "title": None, "sort": None}
    layers: list[dict] = [
        {
            "mark": {"type": "line", "point": True},
            "encoding": {
                "x": enc_x,
                "y": enc_y,
                "color": color,
                "order": {"field": "i", "type": "quantitative"},
                "tooltip": [color, enc_x, enc_y],
            },
        }
    ]
    for axis, other in (("x", "y"), ("y", "x")):
        if errorbars and any(f"{axis}_low" in v for v in values):
            layers.append(
                {
                    "mark": {"type": "rule"},
                    "transform": [{"filter": f"isValid(datum.{axis}_low)"}],
                    "encoding": {
                        axis: {"field": f"{axis}_low", "type": "quantitative"},
                        f"{axis}2": {"field": f"{axis}_high"},
                        other: {"field": other, "type": "quantitative"},
                        "color": color,
                    },
                }
            )
    if any("label" in v for v in values):
        layers.append(
            {
                "mark": {"type": "text", "align": "left", "dx": 5, "dy": -6, "fontSize": 9},
                "encoding": {
                    "x": {"field": "x", "type": "quantitative"},
                    "y": {"field": "y", "type": "quantitative"},
                    "text": {"field": "label"},
                    "color": color,
                },
            }
        )
    return {
        "$schema": SCHEMA,
        "title": title,
        "width": WIDTH,
        "height": HEIGHT,
        "data": {"values": values},
        "layer": layers,
    }


def _number(value: object) -> float | None:
    """``value`` as a finite float (numbers, or their text in a TSV/CSV), else None."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def chart_point(row: Mapping, x: str, y: str, series: str, i: int) -> dict | None:
    """A ``curve_chart`` point from a row of named fields (a plot file's row, a sweep point):
    its ``x`` and ``y`` fields and their ``<field>_low``/``_high`` intervals where present;
    None when ``x`` or ``y`` is not a finite number (a chart cannot place the point)."""
    xv, yv = _number(row.get(x)), _number(row.get(y))
    if xv is None or yv is None:
        return None
    point = {"x": xv, "y": yv, "series": series, "i": i}
    for end in ("low", "high"):
        for axis, field in (("x", x), ("y", y)):
            value = _number(row.get(f"{field}_{end}"))
            if value is not None:
                point[f"{axis}_{end}"] = value
    return point


def sweep_chart(
    title: str,
    curves: Mapping[str, Sequence[Mapping]],
    x: str,
    y: str,
    x_title: str,
    y_title: str,
) -> dict:
    """Temperature sweeps (``plots/sweep/*.json`` points, one curve per label of ``curves``) as
    ``y`` against ``x`` with their ``<field>_low``/``_high`` intervals, each point marked with
    its temperature."""
    values = []
    for series, points in curves.items():
        for point in points:
            value = chart_point(point, x, y, series, len(values))
            if value is not None:
                values.append(value | {"label": f"T={point['temperature']:g}"})
    return curve_chart(title, values, x_title, y_title, errorbars=True)


def write_svg(spec: dict, path: str | Path) -> None:
    """Render ``spec`` to an SVG file (atomically), offline: same spec, same bytes."""
    svg = vl_convert.vegalite_to_svg(spec)
    with atomic_path(path) as tmp:
        tmp.write_text(svg, encoding="utf-8")


OFFLINE_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>DVC Plot</title>
<!-- vega, vega-lite and vega-embed from vl-convert {version}, inline: no CDN is reached.
     Written by `python -m textgen plots-template`; DVC's scripts placeholder (links to a
     CDN) is left out on purpose. -->
<script>
{bundle}
</script>
<style>table {{ border-spacing: 15px; }}</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def offline_plots_template() -> str:
    """An HTML template for ``dvc plots show`` (``plots.html_template``) with the Vega
    libraries inline, so its charts draw on a machine without network."""
    bundle = javascript_bundle()
    # The bundle sits in an inline <script>: a literal "</script" in it would end the tag.
    bundle = bundle.replace("</script", "<\\/script")
    return OFFLINE_TEMPLATE.format(version=vl_convert.__version__, bundle=bundle)


def javascript_bundle() -> str:
    """vega, vega-lite and vega-embed in one script (the page serves it; no CDN)."""
    return vl_convert.javascript_bundle()
