import random

import pytest

SPEAKERS = ["ROMEO", "JULIET", "NURSE", "FRIAR"]
WORDS = [
    *"the and of to my thou thee love night day sweet fair death heart will what".split(),
    *"shall not with this that good lord lady come go speak hear".split(),
]


def make_play(n_lines: int = 400, seed: int = 0) -> str:
    """A small play-shaped text: speaker lines and short verse lines from a tiny vocabulary."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_lines):
        out.append(f"{rng.choice(SPEAKERS)}.\n")
        for _ in range(rng.randint(1, 3)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(3, 8))]
            out.append(" ".join(words).capitalize() + rng.choice([".", ",", "!", "?"]) + "\n")
        out.append("\n")
    return "".join(out)


@pytest.fixture
def play_text() -> str:
    return make_play()
