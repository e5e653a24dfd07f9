"""Recurrent policies: rnn/lstm/gru layers, internals while acting, sequence updates."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasrl import Agent
from kerasrl.agents import sequences
from kerasrl.errors import ArgumentError, InputError, KerasRLError
from kerasrl.layers import Rnn
from kerasrl.networks import build_network, internal_key, network_horizon, network_internals

STATES = dict(type="float", shape=(3,))
ACTIONS = dict(type="int", num_values=3)
LSTM_POLICY = [dict(type="dense", size=8), dict(type="lstm", size=6, horizon=4),
               dict(type="dense", size=8)]


def _agent(network=LSTM_POLICY, baseline="same", parallel=1, **kwargs):
    arguments = dict(agent="ppo", states=STATES, actions=ACTIONS, max_episode_timesteps=50,
                     batch_size=2, network=network, parallel_interactions=parallel,
                     config=dict(seed=1))
    if baseline is not None:
        arguments.update(baseline=network if baseline == "same" else baseline,
                         baseline_optimizer=0.5)
    arguments.update(kwargs)
    if "update" in kwargs:
        arguments.pop("batch_size")
    return Agent.create(**arguments)


def _states(count, seed=0):
    return np.random.default_rng(seed).normal(size=(count, 3)).astype(np.float32)


def _unrolled_policy(agent, states):
    """Eager Keras forward passes of the policy model, one timestep after the other."""
    (name,) = network_internals(agent.policy_model)
    state = np.zeros((1, *agent.internal_shapes()[name]), np.float32)
    internals, actions = [], []
    for x in states:
        params, state = agent.policy_model({"state": x[None], internal_key(name): state})
        state = keras.ops.convert_to_numpy(state)
        internals.append(state[0])
        mode = agent.distributions["action"].mode(params["action"])
        actions.append(int(keras.ops.convert_to_numpy(mode)[0]))
    return internals, actions


# ---------------------------------------------------------------------- layers and networks
def test_rnn_layer_is_a_keras_cell_step_with_tensorforce_output():
    layer = Rnn(cell="gru", size=4, horizon=2, activation="tanh")
    x = np.ones((2, 3), np.float32)
    state = np.full((2, 4), 0.5, np.float32)
    y, following = layer([x, state])
    h, _ = layer.cell(x, [state])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(following), keras.ops.convert_to_numpy(h),
                               rtol=1e-5, atol=1e-6)
    expected = np.tanh(keras.ops.convert_to_numpy(h) + keras.ops.convert_to_numpy(
        layer.output_bias))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(y), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("key", ["lstm", "gru"])
def test_rnn_layer_config_round_trip(key):
    layer = Rnn(cell=key, size=3, horizon=5, activation="relu", name="original")
    x, state = np.ones((2, 4), np.float32), np.zeros((2, *layer.internal_shape), np.float32)
    y, _ = layer([x, state])
    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(copy, Rnn) and copy.horizon == 5 and copy.cell_type == key
    copy([x, state])
    copy.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(copy([x, state])[0]),
                               keras.ops.convert_to_numpy(y), rtol=1e-6)


@pytest.mark.parametrize("spec, shape", [
    (dict(type="lstm", size=5, horizon=3), (2, 5)),
    (dict(type="gru", size=5, horizon=3), (5,)),
    (dict(type="rnn", cell="gru", size=5, horizon=3), (5,)),
])
def test_tensorforce_recurrent_layer_types(spec, shape):
    model = build_network([dict(type="dense", size=4), spec], STATES, recurrent=True)
    (name, found), = network_internals(model).items()
    assert found == shape and network_horizon(model) == 3
    outputs = model({"state": np.zeros((2, 3), np.float32),
                     internal_key(name): np.zeros((2, *shape), np.float32)})
    assert tuple(outputs[0].shape) == (2, 5) and tuple(outputs[1].shape) == (2, *shape)


def test_auto_network_rnn_appends_an_lstm_named_like_tensorforce():
    model = build_network(dict(type="auto", size=16, depth=1, rnn=7), STATES, recurrent=True)
    assert network_internals(model) == {"policy_network_lstm": (2, 16)}
    assert network_horizon(model) == 7


def test_recurrent_layer_inside_a_register_retrieve_graph():
    states = dict(position=dict(type="float", shape=(2,)), angle=dict(type="float", shape=(1,)))
    network = [
        [dict(type="retrieve", tensors=["position"]), dict(type="dense", size=4),
         dict(type="register", tensor="p")],
        [dict(type="retrieve", tensors=["angle"]), dict(type="gru", size=3, horizon=5),
         dict(type="register", tensor="a")],
        [dict(type="retrieve", tensors=["p", "a"], aggregation="concat"),
         dict(type="lstm", size=4, horizon=2)],
    ]
    agent = Agent.create(agent="ppo", states=states, actions=ACTIONS, batch_size=2,
                         max_episode_timesteps=20, network=network, config=dict(seed=0))
    assert set(agent.initial_internals()) == {"policy_network_gru0", "policy_network_lstm0"}
    assert agent.sequence_length == 5
    internals = agent.initial_internals()
    values = {"position": np.ones(2, np.float32), "angle": np.ones(1, np.float32)}
    _, following = agent.act(values, internals=internals, independent=True)
    assert {k: v.shape for k, v in following.items()} == {
        "policy_network_gru0": (3,), "policy_network_lstm0": (2, 4)}


@pytest.mark.parametrize("spec, argument", [
    (dict(type="lstm", size=0, horizon=3), "size"),
    (dict(type="lstm", size=4, horizon=0), "horizon"),
    (dict(type="rnn", cell="vanilla", size=4, horizon=2), "cell"),
    (dict(type="auto", rnn=-1), "rnn"),
])
def test_bad_recurrent_layer_arguments_name_the_argument(spec, argument):
    with pytest.raises(KerasRLError, match=argument):
        build_network(spec if spec["type"] == "auto" else [spec], STATES, recurrent=True)


def test_recurrent_layer_needs_a_rank_one_input():
    with pytest.raises(ArgumentError, match="features"):
        build_network([dict(type="lstm", size=4, horizon=2)], dict(type="float", shape=(3, 2)),
                      recurrent=True)


def test_recurrent_layer_is_refused_in_preprocessing():
    with pytest.raises(ArgumentError, match="preprocessing"):
        build_network("auto", STATES, preprocessing=[dict(type="gru", size=3, horizon=2)],
                      recurrent=True)


@pytest.mark.parametrize("agent", ["dqn", "ddpg"])
def test_agents_without_recurrent_support_refuse_recurrent_networks(agent):
    actions = ACTIONS if agent == "dqn" else dict(type="float", shape=(1,), min_value=-1.0,
                                                  max_value=1.0)
    with pytest.raises(ArgumentError, match="on-policy agents"):
        Agent.create(agent=agent, states=STATES, actions=actions, memory=100, batch_size=4,
                     network=dict(type="auto", rnn=4))


def test_late_horizon_values_need_a_feed_forward_baseline():
    with pytest.raises(ArgumentError, match="predict_horizon_values"):
        _agent(agent="a2c", baseline=None, critic=LSTM_POLICY, horizon=3,
               predict_horizon_values="late")
    # a recurrent policy with a feed-forward critic may use them
    agent = _agent(agent="a2c", baseline=None, critic="auto", horizon=3,
                   predict_horizon_values="late")
    assert agent.recurrent and agent.sequence_length == 4


# ---------------------------------------------------------------------- acting
def test_independent_act_equals_the_unrolled_keras_forward_pass():
    agent = _agent()
    states = _states(6)
    internals = agent.initial_internals()
    assert {k: v.shape for k, v in internals.items()} == {"policy_network_lstm0": (2, 6)}
    assert not np.any(internals["policy_network_lstm0"])
    expected_internals, expected_actions = _unrolled_policy(agent, states)
    for x, want_state, want_action in zip(states, expected_internals, expected_actions):
        action, internals = agent.act(x, internals=internals, independent=True,
                                      deterministic=True)
        assert action == want_action
        np.testing.assert_allclose(internals["policy_network_lstm0"], want_state, rtol=1e-4,
                                   atol=1e-5)


def test_independent_act_batches_and_lists_of_internals():
    agent = _agent()
    states = _states(4)
    initial = agent.initial_internals()
    actions, batched = agent.act(states, internals=initial, independent=True)
    assert batched["policy_network_lstm0"].shape == (4, 2, 6)
    listed = [dict(initial) for _ in range(4)]
    _, rows = agent.act(states, internals=listed, independent=True)
    assert isinstance(rows, list) and len(rows) == 4
    np.testing.assert_allclose(rows[2]["policy_network_lstm0"],
                               batched["policy_network_lstm0"][2], rtol=1e-5, atol=1e-6)


def test_internals_are_required_and_checked_when_acting_independently():
    agent = _agent()
    x = _states(1)[0]
    with pytest.raises(ArgumentError, match="internals"):
        agent.act(x, independent=True)
    with pytest.raises(ArgumentError, match="policy_network_lstm0"):
        agent.act(x, internals={}, independent=True)
    with pytest.raises(InputError, match="shape"):
        agent.act(x, internals={"policy_network_lstm0": np.zeros((3,))}, independent=True)
    with pytest.raises(KerasRLError, match="finite"):
        agent.act(x, internals={"policy_network_lstm0": np.full((2, 6), np.nan)},
                  independent=True)
    with pytest.raises(ArgumentError, match="independent"):
        agent.act(x, internals=agent.initial_internals())


def test_training_state_is_kept_per_slot_and_reset_at_each_episode_start():
    agent = _agent(parallel=2, batch_size=100)
    key = "internals/policy/policy_network_lstm0"
    same = _states(1, seed=5)
    agent.act(np.repeat(same, 2, axis=0), parallel=[0, 1])
    agent.observe([0.0, 0.0], [0, 0], parallel=[0, 1])
    agent.act(np.repeat(same, 2, axis=0), parallel=[0, 1])
    agent.observe([0.0, 0.0], [1, 0], parallel=[0, 1])  # slot 0's episode ends
    assert agent._buffer.position.tolist() == [0, 2]
    agent.act(np.repeat(same, 2, axis=0), parallel=[0, 1])
    stored = agent._buffer.data[key]
    assert not np.any(stored[0, 0]), "slot 0 starts its new episode from the initial state"
    assert np.any(stored[1, 2]), "slot 1 carries its state on"
    assert not np.any(stored[1, 0]) and np.any(stored[1, 1])
    # the states a slot carries are those of the policy run step by step
    expected, _ = _unrolled_policy(agent, np.repeat(same, 2, axis=0))
    np.testing.assert_allclose(stored[1, 1], expected[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stored[1, 2], expected[1], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------- sequences and updates
def test_sequences_have_one_layout_per_batch_size():
    batch = {"x": np.arange(9), "mask": np.zeros((9, 2), bool)}
    padded, valid, n = sequences.to_sequences(batch, 3, minimum=1)
    assert n == 9
    assert padded["x"].reshape(-1, 3).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 0, 0]]
    assert valid.reshape(-1, 3).tolist() == [[1, 1, 1], [1, 1, 1], [1, 1, 1], [0, 0, 0]]
    assert padded["mask"][valid == 0].all()  # padded masks allow every action
    # the number of sequences is a power of two (stable compiled shapes)
    for length in range(1, 40):
        padded, _, _ = sequences.to_sequences({"x": np.arange(length)}, 4)
        count = len(padded["x"]) // 4
        assert count & (count - 1) == 0 and len(padded["x"]) >= 16


def test_unroll_restarts_from_the_stored_state_at_sequence_and_segment_starts():
    model = build_network([dict(type="gru", size=3, horizon=3)], STATES, recurrent=True)
    (name,) = network_internals(model)
    states = _states(6)
    stored = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    starts = np.array([1, 0, 1, 1, 0, 0], bool)  # segments [0, 1], [2], [3, 4, 5]
    outputs = keras.ops.convert_to_numpy(sequences.unroll(
        model, {"state": states}, {name: stored}, starts, 3))
    # sequences [0 1 2] and [3 4 5]: rows 0, 2 (segment) and 3 (sequence) restart
    for rows in ([0, 1], [2], [3, 4, 5]):
        state = stored[rows[0]:rows[0] + 1]
        for t in rows:
            output, state = model({"state": states[t:t + 1], internal_key(name): state})
            state = keras.ops.convert_to_numpy(state)
            np.testing.assert_allclose(outputs[t], keras.ops.convert_to_numpy(output)[0],
                                       rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["ppo", "vpg", "a2c", "trpo"])
def test_recurrent_on_policy_agents_update(kind):
    arguments = dict(agent=kind)
    if kind == "a2c":
        arguments.update(baseline=None, critic=LSTM_POLICY, critic_optimizer=0.5)
    if kind == "trpo":
        arguments.update(baseline_optimizer=dict(optimizer="adam", learning_rate=1e-3))
    agent = _agent(parallel=2, **arguments)
    before = [w.copy() for w in agent.policy_model.get_weights()]
    updates = 0
    for t in range(12):
        agent.act(_states(2, seed=t), parallel=[0, 1])
        updates += agent.observe([1.0, 0.5], [int(t % 6 == 5)] * 2, parallel=[0, 1])
    assert updates >= 1 and agent.updates == updates
    assert all(np.isfinite(v) for v in agent.last_metrics.values())
    changed = [not np.allclose(a, b) for a, b in zip(before, agent.policy_model.get_weights())]
    assert any(changed)


def test_experience_recomputes_the_internals_as_when_acting():
    agent = _agent(update=dict(unit="episodes", batch_size=1, frequency="never"))
    states = _states(5)
    internals = agent.initial_internals()
    recorded, actions = [], []
    for x in states:
        recorded.append(internals)
        action, internals = agent.act(x, internals=internals, independent=True)
        actions.append(action)
    terminal = [0, 0, 0, 0, 1]
    agent.experience(states=list(states), actions=actions, terminal=terminal, reward=[1.0] * 5)
    (segment, _), = agent.memory.segments
    np.testing.assert_allclose(segment["internals/policy/policy_network_lstm0"],
                               np.stack([r["policy_network_lstm0"] for r in recorded]),
                               rtol=1e-4, atol=1e-5)
    assert segment["sequence_start"].tolist() == [True, False, False, False, False]
    # given internals are stored as given
    agent.memory.clear()
    given = [{"policy_network_lstm0": np.full((2, 6), 0.25, np.float32)} for _ in range(5)]
    agent.experience(states=list(states), actions=actions, terminal=terminal, reward=[1.0] * 5,
                     internals=given)
    (segment, _), = agent.memory.segments
    assert np.all(segment["internals/policy/policy_network_lstm0"] == 0.25)
    assert agent.update() == 1


def test_saved_recurrent_agent_resumes_with_identical_actions(tmp_path):
    agent = _agent(parallel=2)
    for t in range(6):
        agent.act(_states(2, seed=t), parallel=[0, 1])
        agent.observe([1.0, 0.0], [int(t == 5)] * 2, parallel=[0, 1])
    path = agent.save(str(tmp_path), format="checkpoint")
    restored = Agent.load(str(tmp_path))
    assert path and restored.recurrent
    states = _states(8, seed=9)
    a_internals, b_internals = agent.initial_internals(), restored.initial_internals()
    for x in states:
        a, a_internals = agent.act(x, internals=a_internals, independent=True, deterministic=True)
        b, b_internals = restored.act(x, internals=b_internals, independent=True,
                                      deterministic=True)
        assert a == b
        np.testing.assert_array_equal(a_internals["policy_network_lstm0"],
                                      b_internals["policy_network_lstm0"])
    # sampled acting resumes from the saved act seed: the same actions too
    for x in states:
        a, a_internals = agent.act(x, internals=a_internals, independent=True,
                                   deterministic=False)
        b, b_internals = restored.act(x, internals=b_internals, independent=True,
                                      deterministic=False)
        assert a == b


def test_runner_evaluation_carries_the_internal_state_per_environment():
    agent = Agent.create(agent="ppo", environment="CartPoleNoVelocity-v1", batch_size=2,
                         network=dict(type="auto", size=8, depth=1, rnn=4), config=dict(seed=0))
    result = agent.evaluate("CartPoleNoVelocity-v1", episodes=4, num_parallel=2, seed=0)
    assert result["episodes"] == 4 and 8 <= result["mean_return"] <= 500


def test_recurrent_policies_refuse_export_and_behaviour_cloning(tmp_path):
    agent = _agent()
    with pytest.raises(ArgumentError, match="recurrent"):
        agent.export(str(tmp_path / "policy.keras"))
    from kerasrl.execution.pretrain import BehaviorCloning

    with pytest.raises(ArgumentError, match="recurrent"):
        BehaviorCloning(agent)


def test_recorded_traces_pretrain_a_recurrent_agent(tmp_path):
    recorder = _agent(recorder=dict(directory=str(tmp_path)))
    for t in range(10):
        recorder.act(_states(1, seed=t)[0])
        recorder.observe(reward=1.0, terminal=int(t % 5 == 4))
    agent = _agent()
    before = [w.copy() for w in agent.policy_model.get_weights()]
    result = agent.pretrain(str(tmp_path), num_iterations=2, num_updates=1)
    assert np.isfinite(result.get("loss", 0.0))
    assert any(not np.allclose(a, b) for a, b in zip(before, agent.policy_model.get_weights()))
