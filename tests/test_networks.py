"""Tests of kerasrl.networks: Tensorforce network specs → functional Keras models."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasrl.errors import ArgumentError, KerasRLError, SpecError, UnknownTypeError
from kerasrl.layers import Dense, Embedding, LinearNormalization
from kerasrl.networks import NetworkBuilder, build_network
from kerasrl.specs import Specs

SHARED = Path(__file__).resolve().parents[2] / "shared"
NETWORK_JSON = SHARED / "tensorforce-data" / "network.json"

CARTPOLE = dict(
    type="float", shape=(4,), min_value=[-4.8, -3.0, -0.41887903, -3.0],
    max_value=[4.8, 3.0, 0.41887903, 3.0],
)
SEED_STATES = dict(
    observation=dict(type="float", shape=(16, 16, 3)),
    attributes=dict(type="int", shape=(4, 2), num_values=5),
)
SEED_POLICY = [
    [
        dict(type="retrieve", tensors=["observation"]),
        dict(type="conv2d", size=16),
        dict(type="flatten"),
        dict(type="register", tensor="obs-embedding"),
    ],
    [
        dict(type="retrieve", tensors=["attributes"]),
        dict(type="embedding", size=16),
        dict(type="flatten"),
        dict(type="register", tensor="attr-embedding"),
    ],
    [
        dict(
            type="retrieve", tensors=["obs-embedding", "attr-embedding"], aggregation="concat"
        ),
        dict(type="dense", size=32),
    ],
]
VECTOR = dict(type="float", shape=(8,))
RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def seed():
    keras.utils.set_random_seed(0)


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def seed_batch(batch=3):
    return {
        "observation": RNG.normal(size=(batch, 16, 16, 3)).astype("float32"),
        "attributes": RNG.integers(0, 5, size=(batch, 4, 2)),
    }


def summary_text(model):
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line), line_length=200)
    return "\n".join(lines)


def input_names(model):
    return {name: tensor.name for name, tensor in model.input.items()}


# --------------------------------------------------------------------------- seed snippet


def test_seed_multi_input_network():
    model = build_network(SEED_POLICY, SEED_STATES, name="policy_network")
    assert isinstance(model, keras.Model)
    assert input_names(model) == {"observation": "observation", "attributes": "attributes"}
    assert model.input["observation"].dtype == "float32"
    assert "int" in model.input["attributes"].dtype
    assert tuple(model.output.shape) == (None, 32)
    text = summary_text(model)
    assert "policy_network_conv2d0" in text and "Conv2d" in text
    assert "policy_network_embedding0" in text and "Embedding" in text
    embedding = model.get_layer("policy_network_embedding0")
    assert isinstance(embedding, Embedding) and embedding.num_embeddings == 5
    assert tuple(embedding.output.shape) == (None, 4, 2, 16)
    output = model(seed_batch(3))
    assert tuple(output.shape) == (3, 32)
    assert np.all(np.isfinite(numpy(output)))


def test_stateless_call_and_config_round_trip():
    model = build_network(SEED_POLICY, SEED_STATES)
    batch = seed_batch(2)
    expected = numpy(model(batch))
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    output, _ = model.stateless_call(trainable, non_trainable, batch)
    np.testing.assert_allclose(numpy(output), expected, rtol=1e-5, atol=1e-6)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(numpy(clone(batch)), expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- auto


def test_auto_network_cartpole_matches_tensorforce_forward_pass():
    model = build_network("auto", CARTPOLE, name="policy_network")
    assert input_names(model) == {"state": "state"}
    assert [type(layer).__name__ for layer in model.layers] == [
        "InputLayer", "LinearNormalization", "Dense", "Dense",
    ]
    dense0 = model.get_layer("policy_network_dense0")
    dense1 = model.get_layer("policy_network_dense1")
    assert dense0.size == 64 and dense0.nonlinearity == "tanh"
    assert [w.path for w in model.weights] == [
        "policy_network_dense0/kernel", "policy_network_dense0/bias",
        "policy_network_dense1/kernel", "policy_network_dense1/bias",
    ]
    states = RNG.normal(size=(5, 4)).astype("float32") * 4  # some beyond the bounds
    low = np.array(CARTPOLE["min_value"], "float32")
    high = np.array(CARTPOLE["max_value"], "float32")
    x = 4.0 * (np.clip(states, low, high) - low) / (high - low) - 2.0
    w0, b0, w1, b1 = (numpy(w) for w in dense0.weights + dense1.weights)
    expected = np.tanh(np.tanh(x @ w0 + b0) @ w1 + b1)
    np.testing.assert_allclose(numpy(model({"state": states})), expected, rtol=1e-5, atol=1e-5)


def test_auto_network_with_two_states():
    states = dict(
        position=dict(type="float", shape=(3,)),
        mode=dict(type="int", shape=(), num_values=4),
    )
    model = build_network(dict(type="auto", size=32, final_size=16, final_depth=2), states)
    names = [layer.name for layer in model.layers]
    for name in ("position_dense0", "position_dense1", "mode_embedding", "mode_dense0",
                 "dense0", "dense1"):
        assert f"policy_network_{name}" in names
    assert "policy_network_mode_dense1" not in names  # depth - 1 after an embedding
    assert model.get_layer("policy_network_mode_embedding").num_embeddings == 4
    assert tuple(model.output.shape) == (None, 16)
    output = model({"position": RNG.normal(size=(2, 3)).astype("float32"),
                    "mode": np.array([0, 3])})
    assert tuple(output.shape) == (2, 16)


def test_auto_network_by_rank_and_type():
    states = dict(
        scalar=dict(type="float", shape=()),
        flag=dict(type="bool", shape=(2,)),
        series=dict(type="float", shape=(6, 3)),
        image=dict(type="float", shape=(5, 5, 2)),
    )
    model = build_network(dict(type="auto", size=8, depth=1), states)
    kinds = {layer.name: type(layer).__name__ for layer in model.layers}
    assert kinds["policy_network_scalar_flatten"] == "Flatten"
    assert kinds["policy_network_scalar_dense0"] == "Dense"
    assert kinds["policy_network_flag_embedding"] == "Embedding"
    assert kinds["policy_network_flag_pooling"] == "Pooling"
    assert kinds["policy_network_series_conv1d0"] == "Conv1d"
    assert kinds["policy_network_image_conv2d0"] == "Conv2d"
    assert model.get_layer("policy_network_flag_embedding").num_embeddings == 2
    output = model({
        "scalar": np.zeros((2,), "float32"), "flag": np.array([[True, False]] * 2),
        "series": np.zeros((2, 6, 3), "float32"), "image": np.zeros((2, 5, 5, 2), "float32"),
    })
    assert tuple(output.shape) == (2, 8)


@pytest.mark.parametrize(
    "spec,states,argument",
    [
        (dict(type="auto", rnn=10), VECTOR, "rnn"),
        (dict(type="auto", final_size=8), VECTOR, "final_size"),
        (dict(type="auto", size=0), VECTOR, "size"),
        (dict(type="auto", width=3), VECTOR, "width"),
        ("auto", dict(type="float", shape=(2, 2, 2, 2)), "shape"),
    ],
)
def test_auto_network_errors(spec, states, argument):
    with pytest.raises(ArgumentError, match=argument):
        build_network(spec, states)


# --------------------------------------------------------------------------- spec forms


def test_json_file_network():
    model = build_network(str(NETWORK_JSON), VECTOR)
    assert [layer.name for layer in model.layers[1:]] == [
        "policy_network_dense0", "policy_network_dense1",
    ]
    assert tuple(model.output.shape) == (None, 32)
    type_file = build_network(dict(type=str(NETWORK_JSON)), VECTOR)
    assert tuple(type_file.output.shape) == (None, 32)


def test_list_json_file_and_single_layer_specs(tmp_path):
    path = tmp_path / "layers.json"
    path.write_text(json.dumps([dict(type="dense", size=5), dict(type="linear", size=2)]))
    assert tuple(build_network(str(path), VECTOR).output.shape) == (None, 2)
    assert tuple(build_network(dict(type="dense", size=3), VECTOR).output.shape) == (None, 3)
    assert tuple(build_network(dict(layers=[dict(type="dense", size=3)]), VECTOR)
                 .output.shape) == (None, 3)
    identity = build_network([], VECTOR, preprocessing=None)
    x = RNG.normal(size=(2, 8)).astype("float32")
    np.testing.assert_allclose(numpy(identity({"state": x})), x)


def test_function_layers_and_keras_layers_in_lists():
    model = build_network(
        [lambda x: x * 2.0, "ops.tanh(x)", dict(type="keras", layer="Dense", units=3),
         dict(function="x + 1.0")],
        VECTOR,
    )
    x = RNG.normal(size=(2, 8)).astype("float32")
    dense = model.layers[3]
    assert isinstance(dense, keras.layers.Dense)
    kernel, bias = (numpy(w) for w in dense.weights)
    expected = np.tanh(2.0 * x) @ kernel + bias + 1.0
    np.testing.assert_allclose(numpy(model({"state": x})), expected, rtol=1e-5, atol=1e-5)


class TwoInputModel(keras.Model):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(units)

    def call(self, inputs):
        first, second = inputs
        return self.dense(keras.ops.concatenate(
            [first, keras.ops.cast(second, "float32")], axis=-1
        ))


TWO_STATES = dict(x=dict(type="float", shape=(2,)), y=dict(type="int", shape=(3,), num_values=4))


@pytest.mark.parametrize(
    "spec,units",
    [
        (TwoInputModel, 3),
        (lambda: TwoInputModel(units=5), 5),
        (dict(type="keras", model=TwoInputModel, units=7), 7),
        (dict(type="keras", model=lambda units: TwoInputModel(units=units), units=2), 2),
    ],
)
def test_keras_model_classes_and_factories_with_several_states(spec, units):
    model = build_network(spec, TWO_STATES, preprocessing=None)
    assert input_names(model) == {"x": "x", "y": "y"}
    assert tuple(model.output.shape) == (None, units)
    output = model({"x": np.ones((4, 2), "float32"), "y": np.ones((4, 3), "int64")})
    assert tuple(output.shape) == (4, units)


def test_keras_model_instance_single_state_and_flattening():
    inner = keras.Sequential([keras.layers.Reshape((4, 2)), keras.layers.Dense(3)])
    model = build_network(inner, VECTOR)
    assert tuple(model.output.shape) == (None, 12)  # (4, 3) flattened
    assert model.layers[1] is inner
    x = RNG.normal(size=(2, 8)).astype("float32")
    np.testing.assert_allclose(
        numpy(model({"state": x})), numpy(inner(x)).reshape(2, 12), rtol=1e-5
    )
    with pytest.raises(ArgumentError, match="model"):
        build_network(dict(type="keras", model=inner, units=3), VECTOR)
    with pytest.raises(ArgumentError, match="could not be called"):
        build_network(keras.Sequential([keras.layers.Conv2D(2, 3)]), VECTOR)


def test_singleton_int_state_and_nested_state_names():
    model = build_network([dict(type="embedding", size=4)], dict(type="int", shape=(3,),
                                                                  num_values=6))
    assert tuple(model.output.shape) == (None, 12)  # flattened at the end
    assert tuple(model({"state": np.array([[0, 1, 5]], "int64")}).shape) == (1, 12)
    nested = {"a": {"b": dict(type="float", shape=(2,)), "c": dict(type="bool", shape=())}}
    model = build_network("auto", nested)
    assert input_names(model) == {"a/b": "a.b", "a/c": "a.c"}
    assert "policy_network_a_b_dense0" in [layer.name for layer in model.layers]
    output = model({"a/b": np.zeros((2, 2), "float32"), "a/c": np.array([True, False])})
    assert tuple(output.shape) == (2, 64)
    passthrough = build_network([], dict(type="bool", shape=(2,)))
    assert passthrough.output.dtype == "float32"


def test_network_name_is_sanitized():
    model = build_network([dict(type="dense", size=2)], VECTOR, name="policy/network")
    assert model.name == "policy_network"
    assert model.layers[1].name == "policy_network_dense0"


# --------------------------------------------------------------------------- sharing


def test_reuse_shares_layers_across_networks_of_a_builder():
    builder = NetworkBuilder()
    policy = builder.build(
        [dict(type="dense", size=8, name="shared"), dict(type="dense", size=4)], VECTOR,
        name="policy_network", preprocessing=None,
    )
    baseline = builder.build(
        [dict(type="reuse", layer="shared")], VECTOR, name="baseline_network",
        preprocessing=None,
    )
    shared = policy.get_layer("policy_network_shared")
    assert baseline.get_layer("policy_network_shared") is shared
    assert builder.named_layers == {"shared": [shared]}
    assert shared.kernel is baseline.layers[1].kernel
    x = RNG.normal(size=(3, 8)).astype("float32")
    np.testing.assert_allclose(numpy(baseline({"state": x})), numpy(shared(x)), rtol=1e-6)
    # Changing the policy's weights changes the baseline's output.
    shared.kernel.assign(np.zeros((8, 8), "float32"))
    np.testing.assert_allclose(numpy(baseline({"state": x})), 0.0, atol=1e-6)


def test_block_reuse_within_and_across_networks():
    builder = NetworkBuilder()
    block = dict(type="block", name="trunk", layers=[
        dict(type="dense", size=8), dict(type="dense", size=8),
    ])
    policy = builder.build(
        [block, dict(type="reuse", layer="trunk")], VECTOR, preprocessing=None
    )
    trunk = builder.named_layers["trunk"]
    assert len(trunk) == 2
    # Applied twice, but the weights appear once.
    assert len(policy.weights) == 4
    assert len({id(w) for w in policy.weights}) == 4
    x = RNG.normal(size=(2, 8)).astype("float32")
    once = numpy(trunk[1](trunk[0](x)))
    twice = numpy(trunk[1](trunk[0](once)))
    np.testing.assert_allclose(numpy(policy({"state": x})), twice, rtol=1e-5, atol=1e-6)
    baseline = builder.build(
        [dict(type="reuse", layer="trunk")], VECTOR, name="baseline_network", preprocessing=None
    )
    assert [id(w) for w in baseline.weights] == [id(w) for w in policy.weights]
    np.testing.assert_allclose(numpy(baseline({"state": x})), once, rtol=1e-5, atol=1e-6)
    by_keras_name = builder.build(
        [dict(type="reuse", layer="policy_network_dense0")], VECTOR, name="other",
        preprocessing=None,
    )
    assert by_keras_name.layers[1] is trunk[0]


def test_duplicate_names_are_rejected():
    builder = NetworkBuilder()
    builder.build([dict(type="dense", size=2, name="head")], VECTOR)
    with pytest.raises(ArgumentError, match="reuse.*'head'"):
        builder.build([dict(type="dense", size=2, name="head")], VECTOR, name="baseline")


# --------------------------------------------------------------------------- preprocessing


def test_default_preprocessing_only_for_bounded_float_states():
    states = dict(
        bounded=dict(type="float", shape=(2,), min_value=0.0, max_value=2.0),
        unbounded=dict(type="float", shape=(2,)),
        half=dict(type="float", shape=(2,), min_value=0.0),
        count=dict(type="int", shape=(), num_values=3),
    )
    model = build_network("auto", states)
    normalizations = [layer for layer in model.layers if isinstance(layer, LinearNormalization)]
    assert [layer.name for layer in normalizations] == ["preprocessing_bounded_linear_normalization0"]
    assert not any(isinstance(layer, LinearNormalization)
                   for layer in build_network("auto", states, preprocessing=None).layers)


def test_preprocessing_forms():
    states = dict(a=dict(type="float", shape=(3,)), b=dict(type="float", shape=(3,)))
    spec = [[dict(type="retrieve", tensors=["a", "b"], aggregation="stack")]]
    x = {"a": np.full((1, 3), 5.0, "float32"), "b": np.full((1, 3), -5.0, "float32")}
    clipped = build_network(spec, states, preprocessing=dict(type="clipping", lower=-1, upper=1))
    np.testing.assert_allclose(numpy(clipped(x)), [[1, 1, 1, -1, -1, -1]])
    per_state = build_network(
        spec, states, preprocessing=dict(a=[dict(type="clipping", upper=2.0)], b=None)
    )
    np.testing.assert_allclose(numpy(per_state(x)), [[2, 2, 2, -5, -5, -5]])
    scaled = build_network(spec, states, preprocessing="2.0 * x")
    np.testing.assert_allclose(numpy(scaled(x)), [[10, 10, 10, -10, -10, -10]])
    with pytest.raises(ArgumentError, match="'c'"):
        build_network(spec, states, preprocessing=dict(a=None, c=None))
    with pytest.raises(ArgumentError, match="min_value"):
        build_network(spec, states, preprocessing=[dict(type="linear_normalization")])
    with pytest.raises(ArgumentError, match="preprocessing"):
        build_network(spec, states, preprocessing=[dict(type="retrieve", tensors=["a"])])


def test_explicit_linear_normalization_passes_unbounded_components():
    states = dict(type="float", shape=(2,), min_value=[0.0, -np.inf], max_value=[10.0, np.inf])
    model = build_network([], states, preprocessing=dict(type="linear_normalization"))
    x = np.array([[5.0, 123.0], [20.0, -7.0]], "float32")
    np.testing.assert_allclose(numpy(model({"state": x})), [[0.0, 123.0], [2.0, -7.0]])


def test_preprocessing_layers_are_shared_by_a_builder():
    builder = NetworkBuilder()
    preprocessing = [dict(type="exponential_normalization", decay=0.9)]
    policy = builder.build("auto", VECTOR, name="policy", preprocessing=preprocessing)
    baseline = builder.build("auto", VECTOR, name="baseline", preprocessing=preprocessing)
    assert policy.layers[1] is baseline.layers[1]
    assert policy.layers[1].name == "preprocessing_state_exponential_normalization0"
    other = NetworkBuilder().build("auto", VECTOR, preprocessing=preprocessing)
    assert other.layers[1] is not policy.layers[1]


def test_exponential_normalization_in_a_network_updates_in_training_only():
    model = build_network([], VECTOR, preprocessing=dict(type="exponential_normalization",
                                                          decay=0.5))
    x = {"state": RNG.normal(size=(4, 8)).astype("float32") + 3.0}
    non_trainable = [v.value for v in model.non_trainable_variables]
    output, updated = model.stateless_call([], non_trainable, x, training=True)
    mean = [numpy(v) for v in updated if tuple(v.shape) == (1, 8)][0]
    np.testing.assert_allclose(mean[0], x["state"].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(numpy(output).mean(axis=0), 0.0, atol=1e-5)
    model(x)  # not training: stays at the initial moments
    np.testing.assert_allclose(numpy(model.non_trainable_variables[0]), 0.0)


# --------------------------------------------------------------------------- errors


def test_unknown_layer_type():
    with pytest.raises(UnknownTypeError, match="'dnse'.*") as info:
        build_network([dict(type="dnse", size=3)], VECTOR)
    assert "dense" in str(info.value) and "stack 0, layer 0" in str(info.value)


def test_missing_required_argument_names_layer_and_argument():
    with pytest.raises(ArgumentError, match="dense.*size"):
        build_network([dict(type="dense")], VECTOR)
    with pytest.raises(ArgumentError, match="'tensor'"):
        build_network([dict(type="register")], VECTOR)
    with pytest.raises(ArgumentError, match="'layer'.*reuse"):
        build_network([dict(type="reuse")], VECTOR)


def test_retrieve_of_unknown_tensor_lists_registered_names():
    spec = [
        [dict(type="retrieve", tensors=["x"]), dict(type="register", tensor="x-out")],
        [dict(type="retrieve", tensors=["x-out", "missing"])],
    ]
    with pytest.raises(ArgumentError, match="missing") as info:
        build_network(spec, TWO_STATES)
    assert "['x', 'x-out', 'y']" in str(info.value)


def test_stack_without_retrieve_names_the_stack():
    with pytest.raises(ArgumentError, match="stack 0"):
        build_network([[dict(type="dense", size=2)]], TWO_STATES)
    with pytest.raises(ArgumentError, match="stack 1"):
        build_network([[dict(type="dense", size=2)], [dict(type="dense", size=2)]], VECTOR)


def test_register_twice_and_reuse_unknown():
    spec = [
        [dict(type="retrieve", tensors="x"), dict(type="register", tensor="e")],
        [dict(type="retrieve", tensors="y"), dict(type="register", tensor="e")],
    ]
    with pytest.raises(ArgumentError, match="'e'"):
        build_network(spec, TWO_STATES)
    with pytest.raises(ArgumentError, match="'nothing'"):
        build_network([dict(type="reuse", layer="nothing")], VECTOR)


@pytest.mark.parametrize("key", ["deltafier", "sequence"])
def test_unsupported_layer_types(key):
    with pytest.raises(ArgumentError, match=f"'{key}'.*not supported yet"):
        build_network([dict(type=key, size=4, horizon=2)], VECTOR)


@pytest.mark.parametrize(
    "spec,error,text",
    [
        ("no_such_network", UnknownTypeError, "no_such_network"),
        (dict(type="graph"), UnknownTypeError, "graph"),
        (dict(size=3), ArgumentError, "type"),
        (dict(type="layered"), ArgumentError, "layers"),
        (dict(type="keras"), ArgumentError, "model"),
        ([dict(type="dense", size=2), [dict(type="dense", size=2)]], ArgumentError, "mixed"),
        (42, ArgumentError, "network"),
        ([dict(type="dense", size=2), dict(type="conv2d", size=2)], ArgumentError, "rank 3"),
        ([dict(type="retrieve", tensors="state", aggregation="max")], ArgumentError, "aggregation"),
    ],
)
def test_invalid_network_specs(spec, error, text):
    with pytest.raises(error, match=text):
        build_network(spec, VECTOR)


def test_incompatible_reuse_and_bad_states_raise_kerasrl_errors():
    builder = NetworkBuilder()
    builder.build([dict(type="dense", size=2, name="small")], dict(type="float", shape=(3,)))
    with pytest.raises(KerasRLError, match="small|stack 0"):
        builder.build([dict(type="reuse", layer="small")], VECTOR, name="other")
    with pytest.raises(SpecError):
        build_network("auto", dict(type="complex", shape=(2,)))
    with pytest.raises(ArgumentError, match="name"):
        build_network("auto", VECTOR, name="")


def test_states_may_be_specs_or_dicts():
    specs = Specs(SEED_STATES)
    a = build_network(SEED_POLICY, specs)
    b = NetworkBuilder().build(SEED_POLICY, SEED_STATES)
    assert input_names(a) == input_names(b)
    assert isinstance(a.get_layer("policy_network_dense0"), Dense)
