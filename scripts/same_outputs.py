"""Does a refactor keep every number? Run the tiny pipeline at a base revision and in this
checkout, on the same params and corpus, and compare every output's hash in dvc.lock.

    .venv/bin/python scripts/same_outputs.py BASE [VARIANT ...] [--keep DIR]
    (make same-outputs BASE=...)

Variants: ``gumbel`` (the tiny test params), ``reinforce`` (policy gradient, per-token LSTM
discriminator, two D steps per G step, an MLE term) and ``lines`` (word-token lines). The base
must accept this checkout's params.yaml keys. Exits 1 if any output differs. ``--keep DIR``
keeps both runs of each variant under DIR (``DIR/<variant>/{base,here}``) to see how they
differ.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.corpora import make_play  # noqa: E402
from tests.params import merged  # noqa: E402
from tests.repos import TINY_PARAMS, init_repo, run  # noqa: E402

VARIANTS = {
    "gumbel": {},
    "reinforce": {
        "gan": {
            "algorithm": "reinforce",
            "loss": "standard",
            "discriminator": "lstm",
            "d_steps": 2,
            "mle_weight": 0.5,
        }
    },
    "lines": {
        "data": {"unit": "line", "tokenizer": "word"},
        "gan": {"d_filter_widths": [2, 3], "eval_val_tokens": 90, "d_steps": 2},
    },
}


def output_hashes(tree: Path, repo: Path, params: dict) -> dict[str, str]:
    """Every output's md5 after `dvc repro` of ``tree``'s pipeline in a fresh repo."""
    repo.mkdir(parents=True)
    for name in ["stages", "textgen"]:
        shutil.copytree(tree / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ["dvc.yaml", ".gitignore", "requirements.lock"]:
        shutil.copy(tree / name, repo / name)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    (repo / "data/raw/tiny").mkdir(parents=True)
    (repo / "data/raw/tiny/play.txt").write_text(make_play(300, seed=1))
    run("dvc repro", init_repo(repo))
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage["outs"]}


def main() -> int:
    args = sys.argv[1:]
    keep = None
    if "--keep" in args:
        at = args.index("--keep")
        if at + 1 >= len(args):
            sys.exit("error: --keep needs a folder")
        keep = Path(args[at + 1]).resolve()
        del args[at : at + 2]
        if keep.exists():
            sys.exit(f"error: --keep {keep} exists already")
    if not args:
        sys.exit(__doc__)
    base, names = args[0], args[1:] or list(VARIANTS)
    unknown = set(names) - set(VARIANTS)
    if unknown:
        sys.exit(f"error: unknown variant {sorted(unknown)[0]} (expected one of {list(VARIANTS)})")
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = keep or Path(scratch_name)
        old = Path(scratch_name) / "base"
        subprocess.run(
            ["git", "worktree", "add", "-q", "--detach", str(old), base], cwd=ROOT, check=True
        )
        try:
            differ = 0
            for name in names:
                params = merged(TINY_PARAMS, VARIANTS[name])
                before = output_hashes(old, scratch / name / "base", params)
                after = output_hashes(ROOT, scratch / name / "here", params)
                changed = sorted(
                    p for p in before.keys() | after.keys() if before.get(p) != after.get(p)
                )
                differ += bool(changed)
                print(
                    f"{name}: {len(before)} outputs, "
                    + (f"DIFFER: {changed}" if changed else "all identical"),
                    flush=True,
                )
            return 1 if differ else 0
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=True)


if __name__ == "__main__":
    sys.exit(main())
