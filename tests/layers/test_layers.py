"""Tests of the kerasrl layers (Tensorforce layer types as Keras layers)."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from kerasrl.errors import ArgumentError
from kerasrl.layers import (
    LAYERS,
    NONLINEARITIES,
    BatchNormalization,
    Clipping,
    Conv2dTranspose,
    Dense,
    Embedding,
    ExponentialNormalization,
    Function,
    InstanceNormalization,
    LinearNormalization,
    Pooling,
    Reshape,
    Retrieve,
    SelfAttention,
)

RNG = np.random.default_rng(0)
VECTOR = RNG.normal(size=(2, 4)).astype("float32")
SEQUENCE = RNG.normal(size=(2, 6, 3)).astype("float32")
IMAGE = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
INTS = RNG.integers(0, 5, size=(2, 4, 2)).astype("int64")


def numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(autouse=True)
def seed():
    keras.utils.set_random_seed(1)


# (type, arguments, input, expected output shape without the batch axis)
CASES = [
    ("dense", dict(size=3), VECTOR, (3,)),
    ("dense", dict(size=0), VECTOR, ()),
    ("dense", dict(size=3, activation="crelu"), VECTOR, (6,)),
    ("dense", dict(size=5), SEQUENCE, (6, 5)),
    ("linear", dict(size=2), VECTOR, (2,)),
    ("conv1d", dict(size=4), SEQUENCE, (6, 4)),
    ("conv1d", dict(size=4, window=2, stride=2, padding="valid"), SEQUENCE, (3, 4)),
    ("conv2d", dict(size=4, stride=2), IMAGE, (4, 4, 4)),
    ("image", dict(height=4, width=6, grayscale=True), IMAGE, (4, 6, 1)),
    ("image", dict(grayscale=[0.5, 0.25, 0.25]), IMAGE, (8, 8, 1)),
    ("conv2d", dict(size=4, window=(3, 1), dilation=2), IMAGE, (8, 8, 4)),
    ("conv1d_transpose", dict(size=4, stride=2), SEQUENCE, (12, 4)),
    ("conv2d_transpose", dict(size=2, stride=2, output_shape=(16, 16)), IMAGE, (16, 16, 2)),
    ("embedding", dict(size=6, num_embeddings=5), INTS, (4, 2, 6)),
    ("input_rnn", dict(cell="gru", size=4), SEQUENCE, (4,)),
    ("input_lstm", dict(size=4), SEQUENCE, (4,)),
    ("input_gru", dict(size=4, return_final_state=False), SEQUENCE, (6, 4)),
    ("self_attention", dict(size=5, attention_size=2), SEQUENCE, (6, 5)),
    ("flatten", dict(), IMAGE, (192,)),
    ("flatten", dict(), VECTOR[:, 0], (1,)),
    ("pooling", dict(reduction="max"), IMAGE, (3,)),
    ("pooling", dict(reduction="concat"), SEQUENCE, (18,)),
    ("pool1d", dict(), SEQUENCE, (3, 3)),
    ("pool2d", dict(reduction="average", window=3, stride=1), IMAGE, (8, 8, 3)),
    ("reshape", dict(shape=(2, -1)), VECTOR, (2, 2)),
    ("activation", dict(nonlinearity="swish"), VECTOR, (4,)),
    ("dropout", dict(rate=0.5), VECTOR, (4,)),
    ("function", dict(function="ops.tanh(x) + 1.0"), VECTOR, (4,)),
    ("keras", dict(layer="Dense", units=7), VECTOR, (7,)),
    ("linear_normalization", dict(min_value=-1.0, max_value=1.0), VECTOR, (4,)),
    ("clipping", dict(lower=-0.5, upper=0.5), VECTOR, (4,)),
    ("instance_normalization", dict(), VECTOR, (4,)),
    ("batch_normalization", dict(), VECTOR, (4,)),
    ("exponential_normalization", dict(decay=0.9), VECTOR, (4,)),
]


@pytest.mark.parametrize("key,arguments,inputs,expected", CASES, ids=lambda v: str(v)[:40])
def test_layer_builds_and_runs(key, arguments, inputs, expected):
    layer = LAYERS[key](**arguments)
    output = layer(inputs)
    assert tuple(output.shape) == (inputs.shape[0],) + expected
    assert np.all(np.isfinite(numpy(output)))
    # Symbolic call (functional API) gives the same shape with an unknown batch size.
    symbolic = LAYERS[key](**arguments)(
        keras.Input(shape=inputs.shape[1:], dtype=str(inputs.dtype).replace("64", "32"))
    )
    assert tuple(symbolic.shape) == (None,) + expected


#: Temporal layers take `[x, state]`: tests/agents/test_recurrent.py covers them.
TEMPORAL = {"gru", "lstm", "rnn"}


def test_every_registered_type_is_covered():
    assert {key for key, *_ in CASES} | TEMPORAL == set(LAYERS)


CUSTOM = [case for case in CASES if case[0] not in ("dropout", "keras")]


@pytest.mark.parametrize("key,arguments,inputs,expected", CUSTOM, ids=lambda v: str(v)[:40])
def test_get_config_round_trip(key, arguments, inputs, expected):
    layer = LAYERS[key](**arguments, name="original")
    output = numpy(layer(inputs))
    config = layer.get_config()
    for argument in arguments:
        assert argument in config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"].startswith("kerasrl>")
    clone = keras.saving.deserialize_keras_object(serialized)
    assert type(clone) is type(layer)
    assert clone.get_config() == config
    clone(inputs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(numpy(clone(inputs)), output, rtol=1e-5, atol=1e-6)


def test_dense_is_orthogonal_and_follows_tensorforce_defaults():
    layer = Dense(size=16)
    x = np.eye(16, dtype="float32")
    output = numpy(layer(x))
    kernel = numpy(layer.kernel)
    np.testing.assert_allclose(kernel.T @ kernel, np.eye(16), atol=1e-5)
    np.testing.assert_allclose(numpy(layer.bias), 0.0)
    np.testing.assert_allclose(output, np.tanh(kernel), atol=1e-6)
    relu = Dense(size=16, activation="relu", initialization_scale=0.5)
    relu(x)
    kernel = numpy(relu.kernel)
    np.testing.assert_allclose(kernel.T @ kernel, 0.5 * np.eye(16), atol=1e-5)
    assert [w.name for w in layer.weights] == ["kernel", "bias"]
    assert Dense(size=2, bias=False, vars_trainable=False).trainable is False


def test_dense_dropout_only_in_training():
    layer = Dense(size=64, activation=None, dropout=0.5)
    x = np.ones((8, 4), "float32")
    np.testing.assert_allclose(numpy(layer(x)), numpy(layer(x, training=False)))
    trained = numpy(layer(x, training=True))
    assert np.mean(trained == 0.0) > 0.2


def test_dense_l2_regularization_adds_a_loss():
    layer = Dense(size=3, l2_regularization=0.1)
    layer(VECTOR)
    assert len(layer.losses) == 1
    expected = 0.1 * np.sum(numpy(layer.kernel) ** 2)
    np.testing.assert_allclose(numpy(layer.losses[0]), expected, rtol=1e-5)


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_activations(nonlinearity):
    x = np.array([[-2.0, -0.5, 0.0, 1.5]], "float32")
    output = numpy(LAYERS["activation"](nonlinearity=nonlinearity)(x))
    expected = {
        "crelu": np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], axis=-1),
        "elu": np.where(x > 0, x, np.exp(x) - 1),
        "leaky-relu": np.where(x > 0, x, 0.2 * x),
        "none": x,
        "relu": np.maximum(x, 0),
        "selu": 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * (np.exp(x) - 1)),
        "sigmoid": 1 / (1 + np.exp(-x)),
        "softmax": np.exp(x) / np.exp(x).sum(),
        "softplus": np.log1p(np.exp(x)),
        "softsign": x / (1 + np.abs(x)),
        "swish": x / (1 + np.exp(-x)),
        "tanh": np.tanh(x),
    }[nonlinearity]
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6)


def test_embedding_lookup_bias_activation_and_bool_inputs():
    layer = Embedding(size=3, num_embeddings=4, activation=None)
    ids = np.array([[0, 3], [2, 2]])
    output = numpy(layer(ids))
    table = numpy(layer.embeddings)
    np.testing.assert_allclose(output, table[ids] + numpy(layer.bias), rtol=1e-6)
    flags = np.array([[True, False]])
    np.testing.assert_allclose(numpy(layer(flags)), table[[[1, 0]]], rtol=1e-6)
    capped = Embedding(size=3, num_embeddings=4, max_norm=0.1, bias=False, activation=None)
    norms = np.linalg.norm(numpy(capped(ids)), axis=-1)
    assert np.all(norms <= 0.1 + 1e-6)


def test_embedding_needs_num_embeddings_and_int_inputs():
    with pytest.raises(ArgumentError, match="num_embeddings"):
        Embedding(size=3)
    with pytest.raises(ArgumentError, match="int or bool input"):
        Embedding(size=3, num_embeddings=2)(VECTOR)


@pytest.mark.parametrize(
    "aggregation,axis,expected",
    [
        ("concat", 0, lambda a, b: np.concatenate([a, b], axis=1)),
        ("concat", 1, lambda a, b: np.concatenate([a, b], axis=2)),
        ("concat", -1, lambda a, b: np.concatenate([a, b], axis=-1)),
        ("stack", 0, lambda a, b: np.stack([a, b], axis=1)),
        ("stack", 2, lambda a, b: np.stack([a, b], axis=3)),
        ("product", 0, lambda a, b: a * b),
        ("sum", 0, lambda a, b: a + b),
    ],
)
def test_retrieve_aggregations(aggregation, axis, expected):
    a = RNG.normal(size=(2, 3, 4)).astype("float32")
    b = RNG.normal(size=(2, 3, 4)).astype("float32")
    layer = Retrieve(tensors=["a", "b"], aggregation=aggregation, axis=axis)
    np.testing.assert_allclose(numpy(layer([a, b])), expected(a, b), rtol=1e-6)
    symbolic = Retrieve(aggregation=aggregation, axis=axis)(
        [keras.Input((3, 4)), keras.Input((3, 4))]
    )
    assert tuple(symbolic.shape[1:]) == expected(a, b).shape[1:]


def test_retrieve_errors():
    with pytest.raises(ArgumentError, match="aggregation"):
        Retrieve(aggregation="mean")
    with pytest.raises(ArgumentError, match="equal shapes"):
        Retrieve(aggregation="sum")([keras.Input((3,)), keras.Input((4,))])
    with pytest.raises(ArgumentError, match="concat axis"):
        Retrieve(aggregation="concat")([keras.Input((3, 2)), keras.Input((4, 3))])
    with pytest.raises(ArgumentError, match="axis"):
        Retrieve(aggregation="concat", axis=3)([keras.Input((3,)), keras.Input((4,))])


@pytest.mark.parametrize("reduction", ["max", "mean", "product", "sum", "concat"])
def test_global_pooling_reductions(reduction):
    x = RNG.uniform(0.5, 1.5, size=(2, 3, 4, 5)).astype("float32")
    expected = {
        "max": x.max(axis=(1, 2)), "mean": x.mean(axis=(1, 2)), "product": x.prod(axis=(1, 2)),
        "sum": x.sum(axis=(1, 2)), "concat": x.reshape(2, -1),
    }[reduction]
    np.testing.assert_allclose(numpy(Pooling(reduction=reduction)(x)), expected, rtol=1e-5)
    np.testing.assert_allclose(numpy(Pooling(reduction=reduction)(x[:, 0, 0])), x[:, 0, 0])


def test_window_pooling_values():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    np.testing.assert_allclose(numpy(LAYERS["pool2d"]()(x))[0, :, :, 0], [[5, 7], [13, 15]])
    average = numpy(LAYERS["pool2d"](reduction="average")(x))[0, :, :, 0]
    np.testing.assert_allclose(average, [[2.5, 4.5], [10.5, 12.5]])
    with pytest.raises(ArgumentError, match="rank 3"):
        LAYERS["pool2d"]()(SEQUENCE)


def test_self_attention_matches_numpy():
    layer = SelfAttention(size=3, attention_size=2)
    output = numpy(layer(SEQUENCE))
    q = SEQUENCE @ numpy(layer.query_kernel)
    k = SEQUENCE @ numpy(layer.key_kernel)
    v = SEQUENCE @ numpy(layer.value_kernel)
    scores = q @ k.transpose(0, 2, 1) / math.sqrt(2)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    np.testing.assert_allclose(output, weights @ v, rtol=1e-4, atol=1e-5)


def test_function_layer_expressions_and_callables():
    x = np.array([[1.0, -3.0]], "float32")
    np.testing.assert_allclose(numpy(Function(function="(x + 1.0) / 2.0")(x)), [[1.0, -1.0]])
    np.testing.assert_allclose(numpy(Function(function=lambda t: ops.abs(t))(x)), [[1.0, 3.0]])
    np.testing.assert_allclose(numpy(Function(function="max(1, 2) * ops.abs(x)")(x)), [[2, 6]])
    for unsafe in ("__import__('os')", "x.__class__", "open('f')", "[y for y in x]", "x +"):
        with pytest.raises(ArgumentError, match="function"):
            Function(function=unsafe)
    with pytest.raises(ArgumentError, match="function"):
        Function(function=3)
    with pytest.raises(ArgumentError, match="serialize"):
        Function(function=lambda t: t).get_config()


def test_keras_layer_by_name():
    assert isinstance(LAYERS["keras"](layer="batchnormalization"), keras.layers.BatchNormalization)
    with pytest.raises(ArgumentError, match="keras.layers class"):
        LAYERS["keras"](layer="NoSuchLayer")
    with pytest.raises(ArgumentError, match="Dense"):
        LAYERS["keras"](layer="Dense", unitz=3)


def test_linear_normalization_numerics():
    low = np.array([-4.8, -3.0, 0.0, -np.inf, 2.0], "float32")
    high = np.array([4.8, 3.0, 1e7, np.inf, 2.0], "float32")
    layer = LinearNormalization(min_value=low, max_value=high)
    x = np.array([[0.0, 5.0, 3.0, 7.0, 2.0], [-6.0, -1.5, -1.0, -7.0, 2.0]], "float32")
    expected = 4.0 * (np.clip(x[:, :2], low[:2], high[:2]) - low[:2]) / (high[:2] - low[:2]) - 2
    output = numpy(layer(x))
    np.testing.assert_allclose(output[:, :2], expected, rtol=1e-6)
    np.testing.assert_allclose(output[:, 2:4], x[:, 2:4])  # unbounded: unchanged
    np.testing.assert_allclose(output[:, 4], 0.0)  # min == max
    with pytest.raises(ArgumentError, match="max_value"):
        LinearNormalization(min_value=1.0, max_value=0.0)
    with pytest.raises(ArgumentError, match="min_value"):
        LinearNormalization(max_value=1.0)
    with pytest.raises(ArgumentError, match="broadcastable"):
        LinearNormalization(min_value=[0.0, 0.0], max_value=[1.0, 1.0])(VECTOR)


def test_clipping_and_instance_and_batch_normalization():
    x = RNG.normal(size=(6, 5)).astype("float32") * 3 + 1
    np.testing.assert_allclose(numpy(Clipping(lower=-1.0, upper=2.0)(x)), np.clip(x, -1, 2))
    np.testing.assert_allclose(numpy(Clipping(upper=0.0)(x)), np.minimum(x, 0))
    with pytest.raises(ArgumentError, match="lower/upper"):
        Clipping()
    with pytest.raises(ArgumentError, match="upper"):
        Clipping(lower=1.0, upper=0.0)
    instance = numpy(InstanceNormalization()(x))
    np.testing.assert_allclose(instance.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(instance.std(axis=1), 1.0, rtol=1e-3)
    batch = numpy(BatchNormalization()(x))
    np.testing.assert_allclose(batch.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(batch.std(axis=0), 1.0, rtol=1e-3)
    centred = numpy(BatchNormalization(only_mean=True)(x))
    np.testing.assert_allclose(centred, x - x.mean(axis=0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ArgumentError, match="axes"):
        InstanceNormalization(axes=[3])(x)


def test_exponential_normalization_updates_only_in_training():
    layer = ExponentialNormalization(decay=0.5)
    first = RNG.normal(size=(4, 3)).astype("float32") * 2 + 5
    np.testing.assert_allclose(numpy(layer(first)), first)  # initial moments: 0 and 1
    output = numpy(layer(first, training=True))
    mean, variance = first.mean(axis=0), first.var(axis=0)
    np.testing.assert_allclose(numpy(layer.moving_mean)[0], mean, rtol=1e-5)
    np.testing.assert_allclose(numpy(layer.moving_variance)[0], variance, rtol=1e-4)
    np.testing.assert_allclose(output, (first - mean) / np.sqrt(variance), rtol=1e-4)
    second = RNG.normal(size=(2, 3)).astype("float32")
    layer(second, training=True)
    weight = 0.5**2
    new_mean = weight * mean + (1 - weight) * second.mean(axis=0)
    np.testing.assert_allclose(numpy(layer.moving_mean)[0], new_mean, rtol=1e-5)
    before = numpy(layer.moving_mean)
    layer(second, training=False)
    np.testing.assert_allclose(numpy(layer.moving_mean), before)
    with pytest.raises(TypeError):
        ExponentialNormalization()  # decay is required


def test_exponential_normalization_under_stateless_call():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, ExponentialNormalization(decay=0.9)(inputs))
    x = RNG.normal(size=(4, 3)).astype("float32") + 3
    non_trainable = [v.value for v in model.non_trainable_variables]
    _, updated = model.stateless_call([], non_trainable, x, training=True)
    means = [numpy(v) for v in updated if tuple(v.shape) == (1, 3)]
    np.testing.assert_allclose(means[0][0], x.mean(axis=0), rtol=1e-5)
    _, unchanged = model.stateless_call([], non_trainable, x, training=False)
    np.testing.assert_allclose(numpy(unchanged[0]), numpy(non_trainable[0]))


def test_reshape_and_transpose_shape_errors():
    with pytest.raises(ArgumentError, match="shape"):
        Reshape(shape=(3,))(VECTOR)
    with pytest.raises(ArgumentError, match="shape"):
        Reshape(shape=(-1, -1))
    with pytest.raises(ArgumentError, match="natural output"):
        Conv2dTranspose(size=2, stride=2, output_shape=(9, 9))(IMAGE)


@pytest.mark.parametrize(
    "key,arguments,argument",
    [
        ("dense", dict(size=-1), "size"),
        ("dense", dict(size=2.5), "size"),
        ("dense", dict(size=2, activation="gelu"), "activation"),
        ("dense", dict(size=2, dropout=1.0), "dropout"),
        ("dense", dict(size=2, bias="yes"), "bias"),
        ("conv2d", dict(size=2, padding="full"), "padding"),
        ("conv2d", dict(size=2, window=(1, 2, 3)), "window"),
        ("conv1d", dict(size=0), "size"),
        ("input_rnn", dict(cell="transformer", size=2), "cell"),
        ("pooling", dict(reduction="median"), "reduction"),
        ("pool1d", dict(reduction="sum"), "reduction"),
        ("activation", dict(nonlinearity="relu6"), "nonlinearity"),
        ("dropout", dict(rate=-0.1), "rate"),
        ("exponential_normalization", dict(decay=2.0), "decay"),
        ("self_attention", dict(size=0), "size"),
    ],
)
def test_invalid_arguments_name_the_argument(key, arguments, argument):
    with pytest.raises(ArgumentError, match=f"'{argument}'"):
        LAYERS[key](**arguments)


def test_convolution_rank_is_checked():
    with pytest.raises(ArgumentError, match="rank 3"):
        LAYERS["conv2d"](size=2)(SEQUENCE)
