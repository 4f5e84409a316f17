"""The pipelines' declarations match the code: every module a stage runs is among its deps,
and the run-cache stays on for every stage."""

import ast
import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = [ROOT / "dvc.yaml", ROOT / "oracle/dvc.yaml"]
# Besides its code, every stage depends on the pinned environment it runs in.
ENVIRONMENT = {"requirements.lock"}


def import_closure(script: Path) -> set[str]:
    """The project's Python files that running ``script`` imports (root-relative paths),
    the script included: imports anywhere in a module count, inside functions too."""
    script = script.resolve()
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                todo.extend(_project_files(name, script.parent))
    return {str(p.relative_to(ROOT)) for p in seen}


def _project_files(module: str, script_dir: Path) -> list[Path]:
    """The files that importing ``module`` runs, if it is the project's own: each package's
    ``__init__.py`` on the way, then the module itself."""
    parts = module.split(".")
    for base in (script_dir, ROOT):  # a stage script's folder comes first on sys.path
        files = []
        for i in range(1, len(parts) + 1):
            stem = base.joinpath(*parts[:i])
            if (stem / "__init__.py").is_file():
                files.append(stem / "__init__.py")
            elif stem.with_suffix(".py").is_file():
                files.append(stem.with_suffix(".py"))
                break
            else:
                break
        if files:
            return files
    return []


def stages_of(dvc_yaml: Path):
    yield from yaml.safe_load(dvc_yaml.read_text())["stages"].items()


def _root_relative(dvc_yaml: Path, path: str) -> str:
    return os.path.relpath(os.path.normpath(dvc_yaml.parent / path), ROOT)


def _script(cmd: str) -> str:
    match = re.search(r"python (\S+\.py)", cmd)
    assert match, f"expected `python <script>.py` in {cmd!r}"
    return match.group(1)


@pytest.mark.parametrize("dvc_yaml", PIPELINES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_stage_depends_on_exactly_the_code_it_runs(dvc_yaml):
    for name, stage in stages_of(dvc_yaml):
        script = dvc_yaml.parent / _script(stage["cmd"])
        code = import_closure(script)
        deps = {_root_relative(dvc_yaml, d) for d in stage["deps"]}
        declared_code = {d for d in deps if d.endswith(".py") or d in ENVIRONMENT}
        missing = sorted((code | ENVIRONMENT) - declared_code)
        extra = sorted(declared_code - code - ENVIRONMENT)
        assert not missing, f"{dvc_yaml.name}: stage {name} runs {missing} but does not list them"
        assert not extra, f"{dvc_yaml.name}: stage {name} lists {extra} but never imports them"


def test_import_closure_follows_imports_inside_functions():
    # cli.py imports the built-in corpus and the sampler inside functions
    assert {"textgen/datasets.py", "textgen/sampling.py"} <= import_closure(ROOT / "textgen/cli.py")
    closure = import_closure(ROOT / "stages/train_gan.py")
    assert {"stages/_common.py", "textgen/__init__.py", "textgen/vocab.py"} <= closure
    assert "textgen/report.py" not in closure


@pytest.mark.parametrize("dvc_yaml", PIPELINES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_output_turns_the_run_cache_off(dvc_yaml):
    for name, stage in stages_of(dvc_yaml):
        for out in stage["outs"]:
            if isinstance(out, dict):
                ((path, flags),) = out.items()
                assert not flags.get("persist"), f"{name}: {path} is persist (no run-cache)"
                assert flags.get("cache", True), f"{name}: {path} is not cached"


# The oracle benchmark runs the main pipeline's training stages on its own data. DVC cannot
# share stage blocks across two projects (no include; `${}` cannot splice a list into deps),
# so the blocks are written twice and held identical here, paths rebased.
SHARED_STAGES = ["train_lstm", "train_gan"]


@pytest.mark.parametrize("name", SHARED_STAGES)
def test_stages_the_oracle_benchmark_shares_are_declared_alike(name):
    main = dict(stages_of(ROOT / "dvc.yaml"))[name]
    oracle = dict(stages_of(ROOT / "oracle/dvc.yaml"))[name]
    rebased = yaml.safe_load(yaml.safe_dump(oracle).replace("../", ""))
    assert rebased == main, f"oracle/dvc.yaml: stage {name} differs from dvc.yaml's"


def test_a_contestants_change_never_retrains_the_judge():
    """The judge reads the prepared data and its own section only (its own seed too), so a
    change to a contestant, the sampling or the global seed leaves it cached (trained once per
    corpus); what follows a change reruns, as tests/test_reproducibility.py shows."""
    stages = dict(stages_of(ROOT / "dvc.yaml"))
    judge = stages["train_judge"]
    assert judge["params"] == ["judge"]
    data = [d for d in judge["deps"] if not d.endswith(".py") and d not in ENVIRONMENT]
    assert data and all(d.startswith("data/prepared/") for d in data), data
    for name, stage in stages.items():  # nothing before it is a contestant's
        if name != "train_judge" and any(o in judge["deps"] for o in stage["outs"]):
            assert name == "prepare", name
