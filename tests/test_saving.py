"""Save & restore: formats, exact resumption, cross-backend loading, Tensorforce
checkpoints, inference export, the saver plugin, and every failure mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasrl import Agent
from kerasrl.errors import ArgumentError, SaveError
from kerasrl.saving import named_weights

DATA = Path(__file__).resolve().parent / "data" / "saves"
STATES = dict(type="float", shape=(4,))
ACTIONS = dict(type="int", num_values=2)


def small_agent(seed=3, **kwargs):
    spec = dict(
        agent="ppo", states=STATES, actions=ACTIONS, max_episode_timesteps=20, batch_size=2,
        network=[dict(type="dense", size=8)], baseline=[dict(type="dense", size=8)],
        baseline_optimizer=dict(optimizer="adam", learning_rate=1e-3, multi_step=2),
        subsampling_fraction=0.5, multi_step=3, config=dict(seed=seed),
    )
    spec.update(kwargs)
    return Agent.create(spec)


def episode(rng, length=10):
    states = rng.normal(size=(length, 4)).astype(np.float32)
    actions = rng.integers(0, 2, size=length)
    terminal = np.zeros(length, dtype=np.int64)
    terminal[-1] = 1 if rng.random() < 0.5 else 2
    reward = rng.normal(size=length).astype(np.float32)
    return dict(states=states, actions=actions, terminal=terminal, reward=reward)


def train(agent, rng, updates):
    for _ in range(updates):
        agent.experience(**episode(rng))
        agent.experience(**episode(rng))
        agent.update()


def all_state(agent):
    weights = {k: keras.ops.convert_to_numpy(v.value) for k, v in named_weights(agent).items()}
    agent._sync_weights()
    state = {k: keras.ops.convert_to_numpy(v.value) for k, v in agent._state_variables().items()}
    return weights, state


def assert_same_state(agent, expected_agent):
    expected_weights, expected_state = all_state(expected_agent)
    weights, state = all_state(agent)
    assert expected_weights.keys() == weights.keys()
    for key in expected_weights:
        np.testing.assert_allclose(weights[key], expected_weights[key], rtol=1e-6, atol=1e-6,
                                   err_msg=key)
    for key in expected_state:
        np.testing.assert_allclose(state[key], expected_state[key], rtol=1e-6, atol=1e-6,
                                   err_msg=key)


def test_full_save_resumes_exactly(tmp_path):
    uninterrupted = small_agent()
    train(uninterrupted, np.random.default_rng(0), 6)

    first = small_agent()
    rng = np.random.default_rng(0)
    train(first, rng, 3)
    path = first.save(tmp_path)
    assert path.endswith("agent.keras")
    resumed = Agent.load(tmp_path)
    assert (resumed.timesteps, resumed.episodes, resumed.updates) == (
        first.timesteps, first.episodes, first.updates)
    train(resumed, rng, 3)

    assert_same_state(resumed, uninterrupted)


@pytest.mark.parametrize("fmt", ["h5", "hdf5", "numpy"])
def test_weights_only_formats(tmp_path, fmt):
    agent = small_agent()
    train(agent, np.random.default_rng(1), 2)
    path = agent.save(tmp_path, format=fmt, append="episodes")
    assert os.path.basename(path) == f"agent-{agent.episodes}" + (".npz" if fmt == "numpy" else ".h5")
    assert (tmp_path / "agent.json").is_file()
    loaded = Agent.load(tmp_path, format=fmt)
    states = np.random.default_rng(2).normal(size=(50, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.act(states, independent=True),
                                  agent.act(states, independent=True))
    names = set(named_weights(agent))
    assert "policy/network/dense0/kernel" in names and "baseline/value/kernel" in names
    if fmt == "numpy":
        with np.load(path) as data:
            assert set(data.files) == names


@pytest.mark.parametrize("source", ["jax", "tensorflow", "torch"])
@pytest.mark.parametrize("fmt", ["keras", "h5", "numpy"])
def test_cross_backend_loading(source, fmt):
    directory = DATA / source
    expected = np.load(directory / "expected_actions.npy")
    agent = Agent.load(directory, format=fmt)
    states = np.random.default_rng(0).uniform(-2.0, 2.0, size=(100, 4)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(states, independent=True), expected)


@pytest.mark.parametrize("fmt", ["numpy", "hdf5"])
def test_tensorforce_checkpoint_plays_cartpole(shared_dir, fmt):
    agent = Agent.load(shared_dir / "tensorforce-data", filename="ppo-checkpoint", format=fmt)
    result = agent.evaluate("CartPole-v1", episodes=10, seed=0)
    assert result["returns"] == [500.0] * 10


def test_export_matches_agent_in_fresh_process(tmp_path):
    agent = small_agent()
    train(agent, np.random.default_rng(4), 1)
    path = agent.export(tmp_path / "policy.keras")
    states = np.random.default_rng(5).normal(size=(30, 4)).astype(np.float32)
    masks = np.ones((30, 2), dtype=bool)
    masks[::3, 0] = False
    np.save(tmp_path / "states.npy", states)
    np.save(tmp_path / "masks.npy", masks)
    expected = agent.act(dict(state=states, action_mask=masks), independent=True)
    code = (
        "import kerasrl, keras, numpy as np\n"
        f"model = keras.saving.load_model({str(path)!r})\n"
        f"s = np.load({str(tmp_path / 'states.npy')!r}); m = np.load({str(tmp_path / 'masks.npy')!r})\n"
        "out = keras.ops.convert_to_numpy(model({'state': s, 'action_mask': m}))\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, out)\n"
    )
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
    assert (expected[::3] == 1).all()  # masked action 0 never chosen


def test_saver_plugin_periodic_and_final(tmp_path):
    agent = small_agent(saver=dict(directory=str(tmp_path), frequency=2, max_checkpoints=2,
                                   format="keras"))
    train(agent, np.random.default_rng(6), 5)
    agent.close()
    files = sorted(f for f in os.listdir(tmp_path) if f.endswith(".keras"))
    assert files == ["agent-4.keras", "agent-5.keras"]
    loaded = Agent.load(tmp_path)
    assert loaded.updates == 5
    assert "saver" not in loaded.spec


def test_interrupted_save_is_never_loaded(tmp_path, monkeypatch):
    agent = small_agent()
    train(agent, np.random.default_rng(7), 1)
    agent.save(tmp_path, append="updates")
    before = sorted(os.listdir(tmp_path))
    train(agent, np.random.default_rng(8), 1)

    import kerasrl.saving as saving

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(saving.np, "savez", crash)
    with pytest.raises(SaveError, match="disk full"):
        agent.save(tmp_path, append="updates")
    assert sorted(os.listdir(tmp_path)) == before  # no partial file, nothing replaced
    assert Agent.load(tmp_path).updates == 1


def test_load_errors(tmp_path):
    with pytest.raises(SaveError, match="does not exist"):
        Agent.load(tmp_path / "missing")
    with pytest.raises(SaveError, match="no checkpoint"):
        Agent.load(tmp_path)
    agent = small_agent()
    path = agent.save(tmp_path)
    # Truncated archive.
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    with pytest.raises(SaveError, match="agent.keras"):
        Agent.load(tmp_path)
    # Garbage file.
    Path(path).write_bytes(b"not a zip file at all")
    with pytest.raises(SaveError, match="Corrupt"):
        Agent.load(tmp_path)
    # Archive without variables.
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("spec.json", json.dumps(agent.get_config()))
    with pytest.raises(SaveError, match="missing"):
        Agent.load(tmp_path)


def test_weight_file_errors(tmp_path):
    agent = small_agent()
    path = agent.save(tmp_path, format="numpy")
    arrays = dict(np.load(path))
    arrays.pop("policy/network/dense0/kernel")
    np.savez(path, **arrays)
    with pytest.raises(SaveError, match="policy/network/dense0/kernel"):
        Agent.load(tmp_path, format="numpy")
    arrays["policy/network/dense0/kernel"] = np.zeros((4, 9), np.float32)
    np.savez(path, **arrays)
    with pytest.raises(SaveError, match=r"shape \(4, 9\)"):
        Agent.load(tmp_path, format="numpy")
    # A spec that does not match the saved weights.
    agent.save(tmp_path, format="h5")
    spec = json.loads((tmp_path / "agent.json").read_text())
    spec["network"] = [dict(type="dense", size=12)]
    (tmp_path / "agent.json").write_text(json.dumps(spec))
    with pytest.raises(SaveError, match="shape"):
        Agent.load(tmp_path, format="h5")


def test_wrong_agent_type_and_bad_arguments(tmp_path):
    agent = small_agent()
    agent.save(tmp_path)
    with pytest.raises(SaveError, match="'ppo'"):
        Agent.load(tmp_path, agent="random")
    with pytest.raises(ArgumentError, match="format"):
        agent.save(tmp_path, format="pickle")
    with pytest.raises(ArgumentError, match="append"):
        agent.save(tmp_path, append="seconds")


# ---------------------------------------------------------------------- 'checkpoint'
def test_checkpoint_format_uses_tensorforce_names_and_resumes_exactly(tmp_path):
    uninterrupted = small_agent()
    train(uninterrupted, np.random.default_rng(0), 4)
    first = small_agent()
    rng = np.random.default_rng(0)
    train(first, rng, 1)
    assert first.save(tmp_path, format="checkpoint") == str(tmp_path / "agent-1")
    train(first, rng, 1)
    assert first.save(tmp_path, format="checkpoint") == str(tmp_path / "agent-2")
    assert sorted(os.listdir(tmp_path)) == [
        "agent-1.data-00000-of-00001", "agent-1.index", "agent-2.data-00000-of-00001",
        "agent-2.index", "agent.json", "checkpoint"]
    assert (tmp_path / "checkpoint").read_text().splitlines() == [
        'model_checkpoint_path: "agent-2"', 'all_model_checkpoint_paths: "agent-1"',
        'all_model_checkpoint_paths: "agent-2"']
    # Without a filename: the latest; with one, that checkpoint (Tensorforce's rules).
    assert Agent.load(tmp_path, format="checkpoint").updates == 2
    assert Agent.load(tmp_path).updates == 2
    assert Agent.load(tmp_path, filename="agent-1").updates == 1
    assert Agent.load(tmp_path, filename="agent-1.index", format="checkpoint").updates == 1
    resumed = Agent.load(tmp_path, format="checkpoint")
    train(resumed, rng, 2)
    assert_same_state(resumed, uninterrupted)


def get_saver_format(agent):
    from kerasrl.saving import Saver

    return next(p.format for p in agent._plugins if isinstance(p, Saver))


def test_checkpoint_saver_numbers_by_counter_and_prunes_the_index(tmp_path):
    agent = small_agent(saver=dict(directory=str(tmp_path), frequency=2, max_checkpoints=2))
    train(agent, np.random.default_rng(6), 5)
    assert get_saver_format(agent) == "checkpoint"  # Tensorforce's saver default
    agent.close()
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".index")) == [
        "agent-4.index", "agent-5.index"]
    assert not (tmp_path / "agent-2.data-00000-of-00001").exists()
    assert (tmp_path / "checkpoint").read_text().splitlines() == [
        'model_checkpoint_path: "agent-5"', 'all_model_checkpoint_paths: "agent-4"',
        'all_model_checkpoint_paths: "agent-5"']
    assert Agent.load(tmp_path, format="checkpoint").updates == 5


def test_saver_writes_an_initial_checkpoint_and_defaults_to_every_ten_updates(tmp_path):
    agent = small_agent(saver=str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [  # Tensorforce's files (test_saving.test_config)
        "agent-0.data-00000-of-00001", "agent-0.index", "agent.json", "checkpoint"]
    train(agent, np.random.default_rng(2), 11)
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".index")) == [
        "agent-0.index", "agent-10.index"]
    agent.close()
    assert Agent.load(tmp_path, format="checkpoint").updates == 11


def test_saver_load_resumes_from_the_newest_checkpoint(tmp_path):
    agent = small_agent(saver=dict(directory=str(tmp_path), frequency=2))
    train(agent, np.random.default_rng(4), 3)
    agent.close()  # agent-3, the newest
    files = sorted(os.listdir(tmp_path))
    resumed = small_agent(seed=9, saver=dict(directory=str(tmp_path), frequency=2, load=True))
    assert sorted(os.listdir(tmp_path)) == files  # nothing written when loading
    assert_same_state(resumed, Agent.load(tmp_path, format="checkpoint"))
    assert resumed.updates == 3
    train(resumed, np.random.default_rng(5), 2)  # updates 4, 5: one checkpoint at 5
    assert "agent-5.index" in os.listdir(tmp_path) and "agent-4.index" not in os.listdir(tmp_path)
    resumed.close()
    # load=True on an empty directory starts fresh and writes agent-0
    fresh = small_agent(saver=dict(directory=str(tmp_path / "new"), load=True))
    assert fresh.updates == 0 and os.listdir(tmp_path / "new")
    fresh.close()


def test_agent_load_with_a_saver_writes_no_checkpoint_of_fresh_weights(tmp_path):
    agent = small_agent()
    train(agent, np.random.default_rng(1), 2)
    agent.save(tmp_path, format="checkpoint", append="updates")
    before = sorted(os.listdir(tmp_path))
    loaded = Agent.load(tmp_path, format="checkpoint",
                        saver=dict(directory=str(tmp_path), frequency=1))
    assert sorted(os.listdir(tmp_path)) == before
    train(loaded, np.random.default_rng(3), 1)
    assert "agent-3.index" in os.listdir(tmp_path)  # counted from the loaded 2 updates
    loaded.close()


def test_saver_keeps_one_checkpoint_every_max_hour_frequency(tmp_path, monkeypatch):
    import kerasrl.saving as saving

    clock = [1000.0]
    monkeypatch.setattr(saving, "_clock", lambda: clock[0])
    agent = small_agent(saver=dict(directory=str(tmp_path), frequency=1, max_checkpoints=1,
                                   max_hour_frequency=1))
    rng = np.random.default_rng(0)
    for _ in range(6):  # a checkpoint every 24 minutes: 0.4 h, 0.8 h, ..., 2.4 h
        clock[0] += 0.4 * 3600
        train(agent, rng, 1)
    kept = sorted(int(f[len("agent-"):-len(".index")]) for f in os.listdir(tmp_path)
                  if f.endswith(".index"))
    # the newest (6), and the first ones at least an hour after the last kept: 3 (1.2 h), 6
    assert kept == [3, 6]
    stems = [line.split('"')[1] for line in (tmp_path / "checkpoint").read_text().splitlines()]
    assert set(stems) == {"agent-3", "agent-6"}
    agent.close()


@pytest.mark.parametrize("key, value", [("max_hour_frequency", 0), ("max_hour_frequency", "1"),
                                        ("load", "yes"), ("frequency", 0)])
def test_saver_argument_errors(tmp_path, key, value):
    with pytest.raises(ArgumentError, match=key):
        small_agent(saver={"directory": str(tmp_path), key: value})


def test_checkpoint_index_is_data_not_a_path(tmp_path):
    agent = small_agent()
    agent.save(tmp_path, format="checkpoint")
    outside = tmp_path / "outside"
    outside.mkdir()
    agent.save(outside, format="checkpoint")
    (tmp_path / "agent-1.index").unlink()  # only the `checkpoint` file names it now
    for hostile in ('model_checkpoint_path: "../outside/agent-1"\n',
                    'model_checkpoint_path: "/etc/passwd"\n', "\x00garbage" * 1000):
        (tmp_path / "checkpoint").write_text(hostile)
        with pytest.raises(SaveError, match="no checkpoint"):
            Agent.load(tmp_path, format="checkpoint")
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "agent-1"\n')
    assert Agent.load(tmp_path, format="checkpoint").updates == 0  # the listed one is read
    (tmp_path / "agent-1.index").write_text("{}")
    (tmp_path / "agent-1.data-00000-of-00001").unlink()
    with pytest.raises(SaveError, match="data file"):
        Agent.load(tmp_path, filename="agent-1", format="checkpoint")


def test_saved_model_is_tensorforces_act_only_export(tmp_path):
    agent = Agent.create(agent="ppo", environment="CartPole-v1", batch_size=2,
                         network=[dict(type="dense", size=8)], config=dict(seed=1))
    if keras.backend.backend() != "tensorflow":
        with pytest.raises(SaveError, match="saved-model.*KERAS_BACKEND=tensorflow"):
            agent.save(tmp_path, format="saved-model")
    else:
        import tensorflow as tf

        (tmp_path / "notes.txt").write_text("kept")
        path = agent.save(tmp_path, format="saved-model")
        assert path == str(tmp_path) and (tmp_path / "notes.txt").read_text() == "kept"
        assert {"saved_model.pb", "variables", "agent.json"} <= set(os.listdir(tmp_path))
        loaded = tf.saved_model.load(str(tmp_path))
        states = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
        expected = np.array([agent.act(s, independent=True) for s in states])
        everything = np.ones((16, 2), bool)
        np.testing.assert_array_equal(loaded.act(states, dict(mask=everything), True).numpy(),
                                      expected)
        np.testing.assert_array_equal(loaded.act(states, {}, True).numpy(), expected)
        only_other = np.zeros((16, 2), bool)
        only_other[np.arange(16), 1 - expected] = True  # the mask refuses the greedy action
        np.testing.assert_array_equal(loaded.act(states, dict(mask=only_other), True).numpy(),
                                      1 - expected)
        sampled = loaded.act(states, dict(mask=only_other), False).numpy()
        np.testing.assert_array_equal(sampled, 1 - expected)  # samples honour masks too
        served = loaded.signatures["serving_default"](state=tf.constant(states),
                                                      action_mask=tf.constant(everything))
        np.testing.assert_array_equal(served["action"].numpy(), expected)
        # another filename: a subdirectory, as in Tensorforce
        assert agent.save(tmp_path, filename="served", format="saved-model") == str(
            tmp_path / "served")
    with pytest.raises(SaveError, match="act function"):
        Agent.load(tmp_path, format="saved-model")
    agent.close()
