import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

from tests.corpora import make_play
from tests.repos import init_repo, make_repo, run
from textgen.vocab import Vocabulary

# Under pytest-xdist (one worker per core, as `make test` runs), each worker's TensorFlow and
# the stages it starts use one thread, so the workers do not fight over the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


@pytest.fixture
def play_text() -> str:
    return make_play()


@pytest.fixture(scope="session")
def corpus() -> tuple[Vocabulary, np.ndarray, np.ndarray]:
    """A small play as a character stream: its vocabulary, the first 90% and the rest."""
    text = make_play(600, seed=3)
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    cut = int(len(ids) * 0.9)
    return vocab, ids[:cut], ids[cut:]


@pytest.fixture(scope="session")
def tiny_pipeline(request, tmp_path_factory) -> Path:
    """A git repository on the tiny profile (tests/repos.py) whose whole pipeline has run,
    outputs and DVC cache in place: read it, or copy it before changing anything. Built once
    per test run and shared by every pytest-xdist worker (the first to ask builds it)."""
    base = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # a worker: its temp folder sits in the run's
        base = base.parent
    repo = base / "tiny-pipeline"
    with FileLock(str(base / "tiny-pipeline.lock")):
        if not (repo / "dvc.lock").is_file():
            building = base / "tiny-pipeline.building"
            shutil.rmtree(building, ignore_errors=True)
            run("dvc repro -q", init_repo(make_repo(building)))
            building.rename(repo)
    return repo


@pytest.fixture(scope="session")
def team(tiny_pipeline) -> Path:
    """``origin.git`` and a DVC remote ``remote/``, holding the shared tiny run committed in
    ``a`` (its outputs, timings and run-cache stay there): clone it (tests/repos.clone) for a
    teammate's fresh checkout. Built once per test run and shared by every pytest-xdist worker,
    like ``tiny_pipeline``: tests add clones, branches and tags, and leave ``main`` and ``a``'s
    files alone."""
    root = tiny_pipeline.parent / "team"
    with FileLock(str(tiny_pipeline.parent / "team.lock")):
        if not (root / "ready").is_file():
            shutil.rmtree(root, ignore_errors=True)
            a = root / "a"
            shutil.copytree(tiny_pipeline, a, symlinks=True)
            run(f"dvc remote add -d storage {root / 'remote'}", a)
            # The built-in corpus is fetched at set-up; this small one travels in git.
            run("git add -f data/raw/tiny && git add -A && git commit -qm 'pipeline run'", a)
            run("dvc push", a)
            run("git clone -q --bare a origin.git", root)
            run("git remote add origin ../origin.git && git fetch -q origin", a)
            (root / "ready").touch()
    return root


# The modules of end-to-end tests, longest first (from `pytest --durations`): they are handed
# out first, so that no worker is left with a long test at the end while the other waits. The
# kill chain (first) builds the shared tiny run and the team's origin; the pipeline and
# tokenizer tests, which need neither, keep the other worker busy meanwhile.
LONGEST_FIRST = [
    "test_kill",
    "test_pipeline",
    "test_tokenizers",
    "test_reproducibility",
    "test_serve",
]
# Modules whose tests share nothing costly (each builds or copies what it needs): pytest-xdist
# may hand out each of their tests on its own. Every other module's tests stay on one worker,
# where its module fixtures are built once.
SPREAD = {"test_hostile", "test_pipeline", "test_reproducibility"}


def _module(nodeid: str) -> str:
    return Path(nodeid.split("::", 1)[0]).stem


def pytest_collection_modifyitems(config, items) -> None:
    """The slow modules first, longest first; then the rest in file order."""

    def order(item) -> tuple[int, int]:
        name = _module(item.nodeid)
        rank = LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
        return (item.get_closest_marker("slow") is None, rank)

    items.sort(key=order)


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` as `make test` means it: work units are modules, or single tests of
    the SPREAD modules, handed out in the collection's order (above). pytest-xdist 3.8's own
    loadgroup renames node ids to mark groups, which pytest 9 no longer lets it do: every test
    went its own way and module fixtures were built on both workers."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # keep LONGEST_FIRST, not "most tests first"

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if _module(nodeid) in SPREAD else nodeid.split("::", 1)[0]

    return ByModule(config, log)
