"""API tests of the DQN agents (DQN, Double DQN, Dueling DQN) and of the
replay machinery they share with the other off-policy agents: arguments,
update schedule, n-step transitions, masks, targets, the loss against a NumPy
reference, metrics, saving. (Learning tests: tests/test_learning_off_policy.py.)"""

from __future__ import annotations

import copy

import keras
import numpy as np
import pytest

from kerasrl import Agent
from kerasrl.agents.dqn import DQN, DoubleDQN, DuelingDQN
from kerasrl.errors import ArgumentError, KerasRLError
from kerasrl.saving import named_weights

STATES = dict(type="float", shape=(3,))
ACTIONS = dict(type="int", num_values=4)
NETWORK = [dict(type="dense", size=8)]
KINDS = ["dqn", "double_dqn", "dueling_dqn"]


def create(agent="dqn", **kwargs):
    spec = dict(states=STATES, actions=ACTIONS, memory=100, batch_size=8, network=NETWORK,
                config=dict(seed=0))
    spec.update(kwargs)
    return Agent.create(agent=agent, **spec)


def random_masks(rng, shape):
    masks = rng.random(shape) < 0.5
    forced = rng.integers(0, shape[-1], size=shape[:-1])
    np.put_along_axis(masks, forced[..., None], True, axis=-1)
    return masks


def weights(model):
    return [np.array(w) for w in model.get_weights()]


def run_episode(agent, rng, length, terminal=1, masks=True):
    """One act/observe episode on slot 0; returns (states, masks, rewards)."""
    states, mask_list, rewards = [], [], []
    for t in range(length):
        state = rng.normal(size=3).astype(np.float32)
        mask = random_masks(rng, (4,))
        inputs = dict(state=state, action_mask=mask) if masks else state
        agent.act(inputs)
        reward = float(rng.normal())
        agent.observe(reward, terminal if t == length - 1 else 0)
        states.append(state)
        mask_list.append(mask)
        rewards.append(reward)
    return np.array(states), np.array(mask_list), np.array(rewards, np.float32)


def stored(agent):
    """The memory's transitions in insertion order (no wrap-around in these tests)."""
    return {k: v[: agent.memory.size] for k, v in agent.memory.data.items()}


# ====================================================================== creation and arguments
@pytest.mark.parametrize("key, cls", [("dqn", DQN), ("double_dqn", DoubleDQN),
                                      ("ddqn", DoubleDQN), ("dueling_dqn", DuelingDQN)])
def test_registry_and_config_roundtrip(key, cls):
    agent = create(key)
    assert type(agent) is cls
    config = agent.get_config()
    assert config["agent"] == cls.agent_type  # a saved ddqn reloads as ddqn (not plain dqn)
    assert config["memory"] == 100 and config["batch_size"] == 8
    again = Agent.create(config)
    assert type(again) is cls and again.get_config() == config
    assert isinstance(agent.q_model, keras.Model) and agent.policy_model is agent.q_model


def test_policy_alias_and_tensorforce_policy_dict():
    agent = create(network="auto", policy=dict(type="parametrized_value_policy",
                                               network=NETWORK, state_value_mode="implicit"))
    assert tuple(agent.q_model.get_layer("policy_network_dense0").weights[0].shape) == (3, 8)
    with pytest.raises(ArgumentError, match="aliases"):
        create(network=NETWORK, policy=NETWORK)
    update = create(update=dict(unit="timesteps", batch_size=8, frequency=2, start=5),
                    batch_size=None)
    assert update.update_spec == {"unit": "timesteps", "batch_size": 8, "frequency": 2,
                                  "start": 5}
    assert Agent.create(update.get_config()).update_spec == update.update_spec


def test_default_exploration_decays():
    agent = create()
    epsilon = agent.exploration["action"]
    assert epsilon.value({"timesteps": 0}) == pytest.approx(1.0)
    assert epsilon.value({"timesteps": 10_000}) == pytest.approx(0.05)
    assert agent.get_config()["exploration"]["type"] == "linear"
    assert create(exploration=0.0).exploration["action"].value() == 0.0


@pytest.mark.parametrize("kwargs, argument", [
    (dict(actions=dict(type="float", shape=())), "actions"),
    (dict(memory=None), "memory"),
    (dict(memory=dict(type="prioritized", capacity=10)), "memory"),
    (dict(memory=0), "memory"),
    (dict(batch_size=200), "batch_size"),
    (dict(batch_size=None), "batch_size"),
    (dict(bogus_argument=1), "bogus_argument"),
    (dict(variable_noise=-0.1), "variable_noise"),
    (dict(huber_loss=-1.0), "huber_loss"),
    (dict(target_update_weight=0.0), "target_update_weight"),
    (dict(target_sync_frequency=0), "target_sync_frequency"),
    (dict(horizon=0), "horizon"),
    (dict(multi_step=0), "multi_step"),
    (dict(update_frequency=-2), "update_frequency"),
    (dict(start_updating=-1), "start_updating"),
    (dict(update=dict(unit="episodes", batch_size=4)), "unit"),
    (dict(actions=dict(type="int", shape=())), "num_values"),
    (dict(reward_processing="clip"), "reward_processing"),
    (dict(exploration="lots"), "exploration"),
])
def test_bad_arguments_raise_before_training(kwargs, argument):
    with pytest.raises(KerasRLError, match=argument):
        create(**kwargs)


def test_missing_memory_via_environment():
    with pytest.raises(ArgumentError, match="memory"):
        Agent.create(agent="dqn", environment="CartPole-v1", batch_size=8)


# ====================================================================== update schedule
def test_update_schedule_start_and_frequency():
    agent = create(batch_size=8, update_frequency=4, start_updating=10)
    rng = np.random.default_rng(0)
    update_steps = []
    for t in range(1, 31):
        agent.act(rng.normal(size=3))
        if agent.observe(1.0, t % 7 == 0):
            update_steps.append(t)
    assert update_steps == [10, 14, 18, 22, 26, 30]
    assert agent.updates == 6
    assert set(agent.last_metrics) == {"loss", "q_value", "td_error", "gradient_norm"}


def test_relative_frequency_and_never():
    agent = create(batch_size=8)  # Tensorforce default 0.25: every 2 timesteps from 8 on
    rng = np.random.default_rng(0)
    counts = [agent.act(rng.normal(size=3)) is not None and agent.observe(0.0) for _ in range(12)]
    assert counts == [0] * 7 + [1, 0, 1, 0, 1]
    never = create(update_frequency="never")
    for _ in range(20):
        never.act(rng.normal(size=3))
        assert never.observe(0.0) == 0
    assert never.update() == 1 and never.updates == 1


def test_parallel_environments_run_all_due_updates():
    agent = create(parallel_interactions=4, update_frequency=2, start_updating=8)
    rng = np.random.default_rng(0)
    done = []
    for _ in range(4):
        agent.act(rng.normal(size=(4, 3)), parallel=np.arange(4))
        done.append(agent.observe(np.ones(4), np.zeros(4, int), parallel=np.arange(4)))
    # timesteps 4, 8, 12, 16: updates due at 8 (1), then 10 and 12 (2), 14 and 16 (2)
    assert done == [0, 1, 2, 2]


def test_update_with_empty_memory_does_nothing():
    agent = create()
    assert agent.update() == 0 and agent.updates == 0
    # Updates due while the memory is still empty are skipped, not caught up later.
    late = create(horizon=4, start_updating=0, update_frequency=1)
    rng = np.random.default_rng(0)
    counts = []
    for _ in range(6):
        late.act(rng.normal(size=3))
        counts.append(late.observe(0.0))
    assert counts == [0, 0, 0, 0, 1, 1]


# ====================================================================== replay transitions
def test_n_step_transitions_true_terminal():
    agent = create(horizon=3, discount=0.5, update_frequency="never")
    rng = np.random.default_rng(1)
    states, masks, rewards = run_episode(agent, rng, 5, terminal=1)
    rows = stored(agent)
    assert agent.memory.size == 5
    expected_reward = [rewards[t:t + 3] @ 0.5 ** np.arange(len(rewards[t:t + 3]))
                       for t in range(5)]
    np.testing.assert_allclose(rows["reward"], expected_reward, rtol=1e-6)
    # Full 3-step transitions for t = 0, 1 (emitted at the acts of t = 3, 4); the rest end.
    order = np.argsort([np.argmin(np.abs(states[:, 0] - s)) for s in rows["states/state"][:, 0]])
    rows = {k: v[order] for k, v in rows.items()}
    np.testing.assert_array_equal(rows["terminal"], [0, 0, 1, 1, 1])
    np.testing.assert_allclose(rows["discount"][:2], [0.125, 0.125])
    np.testing.assert_allclose(rows["next_states/state"][:2], states[3:5])
    np.testing.assert_array_equal(rows["next_masks/action"][:2], masks[3:5])
    assert rows["next_masks/action"][2:].all()  # unknown after a terminal: all allowed


def test_aborted_episode_bootstraps_from_last_state():
    agent = create(horizon=3, discount=0.5, update_frequency="never")
    rng = np.random.default_rng(2)
    states, masks, rewards = run_episode(agent, rng, 5, terminal=2)
    rows = stored(agent)
    assert agent.memory.size == 4  # the last step has no next state: dropped
    by_time = {int(np.argmin(np.abs(states[:, 0] - s))): i
               for i, s in enumerate(rows["states/state"][:, 0])}
    assert sorted(by_time) == [0, 1, 2, 3]
    i = by_time[2]
    assert rows["reward"][i] == pytest.approx(rewards[2] + 0.5 * rewards[3])
    assert rows["discount"][i] == pytest.approx(0.25) and rows["terminal"][i] == 0
    np.testing.assert_allclose(rows["next_states/state"][i], states[4])
    np.testing.assert_array_equal(rows["next_masks/action"][i], masks[4])
    i = by_time[3]
    assert rows["reward"][i] == pytest.approx(rewards[3]) and rows["discount"][i] == 0.5


def test_predict_terminal_values_bootstraps_true_terminals():
    agent = create(predict_terminal_values=True, update_frequency="never")
    run_episode(agent, np.random.default_rng(3), 4, terminal=1)
    assert agent.memory.size == 3 and not stored(agent)["terminal"].any()


@pytest.mark.parametrize("terminal", [1, 2])
def test_experience_stores_the_same_transitions_as_act_observe(terminal):
    online = create(horizon=2, discount=0.9, update_frequency="never")
    rng = np.random.default_rng(4)
    actions = []
    states, masks, rewards = [], [], []
    for t in range(6):
        state = rng.normal(size=3).astype(np.float32)
        mask = random_masks(rng, (4,))
        actions.append(online.act(dict(state=state, action_mask=mask)))
        online.observe(float(t), terminal if t == 5 else 0)
        states.append(state)
        masks.append(mask)
        rewards.append(float(t))
    offline = create(horizon=2, discount=0.9, update_frequency="never")
    offline.experience(states=dict(state=np.array(states), action_mask=np.array(masks)),
                       actions=np.array(actions), terminal=[0] * 5 + [terminal], reward=rewards)
    assert offline.memory.size == online.memory.size
    for key, value in stored(online).items():
        np.testing.assert_allclose(stored(offline)[key], value, err_msg=key)


def test_next_state_masks_come_from_the_next_act():
    agent = create(update_frequency="never")
    states, masks, _ = run_episode(agent, np.random.default_rng(5), 6, terminal=1)
    rows = stored(agent)
    np.testing.assert_array_equal(rows["masks/action"], masks)
    np.testing.assert_array_equal(rows["next_masks/action"][:-1], masks[1:])
    np.testing.assert_allclose(rows["next_states/state"][:-1], states[1:])
    assert rows["terminal"].tolist() == [0, 0, 0, 0, 0, 1]


def test_replay_ring_buffer_overwrites_oldest():
    agent = create(memory=10, update_frequency="never")
    run_episode(agent, np.random.default_rng(6), 25, terminal=1)
    assert agent.memory.size == 10 and agent.memory.index == 5


# ====================================================================== masking
@pytest.mark.parametrize("kind", KINDS)
def test_masked_actions_are_never_chosen(kind):
    batch = 64
    # Random (ε = 1) for the first two batched steps, then greedy (ε = 0).
    exploration = dict(type="piecewise_constant", unit="timesteps", boundaries=[2 * batch],
                       values=[1.0, 0.0])
    agent = create(kind, parallel_interactions=batch, exploration=exploration,
                   update_frequency=1, start_updating=64)
    rng = np.random.default_rng(7)
    slots = np.arange(batch)
    for _ in range(4):
        masks = random_masks(rng, (batch, 4))
        actions = agent.act(dict(state=rng.normal(size=(batch, 3)), action_mask=masks),
                            parallel=slots)
        assert masks[np.arange(batch), actions].all()
        agent.observe(rng.normal(size=batch), np.zeros(batch, int), parallel=slots)
    assert agent.updates > 0
    for deterministic in (True, False):
        masks = random_masks(rng, (batch, 4))
        actions = agent.act(dict(state=rng.normal(size=(batch, 3)), action_mask=masks),
                            independent=True, deterministic=deterministic)
        assert masks[np.arange(batch), actions].all()


def test_exploration_samples_uniformly_among_allowed_values():
    agent = create(parallel_interactions=512, exploration=1.0)
    mask = np.array([True, False, True, True])
    actions = agent.act(dict(state=np.zeros((512, 3)), action_mask=np.tile(mask, (512, 1))),
                        parallel=np.arange(512))
    counts = np.bincount(actions, minlength=4)
    assert counts[1] == 0 and counts[[0, 2, 3]].min() > 120


def test_all_false_mask_is_an_error():
    agent = create()
    with pytest.raises(KerasRLError, match="action_mask"):
        agent.act(dict(state=np.zeros(3), action_mask=[False] * 4), independent=True)


# ====================================================================== action shapes
def test_multi_dimensional_and_named_actions():
    actions = dict(move=dict(type="int", shape=(2,), num_values=3), jump=dict(type="bool"))
    agent = create("dueling_dqn", actions=actions, update_frequency=1, start_updating=8,
                   exploration=0.5, parallel_interactions=8)
    rng = np.random.default_rng(8)
    slots = np.arange(8)
    for step in range(6):
        masks = random_masks(rng, (8, 2, 3))
        out = agent.act(dict(state=rng.normal(size=(8, 3)), move_mask=masks), parallel=slots)
        assert out["move"].shape == (8, 2) and out["jump"].dtype == np.bool_
        assert np.take_along_axis(masks, out["move"][..., None], -1).all()
        agent.observe(rng.normal(size=8), np.full(8, int(step == 5)), parallel=slots)
    assert agent.updates >= 3 and np.isfinite(agent.last_metrics["loss"])
    params = agent.q_model({"state": np.zeros((5, 3), np.float32)})
    assert tuple(params["move"]["logits"].shape) == (5, 2, 3)
    assert tuple(params["jump"]["logits"].shape) == (5, 2)


# ====================================================================== loss against NumPy
def _numpy_loss(agent, batch, huber=None):
    states = {"state": batch["states/state"]}
    next_states = {"state": batch["next_states/state"]}
    out = agent.q_model(states)["action"]
    target_out = agent.target_q_model(next_states)["action"]
    online_next = agent.q_model(next_states)["action"]

    def q_values(params, mask):
        q = keras.ops.convert_to_numpy(params["logits"]).astype(np.float64)
        if agent.dueling:
            advantage = keras.ops.convert_to_numpy(params["advantage"]).astype(np.float64)
            q = q + advantage.mean(-1, keepdims=True) - (advantage * mask).sum(
                -1, keepdims=True) / mask.sum(-1, keepdims=True)
        return q

    q = q_values(out, batch["masks/action"])
    rows = np.arange(len(q))
    q_taken = q[rows, batch["actions/action"]]
    next_mask = batch["next_masks/action"]
    target_q = np.where(next_mask, q_values(target_out, next_mask), -np.inf)
    if agent.double:
        best = np.where(next_mask, q_values(online_next, next_mask), -np.inf).argmax(-1)
        next_value = q_values(target_out, next_mask)[rows, best]
    else:
        next_value = target_q.max(-1)
    target = batch["reward"] + (1 - batch["terminal"]) * batch["discount"] * next_value
    td = q_taken - target
    if huber is None:
        loss = 0.5 * td**2
    else:
        loss = np.where(np.abs(td) <= huber, 0.5 * td**2, huber * (np.abs(td) - 0.5 * huber))
    return loss.mean(), q_taken.mean(), np.abs(td).mean()


@pytest.mark.parametrize("kind, huber", [("dqn", None), ("double_dqn", None),
                                         ("dueling_dqn", None), ("dqn", 0.5)])
def test_loss_matches_numpy_reference(kind, huber):
    agent = create(kind, update_frequency="never", huber_loss=huber, target_sync_frequency=1000,
                   discount=0.9, horizon=2, batch_size=16)
    rng = np.random.default_rng(9)
    for terminal in (1, 2, 1):
        run_episode(agent, rng, 7, terminal=terminal)
    agent.update()  # moves the online network away from the target
    agent.update()
    sampler = copy.deepcopy(agent._rng)
    batch = {k: v[0] for k, v in agent.memory.sample(sampler, 16, 1).items()}
    expected_loss, expected_q, expected_td = _numpy_loss(agent, batch, huber)
    agent.update()
    metrics = agent.last_metrics
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-4)
    assert metrics["q_value"] == pytest.approx(expected_q, rel=1e-4, abs=1e-6)
    assert metrics["td_error"] == pytest.approx(expected_td, rel=1e-4)


# ====================================================================== target network
def _fill(agent, steps=20):
    rng = np.random.default_rng(10)
    for t in range(steps):
        agent.act(rng.normal(size=3))
        agent.observe(float(rng.normal()), int(t % 5 == 4))


def test_target_starts_as_a_separate_copy():
    agent = create()
    online = {id(w) for w in agent.q_model.weights}
    assert not online & {id(w) for w in agent.target_q_model.weights}
    for a, b in zip(weights(agent.q_model), weights(agent.target_q_model)):
        np.testing.assert_array_equal(a, b)
    assert {name.split("/")[0] for name in named_weights(agent)} == {"policy", "target"}


def test_target_copy_every_sync_frequency():
    agent = create(update_frequency="never", target_sync_frequency=3)
    _fill(agent)
    initial = weights(agent.target_q_model)
    for update in range(1, 7):
        agent.update()
        target = weights(agent.target_q_model)
        if update % 3:
            for a, b in zip(target, initial):
                np.testing.assert_array_equal(a, b)
        else:
            for a, b in zip(target, weights(agent.q_model)):
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
            initial = target


def test_polyak_target_update():
    agent = create(update_frequency="never", target_update_weight=0.25)
    _fill(agent)
    agent.update()  # online and target differ from here on
    before = weights(agent.target_q_model)
    agent.update()
    online = weights(agent.q_model)
    for old, new, source in zip(before, weights(agent.target_q_model), online):
        np.testing.assert_allclose(new, 0.25 * source + 0.75 * old, rtol=1e-5, atol=1e-6)


def test_multi_step_runs_several_gradient_steps_in_one_update():
    one = create(update_frequency="never", multi_step=1)
    four = create(update_frequency="never", multi_step=4)
    for agent in (one, four):
        _fill(agent)
        agent.update()
    assert one.updates == four.updates == 1
    assert one._gradient_steps == 1 and four._gradient_steps == 4
    iterations = [int(keras.ops.convert_to_numpy(a.optimizer_spec.optimizer.iterations))
                  for a in (one, four) if not a._sync_weights()]
    assert iterations == [1, 4]


# ====================================================================== metrics, plugins
def test_metrics_reach_callbacks_and_plugins():
    from kerasrl.callbacks import Callback

    class Collect(Callback):
        def __init__(self):
            super().__init__()
            self.logs = []

        def on_update_end(self, update, logs=None):
            self.logs.append(dict(logs))

    class Plugin:
        def __init__(self):
            self.metrics = []

        def on_update(self, agent, metrics):
            self.metrics.append(metrics)

    agent = Agent.create(agent="dqn", environment="CartPole-v1", memory=500, batch_size=16,
                         network=NETWORK, update_frequency=8, config=dict(seed=0))
    plugin = Plugin()
    agent._plugins.append(plugin)
    collect = Collect()
    agent.fit("CartPole-v1", timesteps=100, verbose=0, seed=0, callbacks=[collect])
    assert collect.logs and len(plugin.metrics) == agent.updates
    assert set(collect.logs[-1]) == {"loss", "q_value", "td_error", "gradient_norm"}
    assert all(np.isfinite(v) for v in collect.logs[-1].values())


# ====================================================================== saving
def _train(agent, rng, updates):
    for _ in range(updates):
        run_episode(agent, rng, 6, terminal=1 if rng.random() < 0.5 else 2)
        agent.update()


def _all_state(agent):
    agent._sync_weights()
    values = {k: keras.ops.convert_to_numpy(v.value) for k, v in named_weights(agent).items()}
    values.update({k: keras.ops.convert_to_numpy(v.value)
                   for k, v in agent._state_variables().items()})
    return values


@pytest.mark.parametrize("kind", ["dqn", "dueling_dqn"])
def test_full_save_resumes_exactly(tmp_path, kind):
    spec = dict(update_frequency="never", multi_step=2, target_sync_frequency=3)
    uninterrupted = create(kind, **spec)
    _train(uninterrupted, np.random.default_rng(11), 6)

    first = create(kind, **spec)
    rng = np.random.default_rng(11)
    _train(first, rng, 3)
    first.save(tmp_path)
    resumed = Agent.load(tmp_path)
    assert type(resumed) is type(first)
    assert (resumed.timesteps, resumed.updates, resumed.memory.size) == (
        first.timesteps, first.updates, first.memory.size)
    _train(resumed, rng, 3)

    expected, actual = _all_state(uninterrupted), _all_state(resumed)
    assert expected.keys() == actual.keys()
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, atol=1e-6, err_msg=key)
    for key, value in stored(uninterrupted).items():
        np.testing.assert_array_equal(stored(resumed)[key], value, err_msg=key)


def test_weights_only_save_and_export(tmp_path):
    agent = create("dueling_dqn", update_frequency="never")
    _fill(agent)
    agent.update()
    agent.save(tmp_path, format="numpy")
    loaded = Agent.load(tmp_path, format="numpy")
    rng = np.random.default_rng(12)
    states = rng.normal(size=(50, 3)).astype(np.float32)
    masks = random_masks(rng, (50, 4))
    inputs = dict(state=states, action_mask=masks)
    expected = agent.act(inputs, independent=True)
    np.testing.assert_array_equal(loaded.act(inputs, independent=True), expected)
    path = agent.export(str(tmp_path / "q.keras"))
    model = keras.saving.load_model(path)
    exported = keras.ops.convert_to_numpy(model({"state": states, "action_mask": masks}))
    np.testing.assert_array_equal(exported, expected)
