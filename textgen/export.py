"""A trained model for use without textgen: a SavedModel that generates text with TensorFlow
alone, a TFLite step model, and the model card beside them.

- ``saved_model/``: a ``generate`` signature (also the SavedModel's ``serving_default``) from
  prompt strings to generated strings. The vocabulary's encode and decode are graph ops
  (code points looked up by binary search, as ``vocab.CharTokenizer`` does, Hangul syllables
  split into jamo and joined back by the Unicode arithmetic; bytes; words split by an RE2
  pattern and looked up in a table); the generation loop is ``sampling.rollout`` itself, so
  the same seed and settings give the text ``python -m textgen generate`` gives. A BPE
  vocabulary's prompt is spelled byte by byte (TensorFlow has no BPE op), so only its
  generated text is what the CLI gives for the same ids.
- ``step.tflite``: one token and the LSTM state in, the next token's logits and the new state
  out, built-in TFLite ops only (each LSTM's cell called once: no loop): for phones and
  anything else that runs TFLite; the caller's loop draws the tokens.
- ``vocab.json``: the vocabulary (``textgen.vocab``'s JSON), for the TFLite loop.
- ``README.md``: the model card (``textgen.model_card``).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from textgen.artifacts import atomic_dir, save_vocab
from textgen.backend import keras, tf
from textgen.errors import UserError
from textgen.model import lstm_layers, vocab_size
from textgen.sampling import Decoding, after_end, never_mask, rollout
from textgen.vocab import BYTE_KINDS, CHARACTER_KINDS, Vocabulary

SAVED_MODEL = "saved_model"
TFLITE = "step.tflite"
VOCAB = "vocab.json"
CARD = "README.md"
# What marks a folder as an export (so that writing over it is safe): every file of one.
MANIFEST = "export.json"
FORMAT = 1

# vocab.WordTokenizer.PATTERN in RE2 (TensorFlow's regex engine): Python's Unicode \w is
# letters, digits (and other numbers) and the underscore; RE2's \w is ASCII only.
WORD_PATTERN = r"[\pL\pN_]+|[^\pL\pN_\s]|\n"


class GraphVocabulary(tf.Module):
    """``Vocabulary.encode`` / ``decode`` as TensorFlow ops, for one prompt and rows of ids."""

    def __init__(self, vocab: Vocabulary):
        super().__init__(name="vocabulary")
        self.kind, self.lowercase = vocab.kind, vocab.lowercase
        self.unk_id = -1 if vocab.unk_id is None else vocab.unk_id
        self.bos_id, self.eos_id = vocab.bos_id, vocab.eos_id
        texts = list(vocab.tokenizer.texts)  # what decode joins (an unknown char: U+FFFD)
        for i in vocab.never_sampled:
            texts[i] = ""  # padding and the begin token decode to nothing
        self.texts = tf.constant(texts, tf.string)
        n = len(vocab.specials)
        if vocab.kind in CHARACTER_KINDS:
            self.code_points = tf.constant([ord(c) for c in vocab.tokens[n:]], tf.int32)
            self.offset = n
        elif vocab.kind == "byte":
            self.byte_ids = tf.range(n, n + 256, dtype=tf.int32)
        elif vocab.kind == "bpe":
            self.byte_ids = tf.constant(vocab.tokenizer.byte_ids, tf.int32)
        else:
            init = tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(vocab.tokens[n:]), tf.string),
                tf.range(n, len(vocab), dtype=tf.int64),
            )
            self.table = tf.lookup.StaticHashTable(init, default_value=self.unk_id)

    def encode(self, text: tf.Tensor) -> tf.Tensor:
        """One string -> int32 ids [n] (no begin/end tokens)."""
        if self.lowercase:  # Python also applies NFC, which TensorFlow has no op for
            text = tf.strings.lower(text, encoding="utf-8")
        if self.kind in BYTE_KINDS:
            data = tf.cast(tf.io.decode_raw(text, tf.uint8), tf.int32)
            return tf.gather(self.byte_ids, data)
        if self.kind in CHARACTER_KINDS:
            points = tf.strings.unicode_decode(text, "UTF-8")
            if self.kind == "jamo":
                points = decompose_hangul(points)
            pos = tf.searchsorted(self.code_points, points)
            pos = tf.minimum(pos, tf.size(self.code_points) - 1)
            known = tf.gather(self.code_points, pos) == points
            return tf.where(known, pos + self.offset, self.unk_id)
        marked = tf.strings.regex_replace(text, WORD_PATTERN, "\x1f\\0\x1f")
        pieces = tf.strings.split(marked, "\x1f")
        words = tf.boolean_mask(pieces, tf.strings.regex_full_match(pieces, WORD_PATTERN))
        return tf.cast(self.table.lookup(words), tf.int32)

    def context(self, prompt: tf.Tensor) -> tf.Tensor:
        """``sampling.prompt_context`` for one prompt: the ids a sample continues."""
        if self.bos_id is None:
            prompt = tf.where(tf.strings.length(prompt) > 0, prompt, "\n")
            return self.encode(prompt)
        ids = self.encode(tf.strings.strip(prompt))
        return tf.concat([[self.bos_id], ids], 0)

    def decode(self, ids: tf.Tensor) -> tf.Tensor:
        """Rows of ids [batch, length] -> strings [batch], each up to its end token."""
        alive = after_end(ids, -1 if self.eos_id is None else self.eos_id) > 0
        if self.eos_id is not None:  # the end token itself is not text
            alive = tf.logical_and(alive, ids != self.eos_id)
        tokens = tf.ragged.boolean_mask(tf.gather(self.texts, ids), alive)
        tokens = tf.ragged.boolean_mask(tokens, tf.strings.length(tokens) > 0)
        if self.kind == "word":
            # A space between two words unless either is a line break (WordTokenizer.join).
            flat = tokens.flat_values
            first = tf.range(tf.size(flat), dtype=tokens.row_splits.dtype) == tf.repeat(
                tokens.row_starts(), tokens.row_lengths()
            )
            previous = tf.concat([[""], flat[:-1]], 0)
            space = ~first & (flat != "\n") & (previous != "\n")
            tokens = tokens.with_flat_values(tf.where(space, " ", "") + flat)
        texts = tf.strings.reduce_join(tokens, axis=1)
        if self.kind in BYTE_KINDS:  # bytes that form no character: U+FFFD, as Python's
            texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace")
        if self.kind == "jamo":
            texts = compose_hangul(texts)
        return texts


# Hangul syllables and jamo by the Unicode algorithm (Unicode 15, section 3.12): a syllable
# is 0xAC00 + (L * 21 + V) * 28 + T, from 19 leading consonants, 21 vowels, 27 finals (+ none).
_S, _L, _V, _T = 0xAC00, 0x1100, 0x1161, 0x11A7


def decompose_hangul(points: tf.Tensor) -> tf.Tensor:
    """``vocab.decompose_hangul`` of one text's code points [n]."""
    s = points - _S
    syllable = (s >= 0) & (s < 11172)
    lvt = tf.stack([_L + s // 588, _V + (s % 588) // 28, _T + s % 28], axis=1)
    kept = tf.stack([tf.ones_like(syllable), syllable, syllable & (s % 28 > 0)], axis=1)
    spread = tf.where(syllable[:, None], lvt, tf.stack([points, points, points], axis=1))
    return tf.boolean_mask(spread, kept)


def compose_hangul(texts: tf.Tensor) -> tf.Tensor:
    """``vocab.compose_hangul`` of strings [batch]: a leading consonant and a vowel jamo
    (and a final one after them) in one text become their syllable."""
    ragged = tf.strings.unicode_decode(texts, "UTF-8")
    p, rows = ragged.flat_values, ragged.value_rowids()
    n = tf.size(p)

    def ahead(x: tf.Tensor, k: int, fill) -> tf.Tensor:  # x[i + k], within the same text
        shifted = tf.concat([x[k:], tf.fill([tf.minimum(k, n)], fill)], 0)[:n]
        same = tf.concat([rows[k:], tf.fill([tf.minimum(k, n)], tf.constant(-1, rows.dtype))], 0)
        return tf.where(same[:n] == rows, shifted, fill)

    lead = (p >= _L) & (p < _L + 19)
    vowel, final = (p >= _V) & (p < _V + 21), (p > _T) & (p < _T + 28)
    lv = lead & ahead(vowel, 1, False)
    lvt = lv & ahead(final, 2, False)
    syllable = (
        _S + ((p - _L) * 21 + ahead(p, 1, 0) - _V) * 28 + tf.where(lvt, ahead(p, 2, 0) - _T, 0)
    )

    def behind(x: tf.Tensor, k: int) -> tf.Tensor:  # x[i - k], False before the start
        return tf.concat([tf.zeros([tf.minimum(k, n)], tf.bool), x], 0)[:n]

    drop = behind(lv, 1) | behind(lvt, 2)
    out = tf.RaggedTensor.from_value_rowids(
        tf.boolean_mask(tf.where(lv, syllable, p), ~drop),
        tf.boolean_mask(rows, ~drop),
        nrows=ragged.nrows(),
    )
    return tf.strings.unicode_encode(out, "UTF-8")


# The ``generate`` signature: its inputs in order, each a scalar unless said otherwise.
GENERATE_INPUTS = {
    "prompt": tf.TensorSpec([None], tf.string, name="prompt"),  # one text per prompt
    "num_samples": tf.TensorSpec([], tf.int32, name="num_samples"),  # per prompt
    "length": tf.TensorSpec([], tf.int32, name="length"),  # tokens per sample, at most
    "temperature": tf.TensorSpec([], tf.float32, name="temperature"),  # 0 = greedy
    "top_k": tf.TensorSpec([], tf.int32, name="top_k"),  # 0 = off
    "top_p": tf.TensorSpec([], tf.float32, name="top_p"),  # 1 = off
    "seed": tf.TensorSpec([], tf.int64, name="seed"),
    "repetition_penalty": tf.TensorSpec([], tf.float32, name="repetition_penalty"),  # 1 = off
    "no_repeat_ngram": tf.TensorSpec([], tf.int32, name="no_repeat_ngram"),  # 0 = off
    "min_length": tf.TensorSpec([], tf.int32, name="min_length"),
    "stop": tf.TensorSpec([None], tf.string, name="stop"),  # stop strings ([] = none)
}


def generate_function(model: keras.Model, vocab: GraphVocabulary, never: list[int]):
    """The ``generate`` endpoint: prompts [n] -> texts [n, num_samples], each prompt's
    samples drawn as ``Sampler.generate`` draws them for that prompt alone."""
    mask = never_mask(vocab_size(model), never)
    eos_id = -1 if vocab.eos_id is None else vocab.eos_id

    def generate(
        prompt,
        num_samples,
        length,
        temperature,
        top_k,
        top_p,
        seed,
        repetition_penalty,
        no_repeat_ngram,
        min_length,
        stop,
    ):
        decoding = Decoding(
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            no_repeat_ngram=no_repeat_ngram,
            min_length=min_length,
        )

        def one(text: tf.Tensor) -> tf.Tensor:
            context = vocab.context(text)
            prompts = tf.tile(context[None, :], [num_samples, 1])
            ids, _ = rollout(model, prompts, length, decoding, seed, mask, eos_id)
            texts = vocab.decode(ids)
            start = tf.strings.length(vocab.decode(ids[:, :min_length]), unit="BYTE")
            return cut_at_stop(texts, stop, start)

        texts = tf.map_fn(one, prompt, fn_output_signature=tf.TensorSpec([None], tf.string))
        return {"text": texts}

    return generate


class _Generator(tf.Module):
    """What the SavedModel holds: the model's variables in a fixed order (so the same model
    gives the same bytes), the vocabulary's tables and the ``generate`` function."""

    def __init__(self, model: keras.Model, vocab: GraphVocabulary, never: list[int]):
        super().__init__(name="textgen")
        # The weights only: dropout's seed states play no part in generation.
        self.weights = [v.value for v in sorted(model.weights, key=lambda v: v.path)]
        self.vocab = vocab
        self.generate = tf.function(
            generate_function(model, vocab, never),
            input_signature=list(GENERATE_INPUTS.values()),
        )


def cut_at_stop(texts: tf.Tensor, stops: tf.Tensor, start: tf.Tensor) -> tf.Tensor:
    """``sampling.cut_at_stop`` in graph ops: each of ``texts`` [n] ends where the first of
    ``stops`` begins at or after byte ``start`` [n] (the stop string not included)."""
    full = tf.strings.length(texts, unit="BYTE")
    start = tf.minimum(start, full)
    tails = tf.strings.substr(texts, start, full - start)  # where a stop may begin

    def earliest(ends: tf.Tensor, stop: tf.Tensor) -> tf.Tensor:
        head = tf.strings.split(tails, stop, maxsplit=1).to_tensor()[:, 0]
        head_bytes = tf.strings.length(head, unit="BYTE")
        found = head_bytes < full - start
        return tf.where(found, tf.minimum(ends, start + head_bytes), ends)

    ends = tf.foldl(earliest, stops, initializer=full)
    return tf.strings.substr(texts, tf.zeros_like(ends), ends)


def step_function(model: keras.Model):
    """One step of the model for TFLite: a token [1] and every layer's (h, c) [1, units] in,
    the next token's logits [1, vocab] and the new state out. Each LSTM's cell is called
    once, which converts to built-in ops (a loop over one step would not)."""
    layers = lstm_layers(model)
    spec = [tf.TensorSpec([1], tf.int32, name="token")]
    for i, layer in enumerate(layers):
        spec += [tf.TensorSpec([1, layer.units], tf.float32, name=f"{s}{i}") for s in "hc"]

    def step(token, *state):
        x = model.get_layer("embedding")(token)
        out = {}
        for i, layer in enumerate(layers):
            x, (h, c) = layer.cell(x, [state[2 * i], state[2 * i + 1]], training=False)
            out[f"h{i}"], out[f"c{i}"] = h, c
        return {"logits": model.get_layer("logits")(x), **out}

    return step, spec


def to_tflite(model: keras.Model, scratch: Path) -> bytes:
    """``step_function`` as a TFLite flatbuffer (float32, built-in ops only), converted from a
    SavedModel of it written in ``scratch`` (the converter's supported way in for Keras 3)."""
    step, spec = step_function(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("step", step, input_signature=spec)
    archive.write_out(str(scratch), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(scratch), signature_keys=["step"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


@dataclass(frozen=True)
class Exported:
    """What ``export`` wrote: its folder and the sizes in bytes."""

    folder: Path
    saved_model_bytes: int
    tflite_bytes: int
    weights_bytes: int


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _fixed_fingerprint(saved_model: Path) -> None:
    """Blank the random ``uuid`` of the SavedModel's fingerprint (its hashes of the contents
    stay): the same model then gives the same bytes, as dvc.lock needs."""
    from tensorflow.core.protobuf import fingerprint_pb2

    path = saved_model / "fingerprint.pb"
    fingerprint = fingerprint_pb2.FingerprintDef.FromString(path.read_bytes())
    fingerprint.ClearField("uuid")
    path.write_bytes(fingerprint.SerializeToString(deterministic=True))


def check_destination(out: Path) -> None:
    """An export goes into a new folder, an empty one, or one an export wrote (its manifest
    says so): never over something else."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose another output folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise UserError(
            f"{out}: a folder that is not an export of textgen (no {MANIFEST}); "
            "choose a new or empty folder"
        )


def export(
    model: keras.Model,
    vocab: Vocabulary,
    out: str | Path,
    card: str = "",
    source: str | Path | None = None,
) -> Exported:
    """Write ``model`` (a ``build_model`` language model) and ``vocab`` as ``out``/: the
    SavedModel, the TFLite step model, the vocabulary and ``card`` (the model card's
    Markdown, if any). The folder appears whole or not at all; ``source`` (the model's file)
    names it in errors."""
    out = Path(out)
    check_destination(out)
    names = {layer.name for layer in model.layers}
    if not {"embedding", "logits"} <= names or not lstm_layers(model):
        raise UserError(f"{source or 'the model'}: not a textgen language model")
    if vocab_size(model) != len(vocab):
        raise UserError(
            f"{source or 'the model'}: {vocab_size(model)} outputs, but its vocabulary has "
            f"{len(vocab)} tokens"
        )
    module = _Generator(model, GraphVocabulary(vocab), vocab.never_sampled)
    with atomic_dir(out) as tmp:
        tf.saved_model.save(
            module,
            str(tmp / SAVED_MODEL),
            signatures={"generate": module.generate, "serving_default": module.generate},
        )
        _fixed_fingerprint(tmp / SAVED_MODEL)
        with tempfile.TemporaryDirectory() as scratch:
            tflite = to_tflite(model, Path(scratch) / "step")
        (tmp / TFLITE).write_bytes(tflite)
        save_vocab(vocab, tmp / VOCAB)
        if card:
            (tmp / CARD).write_text(card, encoding="utf-8")
        manifest = {
            "format": FORMAT,
            "files": sorted(str(f.relative_to(tmp)) for f in tmp.rglob("*") if f.is_file()),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    weights = model.count_params() * 4  # float32
    return Exported(out, _folder_bytes(out / SAVED_MODEL), len(tflite), weights)
