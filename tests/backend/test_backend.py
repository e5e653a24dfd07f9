"""The backend module's shared names behave alike on every backend."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from kerasrl import backend as kbackend
from kerasrl.layers import Dense, Linear


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _model():
    """Dense layers of every kind the torch fast path handles, and some it must not."""
    vector = keras.Input((5,), name="vector")
    sequence = keras.Input((3, 5), name="sequence")
    h = Dense(8, activation="tanh")(vector)
    h = Dense(8, activation="relu")(h)
    h = Dense(8, activation="crelu")(h)  # not on the fast path
    h = Dense(8, activation="tanh", dropout=0.5)(h)  # not on the fast path
    h = Linear(4, bias=False)(h)
    h = keras.layers.Dense(6, activation="relu")(h)
    h = keras.layers.Dense(6, activation="softmax")(h)  # not on the fast path
    value = Linear(0)(h)  # size 0: not on the fast path
    s = Dense(4, activation="sigmoid")(sequence)  # rank 3: through the layer's call
    s = keras.layers.Dense(2)(s)
    return keras.Model({"vector": vector, "sequence": sequence},
                       {"h": h, "value": value, "s": s})


def test_call_model_equals_the_keras_call():
    model = _model()
    rng = np.random.default_rng(0)
    inputs = {"vector": rng.normal(size=(7, 5)).astype("float32"),
              "sequence": rng.normal(size=(7, 3, 5)).astype("float32")}
    expected = {k: _np(v) for k, v in model(inputs, training=False).items()}
    tensors = {k: ops.convert_to_tensor(v) for k, v in inputs.items()}
    outputs = {k: _np(v) for k, v in kbackend.call_model(model, tensors).items()}
    assert outputs.keys() == expected.keys()
    for key, value in expected.items():
        assert outputs[key].shape == value.shape, key
        np.testing.assert_allclose(outputs[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_call_model_casts_int_inputs_like_the_layer():
    inputs = keras.Input((3,), dtype="int32")
    model = keras.Model(inputs, Dense(4, activation="tanh")(inputs))
    x = np.array([[1, 2, 3], [0, -1, 4]], dtype="int32")
    np.testing.assert_allclose(_np(kbackend.call_model(model, ops.convert_to_tensor(x))),
                               _np(model(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("weight", [0.0, 0.25, 1.0])
def test_polyak_update(weight):
    target = keras.Variable(np.zeros((2, 3), "float32"))
    online = keras.Variable(np.full((2, 3), 4.0, "float32"))
    step_target = keras.Variable(np.array(1, "int32"), trainable=False)
    step_online = keras.Variable(np.array(7, "int32"), trainable=False)
    kbackend.polyak_update([(target, online), (step_target, step_online)],
                           ops.convert_to_tensor(weight))
    np.testing.assert_allclose(_np(target), np.full((2, 3), 4.0 * weight), rtol=1e-6)
    np.testing.assert_allclose(_np(online), np.full((2, 3), 4.0))
    assert int(_np(step_target)) == (7 if weight > 0 else 1)


def test_packed_outputs_keep_their_layout_when_sizes_coincide():
    """`pack=True`: two input layouts whose outputs have the same total size
    but other shapes and dtypes are each unpacked with their own layout."""
    engine = kbackend.Engine([])

    def fn(x):
        return {"x": x * 2.0, "argmax": ops.argmax(x, axis=-1)}

    call = engine.function(fn, sync=False, pack=True, name="packed")
    wide = np.arange(10, dtype="float32").reshape(2, 5)  # outputs of 10 + 2 values
    square = np.arange(9, dtype="float32")[::-1].reshape(3, 3)  # 9 + 3: the same size
    for x in (wide, square, wide, square):
        out = call(x)
        np.testing.assert_array_equal(out["x"], x * 2.0)
        assert out["x"].shape == x.shape and out["x"].dtype == np.float32
        np.testing.assert_array_equal(out["argmax"], np.argmax(x, axis=-1))
        assert out["argmax"].shape == x.shape[:1] and out["argmax"].dtype.kind == "i"


def test_agents_accept_arrays_with_negative_strides():
    """A reversed view (`x[::-1]`) is a valid state on every backend (torch copies it)."""
    from kerasrl import Agent

    agent = Agent.create(agent="ppo", environment="CartPole-v1", batch_size=2,
                         config=dict(seed=0))
    states = np.arange(8, dtype="float32").reshape(2, 4)[::-1, ::-1]
    assert any(stride < 0 for stride in states.strides)
    actions = agent.act(states, independent=True, deterministic=True)
    np.testing.assert_array_equal(
        actions, agent.act(states.copy(), independent=True, deterministic=True))
