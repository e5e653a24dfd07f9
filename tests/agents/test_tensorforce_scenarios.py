"""Tensorforce's test scenarios (reference §9) for the generic agent, as our own tests.

The harness of §9.1: a random environment with states of every type (bool,
int, bounded float) and actions of every type (bool, int of several shapes,
Gaussian, Beta), a random mask for every int action (at least one allowed and
one refused value), terminals with p=0.25 from the 5th timestep on and a time
limit of 10 (so aborted episodes too), rewards in [-1, 1]; the environment
refuses any action of the wrong dtype, shape or bounds, or a masked one.

Each scenario is one generic agent spec of §9.2 (reward estimation, memories,
objectives, optimizers): a Runner run of two updates, episodes through
`act(independent=True)` + `experience` + `update`, then save and load, and one
act of the loaded agent. Tensorforce's base spec also has a recurrent policy,
which kerasrl does not have yet (its own issue), and `variable_noise=0.01` and
`tracking='all'` in every scenario; here the base scenario has them (their
behaviour has its own tests, and the noise's compilation would double the cost
of every scenario on JAX).
"""

from __future__ import annotations

import numpy as np
import pytest

from kerasrl import Agent, Environment, Runner

STATES = dict(
    bool_state=dict(type="bool", shape=(1,)),
    int_state=dict(type="int", shape=(1, 2), num_values=4),
    float_state=dict(type="float", shape=(), min_value=1.0, max_value=2.0),
)
ACTIONS = dict(
    bool_action=dict(type="bool", shape=(1,)),
    int_action1=dict(type="int", shape=(), num_values=4),
    int_action2=dict(type="int", shape=(2,), num_values=3),
    int_action3=dict(type="int", shape=(2, 1), num_values=3),
    gaussian_action1=dict(type="float", shape=(1, 2), min_value=1.0, max_value=2.0),
    gaussian_action2=dict(type="float", shape=(1,), min_value=-2.0, max_value=1.0),
    beta_action=dict(type="float", shape=(), min_value=1.0, max_value=2.0),
)
DTYPES = {"bool": np.bool_, "int": np.int64, "float": np.float32}
PYTHON_TYPES = {"bool": bool, "int": int, "float": float}


class MockEnvironment(Environment):
    """Random states, masks and rewards; strict checks of every action it receives."""

    def __init__(self, states: dict, actions: dict, min_timesteps: int = 5, seed: int = 0):
        super().__init__()
        self._states, self._actions = states, actions
        self._min_timesteps = min_timesteps
        self._rng = np.random.default_rng(seed)
        self._masks: dict[str, np.ndarray] = {}
        self._timestep = 0
        self.actions_received = 0

    def states(self) -> dict:
        return self._states

    def actions(self) -> dict:
        return self._actions

    def _random_states(self) -> dict:
        states = {}
        for name, spec in self._states.items():
            shape = spec["shape"]
            if spec["type"] == "bool":
                states[name] = self._rng.random(shape) < 0.5
            elif spec["type"] == "int":
                states[name] = self._rng.integers(0, spec["num_values"], shape)
            else:
                states[name] = self._rng.uniform(spec["min_value"], spec["max_value"],
                                                 shape).astype(np.float32)
        self._masks = {}
        for name, spec in self._actions.items():
            if spec["type"] == "int":
                n = spec["num_values"]
                mask = self._rng.random(spec["shape"] + (n,)) < 0.5
                flat = mask.reshape(-1, n)
                flat[:, self._rng.integers(0, n)] = True  # at least one allowed ...
                refused = (np.argmax(flat, axis=-1) + 1 + self._rng.integers(0, n - 1)) % n
                flat[np.arange(len(flat)), refused] = False  # ... and one refused
                self._masks[name] = flat.reshape(mask.shape)
                states[f"{name}_mask"] = self._masks[name]
        return states

    def reset(self, seed: int | None = None) -> dict:
        self._timestep = 0
        return self._random_states()

    def _check(self, name: str, spec: dict, action) -> None:
        # Tensorforce's rule: a Python scalar of the type for shape (), else an
        # ndarray of exactly the dtype and shape
        scalar = tuple(spec["shape"]) == () and type(action) is PYTHON_TYPES[spec["type"]]
        if not (scalar or isinstance(action, np.ndarray)):
            raise AssertionError(f"{name}: {type(action)}")
        value = np.asarray(action, dtype=DTYPES[spec["type"]] if scalar else None)
        expected = DTYPES[spec["type"]]
        if value.dtype != expected or value.shape != tuple(spec["shape"]):
            raise AssertionError(f"{name}: {value.dtype} {value.shape}, expected "
                                 f"{np.dtype(expected)} {tuple(spec['shape'])}")
        if spec["type"] == "int":
            if ((value < 0) | (value >= spec["num_values"])).any():
                raise AssertionError(f"{name} out of range: {value}")
            allowed = np.take_along_axis(self._masks[name], value[..., None], -1)
            if not allowed.all():
                raise AssertionError(f"{name}={value} is masked")
        if spec["type"] == "float" and "min_value" in spec and not (
                (spec["min_value"] <= value) & (value <= spec["max_value"])).all():
            raise AssertionError(f"{name} out of bounds: {value}")

    def execute(self, actions: dict):
        assert set(actions) == set(self._actions), sorted(actions)
        for name, spec in self._actions.items():
            self._check(name, spec, actions[name])
        self.actions_received += 1
        self._timestep += 1
        terminal = self._timestep >= self._min_timesteps and self._rng.random() < 0.25
        return self._random_states(), bool(terminal), float(self._rng.uniform(-1.0, 1.0))


#: The base spec of §9.1 (without the recurrent policy, variable noise and tracking).
BASE = dict(
    policy=dict(network=dict(type="auto", size=8, depth=1), distributions=dict(
        int_action2=dict(type="categorical", temperature_mode="predicted"),
        int_action3=dict(type="categorical", temperature_mode="global"),
        gaussian_action2=dict(type="gaussian", stddev_mode="global",
                              bounded_transform="clipping"),
        beta_action="beta")),
    update=4, optimizer=dict(optimizer="adam", learning_rate=1e-3),
    objective="policy_gradient",
    reward_estimation=dict(
        horizon=3, estimate_advantage=True, predict_horizon_values="late",
        reward_processing=dict(type="clipping", lower=-1.0, upper=1.0),
        return_processing=dict(type="clipping", lower=-1.0, upper=1.0),
        advantage_processing="batch_normalization"),
    baseline=dict(network=dict(type="auto", size=7, depth=1)),
    baseline_optimizer=dict(optimizer="adam", learning_rate=1e-3),
    baseline_objective="state_value", l2_regularization=0.01, entropy_regularization=0.01,
    state_preprocessing="linear_normalization", exploration=0.01,
    config=dict(seed=0),
)


def _unittest(tmp_path, states=STATES, actions=ACTIONS, **changes) -> None:
    """§9.1's `unittest`: create, two updates with the Runner, act-experience-update, save/load."""
    environment = Environment.create(environment=MockEnvironment(states, actions),
                                     max_episode_timesteps=10)
    try:
        agent = Agent.create(agent="tensorforce", environment=environment,
                             **{**BASE, **changes})
        runner = Runner(agent=agent, environment=environment)
        runner.run(num_updates=2, use_tqdm=False)
        runner.close()
        assert agent.updates >= 2
        if changes.get("tracking") == "all":
            assert {"loss/policy", "reward/episode_return"} <= set(agent.tracked_tensors())
        # act(independent=True) episodes, then experience + update
        for deterministic in (True, False):
            episode = dict(states=[], internals=[], actions=[], terminal=[], reward=[])
            states, terminal = environment.reset(), 0
            internals = agent.initial_internals()
            while not terminal:
                episode["states"].append(states)
                episode["internals"].append(internals)
                actions, internals = agent.act(states=states, internals=internals,
                                               independent=True, deterministic=deterministic)
                states, terminal, reward = environment.execute(actions=actions)
                episode["actions"].append(actions)
                episode["terminal"].append(terminal)
                episode["reward"].append(reward)
            agent.experience(**episode)
        updates = agent.updates
        agent.update()
        assert agent.updates == updates + 1
        agent.save(directory=str(tmp_path), format="numpy")
        loaded = Agent.load(directory=str(tmp_path))
        environment.execute(actions=loaded.act(states=environment.reset(), independent=True))
        loaded.close()
        agent.close()
    finally:
        environment.close()


# ---------------------------------------------------------------------- test_reward_estimation
EARLY_ACTIONS = {k: v for k, v in ACTIONS.items() if k != "beta_action"}


@pytest.mark.parametrize("estimation", [
    dict(horizon=1, discount=0.99, predict_horizon_values="early"),
    dict(horizon=10, discount=0.99, predict_horizon_values="early",
         predict_terminal_values=True),
    dict(horizon="episode", discount=0.99, predict_horizon_values="early",
         estimate_advantage=True),
], ids=["horizon-1", "horizon-10-terminal", "episode-advantage"])
def test_early_horizon_estimate(tmp_path, estimation):
    _unittest(tmp_path, actions=EARLY_ACTIONS, reward_estimation=estimation)


@pytest.mark.parametrize("changes", [
    # the base spec (late horizon values, late advantage) with Tensorforce's
    # variable noise and tracking
    dict(variable_noise=0.01, tracking="all"),
    dict(baseline_optimizer=2.0),  # the baseline's loss weighted into the policy's
    dict(reward_estimation=dict(horizon=3, estimate_advantage="early",
                                predict_horizon_values="late")),
    dict(baseline=None, baseline_optimizer=None, baseline_objective=None,
         reward_estimation=dict(horizon=3, discount=0.99)),  # no baseline: n-step sums
], ids=["late", "weighted-baseline", "early-advantage", "no-baseline"])
def test_late_horizon_and_advantage_estimate(tmp_path, changes):
    _unittest(tmp_path, **changes)


# ---------------------------------------------------------------------- test_memories
@pytest.mark.parametrize("changes", [
    dict(memory=dict(type="recent"), update=dict(unit="timesteps", batch_size=4)),
    dict(memory=dict(type="recent", capacity=100), update=dict(unit="episodes", batch_size=1)),
], ids=["timesteps", "episodes"])
def test_recent_memory(tmp_path, changes):
    _unittest(tmp_path, **changes)


# ---------------------------------------------------------------------- test_objectives
def test_clipped_policy_gradient_objective(tmp_path):
    # (the base spec has the plain policy_gradient objective)
    _unittest(tmp_path, objective=dict(type="policy_gradient", importance_sampling=True,
                                       clipping_value=0.2))


# ---------------------------------------------------------------------- test_optimizers
def test_optimizer_wrappers(tmp_path):
    # nested wrappers, as the wrapper form dict(optimizer='adam', multi_step=3, ...)
    _unittest(tmp_path, optimizer=dict(type="multi_step", num_steps=3, optimizer=dict(
        type="subsampling_step", fraction=0.5, optimizer=dict(
            type="adam", learning_rate=1e-3, gradient_norm_clipping=1.0))))


def test_natural_gradient(tmp_path):
    _unittest(tmp_path, optimizer=dict(type="natural_gradient", learning_rate=1e-3),
              objective=dict(type="policy_gradient", importance_sampling=True),
              reward_estimation=dict(horizon="episode", estimate_advantage=True))


# ---------------------------------------------------------------------- value policies (test_agents)
DQN_ACTIONS = dict(action=dict(type="int", shape=(2,), num_values=4))


def test_synchronization_of_a_target_network(tmp_path):
    policy = dict(network=dict(type="auto", size=8, depth=1), state_value_mode="implicit")
    _unittest(tmp_path, actions=DQN_ACTIONS, policy=policy, baseline=policy,
              memory=100, update=dict(unit="timesteps", batch_size=4),
              objective="action_value", reward_estimation=dict(horizon=1, discount=0.99),
              baseline_optimizer=dict(type="synchronization", sync_frequency=2,
                                      update_weight=0.5),
              baseline_objective=None)
