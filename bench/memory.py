"""Peak memory of prepare and train_lstm on corpora of growing size: it must not grow with them.

For each size (default 10, 100 and 1000 MB of UTF-8) and script (ASCII words; Hangul syllable
words), a seeded synthetic corpus is written to a scratch project, then the pipeline's own stage
scripts run there, each in its own process: ``stages/prepare.py`` (streaming: three passes over
the files, token arrays written as they are made) and ``stages/train_lstm.py`` for a few steps
(``lstm.steps_per_epoch``, one epoch; the splits memory-mapped). Peak resident memory is the
kernel's own count for that process (``ru_maxrss`` from ``wait4``), beside a process that only
imports the library (TensorFlow included): the constant every stage pays. For sizes up to
``--reference-max-mb``, the in-memory prepare the streaming one replaced
(``tests/reference_prepare.py``, which holds every file as one string) runs on the same corpus,
side by side. Validation and test are a small fraction (``--held-out``), so that scoring them
stays quick at every size; the training split grows with the corpus.

    .venv/bin/python bench/memory.py [--sizes-mb 10 100 1000 --scripts ascii hangul
        --steps 5 --held-out 0.001 --reference-max-mb 100 --keep DIR]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
ASCII_WORDS = (
    "the and of to my thou thee love night day sweet fair death heart will what shall not with "
    "this that good lord lady come go speak hear king queen crown sword blood time heaven"
).split()
HANGUL_WORDS = "로미오 줄리엣 사랑 밤 낮 달 별 그대 이름 태양 꽃 바람 노래 마음 하늘 왕".split()


def write_corpus(path: Path, size_bytes: int, words: list[str], seed: int) -> None:
    """Lines of 4-11 seeded random words, in chunks, up to ``size_bytes`` of UTF-8."""
    rng = np.random.default_rng(seed)
    vocab = np.array(words, dtype=object)
    written = 0
    with open(path, "wb") as f:
        while written < size_bytes:
            picks = vocab[rng.integers(0, len(vocab), 1 << 18)]
            ends = np.cumsum(rng.integers(4, 12, len(picks) // 4))
            ends = ends[ends <= len(picks)]
            lines = [" ".join(picks[a:b]) for a, b in zip([0, *ends[:-1]], ends, strict=True)]
            data = ("\n".join(lines) + "\n").encode()
            if len(data) > size_bytes - written:  # the last chunk ends on a whole character
                cut = size_bytes - written
                while data[cut] & 0xC0 == 0x80:
                    cut -= 1
                f.write(data[:cut])
                return
            f.write(data)
            written += len(data)


def peak_rss_mb(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Peak resident memory (MB) and seconds of one process; its output's last line."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{out}")
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return usage.ru_maxrss / 1024, time.perf_counter() - start, last


REFERENCE = """
import sys
from pathlib import Path
sys.path[:0] = [{root!r}]
from tests.reference_prepare import prepare_corpus, read_corpus
files = sorted(Path("data/raw/synth").glob("*.txt"))
corpus = prepare_corpus(read_corpus(files), {held}, {held})
print(f"reference prepare: {{len(corpus.train):,}} train tokens")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--scripts", nargs="+", default=["ascii", "hangul"])
    parser.add_argument("--steps", type=int, default=5, help="training steps per corpus")
    parser.add_argument("--held-out", type=float, default=0.001, help="val and test fractions")
    parser.add_argument("--reference-max-mb", type=int, default=100)
    parser.add_argument("--keep", type=Path, help="scratch folder to use and keep")
    args = parser.parse_args()

    scratch = args.keep or Path(tempfile.mkdtemp(prefix="textgen-memory-"))
    python = sys.executable
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"] |= {
        "corpus": "data/raw/synth",
        "val_fraction": args.held_out,
        "test_fraction": args.held_out,
    }
    params["lstm"] |= {"epochs": 1, "steps_per_epoch": args.steps, "warmup_steps": 0}
    base, _, _ = peak_rss_mb([python, "-c", "import textgen.artifacts, textgen.model"], ROOT)
    print(f"importing the library (TensorFlow, Keras): {base:,.0f} MB peak resident memory")
    header = (
        f"{'corpus':>16}  {'prepare MB':>10}  {'s':>5}  {'train MB':>9}  {'s':>5}"
        f"  {'in-memory prepare MB':>20}"
    )
    print(header)
    try:
        for script in args.scripts:
            for size in args.sizes_mb:
                project = scratch / f"{script}-{size}mb"
                shutil.rmtree(project, ignore_errors=True)
                (project / "data/raw/synth").mkdir(parents=True)
                shutil.copy(ROOT / "dvc.yaml", project)
                (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
                words = ASCII_WORDS if script == "ascii" else HANGUL_WORDS
                write_corpus(project / "data/raw/synth/corpus.txt", size << 20, words, seed=size)
                prep = peak_rss_mb([python, str(ROOT / "stages/prepare.py")], project)
                train = peak_rss_mb([python, str(ROOT / "stages/train_lstm.py")], project)
                reference = "-"
                if size <= args.reference_max_mb:
                    code = REFERENCE.format(root=str(ROOT), held=args.held_out)
                    ref_mb, ref_s, _ = peak_rss_mb([python, "-c", code], project)
                    reference = f"{ref_mb:,.0f} ({ref_s:.0f} s)"
                stats = json.loads((project / "data/prepared/stats.json").read_text())
                print(
                    f"{f'{script} {size} MB':>16}  {prep[0]:>10,.0f}  {prep[1]:>5.0f}  "
                    f"{train[0]:>9,.0f}  {train[1]:>5.0f}  {reference:>20}"
                    f"    ({stats['characters']:,} characters, {stats['train_tokens']:,} "
                    f"train tokens, vocabulary {stats['vocab_size']})",
                    flush=True,
                )
                if not args.keep:
                    shutil.rmtree(project)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
