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
       ("ddpg", "exploration", -0.3, ">= 0"), ("td3", "policy_delay", 0, "positive int"),
       ("td3", "policy_delay", 1.5, "positive int"),
       ("ppo", "horizon", 0, "positive int"), ("ppo", "update_frequency", NAN, "(0, 1]"),
       ("ppo", "update_frequency", 0, "positive int"), ("ppo", "update_frequency", INF, "(0, 1]"),
       ("ppo", "update_frequency", 1.5, "(0, 1]"), ("ppo", "memory", 2.5, "positive int"),
       ("a2c", "critic_optimizer", -1.0, ">= 0"), ("a2c", "critic_optimizer", NAN, ">= 0"),
       ("ac", "horizon", 0, "positive int"),
       ("trpo", "linesearch_iterations", -1, "non-negative int"),
       ("trpo", "cg_damping", NAN, ">= 0"), ("trpo", "cg_iterations", 2.5, "positive int"),
       ("trpo", "subsampling_fraction", 0.0, "(0, 1]"),
       ("dqn", "huber_loss", NAN, "> 0"), ("dqn", "huber_loss", -1.0, "> 0"),
       ("dqn", "start_updating", -1, "non-negative int"),
       ("dqn", "start_updating", 2.5, "non-negative int"),
       ("dqn", "multi_step", 0, "positive int"), ("dqn", "update_frequency", 0, "positive int"),
       ("ddpg", "critic_optimizer", 0.0, "> 0"), ("ddpg", "critic_optimizer", NAN, "> 0"),
       ("ddpg", "target_policy_noise", -0.1, ">= 0"),
       ("ddpg", "target_noise_clip", NAN, ">= 0"), ("td3", "target_policy_noise", INF, ">= 0"),
       ("sac", "alpha", 0.0, "> 0"), ("sac", "alpha", NAN, "> 0"),
       ("sac", "initial_alpha", -1.0, "> 0"), ("sac", "target_entropy", NAN, "finite"),
       ("sac", "target_entropy", INF, "finite"),
       ("ppo", "parallel_interactions", 0, "positive int"),
       ("dqn", "parallel_interactions", 2.5, "positive int"),
       ("ppo", "max_episode_timesteps", -1, "positive int")]
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


@pytest.mark.parametrize(("agent", "argument", "value", "expected"), [
    ("ppo", "baseline_optimizer", -1.0, ">= 0"), ("ppo", "baseline_optimizer", NAN, ">= 0"),
    ("vpg", "baseline_optimizer", INF, ">= 0"),
])
def test_baseline_loss_weight_is_checked(agent, argument, value, expected):
    with pytest.raises(ArgumentError) as info:
        Agent.create(agent=agent, **AGENTS[agent], baseline=SMALL, **{argument: value})
    message = str(info.value)
    assert f"'{argument}'" in message and expected in message and _words(value) in message


@pytest.mark.parametrize(("seed", "words"), [(-1, "-1"), (2**32, "4294967296"), (2.5, "2.5"),
                                              (True, "True")])
def test_config_seed_is_checked(seed, words):
    with pytest.raises(ArgumentError, match=r"'config\['seed'\]'.*\[0, 4294967295\].*" + words):
        Agent.create(agent="ppo", **AGENTS["ppo"], config=dict(seed=seed))


@pytest.mark.parametrize(("agent", "key", "value", "expected"), [
    ("ppo", "beta_1", NAN, "[0, 1)"), ("ppo", "beta_2", 1.0, "[0, 1)"),
    ("ppo", "epsilon", -1e-7, "> 0"), ("ppo", "weight_decay", -0.1, ">= 0"),
    ("dqn", "momentum", 2.0, "[0, 1]"), ("dqn", "rho", INF, "[0, 1)"),
    ("sac", "ema_momentum", -0.5, "[0, 1]"), ("sac", "gradient_accumulation_steps", 0,
                                               "positive int"),
    ("ppo", "clipnorm", 0.0, "> 0"), ("ppo", "multi_step", 0, "positive int"),
    ("ppo", "subsampling_fraction", 1.5, "(0, 1]"), ("ppo", "learning_rate", NAN, "> 0"),
])
def test_optimizer_arguments_are_checked(agent, key, value, expected):
    optimizer = {"type": "rmsprop" if key in ("momentum", "rho") else "adam", key: value}
    with pytest.raises(ArgumentError) as info:
        Agent.create(agent=agent, **AGENTS[agent], optimizer=optimizer)
    message = str(info.value)
    assert f"optimizer['{key}']" in message and expected in message, message
    assert _words(value) in message or str(value) in message, message


def test_lion_betas_may_be_one():
    agent = Agent.create(agent="ppo", **AGENTS["ppo"], optimizer=dict(type="lion", beta_1=1.0))
    assert agent.optimizer_spec.optimizer.beta_1 == 1.0
    with pytest.raises(ArgumentError, match=r"'optimizer\['beta_1'\]'.*\(0, 1\].*received 0"):
        Agent.create(agent="ppo", **AGENTS["ppo"], optimizer=dict(type="lion", beta_1=0.0))


@pytest.mark.parametrize(("processing", "argument", "words"), [
    (dict(type="clipping", lower=NAN, upper=1.0), "reward_processing['lower']", "nan"),
    (dict(type="clipping", lower=-1.0, upper="a"), "reward_processing['upper']", "'a'"),
    (dict(type="clipping", lower=2.0, upper=1.0), "reward_processing['upper']", "> lower=2"),
])
@pytest.mark.parametrize("agent", ["ppo", "dqn"])
def test_reward_clipping_bounds_are_checked(agent, processing, argument, words):
    with pytest.raises(ArgumentError) as info:
        Agent.create(agent=agent, **AGENTS[agent], reward_processing=processing)
    assert argument in str(info.value) and words in str(info.value), str(info.value)


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


@pytest.mark.parametrize(("schedule", "argument", "expected", "words"), [
    (dict(type="ornstein_uhlenbeck", sigma=-1.0), "sigma", ">= 0", "-1"),
    (dict(type="ornstein_uhlenbeck", theta=NAN), "theta", ">= 0", "nan"),
    (dict(type="ornstein_uhlenbeck", mu=INF), "mu", "finite", "inf"),
    (dict(type="random", stddev=NAN), "stddev", ">= 0", "nan"),
    (dict(type="random", distribution="uniform", minval=0.5, maxval=0.5), "maxval", "> 0.5",
     "0.5"),
    (dict(type="random", distribution="uniform", minval=0.0, maxval=2.0), "exploration",
     "[0, 1] at every step", "2"),
    (dict(type="piecewise_constant", unit="timesteps", boundaries=[5, 5], values=[0.1] * 3),
     "boundaries", "strictly increasing", "[5, 5]"),
    (dict(type="piecewise_constant", unit="timesteps", boundaries=5, values=[0.1, 0.2]),
     "boundaries", "a list", "5"),
    (dict(type="linear", unit="timesteps", num_steps=0, initial_value=0.1, final_value=0.0),
     "num_steps", "positive int", "0"),
    (dict(type="linear", unit="timesteps", num_steps=2.5, initial_value=0.1, final_value=0.0),
     "num_steps", "positive int", "2.5"),
    (dict(type="linear", unit="timesteps", num_steps=10, initial_value=0.1, final_value=1.5),
     "exploration", "[0, 1] at every step", "1.5"),
    (dict(type="linear", unit="hours", num_steps=10, initial_value=0.1, final_value=0.0),
     "unit", "one of", "'hours'"),
])
def test_bad_schedule_is_refused(schedule, argument, expected, words):
    with pytest.raises(ArgumentError) as info:
        Agent.create(agent="ppo", **AGENTS["ppo"], exploration=schedule)
    message = str(info.value)
    assert f"'{argument}'" in message and expected in message and words in message, message


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


@pytest.mark.parametrize(("bounds", "argument", "expected", "words"), [
    (dict(min_value="abc"), "min_value", "a number", "'abc'"),
    (dict(min_value=True), "min_value", "a number", "True"),
    (dict(max_value=[0.0, [1.0]]), "max_value", "a number", "[0.0, [1.0]]"),
    (dict(min_value=1.0, max_value=1.0), "max_value", "> min_value 1.0", "1.0"),
    (dict(min_value=INF), "min_value", "other than inf", "inf"),
    (dict(max_value=-INF), "max_value", "other than -inf", "-inf"),
    (dict(min_value=[0.0, 0.0, 0.0]), "min_value", "shape (4,)", "[0.0, 0.0, 0.0]"),
])
def test_spec_bounds_are_numbers_with_min_below_max(bounds, argument, expected, words):
    spec = dict(AGENTS["ppo"], states=dict(type="float", shape=(4,), **bounds))
    with pytest.raises(SpecError) as info:
        Agent.create(agent="ppo", **spec)
    message = str(info.value)
    assert f"'{argument}'" in message and expected in message and words in message, message


@pytest.mark.parametrize("type_", ["complex", "str", None, 3, [1]])
def test_spec_type_must_be_known(type_):
    spec = dict(AGENTS["ppo"], states=dict(type=type_, shape=(4,)))
    with pytest.raises(SpecError, match="type.*one of|key 'type'"):
        Agent.create(agent="ppo", **spec)


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


def test_act_object_array_is_an_input_error(ppo):
    with pytest.raises(InputError, match="'states'.*numeric.*received"):
        ppo.act(np.array([object()] * 4, dtype=object), independent=True)


@pytest.mark.parametrize("episodes", [0, -1, 2.5, True])
def test_evaluate_names_episodes(ppo, episodes):
    with pytest.raises(ArgumentError) as info:
        ppo.evaluate("CartPole-v1", episodes=episodes)
    message = str(info.value)
    assert "'episodes'" in message and "positive int" in message and str(episodes) in message
    assert "num_parallel" not in message


@pytest.mark.parametrize(("method", "arguments", "argument", "words"), [
    ("fit", dict(timesteps=-1), "timesteps", "-1"), ("fit", dict(timesteps=True), "timesteps",
                                                     "True"),
    ("fit", dict(episodes=0), "episodes", "0"), ("fit", dict(episodes=2.5), "episodes", "2.5"),
    ("fit", dict(episodes=1, num_parallel=0), "num_parallel", "0"),
    ("evaluate", dict(num_parallel=0), "num_parallel", "0"),
    ("evaluate", dict(num_parallel=1.5), "num_parallel", "1.5"),
])
def test_fit_and_evaluate_name_their_bad_argument(ppo, method, arguments, argument, words):
    with pytest.raises(ArgumentError) as info:
        getattr(ppo, method)("CartPole-v1", **arguments)
    message = str(info.value)
    assert f"'{argument}' of {method}" in message and "positive int" in message, message
    assert f"received {words}" in message, message


def test_fit_needs_a_limit(ppo):
    with pytest.raises(ArgumentError, match="episodes=.*timesteps="):
        ppo.fit("CartPole-v1")


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


def _wrong_shape_kernel(file):
    name = _first_kernel(file)
    data = file[name][()]
    del file[name]
    file.create_dataset(name, data=np.zeros((data.shape[0] + 1,) + data.shape[1:], data.dtype))


def _missing_kernel(file):
    del file[_first_kernel(file)]


def _bool_fields_as_floats(arrays):
    arrays.update({k: v.astype(np.float32) for k, v in arrays.items()
                   if k.startswith("field/") and v.dtype == np.bool_})


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
    "weights-wrong-shape": ("variables.h5", _edit_variables(_wrong_shape_kernel), "kernel",
                            "expected ("),
    "weights-missing": ("variables.h5", _edit_variables(_missing_kernel), "missing variables",
                        "kernel"),
    "kerasrl-version-int": ("metadata.json", _edit_metadata(_set(["kerasrl_version"], 1)),
                            "metadata['kerasrl_version']", "a str, received 1"),
    "agent-list": ("metadata.json", _edit_metadata(_set(["agent"], ["ppo"])),
                   "metadata['agent']", "['ppo']"),
    "memory-bool-as-float": ("memory.npz", _edit_memory(_bool_fields_as_floats),
                             "memory['field/masks/", "dtype bool"),
}
#: Fields only one kind of agent stores: (agent, member, edit, argument, words of the value).
AGENT_CORRUPTIONS = {
    "gradient-steps-negative": ("dqn", "metadata.json", _edit_metadata(_set(
        ["host_state", "gradient_steps"], -1)), "host_state['gradient_steps']", "-1"),
    "replay-index-too-large": ("dqn", "memory.npz", _edit_memory(
        lambda a: a.update(index=np.asarray(100))), "memory['index']", "[0, 99]"),
    "replay-size-array": ("dqn", "memory.npz", _edit_memory(
        lambda a: a.update(size=np.arange(3))), "memory['size']", "[0, 1, 2]"),
    "next-update-negative": ("ppo", "metadata.json", _edit_metadata(_set(
        ["host_state", "next_update"], -2)), "host_state['next_update']", "-2"),
    "padded-sizes-negative": ("ppo", "metadata.json", _edit_metadata(_set(
        ["host_state", "padded_sizes", "sizes"], [-4])), "host_state['padded_sizes']['sizes']",
        "[-4]"),
    "padded-waste-str": ("ppo", "metadata.json", _edit_metadata(_set(
        ["host_state", "padded_sizes", "waste"], "x")), "host_state['padded_sizes']['waste']",
        "'x'"),
    "segment-lengths-float": ("ppo", "memory.npz", _edit_memory(
        lambda a: a.update(segment_lengths=a["segment_lengths"].astype(np.float64))),
        "memory['segment_lengths']", "non-negative ints"),
    "segment-ends-shape": ("ppo", "memory.npz", _edit_memory(
        lambda a: a.update(segment_ends=np.ones(7, bool))), "memory['segment_ends']", "shape"),
    "segment-lengths-sum": ("ppo", "memory.npz", _edit_memory(
        lambda a: a.update(segment_lengths=a["segment_lengths"] + 1)),
        "memory['field/", "shape"),
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


@pytest.mark.parametrize("name", sorted(AGENT_CORRUPTIONS))
def test_corrupt_agent_specific_field_is_a_save_error(tmp_path, name):
    agent_type, member, edit, argument, value_words = AGENT_CORRUPTIONS[name]
    _, path = _trained(agent_type, tmp_path)
    _rewrite(path, member, edit)
    with pytest.raises(SaveError) as info:
        Agent.load(tmp_path / agent_type)
    message = str(info.value)
    assert argument in message and value_words in message, message
    assert "agent.keras" in message, message


def test_replay_memory_size_over_capacity_is_refused(tmp_path):
    _, path = _trained("dqn", tmp_path)
    _rewrite(path, "memory.npz", _edit_memory(lambda a: a.update(size=np.asarray(10_000))))
    with pytest.raises(SaveError, match=r"memory\['size'\].*\[0, 100\].*10000"):
        Agent.load(tmp_path / "dqn")


@pytest.mark.parametrize(("corruption", "words"), [
    ("nan", "kernel.*finite values.*non-finite"), ("shape", r"kernel' has shape.*expected \(")])
@pytest.mark.parametrize("fmt", ["h5", "numpy"])
def test_weights_file_with_nan_or_wrong_shape_is_refused(tmp_path, fmt, corruption, words):
    agent, _ = _trained("ppo", tmp_path)
    path = agent.save(tmp_path / "weights", format=fmt)
    if fmt == "numpy":
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
        key = next(k for k in arrays if k.endswith("kernel"))
        arrays[key] = np.full_like(arrays[key], np.inf) if corruption == "nan" else (
            np.zeros(arrays[key].shape + (2,), arrays[key].dtype))
        np.savez(path, **arrays)
    else:
        with h5py.File(path, "r+") as file:
            (_nan_kernel if corruption == "nan" else _wrong_shape_kernel)(file)
    with pytest.raises(SaveError, match=words) as info:
        Agent.load(tmp_path / "weights", format=fmt)
    assert str(path) in str(info.value)


def test_valid_checkpoint_still_loads(tmp_path):
    agent, _ = _trained("dqn", tmp_path)
    loaded = Agent.load(tmp_path / "dqn")
    assert (loaded.timesteps, loaded.updates) == (agent.timesteps, agent.updates)


@pytest.mark.parametrize(("key", "value"), [("max_checkpoints", -1), ("max_checkpoints", 1.5),
                                            ("frequency", 0), ("frequency", True)])
def test_saver_counts_are_checked(tmp_path, key, value):
    with pytest.raises(ArgumentError) as info:
        Agent.create(agent="ppo", **AGENTS["ppo"], saver={"directory": str(tmp_path), key: value})
    message = str(info.value)
    assert f"saver['{key}']" in message and "int" in message and str(value) in message, message
