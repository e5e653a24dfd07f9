"""Loading runs no foreign code (issue #14, point 1).

Every payload below would create a sentinel file if kerasrl imported or called what it names.
Each must raise a `KerasRLError` and leave no sentinel: crafted agent/network/environment
specs in JSON files, saved checkpoints whose spec was edited (directory `.json` and the
`.keras` archive's `spec.json`), expressions of function layers and reward shaping, and an
exported policy whose layer config was edited. Then the ways to allow code on purpose:
`kerasrl.register`, `custom_objects=` and `safe_mode=False`.
"""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest

import kerasrl
from kerasrl import Agent, Environment
from kerasrl.errors import KerasRLError, UnsafeSpecError

STATES = dict(type="float", shape=(4,))
ACTIONS = dict(type="int", num_values=2)
BASE = dict(agent="ppo", states=STATES, actions=ACTIONS, max_episode_timesteps=10,
            batch_size=2, network=[dict(type="dense", size=4)])


def _touch(sentinel):
    """Python source that creates `sentinel` (what an attacker would run)."""
    return f"open({str(sentinel)!r}, 'w').close()"


def _payloads(sentinel):
    """(name, spec) pairs; each spec names code that would create `sentinel`."""
    shell = f"touch {sentinel}"
    command = ["touch", str(sentinel)]
    return {
        "agent-os.system": dict(BASE, agent="os.system"),
        "agent-subprocess.run": dict(BASE, agent="subprocess.run", args=command),
        "agent-type-builtins.eval": {**{k: v for k, v in BASE.items() if k != "agent"},
                                     "type": "builtins.eval"},
        "network-subprocess.Popen": dict(BASE, network=[dict(type="subprocess.Popen",
                                                             args=command)]),
        "network-os.system": dict(BASE, network=[dict(type="os.system", command=shell)]),
        "network-string-builtins.exec": dict(BASE, network=["builtins.exec"]),
        "network-model-importlib": dict(BASE, network=dict(type="keras",
                                                           model="importlib.import_module")),
        "network-type-shutil.rmtree": dict(BASE, network=dict(type="shutil.rmtree")),
        "baseline-os.remove": dict(BASE, baseline=[dict(type="os.remove", path=str(sentinel))]),
        "memory-subprocess.call": dict(BASE, memory=dict(type="subprocess.call", args=command)),
        "optimizer-os.system": dict(BASE, optimizer=dict(type="os.system", command=shell)),
        "learning-rate-os.system": dict(BASE, learning_rate=dict(type="os.system",
                                                                 command=shell)),
        "distribution-builtins.exec": dict(BASE, distributions=dict(type="builtins.exec")),
        "function-layer-import-os.system": dict(BASE, network=[dict(type="function",
                                                                    function="os.system")]),
        "function-layer-class-escape": dict(BASE, network=[dict(
            type="function",
            function="x.__class__.__base__.__subclasses__()")]),
        "function-layer-import-builtin": dict(BASE, network=[dict(
            type="function", function=f"__import__('os').system({shell!r})")]),
        "function-layer-open": dict(BASE, network=[dict(type="function",
                                                        function=_touch(sentinel))]),
        "function-layer-ops-globals": dict(BASE, network=[dict(
            type="function", function="ops.tanh.__globals__")]),
        "function-layer-numpy-save": dict(BASE, network=[dict(
            type="function", function=f"ops.convert_to_tensor(np.save({str(sentinel)!r}, x))")]),
    }


def _environment_payloads(sentinel):
    return {
        "environment-os.system": dict(environment="os.system", command=f"touch {sentinel}"),
        "environment-module-import": dict(environment="antigravity"),
        "environment-gym-entry-point": dict(environment="gym",
                                            level="subprocess:Popen-v0"),
        "reward-shaping-escape": dict(
            environment="CartPole-v1",
            reward_shaping="().__class__.__base__.__subclasses__()"),
        "reward-shaping-open": dict(environment="CartPole-v1", reward_shaping=_touch(sentinel)),
        "reward-shaping-numpy-save": dict(environment="CartPole-v1",
                                          reward_shaping=f"np.save({str(sentinel)!r}, reward)"),
    }


@pytest.fixture
def sentinel(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a payload ran"


def _write(tmp_path, name, spec):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    return str(path)


@pytest.mark.parametrize("name", sorted(_payloads("s")))
def test_agent_spec_file_payload_is_refused(tmp_path, sentinel, name):
    path = _write(tmp_path, name, _payloads(sentinel)[name])
    with pytest.raises(UnsafeSpecError):
        Agent.create(path)


@pytest.mark.parametrize("name", sorted(_environment_payloads("s")))
def test_environment_spec_file_payload_is_refused(tmp_path, sentinel, name):
    path = _write(tmp_path, name, _environment_payloads(sentinel)[name])
    with pytest.raises(UnsafeSpecError):
        Environment.create(path)


def _saved_checkpoint(tmp_path):
    agent = Agent.create(BASE)
    directory = tmp_path / "checkpoint"
    agent.save(directory, format="numpy")
    keras_path = agent.save(directory / "archive")
    return directory, keras_path


CHECKPOINT_EDITS = {
    "agent-os.system": lambda spec, s: spec.update(agent="os.system"),
    "network-subprocess.run": lambda spec, s: spec.update(
        network=[dict(type="subprocess.run", args=["touch", str(s)])]),
    "function-escape": lambda spec, s: spec.update(
        network=[dict(type="function", function="x.__class__.__mro__")]),
    "baseline-importlib": lambda spec, s: spec.update(
        baseline=[dict(type="importlib.import_module", name="antigravity")]),
    "safe-mode-key": lambda spec, s: spec.update(safe_mode=False, agent="os.system"),
}


@pytest.mark.parametrize("edit", sorted(CHECKPOINT_EDITS))
def test_checkpoint_directory_spec_payload_is_refused(tmp_path, sentinel, edit):
    directory, _ = _saved_checkpoint(tmp_path)
    spec_path = directory / "agent.json"
    spec = json.loads(spec_path.read_text())
    CHECKPOINT_EDITS[edit](spec, sentinel)
    spec_path.write_text(json.dumps(spec))
    with pytest.raises(UnsafeSpecError):
        Agent.load(directory, format="numpy")


@pytest.mark.parametrize("edit", sorted(CHECKPOINT_EDITS))
def test_keras_archive_spec_payload_is_refused(tmp_path, sentinel, edit):
    _, keras_path = _saved_checkpoint(tmp_path)
    with zipfile.ZipFile(keras_path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    spec = json.loads(contents["spec.json"])
    CHECKPOINT_EDITS[edit](spec, sentinel)
    contents["spec.json"] = json.dumps(spec).encode()
    with zipfile.ZipFile(keras_path, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    with pytest.raises(UnsafeSpecError):
        Agent.load(tmp_path / "checkpoint" / "archive")


def test_unsafe_error_names_key_path_and_remedy(tmp_path):
    path = _write(tmp_path, "spec", dict(BASE, network=[dict(type="os.system")]))
    with pytest.raises(UnsafeSpecError) as info:
        Agent.create(path)
    message = str(info.value)
    assert "agent['network'][0]['type']" in message and "'os.system'" in message
    assert "safe_mode=False" in message and "kerasrl.register" in message


def _exported(tmp_path):
    agent = Agent.create(dict(BASE, network=[dict(type="function", function="x * 1.0"),
                                             dict(type="dense", size=4)]))
    path = agent.export(str(tmp_path / "policy.keras"))
    return agent, path


@pytest.mark.parametrize("function", ["os.system", "x.__class__.__mro__",
                                      "__import__('os').getcwd()"])
def test_exported_policy_with_edited_function_layer_is_refused(tmp_path, sentinel, function):
    _, path = _exported(tmp_path)
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    config = contents["config.json"].decode()
    assert '"x * 1.0"' in config
    contents["config.json"] = config.replace('"x * 1.0"', json.dumps(function)).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    with pytest.raises((KerasRLError, TypeError, ValueError)) as info:
        keras.saving.load_model(path)
    assert "UnsafeSpecError" in repr(info.value) or isinstance(info.value, UnsafeSpecError) \
        or "safe mode" in str(info.value)


def test_exported_policy_loads_and_acts(tmp_path):
    agent, path = _exported(tmp_path)
    model = keras.saving.load_model(path)
    states = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    actions = model({"state": states, "action_mask": np.ones((5, 2), bool)})
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(actions),
                                  agent.act(states, independent=True, deterministic=True))


# ---------------------------------------------------------------------- allowed on purpose
@kerasrl.register
class WideDense(keras.layers.Dense):
    """A layer a user registered: specs in files may name it."""

    def __init__(self, size=8, **kwargs):
        super().__init__(units=size, **kwargs)


class UnregisteredDense(keras.layers.Dense):
    def __init__(self, size=8, **kwargs):
        super().__init__(units=size, **kwargs)


def test_registered_class_loads_from_a_file_in_safe_mode(tmp_path):
    for type_ in ("WideDense", f"{__name__}.WideDense"):
        path = _write(tmp_path, "spec", dict(BASE, network=[dict(type=type_, size=3)]))
        agent = Agent.create(path)
        assert any(isinstance(layer, WideDense) for layer in agent.policy_model.layers)
    agent.save(tmp_path / "saved")
    loaded = Agent.load(tmp_path / "saved")
    assert any(isinstance(layer, WideDense) for layer in loaded.policy_model.layers)


def test_custom_objects_and_safe_mode_false_allow_a_class(tmp_path):
    path = _write(tmp_path, "spec", dict(BASE, network=[
        dict(type=f"{__name__}.UnregisteredDense", size=3)]))
    with pytest.raises(UnsafeSpecError):
        Agent.create(path)
    agent = Agent.create(path, custom_objects={"UnregisteredDense": UnregisteredDense})
    assert any(isinstance(layer, UnregisteredDense) for layer in agent.policy_model.layers)
    agent = Agent.create(path, safe_mode=False)
    assert any(isinstance(layer, UnregisteredDense) for layer in agent.policy_model.layers)
    agent.save(tmp_path / "saved")
    with pytest.raises(UnsafeSpecError):
        Agent.load(tmp_path / "saved")
    assert Agent.load(tmp_path / "saved", safe_mode=False).policy_model is not None


def test_safe_mode_false_still_refuses_non_subclasses(tmp_path, sentinel):
    path = _write(tmp_path, "spec", dict(BASE, network=[dict(type="subprocess.Popen",
                                                             args=["touch", str(sentinel)])]))
    with pytest.raises(UnsafeSpecError, match="Layer subclass"):
        Agent.create(path, safe_mode=False)
    with pytest.raises(UnsafeSpecError, match="Agent subclass"):
        Agent.create(dict(BASE, agent="os.system"))


def test_python_objects_and_python_paths_keep_working():
    agent = Agent.create(dict(BASE, network=[UnregisteredDense(size=3),
                                             dict(type=WideDense, size=2),
                                             lambda x: x * 2.0]))
    assert agent.act(np.zeros(4, np.float32), independent=True) in (0, 1)
    agent = Agent.create(dict(BASE, network=[dict(type=f"{__name__}.UnregisteredDense",
                                                  size=2)]))
    assert any(isinstance(layer, UnregisteredDense) for layer in agent.policy_model.layers)
    with pytest.raises(UnsafeSpecError):
        Agent.create(dict(BASE, network=[dict(type=f"{__name__}.UnregisteredDense")]),
                     safe_mode=True)


def test_restricted_expressions_still_do_their_job():
    env = Environment.create("CartPole-v1", seed=0,
                             reward_shaping="float(np.abs(next_states).sum()) - 0.5 * reward")
    env.reset()
    next_states, _, reward = env.execute(0)
    assert reward == pytest.approx(float(np.abs(next_states).sum()) - 0.5)
    agent = Agent.create(dict(BASE, network=[dict(type="function",
                                                  function="ops.tanh(x) * x.shape[-1]"),
                                             dict(type="dense", size=4)]))
    assert agent.act(np.zeros(4, np.float32), independent=True) in (0, 1)


@pytest.mark.timeout(60)
def test_multiprocessing_child_keeps_the_callers_safe_mode(tmp_path, sentinel):
    from gymnasium.envs.classic_control import CartPoleEnv

    path = "gymnasium.envs.classic_control.CartPoleEnv"
    # A class passed in Python travels as a trusted path, even in safe mode.
    env = Environment.create(CartPoleEnv, remote="multiprocessing", safe_mode=True, timeout=30)
    try:
        assert env.reset().shape == (4,)
    finally:
        env.close()
    # The same path written as a string is refused by the child in safe mode ...
    with pytest.raises(KerasRLError, match="UnsafeSpecError.*CartPoleEnv"):
        Environment.create(dict(environment=path), remote="multiprocessing", safe_mode=True,
                           timeout=30)
    # ... and a file the child reads cannot smuggle a path through.
    spec = _write(tmp_path, "env", dict(environment="os.system", command=f"touch {sentinel}"))
    with pytest.raises(KerasRLError, match="UnsafeSpecError.*os.system"):
        Environment.create(spec, remote="multiprocessing", timeout=30)


def test_names_and_paths_with_dots_are_not_taken_for_import_paths(tmp_path):
    path = _write(tmp_path, "spec", dict(BASE, summarizer=dict(directory=str(tmp_path / "runs.v1"),
                                                                 labels="all"),
                                         network=[dict(type="dense", size=4, name="hidden.one")]))
    agent = Agent.create(path)
    assert agent.policy_model is not None
    agent.close()
    with pytest.raises(UnsafeSpecError):  # the same dotted name as a type is still refused
        Agent.create(_write(tmp_path, "bad", dict(BASE, network=[dict(type="runs.v1")])))
