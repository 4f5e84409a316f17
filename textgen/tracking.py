"""Training curves for DVC plots, through dvclive (one folder per stage under dvclive/)."""

from __future__ import annotations

from textgen.errors import UserError


def open_live(directory: str, resume: bool = False):
    """A dvclive ``Live`` that only writes files: no dvc.yaml edits, no experiment commits.

    ``resume`` continues the curves already in ``directory`` (a resumed training run);
    otherwise they are cleared.
    """
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    try:
        return Live(directory, dvcyaml=False, save_dvc_exp=False, report=None, resume=resume)
    except SCMError:  # dvclive 3.49 reads HEAD even when told not to save an experiment
        raise UserError(
            "dvclive needs a git repository with at least one commit: "
            "run `git add -A && git commit -m init` first"
        ) from None
