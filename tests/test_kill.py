"""SIGKILL anywhere in `dvc repro` loses nothing: the rerun finishes with the outputs of a run
never killed, and no output is ever half-written under its final name. It runs in a fresh
clone, so its last repro also shows that a clone reproduces the committed dvc.lock byte for
byte.

Kills are placed by tests/faults/sitecustomize.py at renames (how every output and checkpoint
is published), in the stage process, killing the stage and DVC together.
"""

import json
import signal
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.repos import clone, repo_env, run

FAULTS = Path(__file__).parent / "faults"

# On the tiny profile (tests/repos.py), whose uninterrupted run is the shared one (``team``'s,
# committed): dropout on, four epochs, six GAN steps. (Resuming early stopping is
# tests/test_training.py's.)

# (stage, file published by a rename, which rename, kill before or after it)
KILLS = [
    ("prepare", "prepared", 1, "before"),  # the prepared folder, complete, not yet in place
    ("train_lstm", "state.npz", 3, "after"),  # three epochs saved
    ("train_lstm", "state.npz", 1, "before"),  # (checkpoint damaged first) the next save
    ("train_lstm", "lstm.keras", 1, "before"),  # the final save, written, not yet in place
    ("train_lstm", "lstm.keras", 1, "after"),  # the model in place, its vocabulary not
    ("train_gan", "state.npz", 1, "after"),  # one curve point saved
    ("train_gan", "gan", 1, "before"),  # generator and discriminator, not yet in place
    ("sample", "lstm.jsonl", 1, "after"),  # one model's samples in place, not the other's
    ("evaluate", "evaluate.json", 1, "before"),  # every figure computed, none in place
    ("export", "lstm", 1, "after"),  # the LSTM's export in place, the GAN's not
]


def _outputs(repo: Path) -> list[Path]:
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    outs = [o for stage in stages.values() for o in stage.get("outs", [])]
    return [repo / (o if isinstance(o, str) else next(iter(o))) for o in outs]


def _repro(repo: Path, audit: Path, kill: str | None = None) -> subprocess.CompletedProcess:
    env = repo_env(
        PYTHONPATH=str(FAULTS),
        TEXTGEN_AUDIT=str(audit),
        TEXTGEN_OUTPUTS=json.dumps([str(o) for o in _outputs(repo)]),
    )
    if kill:
        env["TEXTGEN_KILL"] = kill
    # A session of its own: the kill takes DVC and the stage, and nothing of pytest.
    return subprocess.run(
        ["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True, start_new_session=True
    )


def _assert_whole(path: Path) -> None:
    """A file under a final output name is complete: it parses in full."""
    if path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".jsonl":
        [json.loads(line) for line in path.read_text().splitlines()]
    elif path.suffix == ".npy":
        np.load(path, allow_pickle=False)
    elif path.suffix == ".keras":
        with zipfile.ZipFile(path) as z:
            assert z.testzip() is None
    elif path.suffix == ".tsv":
        lines = path.read_text().splitlines()
        assert lines and all(len(x.split("\t")) == len(lines[0].split("\t")) for x in lines)
    else:
        assert path.stat().st_size > 0 or path.name == ".gitignore", path


def _files(repo: Path) -> dict[str, bytes]:
    """Every output file's bytes, by its path in the repository."""
    found = {}
    for out in _outputs(repo):
        for path in [out] if out.is_file() else out.rglob("*"):
            if path.is_file():
                found[path.relative_to(repo).as_posix()] = path.read_bytes()
    return found


@pytest.mark.slow
def test_sigkill_at_any_point_then_repro_gives_the_uninterrupted_outputs(team, tmp_path):
    straight = team / "a"  # the uninterrupted run, read only
    killed = clone(team, "killed")  # what git holds: no outputs, an empty DVC cache
    audit = tmp_path / "in-place-writes.log"

    outputs = _outputs(killed)
    for kill in KILLS:
        spec = ":".join(map(str, kill))
        damaged = kill == KILLS[2]
        if damaged:  # as a disk error or an older, non-atomic writer might leave it
            for state in (killed / "checkpoints").rglob("state.npz"):
                state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
        saved = any((killed / "checkpoints" / kill[0]).rglob("state.npz"))
        proc = _repro(killed, audit, spec)
        assert proc.returncode == -signal.SIGKILL, f"{spec}: not killed\n{proc.stdout}"
        notes = [x for x in proc.stdout.splitlines() if "resuming" in x or "warning" in x]
        print(f"{spec}: killed; {' | '.join(notes) or 'no resume'}")  # (pytest -rP shows it)
        if damaged:  # reported, dropped, and training starts over
            assert "unusable checkpoint" in proc.stdout and "from the start" in proc.stdout
        elif saved:
            assert "resuming a killed run after epoch" in proc.stdout, proc.stdout
        for out in outputs:  # whatever sits under a final name is whole
            for path in [out] if out.is_file() else out.rglob("*") if out.is_dir() else []:
                if path.is_file():
                    _assert_whole(path)

    done = _repro(killed, audit)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not audit.exists(), audit.read_text()  # every output was published by a rename
    want, got = _files(straight), _files(killed)
    assert sorted(got) == sorted(want)
    differ = sorted(k for k in want if got[k] != want[k])
    assert not differ, f"differ from the uninterrupted run: {differ}"
    # The fresh clone reproduced the committed dvc.lock, every hash, and left nothing untracked.
    assert run("git status --porcelain", killed).stdout == ""
    assert not list((killed / "checkpoints").rglob("state.npz")), "checkpoints are removed"
    leftovers = [p for p in killed.rglob(".*.tmp-*") if ".dvc" not in p.parts]
    assert not leftovers, leftovers
