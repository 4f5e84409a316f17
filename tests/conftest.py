import pytest

from tests.corpora import make_play


@pytest.fixture
def play_text() -> str:
    return make_play()
