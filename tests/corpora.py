"""Small corpora the tests make themselves."""

import random

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


KOREAN_WORDS = "로미오 줄리엣 사랑 밤 낮 달 별 그대 이름 태양 꽃 바람 노래 마음 하늘".split()


def make_korean(n_lines: int = 300, seed: int = 0) -> str:
    """Hangul verse lines (a few hundred distinct syllables' worth of characters)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = [rng.choice(KOREAN_WORDS) for _ in range(rng.randint(3, 7))]
        lines.append(" ".join(words) + rng.choice([".", "!", "?", ","]) + "\n")
    return "".join(lines)
