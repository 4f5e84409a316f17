"""Typed, validated ``params.yaml``: one section per stage, checked once with dotted key names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)

from textgen.errors import UserError

# YAML gives each value its type, and a value of the wrong type is a mistake, not something
# to convert: `hidden: true` is not 1, `lowercase: "yes"` is not true, 2.5 is not an integer.
Int = Annotated[int, Strict()]
PositiveInt = Annotated[Int, Field(gt=0)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
Bool = Annotated[bool, Strict()]


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("Input should be a number, not a boolean")
    return value


# A number: a YAML int or float (or a numeric string: PyYAML reads `1e-3` as one), never a
# boolean, and finite (.inf and .nan would only surface as a crash or NaN losses later).
Float = Annotated[float, BeforeValidator(_not_a_bool), Field(allow_inf_nan=False)]
Fraction = Annotated[Float, Field(gt=0.0, lt=1.0)]

# NumPy seeds its global generator (keras.utils.set_random_seed, in seed_everything and the
# reverse LM's training) with 0 <= seed < 2**32. Seeds derived from it (derive_seed: seed *
# 1,000,003 + i, then int64 in TensorFlow) stay far below 2**63 from any seed in that range.
SEED_LIMIT = 2**32


def _seed_in_range(seed: int) -> int:
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"expected an integer from 0 to {SEED_LIMIT - 1}, the seeds NumPy accepts")
    return seed


Seed = Annotated[Int, AfterValidator(_seed_in_range)]


class _Section(BaseModel):
    # Unknown keys are typos until proven otherwise; frozen so stages cannot drift from the file.
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Section):
    corpus: str
    lowercase: Bool
    split: Literal["per_file", "whole"]
    val_fraction: Fraction
    test_fraction: Fraction
    unit: Literal["stream", "line"]
    tokenizer: Literal["char", "jamo", "byte", "bpe", "word"]
    max_vocab: Annotated[Int, Field(ge=2)] | None
    max_len: PositiveInt

    @model_validator(mode="after")
    def _leaves_training_data(self) -> DataParams:
        if self.val_fraction + self.test_fraction >= 0.5:
            raise ValueError("data.val_fraction + data.test_fraction must be below 0.5")
        return self

    @model_validator(mode="after")
    def _holds_the_bytes(self) -> DataParams:
        # byte and bpe represent every text by its 256 bytes: the vocabulary holds them all.
        specials = 4 if self.unit == "line" else 1  # vocab.specials_for: <pad> <unk> <bos> <eos>
        least = 256 + specials
        what = f"the 256 bytes and {specials} special token(s)"
        if self.tokenizer == "bpe" and (self.max_vocab is None or self.max_vocab < least):
            raise ValueError(
                f"data.max_vocab: the bpe tokenizer learns a vocabulary of this size, at least "
                f"{least} ({what}); got {self.max_vocab}"
            )
        if self.tokenizer == "byte" and self.max_vocab is not None and self.max_vocab < least:
            raise ValueError(
                f"data.max_vocab: the byte tokenizer's vocabulary is {what}, {least} in all; "
                f"set null or at least {least}, got {self.max_vocab}"
            )
        return self


class LSTMParams(_Section):
    embedding_dim: PositiveInt
    hidden: PositiveInt
    layers: PositiveInt
    dropout: Annotated[Float, Field(ge=0.0, lt=1.0)]
    seq_len: PositiveInt
    batch_size: PositiveInt
    epochs: PositiveInt
    steps_per_epoch: PositiveInt | None
    learning_rate: Annotated[Float, Field(gt=0.0)]
    min_learning_rate_ratio: Annotated[Float, Field(ge=0.0, le=1.0)]
    warmup_steps: NonNegativeInt
    clipnorm: Annotated[Float, Field(gt=0.0)]
    patience: PositiveInt
    eval_batch_size: PositiveInt

    @property
    def architecture(self) -> dict[str, int | float]:
        """``model.build_model``'s size arguments."""
        return {
            "embedding_dim": self.embedding_dim,
            "hidden": self.hidden,
            "layers": self.layers,
            "dropout": self.dropout,
        }


# The devices a training stage trains on (textgen.distribute).
Distribute = Literal["none", "mirrored", "multi_worker"]
# What it computes in: auto = bf16 where the devices have bf16 units (textgen.distribute).
Precision = Literal["auto", "fp32", "bf16"]


class StageLSTMParams(LSTMParams):
    """A language model that a training stage trains (``lstm``, ``judge``): also the devices
    it trains on."""

    distribute: Distribute
    precision: Precision


class JudgeParams(StageLSTMParams):
    """The independent judge of sample quality (train_judge): a language model of its own size
    and seed, trained on the training split, that is neither contestant, so that neither model
    is scored by itself (a model's own temperature sweep traces the best curve its own judge
    allows)."""

    seed: Seed


class GANParams(_Section):
    algorithm: Literal["gumbel", "reinforce"]
    loss: Literal["rsgan", "standard"]
    discriminator: Literal["cnn", "lstm"]
    seq_len: PositiveInt
    batch_size: PositiveInt
    steps: PositiveInt
    d_pretrain_steps: NonNegativeInt
    d_steps: PositiveInt
    g_learning_rate: Annotated[Float, Field(gt=0.0)]
    d_learning_rate: Annotated[Float, Field(gt=0.0)]
    clipnorm: Annotated[Float, Field(gt=0.0)]
    mle_weight: Annotated[Float, Field(ge=0.0)]
    beta_max: Annotated[Float, Field(ge=1.0)]
    beta_schedule: Literal["exp", "linear", "constant"]
    beta_span: Annotated[Int, Field(ge=2)] | None
    baseline_decay: Annotated[Float, Field(ge=0.0, lt=1.0)]
    discount: Annotated[Float, Field(gt=0.0, le=1.0)]
    d_embedding_dim: PositiveInt
    d_filters: PositiveInt
    d_filter_widths: Annotated[list[PositiveInt], Field(min_length=1)]
    d_hidden: PositiveInt
    d_dropout: Annotated[Float, Field(ge=0.0, lt=1.0)]
    log_every: PositiveInt
    eval_samples: PositiveInt
    eval_val_tokens: PositiveInt

    @property
    def discriminator_args(self) -> dict:
        """``discriminator.build_discriminator``'s arguments after the vocabulary size."""
        return {
            "kind": self.discriminator,
            "embedding_dim": self.d_embedding_dim,
            "filters": self.d_filters,
            "filter_widths": tuple(self.d_filter_widths),
            "hidden": self.d_hidden,
            "dropout": self.d_dropout,
        }


class SampleParams(_Section):
    num_samples: PositiveInt
    length: PositiveInt
    temperature: Annotated[Float, Field(ge=0.0)]
    top_k: NonNegativeInt
    top_p: Annotated[Float, Field(gt=0.0, le=1.0)]
    repetition_penalty: Annotated[Float, Field(gt=0.0)]
    no_repeat_ngram: NonNegativeInt
    min_length: NonNegativeInt
    stop: list[Annotated[str, Strict(), Field(min_length=1)]]
    prompt: str

    @model_validator(mode="after")
    def _stops_can_occur(self) -> SampleParams:
        # As sampling.check_stops (not imported: it would load TensorFlow with the params).
        for stop in self.stop:
            if len(stop) > self.length:
                raise ValueError(
                    f"sample.stop: {stop!r} has {len(stop)} characters, more than the "
                    f"sample.length of {self.length} tokens"
                )
        return self


class ExportParams(_Section):
    # ISO 639-1 codes of the corpus' languages: the model card's front matter (model hubs
    # filter by them). The pipeline cannot know them from the text.
    language: Annotated[
        list[Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]+)?$")]], Field(min_length=1)
    ]


class EvaluateParams(_Section):
    batch_size: PositiveInt
    temperatures: Annotated[list[Annotated[Float, Field(gt=0.0)]], Field(min_length=2)]
    num_samples: Annotated[Int, Field(ge=2)]
    length: PositiveInt
    reverse_lm: LSTMParams
    report_samples: NonNegativeInt
    # BLEU and Self-BLEU score this many sentences per sample set (null: all): Self-BLEU rises
    # with the number of sentences, which differs between models at a fixed sample length.
    bleu_sentences: Annotated[Int, Field(ge=2)] | None

    @model_validator(mode="after")
    def _report_samples_exist(self) -> EvaluateParams:
        if self.report_samples > self.num_samples:
            raise ValueError("evaluate.report_samples must be at most evaluate.num_samples")
        return self


def need_tokens(num_samples: int, length: int, lm: LSTMParams, where: str, rows: bool) -> None:
    """Samples must give the reverse LM a batch of training windows (or of sequences, with
    ``rows``), after a tenth held out."""
    held_out = max(1, num_samples // 10)
    if rows:
        short = num_samples - held_out < lm.batch_size
    else:
        windows = ((num_samples - held_out) * (length + 1) - 1 - lm.seq_len) // lm.seq_len
        short = held_out * (length + 1) <= lm.seq_len or windows < lm.batch_size
    if short:
        raise ValueError(
            f"{where}.num_samples x {where}.length ({num_samples} x {length}) is too little text "
            f"to train the reverse LM (evaluate.reverse_lm: seq_len {lm.seq_len}, "
            f"batch_size {lm.batch_size}); raise them or lower those"
        )


class OracleParams(_Section):
    """The synthetic benchmark's oracle (``oracle/params.yaml``); SeqGAN's settings."""

    # Its own seed: the training seed (``seed``) varies across a study's runs, the task does not.
    seed: Seed
    vocab_size: PositiveInt
    seq_len: PositiveInt
    embedding_dim: PositiveInt
    hidden: PositiveInt
    init_std: Annotated[Float, Field(gt=0.0)]
    train_sequences: PositiveInt
    val_sequences: PositiveInt
    test_sequences: PositiveInt

    @property
    def architecture(self) -> dict[str, int | float]:
        """``model.build_model``'s size arguments: SeqGAN's shape, one layer, no dropout."""
        return {"embedding_dim": self.embedding_dim, "hidden": self.hidden, "layers": 1}


def _distinct(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError("expected distinct seeds")
    return seeds


class StudyParams(_Section):
    """``python -m textgen study``: the comparison repeated over training seeds, each seed an
    experiment of its own (``-S seed=S``); read by the command, by no stage."""

    seeds: Annotated[list[Seed], Field(min_length=1), AfterValidator(_distinct)]


class Params(_Section):
    """The whole file. A pipeline's file holds the sections its stages read, each with every
    key set (params.yaml is the one home of every value, so ``dvc params diff`` and
    ``dvc exp show`` show them all); a stage that reads a missing section stops naming it."""

    seed: Seed
    data: DataParams | None = None
    lstm: StageLSTMParams | None = None
    judge: JudgeParams | None = None
    gan: GANParams | None = None
    sample: SampleParams | None = None
    evaluate: EvaluateParams | None = None
    export: ExportParams | None = None
    oracle: OracleParams | None = None
    study: StudyParams | None = None

    @model_validator(mode="after")
    def _convolutions_fit(self) -> Params:
        """The CNN discriminator's widest filter must fit the sequences it judges: windows of
        gan.seq_len from a stream, but whole rows with data.unit: line (<bos>, at most
        data.max_len tokens, <eos>, padding: data.max_len + 1 tokens after the <bos>) and in
        the oracle benchmark (oracle.seq_len tokens after the <bos>)."""
        gan = self.gan
        if gan is None or gan.discriminator != "cnn":
            return self
        if self.data is not None and self.data.unit == "line":
            length = self.data.max_len + 1
            source, fix = f"data.unit: line, rows of data.max_len + 1 = {length}", "data.max_len"
        elif self.data is None and self.oracle is not None:
            length, source, fix = self.oracle.seq_len, "oracle.seq_len", "oracle.seq_len"
        else:
            length, source, fix = gan.seq_len, "gan.seq_len", "gan.seq_len"
        widest = max(gan.d_filter_widths)
        if widest > length:
            raise ValueError(
                f"gan.d_filter_widths: a filter of width {widest} is wider than the {length} "
                f"tokens the discriminator sees ({source}); narrow it or raise {fix}"
            )
        return self

    @model_validator(mode="after")
    def _samples_feed_reverse_lm(self) -> Params:
        if self.data is None or self.evaluate is None:
            return self  # no samples to check (the oracle benchmark's file)
        rows, lm = self.data.unit == "line", self.evaluate.reverse_lm
        if self.sample is not None:
            need_tokens(self.sample.num_samples, self.sample.length, lm, "sample", rows)
        need_tokens(self.evaluate.num_samples, self.evaluate.length, lm, "evaluate", rows)
        return self


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate the whole params file; any mistake becomes a one-line UserError."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (run from the project root)") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        detail = " ".join(str(err).split())
        raise UserError(f"{path}: not valid YAML: {detail}") from None
    return parse_params(raw if raw is not None else {}, source=str(path))


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise UserError(f"{source}: {_first_problem(err)}") from None


def _first_problem(err: ValidationError) -> str:
    problem = err.errors()[0]
    key = ".".join(str(part) for part in problem["loc"])
    if problem["type"] == "missing":
        return f"{key}: missing (every key of a section must be set, as in the shipped params.yaml)"
    if problem["type"] == "extra_forbidden":
        parent = _section_at(problem["loc"][:-1])
        known = ", ".join(parent.model_fields)
        return f"{key}: unknown key (expected one of: {known})"
    message = problem["msg"].removeprefix("Value error, ")
    if isinstance(problem["input"], dict):  # a check across keys: the message names them
        return message
    return f"{key}: {message} (value: {problem['input']!r})"


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    model: type[BaseModel] = Params
    for part in loc:
        annotation = model.model_fields[str(part)].annotation
        # An optional section (``X | None``) is the section ``X``.
        model = next(
            (a for a in getattr(annotation, "__args__", ()) if a is not type(None)), annotation
        )
    return model


class DeclaredParams:
    """A read-only view of ``Params`` that allows only some dotted keys (and what lies below
    them): a stage reads what its pipeline declares, and anything else is an error naming
    the key, not a silent dependency that DVC does not track."""

    def __init__(self, params: BaseModel, declared: frozenset[str], owner: str, prefix: str = ""):
        self._params, self._declared, self._owner, self._prefix = params, declared, owner, prefix

    def __getattr__(self, name: str) -> Any:
        key = self._prefix + name
        value = getattr(self._params, name)
        if value is None and not self._prefix and name in Params.model_fields:
            raise UserError(f"params.yaml has no '{name}' section, which {self._owner} reads")
        if any(key == d or key.startswith(d + ".") for d in self._declared):
            return value
        if isinstance(value, BaseModel) and any(d.startswith(key + ".") for d in self._declared):
            return DeclaredParams(value, self._declared, self._owner, key + ".")
        raise UserError(
            f"{self._owner} reads params key '{key}' but does not declare it under params"
        )
