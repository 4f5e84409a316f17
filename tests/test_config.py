from pathlib import Path

import pytest

from textgen.config import DeclaredParams, LSTMParams, Params, load_params, parse_params
from textgen.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_repository_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert isinstance(params, Params)
    assert params.data.corpus == "data/raw/shakespeare"


def test_defaults_fill_missing_sections():
    params = parse_params({"seed": 3})
    assert params.seed == 3
    assert params.lstm.layers >= 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"lstm": {"hiden": 3}}, "lstm.hiden: unknown key (expected one of: embedding_dim, hidden"),
        ({"lstm": {"hidden": -3}}, "lstm.hidden: Input should be greater than 0"),
        ({"lstm": {"hidden": "big"}}, "lstm.hidden: Input should be a valid integer"),
        ({"sample": {"top_p": 1.5}}, "sample.top_p: Input should be less than or equal to 1"),
        (
            {"data": {"val_fraction": 0.3, "test_fraction": 0.3}},
            "data.val_fraction + data.test_fraction must be below 0.5",
        ),
        ({"evaluate": {"temperatures": [0.5, 0]}}, "evaluate.temperatures.1: Input should be"),
        ({"evaluate": {"temperatures": [1.0]}}, "evaluate.temperatures: List should have at least"),
        ({"evaluate": {"num_samples": 4}}, "evaluate.num_samples x evaluate.length (4 x 500)"),
        ({"sample": {"num_samples": 2}}, "sample.num_samples x sample.length (2 x 500) is too"),
        ({"evaluate": {"reverse_lm": {"layers": 0}}}, "evaluate.reverse_lm.layers: Input should"),
        ({"lstm": 5}, "lstm: Input should be a valid dictionary"),
        ({"gann": {}}, "gann: unknown key"),
    ],
)
def test_mistakes_name_the_dotted_key(raw, expected):
    with pytest.raises(UserError) as err:
        parse_params(raw)
    message = str(err.value)
    assert message.startswith(f"params.yaml: {expected}"), message
    assert "\n" not in message


def test_scientific_notation_string_is_a_number():
    # PyYAML reads `1e-3` as a string; users write it anyway.
    assert parse_params({"lstm": {"learning_rate": "1e-3"}}).lstm.learning_rate == 1e-3


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("lstm: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("- a list\n")
    with pytest.raises(UserError, match="expected a mapping"):
        load_params(bad)


def test_code_defaults_match_the_shipped_params_file():
    # One source of truth for a user reading either: params.yaml spells out every default.
    assert load_params(ROOT / "params.yaml") == Params()


def test_declared_params_allow_only_declared_keys():
    params = DeclaredParams(
        parse_params({"seed": 5}), frozenset({"seed", "lstm", "sample.prompt"}), "stage 'x'"
    )
    assert params.seed == 5
    assert params.lstm.hidden == LSTMParams().hidden  # a whole section, defaults included
    assert params.sample.prompt == "\n"
    with pytest.raises(UserError, match=r"stage 'x' reads params key 'sample\.length' but"):
        params.sample.length  # noqa: B018
    with pytest.raises(UserError, match="reads params key 'gan'"):
        params.gan  # noqa: B018
