"""What Keras and SB3 users do first: Keras callbacks in `fit`, one-file `.keras`,
`predict`/`summary`, `get_weights`/`set_weights`, `check_environment`, progress output."""

from __future__ import annotations

import csv
import io
import os
import re

import gymnasium as gym
import keras
import numpy as np
import pytest

from kerasrl import Agent, check_environment
from kerasrl.callbacks import Evaluation
from kerasrl.environments.checker import EnvironmentCheckError
from kerasrl.errors import ArgumentError, InputError, SaveError
from kerasrl.execution.progress import Progress


def _ppo(**kwargs):
    return Agent.create(agent="ppo", environment="CartPole-v1", batch_size=2,
                        config=dict(seed=0), **kwargs)


# ---------------------------------------------------------------------- Keras callbacks
def test_keras_callbacks_log_stop_and_checkpoint(tmp_path):
    agent = _ppo()
    seen = []
    stopper = keras.callbacks.EarlyStopping(monitor="timesteps", mode="min", patience=2)
    callbacks = [
        stopper,
        keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "best.keras"), monitor="mean_return",
                                        mode="max", save_best_only=True),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch}.weights.h5"),
                                        save_weights_only=True),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(logs)),
    ]
    agent.fit("CartPole-v1", episodes=200, callbacks=callbacks, verbose=0, seed=0)
    # timesteps only grow: no improvement after the first epoch, patience 2 -> 3 epochs.
    assert stopper.stopped_epoch == 2 and agent.episodes < 200
    with open(tmp_path / "log.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 3 and [int(row["epoch"]) for row in rows] == [0, 1, 2]
    for key in ("episode_return", "episode_length", "mean_return", "loss", "policy_loss",
                "learning_rate", "timesteps", "episodes"):
        assert rows[-1][key] not in ("", "NA"), key
    assert float(rows[0]["learning_rate"]) == pytest.approx(1e-3)
    assert {f"w-{epoch}.weights.h5" for epoch in (1, 2, 3)} <= set(os.listdir(tmp_path))
    assert os.path.isfile(tmp_path / "best.keras")  # one file, loadable as an agent
    assert Agent.load(str(tmp_path / "best.keras")).agent_type == "ppo"
    assert len(seen) == agent.updates and all(np.isfinite(logs["loss"]) for logs in seen)


def test_keras_early_stopping_restores_best_weights():
    agent = _ppo()
    stopper = keras.callbacks.EarlyStopping(monitor="timesteps", mode="min", patience=1,
                                            restore_best_weights=True)
    best = []
    first = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: best.append(agent.get_weights()) if epoch == 0 else None)
    agent.fit("CartPole-v1", episodes=200, callbacks=[first, stopper], verbose=0, seed=0)
    assert stopper.stopped_epoch == 1
    for restored, saved in zip(agent.get_weights(), best[0], strict=True):
        np.testing.assert_array_equal(restored, saved)


@pytest.mark.parametrize("callback", [
    lambda: keras.callbacks.ReduceLROnPlateau(), lambda: keras.callbacks.TensorBoard("logs"),
])
def test_keras_callbacks_that_need_a_compiled_model_are_refused(callback):
    with pytest.raises(ArgumentError, match="needs a compiled Keras model"):
        _ppo().fit("CartPole-v1", episodes=1, callbacks=[callback()], verbose=0)
    with pytest.raises(ArgumentError, match="keras.callbacks.Callback"):
        _ppo().fit("CartPole-v1", episodes=1, callbacks=[object()], verbose=0)


def test_evaluation_callback_saves_the_best_agent(tmp_path):
    agent = _ppo()
    evaluation = Evaluation("CartPole-v1", every_timesteps=50, episodes=2, seed=0,
                            save_best=str(tmp_path / "best.keras"))
    agent.fit("CartPole-v1", episodes=20, callbacks=[evaluation], verbose=0, seed=0)
    assert evaluation.best_mean_return == max(value for _, value in evaluation.evaluations)
    loaded = Agent.load(str(tmp_path / "best.keras"))
    assert loaded.evaluate("CartPole-v1", episodes=2, seed=0)["mean_return"] > 0


# ---------------------------------------------------------------------- one-file .keras
def test_save_to_a_keras_path_writes_one_zip_file(tmp_path):
    agent = _ppo()
    agent.fit("CartPole-v1", episodes=4, verbose=0, seed=0)
    path = agent.save(str(tmp_path / "agent.keras"))
    assert path == str(tmp_path / "agent.keras") and os.path.isfile(path)
    assert os.listdir(tmp_path) == ["agent.keras"]
    loaded = Agent.load(path)
    assert loaded.episodes == agent.episodes
    states = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(states), agent.predict(states))
    with pytest.raises(SaveError, match="overwrite=False"):
        agent.save(path, overwrite=False)
    # The directory form stays: Tensorforce's agent.save(directory, filename, format).
    directory = agent.save(str(tmp_path / "dir"), filename="x")
    assert directory.endswith(os.path.join("dir", "x.keras"))


def test_keras_load_model_on_an_agent_archive_points_at_agent_load(tmp_path):
    path = _ppo().save(str(tmp_path / "agent.keras"))
    with pytest.raises(SaveError, match=r"kerasrl.Agent.load\(path\)"):
        keras.saving.load_model(path)


def test_weights_round_trip(tmp_path):
    agent, other = _ppo(), _ppo()
    agent.fit("CartPole-v1", episodes=4, verbose=0, seed=0)
    other.set_weights(agent.get_weights())
    states = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_array_equal(other.predict(states), agent.predict(states))
    fresh = _ppo()
    fresh.load_weights(agent.save_weights(str(tmp_path / "a.weights.h5")))
    for a, b in zip(fresh.get_weights(), agent.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    weights = agent.get_weights()
    with pytest.raises(ArgumentError, match="shape"):
        agent.set_weights([w[..., :1] for w in weights])
    with pytest.raises(ArgumentError, match="finite"):
        agent.set_weights([np.full_like(w, np.nan) for w in weights])
    with pytest.raises(ArgumentError, match=r"\.weights\.h5"):
        agent.save_weights(str(tmp_path / "a.h5"))


# ---------------------------------------------------------------------- predict / summary
def test_predict_batches_masks_and_matches_act():
    agent = _ppo()
    states = np.random.default_rng(2).normal(size=(7, 4)).astype(np.float32)
    actions = agent.predict(states)
    assert actions.shape == (7,)
    np.testing.assert_array_equal(actions, agent.act(states, independent=True))
    only_one = np.tile([False, True], (7, 1))
    assert agent.predict(states, action_masks=only_one).tolist() == [1] * 7
    assert agent.predict(states, deterministic=False, action_masks=only_one).tolist() == [1] * 7
    assert agent.timesteps == 0  # nothing recorded
    with pytest.raises(InputError):
        agent.predict(np.zeros((3, 5)))


def test_summary_lists_spaces_hyperparameters_and_parameter_counts():
    agent = _ppo()
    lines = []
    agent.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert lines[0] == "Agent 'ppo'" and "States:" in text and "num_values" in text
    assert "batch_size = 2" in text and "policy_network_dense0" in text
    total = sum(int(np.prod(w.shape)) for w in agent.get_weights())
    assert lines[-1] == f"Total parameters: {total:,}  Trainable parameters: {total:,}"


# ---------------------------------------------------------------------- check_environment
class _OldGym(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        return np.zeros(3, np.float32)

    def step(self, action):
        return np.zeros(3, np.float32), 1.0, False, {}


class _Broken(_OldGym):
    def reset(self, seed=None, options=None):
        return np.zeros(3, np.float64), {}

    def step(self, action):
        return np.full(3, 2.0, np.float32), np.ones(2), 0, False, None


class _OldStep(_OldGym):
    def reset(self, seed=None, options=None):
        return np.zeros(3, np.float32), {}


def test_check_environment_passes_good_environments():
    assert check_environment(gym.make("Pendulum-v1")) == []
    assert "infinite bounds" in check_environment(gym.make("CartPole-v1"))[0]
    from kerasrl import Environment

    assert check_environment(Environment.create("CartPole-v1")) == []


def test_check_environment_lists_every_problem():
    with pytest.raises(EnvironmentCheckError) as info:
        check_environment(_Broken())
    problems = info.value.problems
    assert len(problems) == 5, problems
    for expected in ("dtype float32", "outside the space's bounds", "one number",
                     "terminated of step 1 should be a bool", "info of step 1 should be a dict"):
        assert any(expected in problem for problem in problems), expected
    with pytest.raises(EnvironmentCheckError, match="old gym API returned the observation"):
        check_environment(_OldGym())
    with pytest.raises(EnvironmentCheckError, match=r"old gym API's \(observation, reward, done"):
        check_environment(_OldStep())
    with pytest.raises(ArgumentError, match="a gymnasium environment"):
        check_environment(42)


# ---------------------------------------------------------------------- progress output
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_progress_bar_fits_80_columns():
    buffer = io.StringIO()
    progress = Progress(True, 100_000, "timesteps", "train", file=buffer, terminal=True)
    progress.update(lambda: 53_211, lambda: "return 187.3  5,697 steps/s  len 187  agent 45%",
                    force=True)
    progress.close()
    frames = [_ANSI.sub("", frame).rstrip("\n") for frame in buffer.getvalue().split("\r")]
    last = [frame for frame in frames if frame.strip()][-1]
    assert len(last) <= 80 and "53211/100000" in last and "return 187.3" in last, last


def test_progress_without_a_terminal_prints_plain_lines(monkeypatch):
    monkeypatch.setenv("KERASRL_PROGRESS_SECONDS", "0.001")
    buffer = io.StringIO()
    progress = Progress(True, 1000, "timesteps", "train", file=buffer)
    import time

    time.sleep(0.002)
    progress.update(lambda: 500, lambda: "return 10.0")
    progress.update(lambda: 1000, lambda: "return 20.0", force=True)
    progress.close()
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("train 500/1,000 timesteps (50%)") and "return 10.0" in lines[0]
    assert lines[-1].startswith("train 1,000/1,000 timesteps (100%)")
    assert "\x1b" not in buffer.getvalue()
    monkeypatch.setenv("KERASRL_PROGRESS_SECONDS", "never")
    with pytest.raises(ArgumentError, match="KERASRL_PROGRESS_SECONDS"):
        Progress(True, 1, "timesteps", "train", file=io.StringIO())


def test_fit_logs_plain_lines_when_output_is_not_a_terminal(capsys, monkeypatch):
    monkeypatch.setenv("KERASRL_PROGRESS_SECONDS", "0.001")
    _ppo().fit("CartPole-v1", episodes=3, seed=0)
    out = capsys.readouterr().out
    assert "\x1b" not in out and re.search(r"^train 3/3 episodes \(100%\)", out, re.MULTILINE)
