"""Tests of the `recorder` agent argument and of recording a plain Python policy.

Traces must have Tensorforce's layout (reference §5.1): `trace-{:09d}.npz`
named after the last episode's 0-based index, `states`/`actions`/`terminal`/
`reward` (and `states/<name>`, `actions/<name>`, `auxiliaries/<action>/mask`),
episodes concatenated along time every `frequency` episodes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kerasrl import Agent, Environment, Runner
from kerasrl.agents.simple import FunctionAgent
from kerasrl.errors import ArgumentError, InputError
from kerasrl.execution.recorder import Recorder, trace_filename

STATES = dict(type="float", shape=(3,))
ACTIONS = dict(type="int", num_values=3)


def _load(path: Path) -> dict:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _names(directory: Path) -> list[str]:
    return sorted(path.name for path in Path(directory).iterdir())


def _episodes(agent, lengths, codes=None, masks=None, independent_every=0):
    """Runs episodes by hand; returns what was passed/returned per episode.

    State of episode e, step t: `[e, t, 0.5 * t]`; reward `10 * e + t`; the last
    terminal of episode e is `codes[e]` (default 1).
    """
    expected = []
    for episode, length in enumerate(lengths):
        states, actions, terminal, reward, given = [], [], [], [], []
        for t in range(length):
            state = np.array([episode, t, 0.5 * t], dtype=np.float32)
            if independent_every and t % independent_every == 0:
                agent.act(state, independent=True)  # never recorded
            if masks is not None:
                mask = masks(episode, t)
                action = agent.act(dict(state=state, action_mask=mask))
                given.append(mask)
            else:
                action = agent.act(state)
            code = 0 if t < length - 1 else (1 if codes is None else codes[episode])
            agent.observe(reward=10.0 * episode + t, terminal=code)
            states.append(state)
            actions.append(action)
            terminal.append(code)
            reward.append(10.0 * episode + t)
        expected.append(dict(
            states=np.stack(states), actions=np.asarray(actions, np.int64),
            terminal=np.asarray(terminal, np.int64), reward=np.asarray(reward, np.float32),
            masks=np.stack(given) if given else None,
        ))
    return expected


def _random_agent(recorder, **kwargs):
    return Agent.create(agent="random", states=STATES, actions=ACTIONS,
                        max_episode_timesteps=20, recorder=recorder, config=dict(seed=3),
                        **kwargs)


def _check_file(path, episodes):
    data = _load(path)
    assert set(data) == {"states", "actions", "terminal", "reward"}
    for key in ("states", "actions", "terminal", "reward"):
        np.testing.assert_array_equal(
            data[key], np.concatenate([episode[key] for episode in episodes]))
    assert data["states"].dtype == np.float32
    assert data["actions"].dtype == np.int64
    assert data["terminal"].dtype == np.int64
    assert data["reward"].dtype == np.float32


# ---------------------------------------------------------------------- files and arrays
def test_frequency_1_writes_one_file_per_episode(tmp_path):
    agent = _random_agent(dict(directory=str(tmp_path)))
    episodes = _episodes(agent, [3, 4, 5], codes=[1, 2, 1], independent_every=2)
    assert _names(tmp_path) == ["trace-000000000.npz", "trace-000000001.npz",
                                "trace-000000002.npz"]
    for index, episode in enumerate(episodes):
        _check_file(tmp_path / trace_filename(index + 1), [episode])
    data = _load(tmp_path / "trace-000000001.npz")
    assert data["states"].shape == (4, 3) and data["actions"].shape == (4,)
    assert data["terminal"].tolist() == [0, 0, 0, 2]  # the abort code is kept


def test_frequency_2_concatenates_episodes(tmp_path):
    agent = _random_agent(dict(directory=tmp_path, frequency=2))
    episodes = _episodes(agent, [3, 4, 5])
    # The third episode waits for a fourth one (Tensorforce writes complete groups only).
    assert _names(tmp_path) == ["trace-000000001.npz"]
    _check_file(tmp_path / "trace-000000001.npz", episodes[:2])
    data = _load(tmp_path / "trace-000000001.npz")
    assert data["terminal"].tolist() == [0, 0, 1, 0, 0, 0, 1]
    episodes += _episodes(agent, [2])
    assert _names(tmp_path) == ["trace-000000001.npz", "trace-000000003.npz"]
    # The fourth call of _episodes numbers its episode 0 again: compare arrays directly.
    _check_file(tmp_path / "trace-000000003.npz", episodes[2:])


def test_start_skips_first_episodes(tmp_path):
    agent = _random_agent(dict(directory=tmp_path, start=2))
    episodes = _episodes(agent, [2, 3, 4, 5])
    assert _names(tmp_path) == ["trace-000000002.npz", "trace-000000003.npz"]
    _check_file(tmp_path / "trace-000000002.npz", [episodes[2]])
    _check_file(tmp_path / "trace-000000003.npz", [episodes[3]])


def test_start_with_frequency(tmp_path):
    agent = _random_agent(dict(directory=tmp_path, start=1, frequency=2))
    episodes = _episodes(agent, [2, 3, 4, 5, 6])
    assert _names(tmp_path) == ["trace-000000002.npz", "trace-000000004.npz"]
    _check_file(tmp_path / "trace-000000002.npz", episodes[1:3])
    _check_file(tmp_path / "trace-000000004.npz", episodes[3:5])


@pytest.mark.parametrize("key", ["max-traces", "max_traces"])
def test_max_traces_keeps_newest(tmp_path, key):
    (tmp_path / "notes.npz").write_bytes(b"not a trace")  # other files are left alone
    agent = _random_agent({"directory": tmp_path, key: 2})
    episodes = _episodes(agent, [2, 3, 4, 5])
    assert _names(tmp_path) == ["notes.npz", "trace-000000002.npz", "trace-000000003.npz"]
    _check_file(tmp_path / "trace-000000003.npz", [episodes[3]])
    recorder = agent._plugins[0]
    assert isinstance(recorder, Recorder)
    assert recorder.get_config()["max-traces"] == 2
    assert [path.name for path in recorder.written] == [trace_filename(i) for i in (1, 2, 3, 4)]


def test_string_spec_is_the_directory(tmp_path):
    directory = tmp_path / "nested" / "traces"
    agent = _random_agent(str(directory))
    _episodes(agent, [2])
    assert _names(directory) == ["trace-000000000.npz"]  # no temporary file left behind
    assert agent.spec["recorder"] == str(directory)


def test_evaluation_is_not_recorded(tmp_path):
    agent = Agent.create(agent=lambda state: 0, environment="CartPole-v1",
                         recorder=dict(directory=tmp_path))
    result = agent.evaluate("CartPole-v1", episodes=2, seed=0)
    assert result["episodes"] == 2
    assert _names(tmp_path) == []


def test_reset_drops_unfinished_episode(tmp_path):
    agent = _random_agent(dict(directory=tmp_path))
    for _ in range(3):
        agent.act(np.full(3, 99.0, np.float32))
        agent.observe(reward=0.0, terminal=False)
    agent.reset()
    episodes = _episodes(agent, [2])
    _check_file(tmp_path / "trace-000000000.npz", episodes)


@pytest.mark.parametrize("spec, match", [
    (dict(directory="x", frequency=0), "frequency"),
    (dict(directory="x", start=-1), "start"),
    (dict(directory="x", max_traces=0), "max-traces"),
    ({"directory": "x", "max-traces": 1, "max_traces": 1}, "max-traces"),
    (dict(directory="x", every=3), "every"),
    (dict(frequency=1), "directory"),
    (42, "recorder"),
])
def test_invalid_recorder_spec(tmp_path, monkeypatch, spec, match):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArgumentError, match=match):
        _random_agent(spec)


# ---------------------------------------------------------------------- parallel
class Tagged(Environment):
    """Episodes of `length` steps; the state is `[tag, t]` and the reward `t`."""

    def __init__(self, tag, length):
        super().__init__()
        self.tag, self.length, self.t = tag, length, 0

    def states(self):
        return dict(type="float", shape=(2,))

    def actions(self):
        return dict(type="int", num_values=2)

    def max_episode_timesteps(self):
        return 10

    def reset(self):
        self.t = 0
        return np.array([self.tag, 0.0], np.float32)

    def execute(self, actions):
        self.t += 1
        return np.array([self.tag, self.t], np.float32), int(self.t >= self.length), float(self.t)


@pytest.mark.parametrize("batch_agent_calls", [True, False])
def test_parallel_environments_have_separate_buffers(tmp_path, batch_agent_calls):
    runner = Runner(agent=dict(agent="random", recorder=dict(directory=tmp_path)),
                    environments=[Tagged(0, 3), Tagged(1, 5)])
    assert runner.agent.parallel_interactions == 2
    runner.run(num_episodes=4, batch_agent_calls=batch_agent_calls, use_tqdm=False)
    runner.close()
    # Finishing order: env 0 (step 3), env 1 (step 5), env 0 (6), env 0 (9).
    assert _names(tmp_path) == [trace_filename(i) for i in (1, 2, 3, 4)]
    for index, (tag, length) in enumerate([(0, 3), (1, 5), (0, 3), (0, 3)]):
        data = _load(tmp_path / trace_filename(index + 1))
        assert data["states"].shape == (length, 2)
        np.testing.assert_array_equal(data["states"][:, 0], tag)
        np.testing.assert_array_equal(data["states"][:, 1], np.arange(length))
        np.testing.assert_array_equal(data["reward"], np.arange(1, length + 1))
        assert data["terminal"].tolist() == [0] * (length - 1) + [1]
        assert set(data["actions"].tolist()) <= {0, 1}


def test_parallel_frequency_concatenates_across_slots(tmp_path):
    runner = Runner(agent=dict(agent="random", recorder=dict(directory=tmp_path, frequency=2)),
                    environments=[Tagged(0, 3), Tagged(1, 5)])
    runner.run(num_episodes=4, batch_agent_calls=True, use_tqdm=False)
    runner.close()
    assert _names(tmp_path) == ["trace-000000001.npz", "trace-000000003.npz"]
    data = _load(tmp_path / "trace-000000001.npz")
    np.testing.assert_array_equal(data["states"][:, 0], [0, 0, 0, 1, 1, 1, 1, 1])
    assert data["terminal"].tolist() == [0, 0, 1, 0, 0, 0, 0, 1]


# ---------------------------------------------------------------------- masks and dicts
def test_masks_are_recorded(tmp_path):
    agent = _random_agent(dict(directory=tmp_path, frequency=2))

    def masks(episode, t):
        return np.array([t % 2 == 0, True, episode == 1])

    episodes = _episodes(agent, [4, 3], masks=masks)
    data = _load(tmp_path / "trace-000000001.npz")
    assert set(data) == {"states", "actions", "terminal", "reward", "auxiliaries/action/mask"}
    mask = data["auxiliaries/action/mask"]
    assert mask.dtype == np.bool_ and mask.shape == (7, 3)
    np.testing.assert_array_equal(mask, np.concatenate([e["masks"] for e in episodes]))
    allowed = np.take_along_axis(mask, data["actions"][:, None], axis=-1)
    assert allowed.all()


def test_mask_given_in_some_steps_only(tmp_path):
    agent = _random_agent(dict(directory=tmp_path))
    agent.act(dict(state=np.zeros(3), action_mask=[False, True, False]))
    agent.observe(reward=0.0, terminal=False)
    agent.act(np.zeros(3))
    agent.observe(reward=0.0, terminal=True)
    data = _load(tmp_path / "trace-000000000.npz")
    assert data["auxiliaries/action/mask"].tolist() == [[False, True, False], [True] * 3]
    assert data["actions"][0] == 1


def test_named_states_and_actions(tmp_path):
    states = dict(position=dict(type="float", shape=(2,)),
                  sensors=dict(level=dict(type="int", num_values=4)))
    actions = dict(move=dict(type="int", num_values=3), jump=dict(type="bool"))
    agent = Agent.create(agent="random", states=states, actions=actions,
                         recorder=dict(directory=tmp_path), config=dict(seed=0))
    taken = []
    for t in range(3):
        taken.append(agent.act(dict(position=[t, -t], sensors=dict(level=t),
                                    move_mask=[True, t != 1, False])))
        agent.observe(reward=1.0, terminal=int(t == 2))
    data = _load(tmp_path / "trace-000000000.npz")
    assert set(data) == {"states/position", "states/sensors/level", "actions/move",
                         "actions/jump", "auxiliaries/move/mask", "terminal", "reward"}
    assert data["states/position"].tolist() == [[0, 0], [1, -1], [2, -2]]
    assert data["states/sensors/level"].dtype == np.int64
    assert data["states/sensors/level"].tolist() == [0, 1, 2]
    assert data["actions/move"].tolist() == [a["move"] for a in taken]
    assert data["actions/jump"].dtype == np.bool_
    assert data["actions/jump"].tolist() == [a["jump"] for a in taken]
    assert data["auxiliaries/move/mask"][1].tolist() == [True, False, False]


# ---------------------------------------------------------------------- function agents
def cartpole_heuristic(state):
    return int(state[2] + 0.5 * state[3] > 0)


def test_record_callable_through_runner_spec(tmp_path):
    runner = Runner(
        agent=dict(agent=cartpole_heuristic, recorder=dict(directory=tmp_path)),
        environment="CartPole-v1", max_episode_timesteps=60, seed=0,
    )
    assert isinstance(runner.agent, FunctionAgent)
    runner.run(num_episodes=2, use_tqdm=False)
    runner.close()
    assert _names(tmp_path) == ["trace-000000000.npz", "trace-000000001.npz"]
    for name, length in zip(_names(tmp_path), runner.episode_timesteps):
        data = _load(tmp_path / name)
        assert data["states"].shape == (length, 4) and data["states"].dtype == np.float32
        expected = [cartpole_heuristic(state) for state in data["states"]]
        assert data["actions"].tolist() == expected
        assert data["terminal"][:-1].tolist() == [0] * (length - 1)
        assert data["terminal"][-1] in (1, 2)
        np.testing.assert_array_equal(data["reward"], np.ones(length, np.float32))
    # The heuristic balances the pole: both episodes hit the 60-step limit (abort code 2).
    assert runner.episode_timesteps == [60, 60]
    assert _load(tmp_path / "trace-000000000.npz")["terminal"][-1] == 2


def test_record_callable_agent_instance_with_parallel_runner(tmp_path):
    agent = Agent.create(agent=lambda state: int(state[2] > 0), environment="CartPole-v1",
                         recorder=dict(directory=tmp_path, frequency=3), parallel_interactions=2)
    runner = Runner(agent=agent, environment="CartPole-v1", num_parallel=2, seed=1)
    runner.run(num_episodes=3, use_tqdm=False)
    runner.close()
    assert _names(tmp_path) == ["trace-000000002.npz"]
    data = _load(tmp_path / "trace-000000002.npz")
    assert data["terminal"].astype(bool).sum() == 3 and data["terminal"][-1] > 0
    assert data["actions"].tolist() == (data["states"][:, 2] > 0).astype(int).tolist()


def test_function_agent_without_recorder():
    calls = []

    def policy(states):
        calls.append(states)
        return dict(move=int(states["position"][0] > 0), jump=bool(states["flag"]))

    agent = Agent.create(
        agent=policy,
        states=dict(position=dict(type="float", shape=(2,)), flag=dict(type="bool")),
        actions=dict(move=dict(type="int", num_values=2), jump=dict(type="bool")),
    )
    assert isinstance(agent, FunctionAgent) and agent.agent_type == "function"
    action = agent.act(dict(position=[1.0, 0.0], flag=True))
    assert action == dict(move=1, jump=True)
    assert isinstance(calls[0], dict) and calls[0]["position"].shape == (2,)
    batch = agent.act(dict(position=np.array([[1.0, 0], [-1.0, 0]]), flag=[False, True]),
                      independent=True)
    assert batch["move"].tolist() == [1, 0] and batch["jump"].tolist() == [False, True]


def test_function_agent_evaluates_heuristic():
    agent = Agent.create(agent="function", function=cartpole_heuristic,
                         environment="CartPole-v1")
    result = agent.evaluate("CartPole-v1", episodes=2, max_episode_timesteps=100, seed=0)
    assert result["mean_return"] == 100.0
    alias = Agent.create(agent="recorder", fn_act=cartpole_heuristic, environment="CartPole-v1")
    assert alias.act(np.array([0.0, 0.0, 0.1, 0.0])) == 1


def test_function_agent_masks():
    seen = []

    def masked(states):
        seen.append(states)
        return int(np.argmax(states["action_mask"]))

    agent = Agent.create(agent=masked, states=STATES, actions=ACTIONS, with_masks=True)
    assert agent.act(dict(state=np.zeros(3), action_mask=[False, False, True])) == 2
    assert agent.act(np.zeros(3), independent=True) == 0
    assert seen[1]["action_mask"].tolist() == [True] * 3
    naive = Agent.create(agent=lambda state: 0, states=STATES, actions=ACTIONS)
    with pytest.raises(InputError, match="action_mask"):
        naive.act(dict(state=np.zeros(3), action_mask=[False, True, True]))


@pytest.mark.parametrize("output, match", [
    (5, r"\[0, 3\)"),
    ("left", "int values"),
    (dict(other=1), "action"),
])
def test_function_agent_invalid_output(output, match):
    agent = Agent.create(agent=lambda state: output, states=STATES, actions=ACTIONS)
    with pytest.raises(InputError, match=match):
        agent.act(np.zeros(3))


def test_function_agent_invalid_arguments():
    with pytest.raises(ArgumentError, match="function"):
        Agent.create(agent="function", states=STATES, actions=ACTIONS)
    with pytest.raises(ArgumentError, match="states"):
        Agent.create(agent=lambda state: 0, actions=ACTIONS)
