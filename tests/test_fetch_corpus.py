"""``python -m textgen fetch-corpus`` as a user runs it: one-line errors, their files kept."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.params import SHIPPED, merged

ROOT = Path(__file__).resolve().parents[1]


def _fetch_corpus(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Offline: even if fetch-corpus went ahead and called pip, pip would find no index to reach.
    links = cwd / "no-links"
    links.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "TEXTGEN_CACHE": str(cwd / "cache"),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(links),
        "PYTHONPATH": str(ROOT),
    }
    cmd = [sys.executable, "-m", "textgen", "fetch-corpus", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("absolute", [True, False])
def test_fetch_into_a_folder_of_user_files_fails_in_one_line_and_keeps_them(tmp_path, absolute):
    raw = tmp_path / "raw"
    (raw / "mine").mkdir(parents=True)
    files = {
        raw / "mine" / "a.txt": b"my corpus\n",
        raw / "notes.txt": b"notes\n",
        raw / "README.md": b"# raw\n",
    }
    for path, data in files.items():
        path.write_bytes(data)
    dest = raw if absolute else Path("raw")
    # data.corpus uses the built-in corpus inside dest, so the CLI goes ahead to install.
    params = merged(SHIPPED, {"data": {"corpus": str(dest / "shakespeare")}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = _fetch_corpus(tmp_path, "--dest", str(dest), "--params", str(tmp_path / "params.yaml"))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {dest}: already holds files textgen did not put there")
    assert {p: p.read_bytes() for p in files} == files
    assert sorted(os.listdir(raw)) == ["README.md", "mine", "notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["no-links", "params.yaml", "raw"]


def test_fetch_into_the_current_directory_is_refused(tmp_path):
    (tmp_path / "keep.txt").write_text("keep\n")
    proc = _fetch_corpus(tmp_path, "--dest", ".", "--params", "none.yaml")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: .: is the current directory ({tmp_path.resolve()}); fetch-corpus needs a folder "
        "of its own, such as data/raw/shakespeare (--dest)"
    ]
    assert (tmp_path / "keep.txt").read_text() == "keep\n"
