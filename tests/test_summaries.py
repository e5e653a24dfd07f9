"""TensorBoard summaries (`kerasrl.summaries`, `kerasrl.callbacks.TensorBoard`)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasrl import Agent
from kerasrl.callbacks import TensorBoard
from kerasrl.environments import Environment
from kerasrl.errors import ArgumentError
from kerasrl.summaries import (
    LABELS,
    EventWriter,
    Summarizer,
    get_summarizer,
    masked_crc32c,
    metric_tag,
    parse_summarizer_spec,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "summaries.md"

#: Scalar tags of the PPO run below (labels='all', two environments, a
#: separate baseline optimizer, scheduled learning rate and exploration,
#: step rewards): every one must be in the file and in docs/summaries.md.
PPO_SCALAR_TAGS = (
    "reward/episode_return", "reward/episode_length",
    "reward/episode_return/env0", "reward/episode_return/env1",
    "reward/episode_length/env0", "reward/episode_length/env1", "reward/step",
    "loss/policy", "loss/baseline", "loss/total",
    "entropy/action", "kl-divergence/action", "metrics/clip_fraction",
    "update-norm/gradient", "update-norm/baseline_gradient", "update-norm/parameters",
    "update-norm/baseline_parameters",
    "parameters/learning_rate", "parameters/exploration",
    "throughput/env_steps_per_second", "throughput/agent_time_share",
)
TEXT_TAGS = ("graph/policy_model", "graph/baseline_model", "graph/agent_spec")
#: Tags per update and the `agent.last_metrics` key they come from.
FROM_METRICS = {
    "loss/policy": "policy_loss", "loss/baseline": "value_loss", "loss/total": "loss",
    "entropy/action": "entropy", "kl-divergence/action": "approx_kl",
    "metrics/clip_fraction": "clip_fraction", "update-norm/gradient": "gradient_norm",
    "update-norm/baseline_gradient": "baseline_gradient_norm",
    "update-norm/parameters": "update_norm",
    "update-norm/baseline_parameters": "baseline_update_norm",
}


def _read(run: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(run, size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def _values(accumulator, tag):
    return [event.value for event in accumulator.Scalars(tag)]


def _ppo(**kwargs):
    schedule = dict(type="linear", unit="timesteps", num_steps=2000, final_value=0.0)
    return Agent.create(
        agent="ppo", environment="CartPole-v1", max_episode_timesteps=60,
        parallel_interactions=2, batch_size=2, multi_step=2,
        network=[dict(type="dense", size=8)], baseline=[dict(type="dense", size=8)],
        baseline_optimizer=dict(optimizer="adam", learning_rate=1e-3),
        learning_rate=dict(schedule, initial_value=1e-3),
        exploration=dict(schedule, initial_value=0.1), config=dict(seed=1), **kwargs,
    )


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    """One PPO run with a summarizer, then one more `fit` with the TensorBoard callback."""
    directory = tmp_path_factory.mktemp("summaries")
    agent = _ppo(summarizer=dict(directory=str(directory), labels="all", step_reward=True))
    summarizer = get_summarizer(agent)
    history = agent.fit("CartPole-v1", episodes=10, num_parallel=2, seed=0, verbose=0)
    updates = agent.updates
    agent.close()
    callback = TensorBoard(str(directory / "callback"), step_reward=True)
    callback_history = agent.fit("CartPole-v1", episodes=6, num_parallel=2, seed=5, verbose=0,
                                 callbacks=[callback])
    callback.close()
    return {
        "agent": agent, "history": history, "updates": updates, "logdir": summarizer.logdir,
        "events": _read(summarizer.logdir), "callback": callback,
        "callback_history": callback_history, "callback_events": _read(callback.log_dir),
    }


# ---------------------------------------------------------------------- the PPO run
def test_every_documented_tag_is_written_with_finite_values(ppo_run):
    events = ppo_run["events"]
    tags = events.Tags()
    missing = [tag for tag in PPO_SCALAR_TAGS if tag not in tags["scalars"]]
    assert not missing, f"missing tags {missing}; written: {sorted(tags['scalars'])}"
    for tag in PPO_SCALAR_TAGS:
        values = _values(events, tag)
        assert values and all(math.isfinite(v) for v in values), tag
    for tag in TEXT_TAGS:
        assert tag in tags["tensors"], tag
    assert os.path.basename(ppo_run["logdir"]).startswith("summary-")


def test_documentation_lists_every_tag():
    text = DOCS.read_text(encoding="utf-8")
    for tag in PPO_SCALAR_TAGS + TEXT_TAGS:
        generic = tag.replace("env0", "env<i>").replace("env1", "env<i>").replace(
            "/action", "/<action>")
        assert f"`{tag}`" in text or f"`{generic}`" in text, tag
    for label in LABELS:
        assert f"`{label}`" in text, label


def test_episode_returns_in_the_file_equal_the_history_in_order(ppo_run):
    events, history = ppo_run["events"], ppo_run["history"].history
    assert _values(events, "reward/episode_return") == history["episode_return"]
    assert _values(events, "reward/episode_length") == history["episode_length"]
    per_env = sorted(_values(events, "reward/episode_return/env0")
                     + _values(events, "reward/episode_return/env1"))
    assert per_env == sorted(history["episode_return"])
    steps = [event.step for event in events.Scalars("reward/episode_return")]
    assert steps == sorted(steps) and steps[-1] <= ppo_run["agent"].timesteps


def test_update_summaries_equal_the_history_update_metrics(ppo_run):
    events, updates = ppo_run["events"], ppo_run["history"].updates
    assert ppo_run["updates"] >= 3
    for tag, key in FROM_METRICS.items():
        assert len(updates[key]) == ppo_run["updates"], key
        np.testing.assert_allclose(_values(events, tag), updates[key], rtol=1e-6, atol=1e-7,
                                   err_msg=tag)
    assert all(v > 0 for v in _values(events, "update-norm/parameters"))
    assert all(v > 0 for v in _values(events, "update-norm/baseline_parameters"))
    learning_rates = _values(events, "parameters/learning_rate")
    assert learning_rates == sorted(learning_rates, reverse=True)
    assert 0 < learning_rates[-1] < 1e-3
    shares = _values(events, "throughput/agent_time_share")
    assert all(0 <= share <= 1 for share in shares)
    assert all(v > 0 for v in _values(events, "throughput/env_steps_per_second"))


def test_graph_spec_and_hparams(ppo_run):
    events = ppo_run["events"]

    def text(tag):
        return events.Tensors(tag)[0].tensor_proto.string_val[0].decode("utf-8")

    assert "policy_network_dense0" in text("graph/policy_model")
    assert "baseline_network_dense0" in text("graph/baseline_model")
    spec = json.loads("\n".join(line[4:] for line in text("graph/agent_spec").splitlines()))
    assert spec == ppo_run["agent"].get_config()
    nodes = {node.name: node for node in events.Graph().node}
    assert nodes["policy/policy_network_dense0"].input == ["policy/state"]
    assert nodes["baseline/baseline_value"].op == "Dense"
    from tensorboard.plugins.hparams import metadata

    tags = events.Tags()["tensors"]
    assert metadata.SESSION_START_INFO_TAG in tags and metadata.SESSION_END_INFO_TAG in tags
    content = events.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
    hparams = metadata.parse_session_start_info_plugin_data(content).hparams
    assert hparams["likelihood_ratio_clipping"].number_value == 0.25
    assert hparams["learning_rate/initial_value"].number_value == pytest.approx(1e-3)
    assert hparams["agent"].string_value == "ppo"


def test_tensorboard_callback_writes_the_same_tags(ppo_run):
    summarizer_tags = set(ppo_run["events"].Tags()["scalars"])
    callback_events = ppo_run["callback_events"]
    assert set(callback_events.Tags()["scalars"]) == summarizer_tags
    history = ppo_run["callback_history"]
    assert _values(callback_events, "reward/episode_return") == history.history["episode_return"]
    np.testing.assert_allclose(_values(callback_events, "loss/policy"),
                               history.updates["policy_loss"], rtol=1e-6, atol=1e-7)
    assert set(callback_events.Tags()["tensors"]) >= set(TEXT_TAGS)
    # The callback restored the agent's methods and left its plugins as they were.
    agent = ppo_run["agent"]
    assert "act" not in vars(agent) and "observe" not in vars(agent)
    assert ppo_run["callback"].summarizer not in agent._plugins


# ---------------------------------------------------------------------- options
@pytest.fixture
def random_agent():
    def create(**kwargs):
        return Agent.create(agent="random", environment="CartPole-v1", **kwargs)

    return create


def test_unknown_label_lists_the_valid_ones(tmp_path, random_agent):
    with pytest.raises(ArgumentError) as error:
        random_agent(summarizer=dict(directory=str(tmp_path), labels=["reward", "rewards"]))
    message = str(error.value)
    assert "rewards" in message and all(label in message for label in LABELS)
    with pytest.raises(ArgumentError, match="not available in kerasrl yet"):
        parse_summarizer_spec(dict(directory=str(tmp_path), labels=["variables"]))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("spec, argument", [
    (dict(directory=""), "directory"),
    (dict(directory="x", frequency=0), "frequency"),
    (dict(directory="x", frequency=dict(unit="timesteps", frequency=2)), "unit"),
    (dict(directory="x", flush=-1), "flush"),
    (dict(directory="x", max_summaries=0), "max_summaries"),
    (dict(directory="x", filename="a/b"), "filename"),
    (dict(directory="x", step_reward="yes"), "step_reward"),
    (dict(directory="x", labels=["loss"], summaries=["loss"]), "synonyms"),
    (dict(directory="x", steps=10), "steps"),
    (3, "summarizer"),
])
def test_invalid_specs(spec, argument):
    with pytest.raises(ArgumentError, match=argument):
        parse_summarizer_spec(spec)


def test_spec_forms_and_synonyms(tmp_path, random_agent):
    agent = random_agent(summaries=tmp_path)  # a path: dict(directory=...)
    summarizer = get_summarizer(agent)
    assert summarizer.labels == frozenset(LABELS)
    assert os.path.dirname(summarizer.logdir) == str(tmp_path)
    agent.close()
    assert summarizer.get_config() == dict(
        directory=str(tmp_path), filename=None, labels="all",
        frequency=dict(unit="updates", frequency=1), flush=10.0, max_summaries=7,
        step_reward=False)
    spec = parse_summarizer_spec(dict(directory=str(tmp_path), summaries="loss"))
    assert spec["labels"] == ("loss",)
    callback = TensorBoard(str(tmp_path), labels=["reward", "loss"], frequency=3)
    config = callback.get_config()
    assert config["labels"] == ["loss", "reward"] and config["log_dir"] == str(tmp_path)
    assert TensorBoard(**config).get_config() == config
    with pytest.raises(ArgumentError, match="tracking.*per-act"):
        random_agent(tracking=["loss", "distribution"])


def test_new_run_directory_per_run_and_max_summaries(tmp_path, random_agent):
    runs = []
    for _ in range(4):
        agent = random_agent(summarizer=dict(directory=str(tmp_path), labels=["reward"],
                                             max_summaries=2))
        runs.append(get_summarizer(agent).logdir)
        agent.close()
    assert len(set(runs)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(os.path.basename(r)
                                                                for r in runs[-2:])
    # A different run name is a different series; max_summaries=None keeps all.
    agent = random_agent(summarizer=dict(directory=str(tmp_path), filename="other",
                                         max_summaries=None))
    name = os.path.basename(get_summarizer(agent).logdir)
    agent.close()
    assert name.startswith("other-") and len(list(tmp_path.iterdir())) == 3
    # Directories holding anything but event files are never deleted.
    (Path(runs[-2]) / "notes.txt").write_text("keep me")
    agent = random_agent(summarizer=dict(directory=str(tmp_path), max_summaries=1))
    agent.close()
    assert Path(runs[-2]).is_dir() and not Path(runs[-1]).exists()


def _drive(agent, summarizer, updates, episodes_per_update=1):
    """Feeds a summarizer `updates` fake updates, with episodes in between."""
    for _ in range(updates):
        for _ in range(episodes_per_update):
            agent.episodes += 1
            agent.timesteps += 10
            summarizer.on_episode_end(agent, 0, 10.0, 10)
        agent.updates += 1
        summarizer.on_update(agent, {"policy_loss": float(agent.updates), "td_loss": 1.0,
                                     "q_norm": 2.0, "mean_q": 3.0})


@pytest.mark.parametrize("frequency, expected", [
    (1, [1, 2, 3, 4, 5, 6]),
    (3, [3, 6]),
    (dict(unit="updates", frequency=2), [2, 4, 6]),
    (dict(unit="episodes", frequency=5), [3, 5]),
])
def test_frequency(tmp_path, random_agent, frequency, expected):
    agent = random_agent()
    summarizer = Summarizer(agent, str(tmp_path), labels=["loss", "reward", "metrics"],
                            frequency=frequency)
    _drive(agent, summarizer, 6, episodes_per_update=2)
    summarizer.close(agent)
    events = _read(summarizer.logdir)
    assert _values(events, "loss/policy") == expected
    assert len(_values(events, "reward/episode_return")) == 12
    # Generic metric names (e.g. a DQN's): `*_loss` → loss/, else metrics/.
    assert _values(events, "loss/td") and _values(events, "metrics/mean_q")
    assert "update-norm/q" not in events.Tags()["scalars"]  # label not enabled


def test_metric_tags():
    assert metric_tag("entropy", ["move", "turn"]) == ("entropy", "entropy/total")
    assert metric_tag("entropy/turn", ["move", "turn"]) == ("entropy", "entropy/turn")
    assert metric_tag("approx_kl", ["action"]) == ("kl-divergence", "kl-divergence/action")
    assert metric_tag("approx_kl/move", ["move", "turn"]) == (
        "kl-divergence", "kl-divergence/move")
    assert metric_tag("value_loss") == ("loss", "loss/baseline")
    assert metric_tag("update_norm") == ("update-norm", "update-norm/parameters")
    assert metric_tag("q_loss") == ("loss", "loss/q")
    assert metric_tag("target_norm") == ("update-norm", "update-norm/target")
    assert metric_tag("epsilon") == ("metrics", "metrics/epsilon")


def test_compiled_update_norm_replaces_the_host_one(tmp_path, random_agent):
    agent = random_agent()
    summarizer = Summarizer(agent, str(tmp_path), labels=["update-norm"])
    agent.updates = 1
    summarizer.on_update(agent, {"gradient_norm": 1.5, "update_norm": 0.25})
    summarizer.close(agent)
    events = _read(summarizer.logdir)
    assert _values(events, "update-norm/parameters") == [0.25]
    assert _values(events, "update-norm/gradient") == [1.5]


# ---------------------------------------------------------------------- the writer
def test_crc_matches_tensorboard():
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import (
        masked_crc32c as reference,
    )

    rng = np.random.default_rng(0)
    for size in (0, 1, 3, 4, 8, 13, 145, 1000):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert masked_crc32c(data) == reference(data), size


def test_flush(tmp_path):
    slow = EventWriter(str(tmp_path / "slow"), flush_secs=1000)
    header = os.path.getsize(slow.path)
    assert header > 0  # the file-version event is written at once
    slow.add_scalars({"a": 1.0}, step=1)
    assert os.path.getsize(slow.path) == header
    slow.flush()
    assert os.path.getsize(slow.path) > header
    slow.close()
    with pytest.raises(ArgumentError, match="closed"):
        slow.add_scalars({"a": 2.0}, step=2)

    fast = EventWriter(str(tmp_path / "fast"), flush_secs=0.05)
    header = os.path.getsize(fast.path)
    fast.add_scalars({"a": 1.0}, step=1)
    deadline = time.monotonic() + 5
    while os.path.getsize(fast.path) == header and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.path.getsize(fast.path) > header  # flushed without flush()/close()
    fast.close()
    assert _values(_read(str(tmp_path / "fast")), "a") == [1.0]

    immediate = EventWriter(str(tmp_path / "immediate"), flush_secs=0)
    header = os.path.getsize(immediate.path)
    immediate.add_scalars({"a": 1.0}, step=1)
    assert os.path.getsize(immediate.path) > header
    immediate.close()


def test_hooks_after_close_do_nothing(tmp_path, random_agent):
    agent = random_agent(summarizer=dict(directory=str(tmp_path), labels=["reward"]))
    agent.close()
    agent.fit("CartPole-v1", episodes=2, verbose=0)  # no error from the closed summarizer


@pytest.mark.skipif(keras.backend.backend() == "tensorflow",
                    reason="TensorFlow is imported by its own backend")
def test_no_tensorflow_import(tmp_path):
    """A summarized PPO run on JAX/torch never imports TensorFlow (fresh process)."""
    code = (
        "import sys\n"
        "from kerasrl import Agent\n"
        "from kerasrl.callbacks import TensorBoard\n"
        "agent = Agent.create(agent='ppo', environment='CartPole-v1', batch_size=2,\n"
        "    network=[dict(type='dense', size=8)], baseline=[dict(type='dense', size=8)],\n"
        f"    summarizer=dict(directory={str(tmp_path)!r}, labels='all', step_reward=True))\n"
        f"callback = TensorBoard({str(tmp_path / 'callback')!r})\n"
        "history = agent.fit('CartPole-v1', episodes=4, verbose=0, callbacks=[callback])\n"
        "callback.close()  # the agent is not closed: its file is written at exit\n"
        "assert agent.updates >= 1\n"
        "print(history.history['episode_return'])\n"
        "print('tensorflow' in sys.modules, sorted(m for m in sys.modules\n"
        "      if m.split('.')[0] == 'tensorflow')[:5])\n"
    )
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    *_, returns, imported = result.stdout.strip().splitlines()
    assert imported == "False []"
    (run,) = [path for path in tmp_path.iterdir() if path.name.startswith("summary-")]
    events = _read(str(run))
    assert _values(events, "reward/episode_return") == json.loads(returns)
    assert "loss/policy" in events.Tags()["scalars"]


def test_summarizer_and_callback_timers_nest(tmp_path, random_agent):
    agent = random_agent(summarizer=dict(directory=str(tmp_path / "a")))
    timer = vars(agent)["act"]
    callback = TensorBoard(str(tmp_path / "b"))
    agent.fit("CartPole-v1", episodes=3, verbose=0, callbacks=[callback])
    assert vars(agent)["act"] is timer  # the callback's timer is gone, the agent's is back
    callback.close()
    agent.close()
    assert "act" not in vars(agent) and "observe" not in vars(agent)
    for directory in ("a", "b"):
        (run,) = (tmp_path / directory).iterdir()
        assert len(_values(_read(str(run)), "reward/episode_return")) == 3


def test_parameters_are_found_generically(tmp_path):
    from kerasrl.summaries import _scheduled_parameters

    schedule = dict(type="linear", unit="updates", num_steps=10, final_value=0.0)
    actions = dict(move=dict(type="int", num_values=3), turn=dict(type="int", num_values=2))
    agent = Agent.create(
        agent="ppo", states=dict(type="float", shape=(3,)), actions=actions,
        max_episode_timesteps=10, batch_size=2, network=[dict(type="dense", size=4)],
        baseline=[dict(type="dense", size=4)],
        baseline_optimizer=dict(optimizer="adam",
                                learning_rate=dict(schedule, initial_value=0.1)),
        exploration=dict(move=dict(schedule, initial_value=0.5), turn=0.1),
        discount=dict(schedule, initial_value=0.9),
    )
    tags = dict(_scheduled_parameters(agent))
    assert sorted(tags) == ["parameters/baseline_learning_rate", "parameters/discount",
                            "parameters/exploration/move"]
    assert tags["parameters/exploration/move"].value({"updates": 5}) == pytest.approx(0.25)
    summarizer = Summarizer(agent, str(tmp_path), labels=["entropy", "kl-divergence"])
    agent.updates = 1
    summarizer.on_update(agent, {"entropy": 1.0, "approx_kl": 0.5, "policy_loss": 2.0})
    summarizer.close(agent)
    events = _read(summarizer.logdir)
    assert sorted(events.Tags()["scalars"]) == ["entropy/total", "kl-divergence/total"]


def test_dqn_run_with_its_own_metric_names(tmp_path):
    agent = Agent.create(agent="dqn", environment="CartPole-v1", memory=1000, batch_size=16,
                         start_updating=32, network=[dict(type="dense", size=8)],
                         summarizer=dict(directory=str(tmp_path), labels="all"))
    history = agent.fit("CartPole-v1", episodes=4, verbose=0)
    agent.close()
    events = _read(get_summarizer(agent).logdir)
    tags = set(events.Tags()["scalars"])
    assert {"loss/total", "metrics/q_value", "metrics/td_error", "update-norm/gradient",
            "update-norm/parameters", "parameters/exploration",
            "reward/episode_return"} <= tags, sorted(tags)
    assert agent.updates >= 3
    for tag, key in (("loss/total", "loss"), ("metrics/q_value", "q_value"),
                     ("metrics/td_error", "td_error")):
        np.testing.assert_allclose(_values(events, tag), history.updates[key], rtol=1e-6,
                                   atol=1e-7, err_msg=tag)
    assert _values(events, "reward/episode_return") == history.history["episode_return"]
    # The target network is not part of update-norm/parameters.
    assert all(v > 0 for v in _values(events, "update-norm/parameters"))
    assert "graph/target_model" in events.Tags()["tensors"]


# ---------------------------------------------------------------------- per-action metrics
class DictActions(Environment):
    """A tiny episodic task with a dict action: an int `a` and a float vector `b`."""

    def __init__(self, actions=None):
        super().__init__()
        self._actions = actions or dict(
            a=dict(type="int", num_values=3),
            b=dict(type="float", shape=(2,), min_value=-1.0, max_value=1.0),
        )
        self._rng = np.random.default_rng(0)
        self._t = 0

    def states(self):
        return dict(type="float", shape=(3,))

    def actions(self):
        return self._actions

    def max_episode_timesteps(self):
        return 6

    def reset(self):
        self._t = 0
        return self._rng.normal(size=3).astype(np.float32)

    def execute(self, actions):
        self._t += 1
        reward = float(np.mean([np.mean(np.asarray(v, np.float32))
                                for v in keras.tree.flatten(actions)]))
        return self._rng.normal(size=3).astype(np.float32), self._t >= 6, reward


PER_ACTION_TAGS = ("entropy/a", "entropy/b", "entropy/total",
                   "kl-divergence/a", "kl-divergence/b", "kl-divergence/total")


def test_dict_action_ppo_writes_entropy_and_kl_per_action(tmp_path):
    environment = DictActions()
    agent = Agent.create(
        agent="ppo", environment=environment, batch_size=2, multi_step=3,
        network=[dict(type="dense", size=8)], learning_rate=1e-2, config=dict(seed=3),
        summarizer=dict(directory=str(tmp_path), labels="all"),
    )
    history = agent.fit(environment, episodes=8, verbose=0)
    agent.close()
    assert agent.updates >= 3
    events = _read(get_summarizer(agent).logdir)
    tags = set(events.Tags()["scalars"])
    assert set(PER_ACTION_TAGS) <= tags, sorted(tags)
    assert "entropy/action" not in tags and "kl-divergence/action" not in tags
    for tag in PER_ACTION_TAGS:
        values = _values(events, tag)
        assert len(values) == agent.updates and all(math.isfinite(v) for v in values), tag

    def by_step(tag):
        return {event.step: event.value for event in events.Scalars(tag)}

    total, a, b = by_step("entropy/total"), by_step("entropy/a"), by_step("entropy/b")
    assert total.keys() == a.keys() == b.keys()
    for step, value in total.items():
        assert value == pytest.approx(a[step] + b[step], abs=1e-4), step
    # The KL estimates: non-negative, and not all zero after several gradient steps.
    kl = [_values(events, tag) for tag in ("kl-divergence/a", "kl-divergence/b",
                                           "kl-divergence/total")]
    assert all(v >= 0.0 for values in kl for v in values)
    assert all(max(values) > 0.0 for values in kl)
    # History (through agent.fit) and agent.last_metrics carry the same keys.
    for tag, key in (("entropy/a", "entropy/a"), ("entropy/b", "entropy/b"),
                     ("entropy/total", "entropy"), ("kl-divergence/a", "approx_kl/a"),
                     ("kl-divergence/b", "approx_kl/b"), ("kl-divergence/total", "approx_kl")):
        np.testing.assert_allclose(_values(events, tag), history.updates[key], rtol=1e-6,
                                   atol=1e-7, err_msg=tag)
        assert agent.last_metrics[key] == pytest.approx(history.updates[key][-1])


@pytest.mark.parametrize("name", ["vpg", "a2c", "trpo"])
def test_dict_action_metrics_in_last_metrics(name):
    actions = dict(move=dict(x=dict(type="int", num_values=2), y=dict(type="bool")),
                   turn=dict(type="float", shape=(2,), min_value=-1.0, max_value=1.0))
    environment = DictActions(actions)
    kwargs = dict(batch_size=12) if name == "a2c" else dict(batch_size=2)
    agent = Agent.create(agent=name, environment=environment,
                         network=[dict(type="dense", size=8)], learning_rate=3e-2,
                         config=dict(seed=0), **kwargs)
    history = agent.fit(environment, episodes=6, verbose=0)
    metrics = agent.last_metrics
    names = ("move/x", "move/y", "turn")
    assert {f"entropy/{n}" for n in names} | {f"approx_kl/{n}" for n in names} <= set(metrics)
    assert metrics["entropy"] == pytest.approx(
        sum(metrics[f"entropy/{n}"] for n in names), abs=1e-4)
    # The policy moved during the update: positive KL estimates (total and per action).
    if name == "trpo":  # exact KL per action, which sums to TRPO's own `kl`
        assert metrics["kl"] == pytest.approx(
            sum(metrics[f"approx_kl/{n}"] for n in names), rel=1e-3, abs=1e-7)
    assert metrics["kl" if name == "trpo" else "approx_kl"] > 0.0
    assert all(metrics[f"approx_kl/{n}"] > 0.0 for n in names)
    assert all(math.isfinite(v) for v in metrics.values())
    assert len(history.updates["entropy/move/x"]) == agent.updates >= 2
    # A single action keeps today's keys.
    single = Agent.create(agent=name, environment="CartPole-v1", max_episode_timesteps=20,
                          network=[dict(type="dense", size=4)], **kwargs)
    single.fit("CartPole-v1", episodes=3, verbose=0)
    assert single.updates >= 1
    assert not [key for key in single.last_metrics if "/" in key]
    assert "approx_kl" not in single.last_metrics and "entropy" in single.last_metrics


def test_kl_metric_tags():
    assert metric_tag("kl", ["action"]) == ("kl-divergence", "kl-divergence/action")
    assert metric_tag("kl", ["a", "b"]) == ("kl-divergence", "kl-divergence/total")
    assert metric_tag("kl_divergence/a/b", ["a/b", "c"]) == (
        "kl-divergence", "kl-divergence/a/b")
    assert metric_tag("entropy/a/b", ["a/b", "c"]) == ("entropy", "entropy/a/b")


def test_sac_dict_action_entropy_per_action():
    actions = dict(a=dict(type="float", shape=(2,), min_value=-1.0, max_value=1.0),
                   b=dict(type="float", shape=(), min_value=-2.0, max_value=2.0))
    agent = Agent.create(agent="sac", states=dict(type="float", shape=(3,)), actions=actions,
                         max_episode_timesteps=10, memory=100, batch_size=8,
                         start_updating=16, network=[dict(type="dense", size=8)],
                         critic=[dict(type="dense", size=8)], config=dict(seed=0))
    rng = np.random.default_rng(0)
    for t in range(24):
        agent.act(rng.normal(size=3).astype(np.float32))
        agent.observe(reward=float(rng.normal()), terminal=t % 10 == 9)
    metrics = agent.last_metrics
    assert agent.updates > 0 and {"entropy/a", "entropy/b"} <= set(metrics)
    assert not [key for key in metrics if key.startswith("approx_kl")]
    assert metrics["entropy"] == pytest.approx(metrics["entropy/a"] + metrics["entropy/b"],
                                               abs=1e-4)
    assert metric_tag("entropy/a", list(agent.actions_spec)) == ("entropy", "entropy/a")
