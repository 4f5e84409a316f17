from pathlib import Path

import pytest

from tests.params import ORACLE_SHIPPED, SHIPPED, merged
from textgen.config import DeclaredParams, Params, load_params, parse_params
from textgen.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_repository_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert isinstance(params, Params)
    assert params.data.corpus == "data/raw/shakespeare"


def test_the_oracle_benchmarks_params_are_valid_without_the_sections_it_does_not_read():
    params = load_params(ROOT / "oracle/params.yaml")
    assert params.oracle.vocab_size == 5000
    assert params.data is None and params.sample is None


def _without(raw: dict, dotted: str) -> dict:
    *parents, last = dotted.split(".")
    out = merged(raw, {})
    node = out
    for part in parents:
        node[part] = dict(node[part])
        node = node[part]
    del node[last]
    return out


def _keys(raw: dict, prefix: str = ""):
    for key, value in raw.items():
        if isinstance(value, dict):
            yield from _keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


@pytest.mark.parametrize("key", list(_keys(SHIPPED)))
def test_every_key_must_be_set_params_yaml_is_the_one_home_of_values(key):
    with pytest.raises(UserError) as err:
        parse_params(_without(SHIPPED, key))
    assert str(err.value).startswith(f"params.yaml: {key}: missing"), err.value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"lstm": {"hiden": 3}}, "lstm.hiden: unknown key (expected one of: embedding_dim, hidden"),
        ({"lstm": {"hidden": -3}}, "lstm.hidden: Input should be greater than 0"),
        ({"lstm": {"hidden": "big"}}, "lstm.hidden: Input should be a valid integer"),
        ({"sample": {"top_p": 1.5}}, "sample.top_p: Input should be less than or equal to 1"),
        ({"sample": {"repetition_penalty": 0}}, "sample.repetition_penalty: Input should be"),
        ({"sample": {"no_repeat_ngram": -1}}, "sample.no_repeat_ngram: Input should be greater"),
        ({"sample": {"min_length": 1.5}}, "sample.min_length: Input should be a valid integer"),
        ({"sample": {"stop": "\n"}}, "sample.stop: Input should be a valid list"),
        ({"sample": {"stop": ["\n", ""]}}, "sample.stop.1: String should have at least 1"),
        ({"sample": {"stop": [3]}}, "sample.stop.0: Input should be a valid string"),
        (
            {"sample": {"length": 4, "stop": ["THE END"]}},
            "sample.stop: 'THE END' has 7 characters, more than the sample.length of 4 tokens",
        ),
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
        parse_params(merged(SHIPPED, raw))
    message = str(err.value)
    assert message.startswith(f"params.yaml: {expected}"), message
    assert "\n" not in message


LINE = {"data": {"unit": "line", "max_len": 8}}  # the discriminator sees rows of 8 + 1 tokens


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # NumPy seeds with 0 <= seed < 2**32 (keras.utils.set_random_seed in seed_everything).
        ({"seed": 2**32}, "seed: expected an integer from 0 to 4294967295"),
        ({"seed": -1}, "seed: expected an integer from 0 to 4294967295"),
        ({"seed": True}, "seed: Input should be a valid integer (value: True)"),
        # Every float is finite, whatever its other bounds.
        ({"lstm": {"learning_rate": float("inf")}}, "lstm.learning_rate: Input should be a finite"),
        ({"lstm": {"learning_rate": float("nan")}}, "lstm.learning_rate: Input should be a finite"),
        ({"lstm": {"learning_rate": "inf"}}, "lstm.learning_rate: Input should be a finite"),
        ({"gan": {"mle_weight": float("inf")}}, "gan.mle_weight: Input should be a finite number"),
        ({"gan": {"beta_max": float("inf")}}, "gan.beta_max: Input should be a finite number"),
        ({"sample": {"temperature": float("inf")}}, "sample.temperature: Input should be a finite"),
        (
            {"evaluate": {"temperatures": [0.5, float("nan")]}},
            "evaluate.temperatures.1: Input should be a finite number",
        ),
        ({"oracle": {"init_std": float("inf")}}, "oracle.init_std: Input should be a finite"),
        # Floats take YAML ints, but not booleans.
        ({"gan": {"mle_weight": True}}, "gan.mle_weight: Input should be a number, not a boolean"),
        # Ints are YAML ints: not booleans, strings or numbers with a fraction.
        ({"lstm": {"hidden": True}}, "lstm.hidden: Input should be a valid integer (value: True)"),
        ({"lstm": {"hidden": 2.5}}, "lstm.hidden: Input should be a valid integer (value: 2.5)"),
        ({"lstm": {"hidden": 2.0}}, "lstm.hidden: Input should be a valid integer (value: 2.0)"),
        ({"lstm": {"hidden": "64"}}, "lstm.hidden: Input should be a valid integer (value: '64')"),
        ({"lstm": {"steps_per_epoch": False}}, "lstm.steps_per_epoch: Input should be a valid"),
        ({"data": {"max_vocab": "100"}}, "data.max_vocab: Input should be a valid integer"),
        ({"gan": {"d_filter_widths": [2, True]}}, "gan.d_filter_widths.1: Input should be a valid"),
        # Booleans are YAML booleans (`yes` unquoted is one; "yes" quoted is a string).
        ({"data": {"lowercase": "yes"}}, "data.lowercase: Input should be a valid boolean"),
        ({"data": {"lowercase": 1}}, "data.lowercase: Input should be a valid boolean (value: 1)"),
        # The CNN's widest filter against the length the discriminator sees.
        (
            {"gan": {"seq_len": 4}},
            "gan.d_filter_widths: a filter of width 5 is wider than the 4 tokens the "
            "discriminator sees (gan.seq_len); narrow it or raise gan.seq_len",
        ),
        (
            merged(LINE, {"gan": {"d_filter_widths": [2, 10]}}),
            "gan.d_filter_widths: a filter of width 10 is wider than the 9 tokens the "
            "discriminator sees (data.unit: line, rows of data.max_len + 1 = 9); narrow it or "
            "raise data.max_len",
        ),
    ],
)
def test_values_of_the_wrong_kind_or_range_name_the_key(raw, expected):
    base = merged(SHIPPED, {"oracle": ORACLE_SHIPPED["oracle"]}) if "oracle" in raw else SHIPPED
    with pytest.raises(UserError) as err:
        parse_params(merged(base, raw))
    message = str(err.value)
    assert message.startswith(f"params.yaml: {expected}"), message
    assert "\n" not in message


def test_the_widest_filter_fits_the_sequences_the_discriminator_sees():
    # Line rows are data.max_len + 1 tokens long whatever gan.seq_len is (it cuts streams only).
    params = parse_params(merged(SHIPPED, merged(LINE, {"gan": {"seq_len": 2}})))
    assert max(params.gan.d_filter_widths) > params.gan.seq_len
    edge = merged(LINE, {"gan": {"d_filter_widths": [9]}})
    assert parse_params(merged(SHIPPED, edge)).gan.d_filter_widths == [9]
    # The oracle benchmark's rows are oracle.seq_len tokens after the <bos>.
    short = merged(ORACLE_SHIPPED, {"oracle": {"seq_len": 4}})
    with pytest.raises(UserError, match=r"wider than the 4 tokens .*\(oracle\.seq_len\)"):
        parse_params(short)
    parse_params(merged(ORACLE_SHIPPED, {"gan": {"seq_len": 2}}))  # gan.seq_len: streams only
    # An LSTM discriminator has no filters to fit.
    parse_params(merged(SHIPPED, {"gan": {"seq_len": 2, "discriminator": "lstm"}}))


def test_the_largest_seed_and_whole_floats_are_accepted():
    params = parse_params(merged(SHIPPED, {"seed": 2**32 - 1, "lstm": {"learning_rate": 1}}))
    assert params.seed == 2**32 - 1
    assert params.lstm.learning_rate == 1.0 and isinstance(params.lstm.learning_rate, float)
    assert parse_params(merged(SHIPPED, {"data": {"lowercase": True}})).data.lowercase is True


def test_scientific_notation_string_is_a_number():
    # PyYAML reads `1e-3` as a string; users write it anyway.
    params = parse_params(merged(SHIPPED, {"lstm": {"learning_rate": "1e-3"}}))
    assert params.lstm.learning_rate == 1e-3


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


def test_declared_params_allow_only_declared_keys():
    params = DeclaredParams(
        parse_params(merged(SHIPPED, {"seed": 5})),
        frozenset({"seed", "lstm", "sample.prompt"}),
        "stage 'x'",
    )
    assert params.seed == 5
    assert params.lstm.hidden == SHIPPED["lstm"]["hidden"]  # a whole section
    assert params.sample.prompt == "\n"
    with pytest.raises(UserError, match=r"stage 'x' reads params key 'sample\.length' but"):
        params.sample.length  # noqa: B018
    with pytest.raises(UserError, match="reads params key 'gan'"):
        params.gan  # noqa: B018


def test_a_stage_reading_a_section_its_file_lacks_stops_naming_it():
    params = DeclaredParams(
        parse_params(ORACLE_SHIPPED), frozenset({"seed", "sample"}), "stage 'x'"
    )
    with pytest.raises(
        UserError, match=r"params\.yaml has no 'sample' section, which stage 'x' reads"
    ):
        params.sample  # noqa: B018
