"""Fault injection for the kill test (tests/test_kill.py), loaded by every Python process
started with this folder on PYTHONPATH; it acts only in a stage process named by the test.

``TEXTGEN_KILL = "stage:name:count:when"``: in ``stages/<stage>.py``, at the ``count``-th
rename onto a path whose name is ``name`` (how every output and checkpoint is published),
``before`` or ``after`` it, SIGKILL the whole process group: the stage and ``dvc repro``,
as a kill from a terminal or the OOM killer would.

``TEXTGEN_AUDIT = "<log file>"`` with ``TEXTGEN_OUTPUTS`` (a JSON list of absolute output
paths): every open for writing of an output path itself, or of a file inside an output
folder, is appended to the log: a write that a kill could leave half done under the final
name.
"""

import builtins
import io
import json
import os
import signal
import sys
from pathlib import Path

_script = Path(sys.argv[0]).as_posix() if sys.argv and sys.argv[0] else ""


def _kill() -> None:
    os.killpg(os.getpgid(0), signal.SIGKILL)


def _install_kill(spec: str) -> None:
    stage, name, count, when = spec.split(":")
    if not _script.endswith(f"stages/{stage}.py"):
        return
    seen = [0]
    replace = os.replace

    def killing_replace(src, dst, *args, **kwargs):
        hit = Path(dst).name == name and seen[0] + 1 == int(count)
        if Path(dst).name == name:
            seen[0] += 1
        if hit and when == "before":
            _kill()
        replace(src, dst, *args, **kwargs)
        if hit and when == "after":
            _kill()

    os.replace = killing_replace


def _install_audit(log: str, outputs: list[str]) -> None:
    if not _script.startswith("stages/") and "/stages/" not in _script:
        return
    outs = [Path(o) for o in outputs]
    original = builtins.open

    def auditing_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
            path = Path(os.path.abspath(file))
            if any(path == o or o in path.parents for o in outs):
                with original(log, "a") as f:
                    f.write(f"{_script} wrote {path} in place\n")
        return original(file, mode, *args, **kwargs)

    builtins.open = io.open = auditing_open


if os.environ.get("TEXTGEN_KILL"):
    _install_kill(os.environ["TEXTGEN_KILL"])
if os.environ.get("TEXTGEN_AUDIT"):
    _install_audit(os.environ["TEXTGEN_AUDIT"], json.loads(os.environ["TEXTGEN_OUTPUTS"]))
