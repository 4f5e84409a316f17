"""What DVC shows: every figure in results/, the headline in metrics/, curves through dvclive."""

import json

from textgen.tracking import headline, write_epoch_curves, write_results, write_step_curves

FIGURES = {
    "lstm": {"test_nll_nats": 1.5, "bleu_4": 0.3},
    "gan": {"test_nll_nats": 1.6, "bleu_4": 0.2},
    "compare": {"bleu": {"gan_mean_diversity_gain": -0.01, "gan_better": 0.0}},
}


def test_the_headline_keeps_the_named_figures_nested_as_they_were():
    keys = ["lstm.test_nll_nats", "gan.test_nll_nats", "compare.bleu.gan_mean_diversity_gain"]
    assert headline(FIGURES, keys) == {
        "lstm": {"test_nll_nats": 1.5},
        "gan": {"test_nll_nats": 1.6},
        "compare": {"bleu": {"gan_mean_diversity_gain": -0.01}},
    }
    assert headline(FIGURES, ["compare.lm.gan_better", "nowhere"]) == {}  # none made up


def test_results_hold_every_figure_and_metrics_the_headline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_results("evaluate", FIGURES, ["lstm.bleu_4"])
    assert json.loads((tmp_path / "results/evaluate.json").read_text()) == FIGURES
    assert json.loads((tmp_path / "metrics/evaluate.json").read_text()) == {"lstm": {"bleu_4": 0.3}}


def test_curves_are_dvclive_files(tmp_path):
    write_epoch_curves(tmp_path / "lstm", [{"loss": 2.0, "val_loss": 1.9}, {"loss": 1.5}])
    train = (tmp_path / "lstm/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert train[0].split("\t") == ["step", "loss"] and len(train) == 3
    assert len((tmp_path / "lstm/plots/metrics/eval/loss.tsv").read_text().splitlines()) == 2
    write_step_curves(
        tmp_path / "gan", [{"step": 0, "d_loss": float("nan")}, {"step": 5, "d_loss": 1.0}]
    )
    d_loss = (tmp_path / "gan/plots/metrics/d_loss.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in d_loss] == ["step", "5"]  # no point without a loss
