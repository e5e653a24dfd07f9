"""Tests of `agent.pretrain`: Tensorforce's experience/update semantics,
behaviour cloning, and the validation of trace files (reference §5.2).

The 20 traces in `shared/tensorforce-data/ppo-traces` were written by
Tensorforce itself (a trained PPO agent on CartPole-v1, 500 steps each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kerasrl import Agent
from kerasrl.errors import ArgumentError, CallOrderError, InputError
from kerasrl.execution.pretrain import list_traces, read_trace

SHARED = Path(__file__).resolve().parents[3] / "shared"
TRACES = SHARED / "tensorforce-data" / "ppo-traces"
STATES = dict(type="float", shape=(4,))
ACTIONS = dict(type="int", num_values=2)
SMALL_PPO = dict(agent="ppo", batch_size=2, network=[dict(type="dense", size=16)],
                 max_episode_timesteps=500)


@pytest.fixture(scope="module")
def traces() -> Path:
    if not TRACES.is_dir():
        pytest.fail(f"Tensorforce traces not found at {TRACES}")
    return TRACES


def _small_ppo(**kwargs):
    spec = {**SMALL_PPO, **kwargs}
    return Agent.create(spec, states=spec.pop("states", STATES),
                        actions=spec.pop("actions", ACTIONS), config=dict(seed=0))


def _weights(agent):
    return [np.array(w) for w in agent.policy_model.get_weights()]


def _changed(before, after):
    return any(not np.allclose(a, b) for a, b in zip(before, after))


def _write(directory: Path, name: str, length: int = 6, **overrides) -> Path:
    """A valid CartPole-like trace, with keys replaced (None removes a key)."""
    rng = np.random.default_rng(len(name))
    data = dict(
        states=rng.normal(size=(length, 4)),
        actions=rng.integers(0, 2, size=length),
        terminal=np.r_[np.zeros(length - 1, np.int64), 1],
        reward=np.ones(length, np.float32),
    )
    data.update(overrides)
    data = {key: value for key, value in data.items() if value is not None}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    np.savez_compressed(path, **data)
    return path


# ---------------------------------------------------------------------- Tensorforce traces
def test_tensorforce_traces_are_read_unchanged(traces):
    files = list_traces(traces)
    assert len(files) == 20 and files[0].name == "trace-000000080.npz"
    agent = Agent.create(agent="random", states=STATES, actions=ACTIONS)
    trace = read_trace(files[0], agent)
    with np.load(files[0]) as raw:
        np.testing.assert_allclose(trace["states"]["state"], raw["states"], rtol=1e-6)
        np.testing.assert_array_equal(trace["actions"]["action"], raw["actions"])
    assert trace["states"]["state"].dtype == np.float32
    assert trace["terminal"][-1] == 2 and trace["reward"].sum() == 500.0
    assert trace["masks"] == {}


def test_behavior_cloning_on_tensorforce_traces_solves_cartpole(traces):
    agent = Agent.create(agent="ppo", environment="CartPole-v1", batch_size=10,
                         config=dict(seed=1))
    weights = _weights(agent)
    result = agent.pretrain(traces, num_iterations=15, num_traces=None, num_updates=50,
                            objective="behavior_cloning")
    assert result["objective"] == "behavior_cloning"
    assert result["gradient_steps"] == 750 and len(result["losses"]) == 15
    assert len(result["files"]) == 20
    assert result["losses"][-1] < result["losses"][0] < 0.7
    assert result["accuracy"] > 0.72
    assert _changed(weights, _weights(agent))
    assert agent.updates == 0  # supervised steps are not RL updates
    evaluation = agent.evaluate("CartPole-v1", episodes=10, seed=7)
    assert evaluation["mean_return"] >= 475.0, evaluation["returns"]


def test_experience_pretrain_on_tensorforce_traces(traces):
    agent = Agent.create(agent="ppo", environment="CartPole-v1", batch_size=2,
                         network=[dict(type="dense", size=16)], config=dict(seed=0))
    before = _weights(agent)
    result = agent.pretrain(traces, num_iterations=2, num_traces=2, num_updates=2)
    assert result["objective"] == "experience"
    assert result["updates"] == 4 and agent.updates == 4
    assert len(result["files"]) == 2 and len(result["metrics"]) == 2
    assert set(result["files"]) <= {path.name for path in traces.iterdir()}
    assert "policy_loss" in result["metrics"][-1]
    assert agent.memory.num_episodes == 2  # the memory keeps the newest batch_size episodes
    assert _changed(before, _weights(agent))


def test_num_traces_selects_random_files(tmp_path):
    for index in range(4):
        _write(tmp_path, f"trace-{index:09d}.npz")
    agent = _small_ppo()
    seen = set()
    for _ in range(4):
        result = agent.pretrain(tmp_path, num_iterations=1, num_traces=1)
        assert len(result["files"]) == 1
        seen.update(result["files"])
    assert len(seen) > 1
    result = agent.pretrain(tmp_path, num_iterations=1, num_traces=None, num_updates=3)
    assert sorted(result["files"]) == [f"trace-{i:09d}.npz" for i in range(4)]
    assert result["updates"] == 3


def test_extension(tmp_path):
    _write(tmp_path, "demo.traces.npz")
    (tmp_path / "readme.txt").write_text("not a trace")
    agent = _small_ppo()
    result = agent.pretrain(tmp_path, num_iterations=1, extension=".traces.npz",
                            objective="behavior_cloning")
    assert result["files"] == ["demo.traces.npz"]


# ---------------------------------------------------------------------- recorder round trip
def test_recorded_masks_are_honoured(tmp_path):
    """Action 0 is always masked: with the masks the initial loss is about ln 2,
    without them about ln 3 (the initial policy is close to uniform)."""
    masked, unmasked = tmp_path / "masked", tmp_path / "unmasked"
    actions = dict(type="int", num_values=3)
    recorder = Agent.create(agent="random", states=STATES, actions=actions,
                            recorder=dict(directory=masked, frequency=4), config=dict(seed=0))
    for t in range(40):
        recorder.act(dict(state=np.full(4, t / 40.0), action_mask=[False, True, True]))
        recorder.observe(reward=1.0, terminal=int(t % 10 == 9))
    (path,) = list_traces(masked)
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    assert arrays["auxiliaries/action/mask"].shape == (40, 3)
    assert not arrays["auxiliaries/action/mask"][:, 0].any()
    assert set(arrays["actions"].tolist()) == {1, 2}
    del arrays["auxiliaries/action/mask"]
    _write(unmasked, path.name, **arrays)

    losses = {}
    for name, directory in (("masked", masked), ("unmasked", unmasked)):
        agent = _small_ppo(actions=actions, max_episode_timesteps=10)
        result = agent.pretrain(directory, num_iterations=1, num_updates=1,
                                objective="behavior_cloning")
        losses[name] = result["loss"]
    assert abs(losses["masked"] - np.log(2)) < 0.1, losses
    assert abs(losses["unmasked"] - np.log(3)) < 0.1, losses

    # Tensorforce's objective: the masks go into memory with the experience.
    agent = _small_ppo(actions=actions, max_episode_timesteps=10)
    agent.pretrain(masked, num_iterations=1, num_updates=1)
    stored = np.concatenate([segment["masks/action"] for segment, _ in agent.memory.segments])
    assert not stored[:, 0].any() and stored[:, 1:].all()


def test_named_states_and_actions_round_trip(tmp_path):
    states = dict(position=dict(type="float", shape=(2,)),
                  sensors=dict(level=dict(type="int", num_values=4)))
    actions = dict(move=dict(type="int", num_values=3), jump=dict(type="bool"))
    recorder = Agent.create(agent="random", states=states, actions=actions,
                            recorder=dict(directory=tmp_path, frequency=2), config=dict(seed=0))
    for t in range(12):
        recorder.act(dict(position=[t, -t], sensors=dict(level=t % 4),
                          move_mask=[True, t % 2 == 0, True]))
        recorder.observe(reward=1.0, terminal=int(t % 6 == 5))
    assert [p.name for p in list_traces(tmp_path)] == ["trace-000000001.npz"]
    for objective in ("experience", "behavior_cloning"):
        agent = _small_ppo(states=states, actions=actions, max_episode_timesteps=6,
                           network=dict(type="auto", size=16, depth=1))
        before = _weights(agent)
        result = agent.pretrain(tmp_path, num_iterations=2, num_updates=2, objective=objective)
        assert _changed(before, _weights(agent)), objective
        assert np.isfinite(result.get("loss", 0.0))


def test_recorded_callable_traces_clone(tmp_path):
    recorder = Agent.create(agent=lambda state: int(state[2] + 0.5 * state[3] > 0),
                            environment="CartPole-v1", recorder=dict(directory=tmp_path))
    recorder.fit("CartPole-v1", episodes=2, max_episode_timesteps=100, seed=0, verbose=0)
    assert [p.name for p in list_traces(tmp_path)] == ["trace-000000000.npz",
                                                       "trace-000000001.npz"]
    agent = Agent.create(agent="ppo", environment="CartPole-v1", batch_size=2,
                         config=dict(seed=0))
    result = agent.pretrain(tmp_path, num_iterations=10, num_traces=None, num_updates=50,
                            objective="bc")
    assert result["losses"][-1] < result["losses"][0]
    assert result["accuracy"] > 0.85


def test_behavior_cloning_float_actions(tmp_path):
    """Gaussian log-likelihood: the policy's mean moves to the demonstrated action."""
    actions = dict(type="float", shape=(2,), min_value=-1.0, max_value=1.0)
    length = 64
    _write(tmp_path, "trace-000000000.npz", length=length,
           actions=np.tile(np.array([0.5, -0.5], np.float32), (length, 1)))
    agent = _small_ppo(actions=actions, max_episode_timesteps=length)
    result = agent.pretrain(tmp_path, num_iterations=10, num_updates=60,
                            objective="behavior_cloning")
    assert result["accuracy"] is None
    assert result["losses"][-1] < result["losses"][0] - 0.5
    mode = agent.act(dict(state=np.zeros((3, 4))), independent=True)
    np.testing.assert_allclose(mode, np.tile([0.5, -0.5], (3, 1)), atol=0.1)


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize("overrides, key, match", [
    (dict(actions=None), "actions", "missing key 'actions'"),
    (dict(terminal=None), "terminal", "missing key 'terminal'"),
    (dict(states=np.zeros((6, 5))), "states", r"shape \(batch, \.\.\.\) \+ \(4,\)"),
    (dict(states=np.array(["a"] * 6)), "states", "shape|float"),
    (dict(states=np.full((6, 4), np.nan)), "states", "finite"),
    (dict(actions=np.full(6, 2)), "actions", r"\[0, 2\)"),
    (dict(actions=np.full(6, 0.5)), "actions", "int values"),
    (dict(actions=np.zeros(5, np.int64)), "actions", "6 timesteps"),
    (dict(terminal=np.zeros(6, np.int64)), "terminal", "last terminal must be 1 or 2"),
    (dict(terminal=np.r_[np.zeros(5, np.int64), 3]), "terminal", r"\{0, 1, 2\}"),
    (dict(terminal=np.zeros(6, np.float32)), "terminal", "int array"),
    (dict(reward=np.ones(4, np.float32)), "reward", r"shape \(6,\)"),
    ({"states/velocity": np.zeros((6, 4))}, "states/velocity", "states"),
    ({"auxiliaries/action/mask": np.zeros((6, 3), bool)}, "auxiliaries/action/mask",
     "mask of shape"),
    ({"auxiliaries/action/mask": np.tile([False, True], (6, 1)),
      "actions": np.zeros(6, np.int64)}, "auxiliaries/action/mask", "forbidden"),
    (dict(extra=np.zeros(6)), "extra", "only states, actions"),
])
def test_invalid_trace_names_file_and_key(tmp_path, overrides, key, match):
    _write(tmp_path, "trace-000000000.npz")
    _write(tmp_path, "trace-000000001.npz", **overrides)
    agent = _small_ppo()
    with pytest.raises(InputError, match=match) as info:
        agent.pretrain(tmp_path, num_iterations=1, num_traces=None)
    assert "trace-000000001.npz" in str(info.value)
    assert key in str(info.value)


def test_unreadable_file(tmp_path):
    (tmp_path / "trace-000000000.npz").write_text("not a zip archive")
    with pytest.raises(InputError, match="trace-000000000.npz"):
        _small_ppo().pretrain(tmp_path, num_iterations=1)


def test_directory_errors(tmp_path):
    agent = _small_ppo()
    with pytest.raises(InputError, match="existing directory"):
        agent.pretrain(tmp_path / "missing", num_iterations=1)
    with pytest.raises(InputError, match="no files"):
        agent.pretrain(tmp_path, num_iterations=1)
    (tmp_path / "trace.txt").write_text("x")
    with pytest.raises(InputError, match=r"'\.npz'.*trace\.txt"):
        agent.pretrain(tmp_path, num_iterations=1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_iterations=0), "num_iterations"),
    (dict(num_iterations=1, num_traces=0), "num_traces"),
    (dict(num_iterations=1, num_updates=True), "num_updates"),
    (dict(num_iterations=1, objective="imitation"), "objective"),
    (dict(num_iterations=1, extension=""), "extension"),
])
def test_invalid_arguments(tmp_path, kwargs, match):
    _write(tmp_path, "trace-000000000.npz")
    with pytest.raises(ArgumentError, match=match):
        _small_ppo().pretrain(tmp_path, **kwargs)


def test_batch_size_only_for_behavior_cloning(tmp_path):
    from kerasrl.execution.pretrain import pretrain

    _write(tmp_path, "trace-000000000.npz", length=40)
    agent = _small_ppo()
    with pytest.raises(ArgumentError, match="batch_size"):
        pretrain(agent, tmp_path, 1, batch_size=8)
    result = pretrain(agent, tmp_path, 2, num_updates=3, objective="behavior_cloning",
                      batch_size=8)
    assert result["gradient_steps"] == 6


def test_agents_without_policy(tmp_path):
    _write(tmp_path, "trace-000000000.npz")
    agent = Agent.create(agent="random", states=STATES, actions=ACTIONS)
    with pytest.raises(ArgumentError, match="behavior_cloning"):
        agent.pretrain(tmp_path, num_iterations=1, objective="behavior_cloning")
    with pytest.raises(ArgumentError, match="does not learn"):
        agent.pretrain(tmp_path, num_iterations=1)


def test_not_in_the_middle_of_an_episode(tmp_path):
    _write(tmp_path, "trace-000000000.npz")
    agent = _small_ppo()
    agent.act(np.zeros(4))
    with pytest.raises(CallOrderError):
        agent.pretrain(tmp_path, num_iterations=1)
