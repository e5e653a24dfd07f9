"""The `image` preprocessing layer (Tensorforce's): resize and grayscale, in a network and an agent."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasrl import Agent
from kerasrl.errors import ArgumentError
from kerasrl.layers import Image


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_grayscale_uses_luma_weights_and_keeps_one_channel():
    images = np.random.default_rng(0).uniform(0, 255, size=(2, 5, 4, 3)).astype(np.float32)
    out = _numpy(Image(grayscale=True)(images))
    assert out.shape == (2, 5, 4, 1)
    expected = images @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(out[..., 0], expected, rtol=1e-5)
    weighted = _numpy(Image(grayscale=[1.0, 0.0])(images[..., :2]))
    np.testing.assert_allclose(weighted[..., 0], images[..., 0], rtol=1e-6)
    mean = _numpy(Image(grayscale=True)(images[..., :2]))
    np.testing.assert_allclose(mean[..., 0], images[..., :2].mean(-1), rtol=1e-5)


def test_resize_is_bilinear_and_constant_images_stay_constant():
    images = np.full((3, 8, 6, 2), 7.0, np.float32)
    out = _numpy(Image(height=4, width=3)(images))
    assert out.shape == (3, 4, 3, 2)
    np.testing.assert_allclose(out, 7.0, rtol=1e-6)
    ramp = np.tile(np.arange(8, dtype=np.float32)[None, :, None, None], (1, 1, 8, 1))
    halved = _numpy(Image(height=4, width=8)(ramp))[0, :, 0, 0]
    np.testing.assert_allclose(halved, [0.5, 2.5, 4.5, 6.5], atol=1e-5)


@pytest.mark.parametrize("kwargs, text", [
    (dict(height=0), "height"), (dict(grayscale="yes"), "grayscale"),
    (dict(grayscale=[0.5, np.nan]), "grayscale"),
])
def test_invalid_arguments(kwargs, text):
    with pytest.raises(ArgumentError, match=text):
        Image(**kwargs)
    with pytest.raises(ArgumentError, match="3 weights"):
        Image(grayscale=[1.0, 0.0])(np.zeros((1, 2, 2, 3), np.float32))
    with pytest.raises(ArgumentError, match="channels last"):
        Image()(np.zeros((1, 4, 4), np.float32))


def test_agent_with_image_preprocessing_learns_shapes_bounds_and_reloads(tmp_path):
    states = dict(type="float", shape=(16, 12, 3), min_value=0.0, max_value=255.0)
    agent = Agent.create(
        agent="ppo", states=states, actions=dict(type="int", num_values=2),
        max_episode_timesteps=8, batch_size=2, config=dict(seed=0),
        state_preprocessing=[dict(type="image", height=8, width=6, grayscale=True),
                             dict(type="linear_normalization")],
        network=[dict(type="conv2d", size=4, window=3), dict(type="flatten"),
                 dict(type="dense", size=8)])
    layers = {layer.name: layer for layer in agent.policy_model.layers}
    normalization = next(layer for name, layer in layers.items() if "linear_normalization" in name)
    # The bounds reach the normalization through the resize and the grayscale.
    assert float(np.min(normalization.min_value)) == 0.0
    assert float(np.max(normalization.max_value)) == pytest.approx(255.0)
    rng = np.random.default_rng(0)
    for _ in range(2):
        for t in range(8):
            agent.act(rng.uniform(0, 255, size=(16, 12, 3)).astype(np.float32))
            agent.observe(reward=1.0, terminal=t == 7)
    assert agent.updates >= 1
    observations = rng.uniform(0, 255, size=(4, 16, 12, 3)).astype(np.float32)
    path = agent.save(str(tmp_path / "image.keras"))
    np.testing.assert_array_equal(Agent.load(path).predict(observations),
                                  agent.predict(observations))
