"""The LSTM language model: its architecture and the stateful forward pass.

Nothing here knows about files, devices, checkpoints or training: ``sources`` feeds it,
``training`` fits it, ``scoring`` measures it, ``sampling`` draws from it.
"""

from __future__ import annotations

from textgen.backend import keras, tf


def build_model(
    vocab_size: int, embedding_dim: int, hidden: int, layers: int, dropout: float = 0.0
) -> keras.Model:
    """Embedding -> ``layers`` x LSTM(``hidden``) -> Dense logits: a next-token prediction at
    every position.

    Each LSTM returns its state too, so the same layers serve stateful evaluation and sampling
    (see ``forward``). Dropout sits after every LSTM (between layers and before the logits),
    not on recurrent connections nor on the embedding. Embeddings start N(0, 1), not Keras'
    uniform(-0.05, 0.05): at that scale the first LSTM barely sees its input for the first
    hundreds of steps. Both choices measured alone in docs/benchmarks.md (bench/quality.py).
    """
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    # A new initializer per model: Keras draws its seed when it is made (seeded by then).
    init = keras.initializers.RandomNormal(stddev=1.0)
    x = keras.layers.Embedding(
        vocab_size, embedding_dim, embeddings_initializer=init, name="embedding"
    )(tokens)
    for i in range(layers):
        x, _, _ = keras.layers.LSTM(
            hidden, return_sequences=True, return_state=True, name=f"lstm_{i}"
        )(x)
        x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    # float32 logits under a mixed-precision policy too: the softmax of bf16 logits is coarse.
    logits = keras.layers.Dense(vocab_size, dtype="float32", name="logits")(x)
    return keras.Model(tokens, logits, name="lstm_lm")


def lstm_layers(model: keras.Model) -> list[keras.layers.LSTM]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]


def logits_layer(model: keras.Model) -> keras.layers.Dense:
    """The output layer of a ``build_model`` language model (its units: the vocabulary size)."""
    return model.get_layer("logits")


def vocab_size(model: keras.Model) -> int:
    return int(logits_layer(model).units)


def zero_state(model: keras.Model, batch: int | tf.Tensor) -> list[tuple[tf.Tensor, tf.Tensor]]:
    """All-zero (h, c) for every LSTM layer."""
    return [
        (tf.zeros([batch, layer.units]), tf.zeros([batch, layer.units]))
        for layer in lstm_layers(model)
    ]


def state_spec(model: keras.Model) -> list[tuple[tf.TensorSpec, tf.TensorSpec]]:
    """The signature of a state (one (h, c) pair per layer, any batch): one trace for all."""
    return [(tf.TensorSpec([None, layer.units], tf.float32),) * 2 for layer in lstm_layers(model)]


def forward(model: keras.Model, tokens: tf.Tensor, state: list) -> tuple[tf.Tensor, list]:
    """Inference over ``tokens`` [batch, time] from ``state``; returns logits and the new state.

    Carrying the state lets scoring read a long text window by window with full context,
    and lets the sampler feed one token per step.
    """
    x = model.get_layer("embedding")(tokens)
    new_state = []
    for layer, (h, c) in zip(lstm_layers(model), state, strict=True):
        x, h, c = layer(x, initial_state=[h, c], training=False)
        new_state.append((h, c))
    return logits_layer(model)(x), new_state


def sequence_nll(
    lm: keras.Model,
    context: tf.Tensor,
    ids: tf.Tensor,
    training: bool = False,
    temperature: float = 1.0,
) -> tf.Tensor:
    """Per-token NLL [batch, time] of ``ids`` under ``lm``, continuing ``context`` [batch, >=1]
    (under softmax(logits / ``temperature``)); differentiable, for training losses."""
    logits = lm(tf.concat([context, ids[:, :-1]], axis=1), training=training)
    logits = logits[:, tf.shape(context)[1] - 1 :]  # the predictions of ids[:, 0], ids[:, 1], ...
    if temperature != 1.0:
        logits = logits / temperature
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ids, logits=logits)


def float32_copy(model: keras.Model, weights: bool = True) -> keras.Model:
    """The same architecture computing in float32 throughout, with the same weights (unless
    ``weights`` is False): what a model trained under ``mixed_bfloat16`` is saved, scored and
    sampled as, so every later stage reads the same kind of file whatever trained it; and the
    GAN generator's warm start (a fresh model with the LSTM's weights)."""
    config = model.get_config()
    for layer in config["layers"]:
        if isinstance(layer["config"].get("dtype"), dict):  # a policy (the input's is "int32")
            layer["config"]["dtype"] = "float32"
    twin = keras.Model.from_config(config)
    if weights:
        twin.set_weights(model.get_weights())
    return twin
