"""Nonsense is refused with a clear error: hyper-parameters at creation, specs, act/evaluate
inputs, and every field of a checkpoint (issue #14, point 4).

Each case asserts the error type and that the message names the argument, the expected range
and the value received.
"""

from __future__ import annotations

import io
import json
import math
import zipfile

import h5py
import numpy as np
import pytest

from kerasrl import Agent
from kerasrl.errors import ArgumentError, InputError, SaveError, SpecError

CARTPOLE = dict(states=dict(type="float", shape=(4,)), actions=dict(type="int", num_values=2),
                max_episode_timesteps=20)
PENDULUM = dict(states=dict(type="float", shape=(3,)),
                actions=dict(type="float", shape=(1,), min_value=-2.0, max_value=2.0),
                max_episode_timesteps=20)
SMALL = [dict(type="dense", size=4)]
NAN, INF = float("nan"), float("inf")

#: Each agent with the smallest valid spec it needs.
AGENTS = {
    "ppo": dict(CARTPOLE, batch_size=2, network=SMALL),
    "vpg": dict(CARTPOLE, batch_size=2, network=SMALL),
    "a2c": dict(CARTPOLE, batch_size=8, network=SMALL, critic=SMALL),
    "ac": dict(CARTPOLE, batch_size=8, network=SMALL, critic=SMALL),
    "trpo": dict(CARTPOLE, batch_size=2, network=SMALL),
    "dqn": dict(CARTPOLE, batch_size=8, memory=100, network=SMALL),
    "double_dqn": dict(CARTPOLE, batch_size=8, memory=100, network=SMALL),
    "dueling_dqn": dict(CARTPOLE, batch_size=8, memory=100, network=SMALL),
    "ddpg": dict(PENDULUM, batch_size=8, memory=100, network=SMALL, critic=SMALL),
    "td3": dict(PENDULUM, batch_size=8, memory=100, network=SMALL, critic=SMALL),
    "sac": dict(PENDULUM, batch_size=8, memory=100, network=SMALL, critic=SMALL),
}

#: (argument, bad value, words of the expected range) shared by the policy-gradient agents.
ON_POLICY = [
    ("learning_rate", -1.0, "> 0"), ("learning_rate", NAN, "> 0"), ("learning_rate", 0.0, "> 0"),
    ("learning_rate", INF, "> 0"), ("learning_rate", True, "> 0"),
    ("discount", 1.5, "[0, 1]"), ("discount", -0.1, "[0, 1]"), ("discount", NAN, "[0, 1]"),
    ("gae_decay", 2.0, "[0, 1]"), ("gae_decay", NAN, "[0, 1]"),
    ("entropy_regularization", -1.0, ">= 0"), ("entropy_regularization", INF, ">= 0"),
    ("l2_regularization", NAN, ">= 0"), ("l2_regularization", -0.5, ">= 0"),
    ("exploration", 2.0, "[0, 1]"), ("exploration", -0.1, "[0, 1]"),
    ("batch_size", 2.5, "positive int"), ("batch_size", 0, "positive int"),
    ("batch_size", True, "positive int"),
    ("max_grad_norm", -1.0, "> 0"), ("max_grad_norm", NAN, "> 0"),
]
OFF_POLICY = [
    ("learning_rate", -1.0, "> 0"), ("learning_rate", INF, "> 0"), ("learning_rate", NAN, "> 0"),
    ("discount", 1.5, "[0, 1]"), ("discount", NAN, "[0, 1]"),
    ("l2_regularization", -1.0, ">= 0"), ("target_update_weight", 2.0, "(0, 1]"),
    ("target_update_weight", 0.0, "(0, 1]"), ("target_sync_frequency", 0, "positive int"),
    ("batch_size", 2.5, "positive int"), ("memory", -5, "positive int"),
    ("horizon", 0, "positive int"),
]
CASES = (
    [(agent, *case) for agent in ("ppo", "vpg", "a2c", "ac") for case in ON_POLICY
     if not (agent in ("a2c", "ac") and case[0] in ("gae_decay",))]
    + [("ppo", "likelihood_ratio_clipping", -0.2, "> 0"),
       ("ppo", "multi_step", 0, "positive int"), ("ppo", "subsampling_fraction", 1.5, "(0, 1]"),
       ("ppo", "subsampling_fraction", NAN, "(0, 1]"),
       ("ppo", "subsampling_fraction", 0.0, "(0, 1]"),
       ("ppo", "likelihood_ratio_clipping", NAN, "> 0"),
       ("trpo", "learning_rate", NAN, "> 0"), ("trpo", "learning_rate", -1.0, "> 0"),
       ("trpo", "discount", 2.0, "[0, 1]"), ("trpo", "cg_damping", -1.0, ">= 0"),
       ("trpo", "backtracking_factor", 1.0, "(0, 1)"), ("trpo", "cg_iterations", 0, "positive"),
       ("dqn", "exploration", 2.0, "[0, 1]"), ("dqn", "exploration", NAN, "[0, 1]"),
       ("ddpg", "exploration", -0.3, ">= 0"), ("td3", "policy_delay", 0, "positive int")]
    + [(agent, *case) for agent in ("dqn", "double_dqn", "dueling_dqn", "ddpg", "td3", "sac")
       for case in OFF_POLICY]
)


def _words(value) -> str:
    return "nan" if isinstance(value, float) and math.isnan(value) else repr(value)


@pytest.mark.parametrize(("agent", "argument", "value", "expected"), CASES,
                         ids=[f"{a}-{k}={_words(v)}" for a, k, v, _ in CASES])
def test_bad_hyperparameter_is_refused_at_creation(agent, argument, value, expected):
    spec = dict(AGENTS[agent])
    spec[argument] = value
    with pytest.raises(ArgumentError) as info:
        Agent.create(agent=agent, **spec)
    message = str(info.value)
    assert argument in message, message
    assert expected in message, message
    assert _words(value) in message or str(value) in message, message


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_every_agent_still_accepts_its_smallest_valid_spec(agent):
    created = Agent.create(agent=agent, **AGENTS[agent])
    assert created.agent_type == agent or agent in created.spec["agent"]


@pytest.mark.parametrize(("schedule", "value_words"), [
    (dict(type="linear", unit="timesteps", num_steps=10, initial_value=1e-3,
          final_value=-1.0), "-1"),
    (dict(type="piecewise_constant", unit="updates", boundaries=[5], values=[1e-3, -1e-3]),
     "-0.001"),
    (dict(type="exponential", unit="timesteps", num_steps=10, initial_value=-1e-3,
          decay_rate=0.5), "-0.001"),
])
def test_schedule_leaving_the_range_is_refused(schedule, value_words):
    with pytest.raises(ArgumentError) as info:
        Agent.create(agent="ppo", **AGENTS["ppo"], learning_rate=schedule)
    message = str(info.value)
    assert "learning_rate" in message and "> 0 at every step" in message, message
    assert value_words in message, message


def test_schedule_may_decay_to_an_open_bound():
    agent = Agent.create(agent="ppo", **AGENTS["ppo"], learning_rate=dict(
        type="linear", unit="timesteps", num_steps=100, initial_value=1e-3, final_value=0.0))
    assert agent.optimizer_spec.learning_rate.value({"timesteps": 100}) == 0.0


@pytest.mark.parametrize("field", ["initial_value", "decay_rate", "num_steps"])
def test_schedule_arguments_are_checked(field):
    schedule = dict(type="exponential", unit="timesteps", num_steps=10, initial_value=1e-3,
                    decay_rate=0.5)
    schedule[field] = "abc"
    with pytest.raises(ArgumentError, match=f"'{field}'.*received 'abc'"):
        Agent.create(agent="ppo", **AGENTS["ppo"], learning_rate=schedule)


@pytest.mark.parametrize("shape", [(2.5,), ("2",), (True,), (-1,), (0,), 2.5, "4"])
def test_spec_shape_must_be_positive_ints(shape):
    spec = dict(AGENTS["ppo"], states=dict(type="float", shape=shape))
    with pytest.raises(SpecError) as info:
        Agent.create(agent="ppo", **spec)
    assert "'shape'" in str(info.value) and repr(shape) in str(info.value)


@pytest.mark.parametrize("num_values", [0, 2.5, True, -3])
def test_spec_num_values_must_be_a_positive_int(num_values):
    spec = dict(AGENTS["ppo"], actions=dict(type="int", num_values=num_values))
    with pytest.raises(SpecError, match="'num_values'.*positive int"):
        Agent.create(agent="ppo", **spec)


def test_spec_bounds_must_be_ordered_and_not_nan():
    with pytest.raises(SpecError, match="'max_value'"):
        Agent.create(agent="ppo", **dict(AGENTS["ppo"], states=dict(
            type="float", shape=(4,), min_value=1.0, max_value=0.0)))
    with pytest.raises(SpecError, match="'min_value'.*NaN"):
        Agent.create(agent="ppo", **dict(AGENTS["ppo"], states=dict(
            type="float", shape=(4,), min_value=NAN)))


@pytest.fixture(scope="module")
def ppo():
    return Agent.create(agent="ppo", **AGENTS["ppo"])


@pytest.mark.parametrize("states", [
    [[0.1, 0.2], [0.3]],                      # ragged batch
    [0.1, [0.2, 0.3], 0.1, 0.1],              # ragged element
    [[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3]],  # ragged rows
])
def test_act_ragged_list_is_an_input_error(ppo, states):
    with pytest.raises(InputError) as info:
        ppo.act(states, independent=True)
    message = str(info.value)
    assert "'states'" in message and "(4,)" in message and "0.1" in message


@pytest.mark.parametrize(("states", "words"), [
    ("abc", r"shape \(4,\)"), ([None] * 4, "numeric"), (np.zeros((2, 5)), "shape"),
])
def test_act_wrong_values_are_input_errors(ppo, states, words):
    with pytest.raises(InputError, match=words):
        ppo.act(states, independent=True)


@pytest.mark.parametrize("episodes", [0, -1, 2.5, True])
def test_evaluate_names_episodes(ppo, episodes):
    with pytest.raises(ArgumentError) as info:
        ppo.evaluate("CartPole-v1", episodes=episodes)
    message = str(info.value)
    assert "'episodes'" in message and "positive int" in message and str(episodes) in message
    assert "num_parallel" not in message


# ---------------------------------------------------------------------- checkpoints
def _trained(agent_type, tmp_path):
    agent = Agent.create(agent=agent_type, **AGENTS[agent_type], config=dict(seed=1))
    rng = np.random.default_rng(0)
    for _ in range(3):
        length = 6
        states = rng.normal(size=(length,) + agent.states_spec["state"].shape)
        if agent.actions_spec["action"].type == "int":
            actions = rng.integers(0, 2, size=length)
        else:
            actions = rng.uniform(-1, 1, size=(length, 1)).astype(np.float32)
        terminal = np.zeros(length, np.int64)
        terminal[-1] = 1
        agent.experience(states=states, actions=actions, terminal=terminal,
                         reward=rng.normal(size=length).astype(np.float32))
    agent.update()
    return agent, agent.save(tmp_path / agent_type)


def _rewrite(path, member, edit):
    """Rewrites one member of a `.keras` archive through `edit(bytes) -> bytes`."""
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    contents[member] = edit(contents[member])
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)


def _edit_metadata(change):
    def edit(data):
        metadata = json.loads(data)
        change(metadata)
        return json.dumps(metadata).encode()
    return edit


def _edit_memory(change):
    def edit(data):
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        change(arrays)
        out = io.BytesIO()
        np.savez(out, **arrays)
        return out.getvalue()
    return edit


def _edit_variables(change):
    def edit(data):
        buffer = io.BytesIO(data)
        with h5py.File(buffer, "r+") as file:
            change(file)
        return buffer.getvalue()
    return edit


def _set(path, value):
    def change(metadata):
        target = metadata
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _first_kernel(file):
    names = []
    file.visititems(lambda key, item: names.append(key)
                    if isinstance(item, h5py.Dataset) and key.endswith("kernel") else None)
    return names[0]


def _nan_kernel(file):
    name = _first_kernel(file)
    data = file[name][()]
    data.flat[0] = np.nan
    file[name][...] = data


def _string_kernel(file):
    name = _first_kernel(file)
    shape = file[name].shape
    del file[name]
    file.create_dataset(name, data=np.full(shape, b"x"))


CORRUPTIONS = {
    "timesteps-str": ("metadata.json", _edit_metadata(_set(["host_state", "timesteps"], "abc")),
                      "host_state['timesteps']", "'abc'"),
    "timesteps-negative": ("metadata.json", _edit_metadata(_set(["host_state", "timesteps"], -5)),
                           "host_state['timesteps']", "-5"),
    "episodes-float": ("metadata.json", _edit_metadata(_set(["host_state", "episodes"], 2.5)),
                       "host_state['episodes']", "2.5"),
    "updates-bool": ("metadata.json", _edit_metadata(_set(["host_state", "updates"], True)),
                     "host_state['updates']", "True"),
    "next-update-str": ("metadata.json", _edit_metadata(_set(["host_state", "next_update"], "x")),
                        "host_state['next_update']", "'x'"),
    "rng-wrong-generator": ("metadata.json", _edit_metadata(_set(
        ["host_state", "rng", "bit_generator"], "MT19937")), "host_state['rng']", "MT19937"),
    "rng-wrong-state": ("metadata.json", _edit_metadata(_set(
        ["host_state", "rng", "state"], "abc")), "host_state['rng']", "abc"),
    "rng-not-a-dict": ("metadata.json", _edit_metadata(_set(["host_state", "rng"], [1, 2])),
                       "host_state['rng']", "[1, 2]"),
    "host-state-list": ("metadata.json", _edit_metadata(_set(["host_state"], [])),
                        "host_state", "[]"),
    "archive-version": ("metadata.json", _edit_metadata(_set(["archive_version"], 99)),
                        "archive_version", "99"),
    "backend-int": ("metadata.json", _edit_metadata(_set(["backend"], 3)),
                    "metadata['backend']", "3"),
    "memory-other-keys": ("memory.npz", _edit_memory(lambda a: a.update(other=np.zeros(3))),
                          "memory arrays", "'other'"),
    "memory-wrong-shape": ("memory.npz", _edit_memory(
        lambda a: a.update({k: v[:, None] for k, v in a.items() if k.startswith("field/")})),
        "memory['field/", "shape"),
    "memory-nan": ("memory.npz", _edit_memory(
        lambda a: a.update({k: np.full_like(v, np.nan) for k, v in a.items()
                            if k.startswith("field/") and v.dtype.kind == "f"})),
        "memory['field/", "finite"),
    "weights-nan": ("variables.h5", _edit_variables(_nan_kernel), "kernel", "non-finite"),
    "weights-strings": ("variables.h5", _edit_variables(_string_kernel), "kernel", "numeric"),
}


@pytest.mark.parametrize("agent_type", ["ppo", "dqn"])
@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupt_checkpoint_field_is_a_save_error(tmp_path, agent_type, name):
    member, edit, argument, value_words = CORRUPTIONS[name]
    _, path = _trained(agent_type, tmp_path)
    _rewrite(path, member, edit)
    with pytest.raises(SaveError) as info:
        Agent.load(tmp_path / agent_type)
    message = str(info.value)
    assert argument in message, message
    assert value_words in message, message
    assert str(path) in message or "agent.keras" in message, message


def test_replay_memory_size_over_capacity_is_refused(tmp_path):
    _, path = _trained("dqn", tmp_path)
    _rewrite(path, "memory.npz", _edit_memory(lambda a: a.update(size=np.asarray(10_000))))
    with pytest.raises(SaveError, match=r"memory\['size'\].*\[0, 100\].*10000"):
        Agent.load(tmp_path / "dqn")


@pytest.mark.parametrize("fmt", ["h5", "numpy"])
def test_weights_file_with_nan_is_refused(tmp_path, fmt):
    agent, _ = _trained("ppo", tmp_path)
    path = agent.save(tmp_path / "weights", format=fmt)
    if fmt == "numpy":
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
        key = next(k for k in arrays if k.endswith("kernel"))
        arrays[key] = np.full_like(arrays[key], np.inf)
        np.savez(path, **arrays)
    else:
        with h5py.File(path, "r+") as file:
            _nan_kernel(file)
    with pytest.raises(SaveError, match="kernel.*finite values.*non-finite"):
        Agent.load(tmp_path / "weights", format=fmt)


def test_valid_checkpoint_still_loads(tmp_path):
    agent, _ = _trained("dqn", tmp_path)
    loaded = Agent.load(tmp_path / "dqn")
    assert (loaded.timesteps, loaded.updates) == (agent.timesteps, agent.updates)
