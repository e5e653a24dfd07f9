"""Non-finite numbers never reach the weights silently (issue #14, point 4).

Non-finite rewards and states are refused where they enter, naming the index. An update whose
loss or gradient is not finite leaves every weight and optimizer variable as it was, then
raises `NonFiniteError` naming the loss term and the update number (or, with
`config=dict(nonfinite='skip')`, is counted and reported).
"""

from __future__ import annotations

import glob

import keras
import numpy as np
import pytest

from kerasrl import Agent
from kerasrl.errors import InputError, NonFiniteError
from kerasrl.saving import named_weights

SMALL = [dict(type="dense", size=4)]
CARTPOLE = dict(states=dict(type="float", shape=(4,)), actions=dict(type="int", num_values=2),
                max_episode_timesteps=20)
PENDULUM = dict(states=dict(type="float", shape=(3,)),
                actions=dict(type="float", shape=(1,), min_value=-2.0, max_value=2.0),
                max_episode_timesteps=20)
AGENTS = {
    "ppo": dict(CARTPOLE, batch_size=1, network=SMALL, baseline=SMALL,
                baseline_optimizer=dict(optimizer="adam", learning_rate=1e-3, multi_step=2),
                advantage_processing="normalize"),
    "trpo": dict(CARTPOLE, batch_size=1, network=SMALL, baseline=SMALL),
    "dqn": dict(CARTPOLE, batch_size=4, memory=100, network=SMALL, start_updating=4),
    "sac": dict(PENDULUM, batch_size=4, memory=100, network=SMALL, critic=SMALL,
                start_updating=4),
}
#: A reward that is finite in float32 but overflows every return and squared error.
HUGE = 3e38


def _agent(name, **config):
    return Agent.create(agent=name, **AGENTS[name], config=dict(seed=0, **config))


def _experience(agent, reward, length=6):
    rng = np.random.default_rng(0)
    shape = agent.states_spec["state"].shape
    action_spec = agent.actions_spec["action"]
    if action_spec.type == "int":
        actions = rng.integers(0, 2, size=length)
    else:
        actions = rng.uniform(-1, 1, size=(length, 1)).astype(np.float32)
    terminal = np.zeros(length, np.int64)
    terminal[-1] = 1
    agent.experience(states=rng.normal(size=(length,) + shape).astype(np.float32),
                     actions=actions, terminal=terminal,
                     reward=np.full(length, reward, np.float32))


def _everything(agent):
    agent._sync_weights()
    values = {k: keras.ops.convert_to_numpy(v.value).copy() for k, v in named_weights(agent).items()}
    values.update({k: keras.ops.convert_to_numpy(v.value).copy()
                   for k, v in agent._state_variables().items() if not k.startswith("seed/")})
    return values


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e39])
def test_observe_refuses_non_finite_rewards_with_the_index(value):
    agent = Agent.create(agent="ppo", **AGENTS["ppo"], parallel_interactions=3)
    agent.act(np.zeros((3, 4), np.float32), parallel=[0, 1, 2])
    with pytest.raises(InputError) as info:
        agent.observe(reward=[0.0, value, 1.0], terminal=[0, 0, 0], parallel=[0, 1, 2])
    message = str(info.value)
    assert "'reward'" in message and "slot 1 is not finite" in message
    assert ("nan" in message) or ("inf" in message)


@pytest.mark.parametrize("name", ["ppo", "dqn", "sac"])
def test_experience_refuses_non_finite_rewards_with_the_index(name):
    agent = _agent(name)
    with pytest.raises(InputError, match=r"'reward'.*timestep 0 is not finite.*nan"):
        _experience(agent, np.nan)


@pytest.mark.parametrize("name", ["ppo", "dqn", "sac"])
def test_act_refuses_non_finite_states(name):
    agent = _agent(name)
    states = np.zeros((2,) + agent.states_spec["state"].shape, np.float32)
    states[1, 0] = np.inf
    with pytest.raises(InputError, match=r"'states'.*finite.*index \(1, 0\) is inf"):
        agent.act(states, independent=True)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_overflowing_update_raises_and_leaves_every_variable_unchanged(name):
    agent = _agent(name)
    for _ in range(2):
        _experience(agent, HUGE)
    before = _everything(agent)
    with pytest.raises(NonFiniteError) as info:
        agent.update()
    message = str(info.value)
    assert f"Update 1 of agent '{name}'" in message and "loss" in message
    assert "nonfinite='skip'" in message
    after = _everything(agent)
    assert before.keys() == after.keys()
    for key in before:  # the whole update was rolled back, also the finite parts of SAC's
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    assert agent.updates == 0


@pytest.mark.parametrize("name", ["ppo", "dqn"])
def test_skip_mode_counts_and_keeps_learning(name, tmp_path):
    agent = Agent.create(agent=name, **AGENTS[name], config=dict(seed=0, nonfinite="skip"),
                         summarizer=dict(directory=str(tmp_path), labels="all"))
    for _ in range(2):
        _experience(agent, HUGE)
    before = _everything(agent)
    agent.update()
    assert agent.nonfinite_updates == 1 and agent.last_metrics["nonfinite_updates"] == 1.0
    after = _everything(agent)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    agent.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = glob.glob(str(tmp_path / "**" / "events.out.tfevents.*"), recursive=True)
    assert runs
    accumulator = EventAccumulator(runs[0], size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"] + accumulator.Tags().get("tensors", [])
    assert "metrics/nonfinite_updates" in tags, tags


def test_finite_updates_are_unaffected_by_the_guard():
    agent = _agent("ppo")
    _experience(agent, 1.0)
    before = _everything(agent)
    agent.update()
    after = _everything(agent)
    assert any(not np.array_equal(after[k], before[k]) for k in before if "kernel" in k)
    assert all(np.isfinite(v).all() for v in after.values())
    assert agent.nonfinite_updates == 0 and "nonfinite_updates" not in agent.last_metrics


def test_nonfinite_config_is_checked():
    from kerasrl.errors import ArgumentError

    with pytest.raises(ArgumentError, match=r"config\['nonfinite'\].*'raise', 'skip'.*'ignore'"):
        _agent("ppo", nonfinite="ignore")


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_rewards_of_1e19_never_turn_weights_into_nan_silently(name):
    agent = _agent(name)
    for _ in range(2):
        _experience(agent, 1e19)
    before = _everything(agent)
    try:
        agent.update()
    except NonFiniteError:
        after = _everything(agent)
        for key in before:
            np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    after = _everything(agent)
    assert all(np.isfinite(value).all() for value in after.values())
