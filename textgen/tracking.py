"""Training curves for DVC plots, through dvclive (one folder per stage under dvclive/)."""

from __future__ import annotations

import math
from collections.abc import Callable

from textgen.errors import UserError


def open_live(directory: str, resume: bool = False):
    """A dvclive ``Live`` that only writes files: no dvc.yaml edits, no experiment commits.

    ``resume`` continues the curves already in ``directory`` (a resumed training run);
    otherwise they are cleared.
    """
    from scmrepo.exceptions import SCMError

    from dvclive import Live

    try:
        return Live(directory, dvcyaml=False, save_dvc_exp=False, report=None, resume=resume)
    except SCMError:  # dvclive 3.49 reads HEAD even when told not to save an experiment
        raise UserError(
            "dvclive needs a git repository with at least one commit: "
            "run `git add -A && git commit -m init` first"
        ) from None


def step_curves(live) -> Callable[[int, dict], None]:
    """``log(step, metrics)`` for a ``Live``: one point per call at x = ``step`` (a training
    step, not the point's index), skipping values that are not finite (no loss at step 0)."""

    def log(step: int, metrics: dict) -> None:
        live.step = step
        for name, value in metrics.items():
            if math.isfinite(value):
                live.log_metric(name, value, plot=True)
        live.next_step()

    return log
