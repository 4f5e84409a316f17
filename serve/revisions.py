"""The revisions a page may show (the workspace, commits, DVC experiments) and reading a
pipeline file at one of them from git or the DVC cache, without checking anything out.

A request names a revision by an id from the listing; anything else is refused, so no text
from a request reaches the filesystem: paths come from this module's constants and from
dvc.yaml. Listing runs ``dvc exp show`` (seconds), so it happens in the background: a request
resolves against the last listing and never waits for the next one.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

from dvc.api import DVCFileSystem

from serve import MAX_REVISIONS

log = logging.getLogger(__name__)

WORKSPACE = "workspace"
# How old a listing may be before a request starts a new one (in the background).
LISTING_TTL_S = 10.0
LISTING_TIMEOUT_S = 300.0  # a `dvc exp show` that hangs must not keep the listing stale forever


class UnknownRevision(LookupError):
    """A revision id that is not in the listing."""


@dataclass(frozen=True)
class Revision:
    id: str  # "workspace" or a full commit sha (an experiment is a commit too)
    label: str  # what the page shows: name, short sha, date
    kind: str  # "workspace", "commit" or "experiment"
    problem: str | None = None  # why DVC cannot read this revision's pipeline, in one line


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def workspace(problem: str | None = None) -> Revision:
    return Revision(WORKSPACE, "workspace", WORKSPACE, problem)


def parse_exp_show(entries: list[dict]) -> list[Revision]:
    """``dvc exp show --json`` -> revisions: the workspace (always, with DVC's error when it
    cannot read the pipeline), each commit, each experiment."""
    out: list[Revision] = [workspace()]
    seen: set[str] = {WORKSPACE}

    def add(entry: dict, kind: str) -> None:
        rev = entry.get("rev")
        error = entry.get("error")
        if rev == WORKSPACE:
            if error:
                msg = error.get("msg") if isinstance(error, dict) else error
                out[0] = workspace(f"DVC cannot read the pipeline: {one_line(msg)}")
            return
        if not rev or rev in seen or error:
            return
        seen.add(rev)
        stamp = ((entry.get("data") or {}).get("timestamp") or "")[:16].replace("T", " ")
        name = entry.get("name")
        head = ("exp " if kind == "experiment" else "") + (f"{name} " if name else "")
        when = f", {stamp}" if stamp else ""
        out.append(Revision(rev, f"{head}({rev[:7]}{when})", kind))

    for entry in entries:
        add(entry, "commit")
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                add(rev, "experiment")
    return out


class RevisionStore:
    """The pipeline repository at ``root``: its revisions, and its files at each of them.

    The listing is refreshed by a background thread, started by ``refresh`` (or by ``list``
    and ``resolve`` once the last listing is older than ``LISTING_TTL_S``); until the first one
    ends, only the workspace is listed and ``pending`` is true.
    """

    def __init__(self, root: str | Path, num_commits: int = 10, max_revisions: int = MAX_REVISIONS):
        self.root = Path(root).resolve()
        self.num_commits = num_commits
        self.max_revisions = max_revisions
        self._revisions: list[Revision] = [workspace()]
        self._listed_at: float | None = None  # monotonic time of the last listing's end
        self._refreshing: threading.Thread | None = None
        self._guard = threading.Lock()  # the listing's fields
        self._filesystems: OrderedDict[str, DVCFileSystem] = OrderedDict()
        # DVC's repo objects are not thread-safe; requests run in a thread pool.
        self._lock = threading.RLock()

    # --- the listing ---------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """True until the first listing has ended."""
        return self._listed_at is None

    def refresh(self) -> threading.Thread:
        """Starts a listing in the background unless one is running; returns its thread."""
        with self._guard:
            if self._refreshing is None or not self._refreshing.is_alive():
                self._refreshing = threading.Thread(
                    target=self._list_now, name="dvc-exp-show", daemon=True
                )
                self._refreshing.start()
            return self._refreshing

    def wait_listed(self, timeout: float | None = None) -> bool:
        """Waits for the running listing (tests, benchmarks); True when none is running."""
        thread = self._refreshing
        if thread is not None:
            thread.join(timeout)
        return not self.pending and (thread is None or not thread.is_alive())

    def _list_now(self) -> None:
        command = [sys.executable, "-m", "dvc", "exp", "show", "--json"]
        try:
            proc = subprocess.run(
                [*command, "-n", str(self.num_commits)],
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=LISTING_TIMEOUT_S,
            )
            if proc.returncode == 0 and proc.stdout.strip():
                revisions = parse_exp_show(json.loads(proc.stdout))
            else:
                lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
                why = one_line(lines[-1] if lines else f"exit status {proc.returncode}")
                revisions = [workspace(f"`dvc exp show` failed: {why}")]
        except (OSError, ValueError, subprocess.TimeoutExpired) as err:
            log.warning("listing revisions failed: %s", err)
            revisions = [workspace(f"`dvc exp show` failed: {one_line(err)}")]
        if revisions[0].problem and "validation failed" in revisions[0].problem:
            revisions[0] = workspace(f"{revisions[0].problem}: {_validation_errors(self.root)}")
        with self._guard:
            self._revisions, self._listed_at = revisions, time.monotonic()

    def _current(self) -> list[Revision]:
        """The last listing; a stale one starts a refresh in the background."""
        listed_at = self._listed_at
        if listed_at is None or time.monotonic() - listed_at >= LISTING_TTL_S:
            self.refresh()
        return self._revisions

    def list(self) -> list[Revision]:
        """The workspace, the last ``num_commits`` commits and their experiments, as last
        listed: never waits for ``dvc exp show``."""
        return list(self._current())

    def resolve(self, rev_id: str) -> Revision:
        """The listed revision with exactly this id; the workspace is always there."""
        for rev in self._current():
            if rev.id == rev_id:
                return rev
        still = " (the list is still being read: try again in a few seconds)"
        raise UnknownRevision(
            f"unknown revision {rev_id!r}: choose one from the list{still if self.pending else ''}"
        )

    # --- files at a revision -------------------------------------------------------------

    def _fs(self, rev: Revision) -> DVCFileSystem:
        """The revision's filesystem, kept for the ``max_revisions`` latest revisions."""
        fs = self._filesystems.get(rev.id)
        if fs is not None:
            self._filesystems.move_to_end(rev.id)
            return fs
        fs = DVCFileSystem(str(self.root), rev=None if rev.id == WORKSPACE else rev.id)
        self._filesystems[rev.id] = fs
        while len(self._filesystems) > self.max_revisions:
            _, old = self._filesystems.popitem(last=False)
            _close(old)
        return fs

    def open_filesystems(self) -> int:
        return len(self._filesystems)

    def read_bytes(self, rev: Revision, path: str) -> bytes | None:
        """``path`` (relative to the root) at ``rev``, from git or the DVC cache; None if the
        revision has no such file (or its data is not in the cache)."""
        with self._lock:
            try:
                with self._fs(rev).open(path, mode="rb") as f:
                    return f.read()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None
            except Exception as err:  # e.g. an output whose data is missing from the cache
                if type(err).__name__ in {"PathMissingError", "FileMissingError"}:
                    return None
                if rev.id != WORKSPACE:
                    raise
                # DVC cannot read the workspace's pipeline (its listing says why): the page
                # still reads the workspace's files as they are.
                local = self._local(path)
                return local.read_bytes() if local is not None and local.is_file() else None

    def read_text(self, rev: Revision, path: str) -> str | None:
        data = self.read_bytes(rev, path)
        return None if data is None else data.decode("utf-8")

    def list_dir(self, rev: Revision, path: str) -> list[str]:
        """File paths directly under ``path`` at ``rev`` (empty if it is not there)."""
        with self._lock:
            try:
                names = self._fs(rev).ls(path, detail=False)
            except (FileNotFoundError, NotADirectoryError):
                return []
            except Exception:
                if rev.id != WORKSPACE:
                    raise
                local = self._local(path)  # as in read_bytes
                if local is None or not local.is_dir():
                    return []
                names = [str(p.relative_to(self.root)) for p in local.iterdir() if p.is_file()]
            return sorted(str(n).lstrip("/") for n in names)

    def _local(self, path: str) -> Path | None:
        """``path`` in the workspace, or None if it leads outside the repository."""
        local = (self.root / path).resolve()
        return local if local.is_relative_to(self.root) else None


def _validation_errors(root: Path) -> str:
    """Where DVC's schema check fails in the workspace's dvc.yaml (``dvc exp show`` gives the
    headline only), e.g. "extra keys not allowed, in stages -> train -> dep"."""
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            repo.index  # noqa: B018 - reading it validates every dvc.yaml
    except Exception as err:
        errors = getattr(getattr(err, "exc", None), "errors", None) or [err]
        return "; ".join(
            one_line(getattr(e, "error_message", e))
            + (f", in {' -> '.join(map(str, e.path))}" if getattr(e, "path", None) else "")
            for e in errors
        )
    return "see `dvc status`"


def _close(fs: DVCFileSystem) -> None:
    # An evicted revision's repository (git objects, DVC index) is closed, not just dropped.
    try:
        fs.close()
    except Exception as err:  # closing is best effort: the next read opens a new one
        log.warning("closing a revision's filesystem failed: %s", err)


def as_dicts(revisions: list[Revision]) -> list[dict]:
    return [asdict(r) for r in revisions]
