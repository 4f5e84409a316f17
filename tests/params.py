"""Params for tests: the shipped params files (the one home of every value) with overrides."""

from pathlib import Path

import yaml

from textgen.config import EvaluateParams, GANParams, OracleParams, StageLSTMParams

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = yaml.safe_load((ROOT / "params.yaml").read_text())
ORACLE_SHIPPED = yaml.safe_load((ROOT / "oracle/params.yaml").read_text())


def merged(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` laid over it, section by section, key by key."""
    out = dict(base)
    for key, value in overrides.items():
        both_dicts = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = merged(base[key], value) if both_dicts else value
    return out


def lstm_params(**overrides) -> StageLSTMParams:
    return StageLSTMParams(**merged(SHIPPED["lstm"], overrides))


def gan_params(**overrides) -> GANParams:
    return GANParams(**merged(SHIPPED["gan"], overrides))


def evaluate_params(**overrides) -> EvaluateParams:
    return EvaluateParams(**merged(SHIPPED["evaluate"], overrides))


def oracle_params(**overrides) -> OracleParams:
    return OracleParams(**merged(ORACLE_SHIPPED["oracle"], overrides))
