"""What DVC shows of a run: headline metrics and training curves.

- ``write_results``: every figure of a stage goes to ``results/<stage>.json`` (what the
  report and the page read); its headline figures also to ``metrics/<stage>.json``, the
  files dvc.yaml declares as metrics, so that ``dvc metrics show`` and ``dvc exp show`` fit a
  screen and still answer "which experiment is better".
- Training curves through dvclive (one folder per stage under dvclive/), written once
  training has finished, from the points the training kept (in its checkpoint, across any
  number of kills and resumes): a killed run never leaves a curve with a half-written or
  repeated point.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from textgen.artifacts import write_json
from textgen.errors import UserError

METRICS, RESULTS = Path("metrics"), Path("results")


def headline(values: dict, keys: Iterable[str]) -> dict:
    """The ``keys`` of ``values`` (dotted for nested dicts: ``"lstm.test_nll_nats"``), nested
    as they were; keys a run does not have are left out."""
    out: dict = {}
    for key in keys:
        *parents, name = key.split(".")
        source = values
        for part in parents:
            source = source.get(part, {}) if isinstance(source, dict) else {}
        if isinstance(source, dict) and name in source:
            target = out
            for part in parents:
                target = target.setdefault(part, {})
            target[name] = source[name]
    return out


def write_results(stage: str, values: dict, keys: Iterable[str]) -> None:
    """``results/<stage>.json``: every figure; ``metrics/<stage>.json``: the headline ``keys``."""
    write_json(RESULTS / f"{stage}.json", values)
    write_json(METRICS / f"{stage}.json", headline(values, keys))


def open_live(directory: str | Path):
    """A dvclive ``Live`` that only writes files: no dvc.yaml edits, no experiment commits."""
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    try:
        return Live(str(directory), dvcyaml=False, save_dvc_exp=False, report=None)
    except SCMError:  # dvclive 3.49 reads HEAD even when told not to save an experiment
        raise UserError(
            "dvclive needs a git repository with at least one commit: "
            "run `git add -A && git commit -m init` first"
        ) from None


def write_epoch_curves(directory: str | Path, epoch_logs: Iterable[dict[str, float]]) -> None:
    """One point per epoch of Keras ``fit`` logs, named as dvclive's Keras callback names
    them (``loss`` -> ``train/loss``, ``val_loss`` -> ``eval/loss``)."""
    from dvclive.keras import DVCLiveCallback

    with open_live(directory) as live:
        callback = DVCLiveCallback(live=live)
        for epoch, logs in enumerate(epoch_logs):
            callback.on_epoch_end(epoch, logs)


def write_step_curves(directory: str | Path, points: Iterable[dict[str, float]]) -> None:
    """One point per dict at x = its ``step`` (a training step, not the point's index),
    skipping values that are not finite (no loss at step 0)."""
    with open_live(directory) as live:
        for point in points:
            live.step = int(point["step"])
            for name, value in point.items():
                if name != "step" and math.isfinite(value):
                    live.log_metric(name, value, plot=True)
            live.next_step()
