"""The revisions a page may show (the workspace, commits, DVC experiments) and reading a
pipeline file at one of them from git or the DVC cache, without checking anything out.

A request names a revision by an id from ``list``; anything else is refused, so no text from
a request reaches the filesystem: paths come from this module's constants and from dvc.yaml.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dvc.api import DVCFileSystem

WORKSPACE = "workspace"
# How long a listing is reused: `dvc exp show` takes seconds, and a page asks on every load.
LISTING_TTL_S = 10.0


class UnknownRevision(LookupError):
    """A revision id that is not in the listing."""


@dataclass(frozen=True)
class Revision:
    id: str  # "workspace" or a full commit sha (an experiment is a commit too)
    label: str  # what the page shows: name, short sha, date
    kind: str  # "workspace", "commit" or "experiment"


def parse_exp_show(entries: list[dict]) -> list[Revision]:
    """``dvc exp show --json`` -> revisions: the workspace, each commit, each experiment."""
    out: list[Revision] = []
    seen: set[str] = set()

    def add(entry: dict, kind: str) -> None:
        rev = entry.get("rev")
        if not rev or rev in seen or entry.get("error"):
            return
        seen.add(rev)
        if rev == WORKSPACE:
            out.append(Revision(WORKSPACE, "workspace", WORKSPACE))
            return
        stamp = ((entry.get("data") or {}).get("timestamp") or "")[:16].replace("T", " ")
        name = entry.get("name")
        head = ("exp " if kind == "experiment" else "") + (f"{name} " if name else "")
        when = f", {stamp}" if stamp else ""
        label = f"{head}({rev[:7]}{when})"
        out.append(Revision(rev, label, kind))

    for entry in entries:
        add(entry, WORKSPACE if entry.get("rev") == WORKSPACE else "commit")
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                add(rev, "experiment")
    return out


class RevisionStore:
    """The pipeline repository at ``root``: its revisions, and its files at each of them."""

    def __init__(self, root: str | Path, num_commits: int = 10):
        self.root = Path(root).resolve()
        self.num_commits = num_commits
        self._listing: tuple[float, list[Revision]] | None = None
        self._filesystems: dict[str, DVCFileSystem] = {}
        # DVC's repo objects are not thread-safe; requests run in a thread pool.
        self._lock = threading.RLock()
        # Listing runs a subprocess for seconds: it must not hold up reads of files.
        self._listing_lock = threading.Lock()

    def list(self) -> list[Revision]:
        """The workspace, the last ``num_commits`` commits and their experiments."""
        with self._listing_lock:
            if self._listing and time.monotonic() - self._listing[0] < LISTING_TTL_S:
                return self._listing[1]
            proc = subprocess.run(
                [sys.executable, "-m", "dvc", "exp", "show", "--json", "-n", str(self.num_commits)],
                cwd=self.root,
                capture_output=True,
                text=True,
            )
            revisions = [Revision(WORKSPACE, "workspace", WORKSPACE)]
            if proc.returncode == 0 and proc.stdout.strip():
                revisions = parse_exp_show(json.loads(proc.stdout)) or revisions
            self._listing = (time.monotonic(), revisions)
            return revisions

    def resolve(self, rev_id: str) -> Revision:
        """The listed revision with this id (or a unique prefix of 7+ characters)."""
        revisions = self.list()
        for rev in revisions:
            if rev.id == rev_id:
                return rev
        matches = [r for r in revisions if len(rev_id) >= 7 and r.id.startswith(rev_id)]
        if len(matches) == 1:
            return matches[0]
        raise UnknownRevision(f"unknown revision {rev_id!r}: choose one from the list")

    def _fs(self, rev: Revision) -> DVCFileSystem:
        fs = self._filesystems.get(rev.id)
        if fs is None:
            fs = DVCFileSystem(str(self.root), rev=None if rev.id == WORKSPACE else rev.id)
            self._filesystems[rev.id] = fs
        return fs

    def read_bytes(self, rev: Revision, path: str) -> bytes | None:
        """``path`` (relative to the root) at ``rev``, from git or the DVC cache; None if the
        revision has no such file (or its data is not in the cache)."""
        with self._lock:
            fs = self._fs(rev)
            try:
                with fs.open(path, mode="rb") as f:
                    return f.read()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None
            except Exception as err:  # e.g. an output whose data is missing from the cache
                if type(err).__name__ in {"PathMissingError", "FileMissingError"}:
                    return None
                raise

    def read_text(self, rev: Revision, path: str) -> str | None:
        data = self.read_bytes(rev, path)
        return None if data is None else data.decode("utf-8")

    def list_dir(self, rev: Revision, path: str) -> list[str]:
        """File paths directly under ``path`` at ``rev`` (empty if it is not there)."""
        with self._lock:
            fs = self._fs(rev)
            try:
                names = fs.ls(path, detail=False)
            except (FileNotFoundError, NotADirectoryError):
                return []
            return sorted(str(n).lstrip("/") for n in names)


def as_dicts(revisions: list[Revision]) -> list[dict]:
    return [asdict(r) for r in revisions]
