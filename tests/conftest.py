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


# The modules of end-to-end tests, longest first (from `pytest --durations`): they are handed
# out first, so that no worker is left with a long test at the end while the other waits.
LONGEST_FIRST = ["test_kill", "test_reproducibility", "test_pipeline", "test_serve"]


def pytest_collection_modifyitems(config, items) -> None:
    """For pytest-xdist's ``--dist loadgroup`` (how `make test` runs): a module's tests stay on
    one worker, where its module fixtures are built once, unless the module sets
    ``SPREAD = True`` (tests that share nothing costly: each is then a unit of its own)."""
    for item in items:
        spread = getattr(item.module, "SPREAD", False)
        item.add_marker(pytest.mark.xdist_group(item.nodeid if spread else item.module.__name__))

    def order(item) -> tuple[int, int]:
        name = item.module.__name__.rsplit(".", 1)[-1]
        rank = LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
        return (item.get_closest_marker("slow") is None, rank)

    items.sort(key=order)
