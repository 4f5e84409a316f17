"""What every stage script imports first: the checkout's own library, and its declared params.

DVC hashes the files under this checkout, so a stage must run them: ``python stages/x.py``
puts only ``stages/`` on ``sys.path``, and ``import textgen`` would otherwise resolve through
the environment (an editable install points at whichever clone installed it, not at the
temporary copy that ``dvc exp run --temp`` or ``dvc queue start`` runs in).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import textgen  # noqa: E402  (after the path is set: this checkout's copy)

if Path(textgen.__file__).resolve().parent != ROOT / "textgen":
    sys.exit(f"error: imported textgen from {textgen.__file__}, not from this checkout {ROOT}")

import yaml  # noqa: E402

from textgen.artifacts import LABELS, REPLICATES  # noqa: E402, F401  (the stages' names)
from textgen.config import DeclaredParams, Params, load_params  # noqa: E402
from textgen.errors import UserError, configure_logging  # noqa: E402

# Where the stages of both pipelines (./dvc.yaml, oracle/dvc.yaml) hand each other their
# artifacts, relative to the pipeline's folder (each stage's working directory).
PREPARED = Path("data/prepared")
MODELS = {"lstm": Path("models/lstm.keras"), "gan": Path("models/gan/generator.keras")}
ORACLE = Path("models/oracle.keras")  # the synthetic benchmark's data source
# The independent judge of sample quality (train_judge): neither contestant, so neither is
# scored by itself.
JUDGE = Path("models/judge.keras")
DVC_YAML = Path("dvc.yaml")
configure_logging()


def stage_params(stage: str) -> DeclaredParams:
    """``params.yaml``, validated whole, of which the stage may read only the keys that its
    entry in ``dvc.yaml`` declares: reading any other key is an error, so a param that
    changes what a stage computes can never be missing from what DVC tracks for it."""
    try:
        entry = yaml.safe_load(DVC_YAML.read_text(encoding="utf-8"))["stages"][stage]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        raise UserError(
            f"{DVC_YAML}: no stage '{stage}' (run a stage from its pipeline's folder)"
        ) from None
    declared: list[str] = []
    for item in entry.get("params", []):
        if isinstance(item, str):
            declared.append(item)
        else:  # {file: [keys]}: only params.yaml is read
            declared.extend(item.get("params.yaml", []))
    params: Params = load_params()
    return DeclaredParams(params, frozenset(declared), f"{DVC_YAML}: stage '{stage}'")
