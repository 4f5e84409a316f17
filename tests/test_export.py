"""The export: a SavedModel that generates with TensorFlow alone what textgen generates, a TFLite
step model with the Keras model's logits, the model card, and what a bad export is told."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.corpora import make_play
from tests.repos import CLI, repo_env, run_in_process
from textgen.artifacts import load_model, save_model
from textgen.backend import keras, tf
from textgen.export import GraphVocabulary, export
from textgen.model import build_model, forward, zero_state
from textgen.sampling import Decoding, generate_texts
from textgen.seeding import seed_everything
from textgen.vocab import Vocabulary

# Settings a user would try: plain sampling, filters, and the shipping controls together.
SETTINGS = [
    {"prompt": "ROMEO.", "temperature": 0.8},
    {"prompt": "", "temperature": 1.3, "top_k": 5, "top_p": 0.9},
    {
        "prompt": "JULIET.\n",
        "temperature": 1.0,
        "repetition_penalty": 1.3,
        "no_repeat_ngram": 3,
        "min_length": 5,
        "stop": ["\n", "e "],
    },
]


def _signature_args(s: dict, n: int, length: int, seed: int) -> dict:
    """The ``generate`` signature's arguments for a setting (every one is required)."""
    return {
        "prompt": [s["prompt"]],
        "num_samples": n,
        "length": length,
        "temperature": s.get("temperature", 1.0),
        "top_k": s.get("top_k", 0),
        "top_p": s.get("top_p", 1.0),
        "seed": seed,
        "repetition_penalty": s.get("repetition_penalty", 1.0),
        "no_repeat_ngram": s.get("no_repeat_ngram", 0),
        "min_length": s.get("min_length", 0),
        "stop": s.get("stop", []),
    }


# Run by a fresh interpreter (-I: no PYTHONPATH, no script folder) from which textgen is made
# unreachable: the editable install's finder and the checkout are taken off the import paths.
LOAD_ALONE = """
import importlib.util, json, os, sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f)]
sys.path = [p for p in sys.path if p and os.path.realpath(p) != {root!r}]
assert importlib.util.find_spec("textgen") is None, "textgen is reachable"
import tensorflow as tf
model = tf.saved_model.load({saved!r})
out = []
for args in json.loads(sys.stdin.read()):
    dtypes = {{"seed": tf.int64, "temperature": tf.float32, "top_p": tf.float32,
              "repetition_penalty": tf.float32}}
    tensors = {{k: tf.constant(v, dtypes.get(k, tf.string if k in ("prompt", "stop") else tf.int32))
               for k, v in args.items()}}
    if not args["stop"]:
        tensors["stop"] = tf.constant([], tf.string)
    texts = model.signatures["generate"](**tensors)["text"].numpy()
    out.append([t.decode() for t in texts[0]])
assert not [m for m in sys.modules if m.startswith("textgen")], "textgen was imported"
print(json.dumps(out))
"""


def _cli_texts(repo: Path, s: dict, n: int, length: int, seed: int) -> list[str]:
    """What ``python -m textgen generate`` prints for the setting: n samples, the prompt cut."""
    args = [*CLI.split(), "generate", "--model", "models/lstm.keras", "-n", str(n)]
    args += ["--length", str(length), "--seed", str(seed), "--prompt", s["prompt"]]
    for key in ["temperature", "top_k", "top_p", "repetition_penalty", "no_repeat_ngram"]:
        if key in s:
            args += [f"--{key.replace('_', '-')}", str(s[key])]
    if "min_length" in s:
        args += ["--min-length", str(s["min_length"])]
    for stop in s.get("stop", []):
        args += ["--stop", stop]
    out = subprocess.run(args, cwd=repo, env=repo_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # Each sample printed with its prompt, a line of dashes after an empty line between them.
    printed = out.stdout[:-1].split("\n\n" + "-" * 40 + "\n")
    assert all(p.startswith(s["prompt"]) for p in printed)
    return [p[len(s["prompt"]) :] for p in printed]


@pytest.mark.slow
def test_saved_model_alone_generates_what_the_cli_generates(tiny_pipeline):
    saved = tiny_pipeline / "exports/lstm/saved_model"
    n, length, seed = 2, 40, 11
    calls = [_signature_args(s, n, length, seed) for s in SETTINGS]
    code = LOAD_ALONE.format(root=str(Path(__file__).resolve().parents[1]), saved=str(saved))
    alone = subprocess.run(
        [sys.executable, "-I", "-c", code],
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        cwd=tiny_pipeline.parent,
    )
    assert alone.returncode == 0, alone.stderr[-3000:]
    exported = json.loads(alone.stdout.strip().splitlines()[-1])
    for s, texts in zip(SETTINGS, exported, strict=True):
        assert texts == _cli_texts(tiny_pipeline, s, n, length, seed), s
    # The controls did something: the stop strings cut the third setting's texts.
    assert all("\n" not in t and "e " not in t[5:] for t in exported[2])
    assert any(len(t) < length for t in exported[2])


@pytest.mark.slow
def test_saved_model_cli_lists_the_signature(tiny_pipeline):
    saved = str(tiny_pipeline / "exports/gan/saved_model")
    tool = str(Path(sys.executable).parent / "saved_model_cli")
    out = subprocess.run(
        [tool, "show", "--dir", saved, "--tag_set", "serve", "--signature_def", "generate"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    for name in _signature_args(SETTINGS[0], 1, 1, 0):
        assert f"inputs['{name}']" in out.stdout
    assert "outputs['text']" in out.stdout


@pytest.mark.slow
def test_model_card_states_the_pipeline_facts(tiny_pipeline):
    card = (tiny_pipeline / "exports/lstm/README.md").read_text()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["language"] == ["en"]
    assert "text-generation" in meta["tags"] and meta["datasets"] == ["tiny"]
    results = json.loads((tiny_pipeline / "results/evaluate.json").read_text())
    nll = results["lstm"]["test_nll_nats"]
    metrics = meta["model-index"][0]["results"][0]["metrics"]
    assert metrics[0]["value"] == round(nll, 4)
    assert f"| test NLL, nats/token | {nll:.4f} |" in body
    assert results["verdict"] in body
    samples = [json.loads(line)["text"] for line in (tiny_pipeline / "samples/lstm.jsonl").open()]
    assert samples[0].rstrip("\n") in body and samples[1].rstrip("\n") in body
    assert "4,862 parameters" in body  # the tiny profile's LSTM (results/lstm.json)
    assert json.loads((tiny_pipeline / "results/lstm.json").read_text())["parameters"] == 4862
    gan_card = (tiny_pipeline / "exports/gan/README.md").read_text()
    assert "gan" in yaml.safe_load(gan_card.split("---\n")[1])["tags"]


@pytest.fixture(scope="module")
def words():
    """A line-unit word model (begin/end tokens, a table lookup) and its vocabulary."""
    text = make_play(80, seed=5) + "\nnaïve café — 안녕하세요, 세계! x_y 3.14\n"
    vocab = Vocabulary.build(text.splitlines(), "word", lines=True)
    seed_everything(2)
    return build_model(len(vocab), 8, 16, 1), vocab, text


def test_graph_vocabulary_encodes_and_decodes_as_the_vocabulary(words):
    _, vocab, text = words
    graph = GraphVocabulary(vocab)
    for line in [*text.splitlines()[:40], "", "unknown zebra words !!", "  spaced\tout  "]:
        got = graph.encode(tf.constant(line)).numpy()
        np.testing.assert_array_equal(got, vocab.encode(line), err_msg=line)
    rows = np.array([[vocab.bos_id, 5, 6, 7, vocab.eos_id, 9], [8, 9, 1, 5, 5, 6]], np.int32)
    expected = [vocab.decode(r) for r in rows]
    assert [t.decode() for t in graph.decode(tf.constant(rows)).numpy()] == expected


def test_word_export_generates_what_the_sampler_generates(words, tmp_path):
    model, vocab, _ = words
    export(model, vocab, tmp_path / "out")
    loaded = tf.saved_model.load(str(tmp_path / "out/saved_model"))
    for s in SETTINGS:
        args = _signature_args(s, 3, 12, 5)
        tensors = {k: tf.constant(v) for k, v in args.items() if k != "stop"}
        tensors["seed"] = tf.constant(5, tf.int64)
        tensors["stop"] = tf.constant(args["stop"], tf.string)
        got = [t.decode() for t in loaded.generate(**tensors)["text"].numpy()[0]]
        decoding = Decoding(
            args["temperature"],
            args["top_k"],
            args["top_p"],
            args["repetition_penalty"],
            args["no_repeat_ngram"],
            args["min_length"],
        )
        assert got == generate_texts(model, vocab, s["prompt"], 3, 12, decoding, 5, args["stop"]), s


def test_tflite_step_model_gives_the_keras_logits(tmp_path):
    text = make_play(40, seed=2)
    vocab = Vocabulary.from_text(text)
    seed_everything(4)
    model = build_model(len(vocab), 16, 96, 2)
    done = export(model, vocab, tmp_path / "out")
    # About the weights' size (float32): the graph adds a few kilobytes.
    assert done.weights_bytes <= done.tflite_bytes <= 1.05 * done.weights_bytes + 16_000
    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "out/step.tflite"))
    step = interpreter.get_signature_runner("step")
    ids = vocab.encode(text[:12])
    expected, _ = forward(model, tf.constant(ids[None, :]), zero_state(model, 1))
    state = {f"{s}{i}": np.zeros((1, 96), np.float32) for i in range(2) for s in "hc"}
    for t, token in enumerate(ids):
        out = step(token=np.array([token], np.int32), **state)
        state = {k: out[k] for k in state}
        np.testing.assert_allclose(out["logits"][0], expected[0, t].numpy(), atol=1e-5)


def test_a_bad_export_is_one_line_and_writes_nothing(tmp_path, words):
    model, vocab, _ = words
    save_model(model, vocab, tmp_path / "models/lm.keras")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken/notes.txt").write_text("mine")
    (tmp_path / "models/fake.keras").write_text("not a model")
    foreign = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    save_model(foreign, vocab, tmp_path / "models/foreign.keras")
    cases = [
        ("models/foreign.keras out3", "models/foreign.keras: not a textgen language model"),
        ("models/missing.keras out1", "models/missing.keras: model file not found"),
        ("models/fake.keras out2", "not a .keras (zip) file"),
        ("models/lm.keras taken", "taken: a folder that is not an export of textgen"),
    ]
    for args, needle in cases:
        code, stderr = run_in_process(tmp_path, f"{CLI} export {args}")
        assert code == 1 and len(stderr.strip().splitlines()) == 1, stderr
        assert needle in stderr and "Traceback" not in stderr, stderr
    assert not any((tmp_path / f"out{i}").exists() for i in (1, 2, 3))
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    # An export is written over by the next one.
    code, stderr = run_in_process(tmp_path, f"{CLI} export models/lm.keras again")
    assert code == 0, stderr
    code, stderr = run_in_process(tmp_path, f"{CLI} export models/lm.keras again")
    assert code == 0, stderr
    assert load_model(tmp_path / "models/lm.keras")[1] == vocab
