"""The generic `tensorforce` agent and the named agents as its presets.

- every preset's expansion has the parts of reference §1.8, and Tensorforce's
  own expansions (the shipped `*_tensorforce.json` configs) equal ours;
- a preset and its expansion make the same updates from the same seed;
- the generic agent checks its arguments (§1.4) and names the parts it does
  not compose yet;
- Tensorforce's benchmark configs create agents that run episodes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasrl import Agent, Environment
from kerasrl.agents import generic, presets
from kerasrl.agents.presets import PRESETS, expand
from kerasrl.errors import ArgumentError, UnknownTypeError

CONFIGS = Path(__file__).resolve().parents[3] / "shared" / "tensorforce-data" / "configs"
STATES = dict(type="float", shape=(4,))
INT_ACTION = dict(type="int", num_values=2)
FLOAT_ACTION = dict(type="float", shape=(1,), min_value=-2.0, max_value=2.0)
SMALL = [dict(type="dense", size=8)]

#: Preset specs of the parity test: (agent, arguments).
PRESET_CASES = {
    "ppo": ("ppo", dict(batch_size=2, network=SMALL)),
    "ppo-baseline": ("ppo", dict(batch_size=2, network=SMALL, baseline=SMALL,
                                 baseline_optimizer=dict(type="adam", learning_rate=1e-3),
                                 entropy_regularization=0.01)),
    "ppo-gae-timesteps": ("ppo", dict(update=dict(unit="timesteps", batch_size=16),
                                      network=SMALL, baseline=SMALL, gae_decay=0.9,
                                      advantage_processing="normalize", max_grad_norm=0.5)),
    "vpg": ("vpg", dict(batch_size=2, network=SMALL)),
    "reinforce-baseline": ("reinforce", dict(batch_size=2, network=SMALL, baseline=SMALL)),
    "trpo": ("trpo", dict(batch_size=2, network=SMALL)),
    "trpo-baseline": ("trpo", dict(batch_size=2, network=SMALL, baseline=SMALL)),
    "ac": ("ac", dict(batch_size=8, network=SMALL, critic=SMALL)),
    "a2c": ("a2c", dict(batch_size=8, horizon=3, network=SMALL, critic=SMALL)),
    "dqn": ("dqn", dict(memory=200, batch_size=8, network=SMALL, exploration=0.1)),
    "double_dqn": ("double_dqn", dict(memory=200, batch_size=8, network=SMALL,
                                      huber_loss=1.0, target_sync_frequency=4)),
    "dueling_dqn": ("dueling_dqn", dict(memory=200, batch_size=8, network=SMALL,
                                        target_update_weight=0.5)),
    "ddpg": ("ddpg", dict(memory=200, batch_size=8, network=SMALL, critic=SMALL)),
}


def _spec(agent: str, arguments: dict) -> dict:
    actions = FLOAT_ACTION if agent in ("ddpg", "dpg") else INT_ACTION
    return dict(agent=agent, states=STATES, actions=actions, max_episode_timesteps=12,
                config=dict(seed=7), **arguments)


def _weights(agent: Agent) -> list[np.ndarray]:
    return [np.asarray(w) for name, model in sorted(agent._models().items())
            for w in model.get_weights()]


def _interact(agent: Agent, steps: int = 60) -> int:
    """A fixed stream of states, rewards and episode ends (every 12 steps)."""
    rng = np.random.default_rng(0)
    updates = 0
    for step in range(steps):
        agent.act(rng.normal(size=4).astype(np.float32))
        updates += agent.observe(reward=float(rng.normal()), terminal=(step % 12 == 11))
    return updates


# ---------------------------------------------------------------------- expansion (§1.8)
EXPECTED_PARTS = {
    "ppo": dict(objective=("policy_gradient", True, 0.25), unit="episodes", memory="recent",
                optimizer="adam", horizon="episode", advantage=False, action_values=False),
    "vpg": dict(objective=("policy_gradient", False, None), unit="episodes", memory="recent",
                optimizer="adam", horizon="episode", advantage=False, action_values=False),
    "trpo": dict(objective=("policy_gradient", True, None), unit="episodes", memory="recent",
                 optimizer="natural_gradient", horizon="episode", advantage=False,
                 action_values=False),
    "ac": dict(objective=("policy_gradient", False, None), unit="timesteps", memory="recent",
               optimizer="adam", horizon=1, advantage=False, action_values=False),
    "a2c": dict(objective=("policy_gradient", False, None), unit="timesteps",
                memory="recent", optimizer="adam", horizon=1, advantage=True,
                action_values=False),
    "dqn": dict(objective=("action_value",), unit="timesteps", memory="replay",
                optimizer="adam", horizon=1, advantage=False, action_values=False),
    "double_dqn": dict(objective=("action_value",), unit="timesteps", memory="replay",
                       optimizer="adam", horizon=1, advantage=False, action_values=True),
    "dueling_dqn": dict(objective=("action_value",), unit="timesteps", memory="replay",
                        optimizer="adam", horizon=1, advantage=False, action_values=True),
    "ddpg": dict(objective=("deterministic_policy_gradient",), unit="timesteps",
                 memory="replay", optimizer="adam", horizon=1, advantage=False,
                 action_values=True),
}
MINIMAL = {"ppo": dict(batch_size=4), "vpg": dict(batch_size=4), "trpo": dict(batch_size=4),
           "ac": dict(batch_size=4), "a2c": dict(batch_size=4),
           "dqn": dict(memory=100, batch_size=4), "double_dqn": dict(memory=100, batch_size=4),
           "dueling_dqn": dict(memory=100, batch_size=4), "ddpg": dict(memory=100, batch_size=4)}


@pytest.mark.parametrize("agent", sorted(EXPECTED_PARTS))
def test_preset_expands_into_the_parts_of_the_reference(agent):
    expected = EXPECTED_PARTS[agent]
    spec = generic.parse(**{k: v for k, v in expand(_spec(agent, MINIMAL[agent])).items()
                            if k != "agent"}).spec
    objective = spec["objective"]
    if objective["type"] == "policy_gradient":
        assert (objective["type"], objective["importance_sampling"],
                objective["clipping_value"]) == expected["objective"]
    else:
        assert (objective["type"],) == expected["objective"]
    assert spec["update"]["unit"] == expected["unit"]
    assert spec["memory"]["type"] == expected["memory"]
    assert generic.optimizer_type(spec["optimizer"]) == expected["optimizer"]
    estimation = spec["reward_estimation"]
    assert estimation["horizon"] == expected["horizon"]
    assert estimation["estimate_advantage"] == expected["advantage"]
    assert estimation["predict_action_values"] == expected["action_values"]
    assert estimation["discount"] == 0.99
    if agent in ("ac", "a2c"):
        assert spec["baseline"]["type"] == "parametrized_state_value"
        assert estimation["predict_horizon_values"] == "early"
    if agent.endswith("dqn"):
        assert spec["baseline"] == spec["policy"]  # the target network
        assert spec["baseline_optimizer"] == dict(type="synchronization", update_weight=1.0,
                                                  sync_frequency=1)
        assert spec["policy"]["state_value_mode"] == (
            "separate" if agent == "dueling_dqn" else "implicit")
        assert estimation["predict_horizon_values"] == "late"
    if agent == "ddpg":
        assert spec["policy"]["temperature"] == 0.0
        assert spec["policy"]["use_beta_distribution"] is True
        assert spec["baseline"]["type"] == "parametrized_action_value"
        assert spec["baseline_objective"]["type"] == "action_value"


def test_preset_with_baseline_estimates_the_advantage():
    spec = expand(_spec("ppo", dict(batch_size=4, baseline="auto",
                                    baseline_optimizer=dict(type="adam", learning_rate=1e-3))))
    assert spec["reward_estimation"]["predict_horizon_values"] == "early"
    assert spec["reward_estimation"]["estimate_advantage"] is True
    assert spec["baseline"] == dict(type="parametrized_state_value", network="auto")
    assert spec["baseline_objective"] == "state_value"


#: Keys Tensorforce writes into its expansions with their defaults, which ours leave out.
TENSORFORCE_DEFAULTS = {
    "size": 64, "depth": 2, "final_size": None, "final_depth": 1, "device": "CPU",
    "gradient_norm_clipping": None, "clipping_threshold": None, "linesearch_iterations": 0,
    "doublecheck_update": False, "single_output": True, "start": None,
    "distributions": {"bool": {"type": "bernoulli"},
                      "int": {"type": "categorical", "temperature_mode": None},
                      "float": {"type": "gaussian", "stddev_mode": "predicted",
                                "bounded_transform": "tanh"}},
    "multi_step": 1, "subsampling_fraction": 1.0,
}


def _assert_same(ours, theirs, path="spec"):
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in set(ours) | set(theirs):
            where = f"{path}['{key}']"
            if key in ours and key in theirs:
                _assert_same(ours[key], theirs[key], where)
            elif key in theirs:
                assert key in TENSORFORCE_DEFAULTS and theirs[key] == TENSORFORCE_DEFAULTS[key], (
                    where, theirs[key])
            else:
                assert key in ("gae_decay", "trace_decay", "predict_action_values") or (
                    ours[key] in (None, 0.0, False)), (where, ours[key])
    else:
        assert ours == theirs, (path, ours, theirs)


@pytest.mark.parametrize(("preset", "expanded"), [
    ("ppo.json", "ppo_tensorforce.json"),
    # exploration given: kerasrl's DQN defaults to a decaying ε, Tensorforce's to 0.0.
    (dict(agent="dqn", memory=10000, batch_size=32, network=dict(type="auto", rnn=False),
          exploration=0.0), "dqn_tensorforce.json"),
])
def test_expansion_equals_tensorforces_own(preset, expanded):
    """Tensorforce's configs/*_tensorforce.json are its expansions of the presets."""
    if isinstance(preset, str):
        preset = json.loads((CONFIGS / preset).read_text())
    theirs = json.loads((CONFIGS / expanded).read_text())
    common = dict(states=STATES, actions=INT_ACTION, max_episode_timesteps=500)
    ours = expand({**preset, **common})
    normalized = [generic.parse(**{k: v for k, v in spec.items() if k != "agent"}).spec
                  for spec in (ours, {**theirs, **common})]
    _assert_same(*normalized)


@pytest.mark.parametrize("agent", ["td3", "sac", "random", "constant"])
def test_agents_that_are_not_presets_say_so(agent):
    with pytest.raises(ArgumentError, match="preset of the generic agent"):
        expand(dict(agent=agent, states=STATES, actions=FLOAT_ACTION))


def test_ddpg_target_arguments_have_no_generic_form():
    with pytest.raises(ArgumentError, match="target_update_weight.*generic"):
        expand(_spec("ddpg", dict(memory=100, batch_size=4, target_update_weight=0.1)))


def test_every_preset_is_expandable():
    assert set(PRESETS) == {"ppo", "vpg", "reinforce", "trpo", "ac", "a2c", "dqn",
                            "double_dqn", "ddqn", "dueling_dqn", "ddpg", "dpg"}


# ---------------------------------------------------------------------- parity
@pytest.mark.parametrize("case", sorted(PRESET_CASES))
def test_preset_and_its_expansion_make_the_same_updates(case):
    agent_type, arguments = PRESET_CASES[case]
    spec = _spec(agent_type, arguments)
    named = Agent.create(spec)
    composed = Agent.create(expand(spec))
    assert type(composed) is type(named)
    assert composed.spec["agent"] == "tensorforce"
    for before_named, before_composed in zip(_weights(named), _weights(composed)):
        np.testing.assert_array_equal(before_named, before_composed)
    updates = _interact(named)
    assert updates > 0, "the case must update"
    assert _interact(composed) == updates
    for after_named, after_composed in zip(_weights(named), _weights(composed)):
        np.testing.assert_allclose(after_named, after_composed, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(_weights(named), _weights(
        Agent.create(spec)))), "the updates must change the weights"


# ---------------------------------------------------------------------- the generic agent
GENERIC_PPO = dict(
    states=STATES, actions=INT_ACTION, max_episode_timesteps=12,
    update=dict(unit="episodes", batch_size=2),
    optimizer=dict(optimizer="adam", learning_rate=1e-3, multi_step=2),
    objective=dict(type="policy_gradient", importance_sampling=True, clipping_value=0.2),
    reward_estimation=dict(horizon="episode", discount=0.99),
    policy=dict(network=SMALL), config=dict(seed=1),
)


def test_spec_without_agent_key_is_the_generic_agent():
    agent = Agent.create(dict(GENERIC_PPO, policy=SMALL))
    assert agent.spec["agent"] == "tensorforce" and agent.agent_type == "ppo"
    assert Agent.create(agent="default", **dict(GENERIC_PPO, policy=SMALL)).agent_type == "ppo"
    assert agent.spec["reward_estimation"]["predict_horizon_values"] is False
    assert agent.spec["objective"] == dict(type="policy_gradient", importance_sampling=True,
                                           clipping_value=0.2, early_reduce=True)
    assert _interact(agent) > 0


def test_generic_agent_saves_and_loads_as_generic(tmp_path):
    agent = Agent.create(dict(GENERIC_PPO, policy=SMALL))
    _interact(agent)
    agent.save(tmp_path)
    loaded = Agent.load(tmp_path)
    assert loaded.spec["agent"] == "tensorforce"
    assert loaded.get_config() == agent.get_config()
    for a, b in zip(_weights(agent), _weights(loaded)):
        np.testing.assert_array_equal(a, b)
    recreated = Agent.create(agent.get_config())
    assert type(recreated) is type(agent)


@pytest.mark.parametrize(("change", "error", "words"), [
    (dict(objective=None), ArgumentError, "Missing required argument.*objective"),
    (dict(reward_estimation=dict(discount=0.9)), ArgumentError, r"reward_estimation\['horizon'\]"),
    (dict(reward_estimation=dict(horizon="episode", lambda_=1)), ArgumentError, "lambda_"),
    (dict(reward_estimation=dict(horizon=0)), ArgumentError, "horizon.*positive int.*0"),
    (dict(reward_estimation=dict(horizon="episode", predict_horizon_values="late")),
     ArgumentError, "predict_horizon_values.*'episode'"),
    (dict(reward_estimation=dict(horizon="episode", estimate_advantage="sometimes")),
     ArgumentError, "estimate_advantage"),
    (dict(reward_estimation=dict(horizon="episode", discount=1.5)), ArgumentError,
     r"discount.*\[0, 1\].*1.5"),
    (dict(objective="policy_gradients"), UnknownTypeError, "objective.*policy_gradients"),
    (dict(objective=dict(type="policy_gradient", clip=0.2)), ArgumentError, "clip"),
    (dict(objective=dict(type="policy_gradient", clipping_value=-0.2)), ArgumentError,
     "clipping_value.*> 0"),
    (dict(memory=dict(type="prioritized")), UnknownTypeError, "memory.*prioritized"),
    (dict(estimate_terminal=True), ArgumentError, "deprecated.*predict_terminal_values"),
    (dict(seed=3), ArgumentError, r"deprecated.*config\['seed'\]"),
    (dict(batch_size=3), ArgumentError, "batch_size"),
    (dict(baseline_optimizer=1.0), ArgumentError, "baseline_optimizer.*without a baseline"),
])
def test_generic_arguments_are_checked(change, error, words):
    spec = {**GENERIC_PPO, **change}
    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(error, match=words):
        Agent.create(agent="tensorforce", **spec)


@pytest.mark.parametrize(("change", "part"), [
    (dict(objective="value", memory=dict(type="recent")), "objective"),
    (dict(objective=dict(type="plus", objective1="policy_gradient", objective2="value")),
     "objective"),
    (dict(optimizer=dict(type="evolutionary", learning_rate=1e-2)), "optimizer"),
    (dict(optimizer=dict(type="linesearch_step", optimizer="adam", max_iterations=5)),
     "optimizer"),
    (dict(memory=1000), "memory"),
    (dict(objective=dict(type="policy_gradient", importance_sampling=True)), "objective"),
])
def test_compositions_not_built_yet_name_the_part(change, part):
    with pytest.raises(ArgumentError, match=re.escape(f"does not compose {part}=")):
        Agent.create(agent="tensorforce", **{**GENERIC_PPO, **change})


# ---------------------------------------------------------------------- Tensorforce's configs
@pytest.mark.parametrize("config", ["ppo.json", "ppo_tensorforce.json", "dqn_tensorforce.json"])
def test_tensorforce_benchmark_config_runs_three_episodes(config):
    environment = Environment.create(str(CONFIGS / "cartpole.json"))
    try:
        agent = Agent.create(str(CONFIGS / config), environment=environment,
                             config=dict(seed=0))
        history = agent.fit(environment, episodes=3, verbose=0)
    finally:
        environment.close()
    assert len(history.history["episode_return"]) == 3
    assert all(r > 0 for r in history.history["episode_return"])


# ---------------------------------------------------------------------- module docstrings
@pytest.mark.parametrize("module", [generic, presets])
def test_module_examples_run(module):
    """The `Example:` blocks of the generic and presets modules run as written."""
    blocks = re.findall(r"```python\n(.*?)```", module.__doc__, re.DOTALL)
    assert blocks, module.__name__
    for block in blocks:
        exec(compile(block, module.__name__, "exec"), {"Agent": Agent, "expand": expand})


# ---------------------------------------------------------------------- action_value + recent memory
def test_latest_takes_the_newest_transitions_oldest_first():
    from kerasrl.replay import ReplayMemory
    memory = ReplayMemory({"reward": ((), np.float32)}, capacity=5)
    memory.add({"reward": np.arange(2, dtype=np.float32)})
    # fewer stored than asked: the stored ones repeat in order (fixed shapes)
    assert memory.latest(5)["reward"].tolist() == [[0.0, 1.0, 0.0, 1.0, 0.0]]
    memory.add({"reward": np.arange(2, 9, dtype=np.float32)})  # wraps around the ring
    batches = memory.latest(3, num_batches=2)["reward"]
    assert batches.tolist() == [[6.0, 7.0, 8.0], [6.0, 7.0, 8.0]]
    assert memory.latest(5)["reward"].tolist() == [[4.0, 5.0, 6.0, 7.0, 8.0]]
    with pytest.raises(ArgumentError, match="empty"):
        ReplayMemory({"reward": ((), np.float32)}, capacity=2).latest(1)


RECENT_DQN = dict(
    agent="tensorforce", states=STATES, actions=INT_ACTION, max_episode_timesteps=12,
    policy=dict(network=SMALL, state_value_mode="implicit"), memory=dict(type="recent"),
    update=dict(unit="timesteps", batch_size=4), objective="action_value",
    reward_estimation=dict(horizon=1, discount=0.9), state_preprocessing=None,
    config=dict(seed=3),
)


def _capture_updates(agent: Agent, before=None) -> list:
    """Wraps the compiled update: records each batch (and `before(batch)`) and its metrics."""
    calls, update = [], agent._update_compiled

    def recording(batch, hyper):
        extra = before(batch) if before is not None else None
        metrics = update(batch, hyper)
        calls.append((batch, extra, {k: float(v) for k, v in metrics.items()}))
        return metrics

    agent._update_compiled = recording
    return calls


def test_action_value_with_a_recent_memory_trains_on_the_newest_transitions():
    agent = Agent.create(dict(RECENT_DQN, optimizer=dict(optimizer="adam", learning_rate=1e-3,
                                                         multi_step=2)))
    assert agent.agent_type == "dqn" and agent.memory.capacity == 4
    rng, rewards, ended = np.random.default_rng(0), [], []
    calls = _capture_updates(agent, before=lambda batch: (len(rewards), ended[-1]))
    for step in range(40):
        agent.act(rng.normal(size=4).astype(np.float32))
        rewards.append(np.float32(rng.normal()))
        ended.append(step % 12 == 11)
        agent.observe(reward=float(rewards[-1]), terminal=ended[-1])
    assert len(calls) == 10  # every 4 timesteps
    for batch, (observed, terminal), _ in calls:
        first, second = batch["reward"]
        np.testing.assert_array_equal(first, second)  # every gradient step sees that batch
        # a step's transition is stored at the next act (its next state), or at
        # once when its episode ended
        stored = observed if terminal else observed - 1
        newest = rewards[max(stored - 4, 0):stored]
        if stored < 4:  # fewer stored than the batch: they repeat in order
            newest = [newest[i % stored] for i in range(4)]
        np.testing.assert_array_equal(first, np.asarray(newest, np.float32))


def test_action_value_with_a_recent_memory_minimizes_the_td_loss():
    agent = Agent.create(dict(RECENT_DQN, optimizer=dict(optimizer="sgd", learning_rate=0.1)))

    def expected_loss(batch):
        # with the weights before the update, eagerly, outside the compiled update
        states, next_states = batch["states/state"][0], batch["next_states/state"][0]
        q = keras.ops.convert_to_numpy(agent.q_model({"state": states})["action"]["logits"])
        q_next = keras.ops.convert_to_numpy(
            agent.target_q_model({"state": next_states})["action"]["logits"])
        q_taken = q[np.arange(len(q)), batch["actions/action"][0]]
        target = batch["reward"][0] + (1.0 - batch["terminal"][0]) * batch["discount"][0] * (
            q_next.max(axis=-1))
        return float(np.mean(0.5 * np.square(q_taken - target)))

    calls = _capture_updates(agent, before=expected_loss)
    _interact(agent, steps=30)
    assert len(calls) == 7
    for _, expected, metrics in calls:
        assert metrics["loss"] == pytest.approx(expected, rel=1e-4, abs=1e-6)


# ---------------------------------------------------------------------- step wrappers
def _adam(**options):
    return dict(type="adam", learning_rate=3e-3, **options)


def test_nested_step_wrappers_make_the_updates_of_the_wrapper_form():
    nested = dict(
        GENERIC_PPO, baseline=SMALL, reward_estimation=dict(
            horizon="episode", discount=0.99, estimate_advantage=True),
        optimizer=dict(type="multi_step", num_steps=3, optimizer=dict(
            type="subsampling_step", fraction=0.5, optimizer=_adam())),
        baseline_optimizer=dict(type="multi_step", num_steps=2, optimizer=_adam()))
    flat = dict(nested, optimizer=_adam(multi_step=3, subsampling_fraction=0.5),
                baseline_optimizer=_adam(multi_step=2))
    agents = [Agent.create(agent="tensorforce", **spec) for spec in (nested, flat)]
    assert agents[0].spec["optimizer"] == nested["optimizer"]  # the spec as written
    assert agents[0].optimizer_spec.multi_step == 3
    assert agents[0].optimizer_spec.subsampling_fraction == 0.5
    assert agents[0].baseline_optimizer_spec.multi_step == 2
    initial = _weights(agents[0])
    updates = [_interact(agent) for agent in agents]
    assert updates[0] == updates[1] > 0
    for a, b in zip(_weights(agents[0]), _weights(agents[1])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(initial, _weights(agents[0])))


def test_step_wrapper_over_a_replay_update_sets_the_gradient_steps():
    agent = Agent.create(dict(RECENT_DQN, optimizer=dict(type="multi_step", num_steps=2,
                                                         optimizer=_adam())))
    assert agent.multi_step == 2
    calls = _capture_updates(agent)
    _interact(agent, steps=10)
    assert calls and all(batch["reward"].shape == (2, 4) for batch, _, _ in calls)


@pytest.mark.parametrize(("optimizer", "error", "words"), [
    (dict(type="subsampling_step", fraction=0.5, optimizer=dict(
        type="multi_step", num_steps=3, optimizer=_adam())), ArgumentError,
     re.escape("does not compose optimizer=")),
    (dict(type="multi_step", num_steps=2, optimizer=dict(
        type="multi_step", num_steps=2, optimizer=_adam())), ArgumentError,
     re.escape("does not compose optimizer=")),
    (dict(type="multi_step", num_steps=2, optimizer=dict(type="natural_gradient",
                                                         learning_rate=1e-2)),
     ArgumentError, re.escape("does not compose optimizer=")),
    (dict(type="multi_step", num_steps=2, optimizer=_adam(multi_step=3)), ArgumentError,
     re.escape("does not compose optimizer=")),
    (dict(type="multi_step", optimizer=_adam()), ArgumentError, "num_steps"),
    (dict(type="multi_step", num_steps=2, steps=3, optimizer=_adam()), ArgumentError,
     r"optimizer key\(s\) \['steps'\]"),
    (dict(type="multi_step", num_steps=0, optimizer=_adam()), ArgumentError,
     r"multi_step.*0"),
    (dict(type="subsampling_step", fraction=1.5, optimizer=_adam()), ArgumentError,
     r"subsampling_fraction.*1.5"),
])
def test_step_wrappers_are_checked(optimizer, error, words):
    with pytest.raises(error, match=words):
        Agent.create(agent="tensorforce", **dict(GENERIC_PPO, optimizer=optimizer))


# ---------------------------------------------------------------------- estimate_advantage
def _model_weights(agent: Agent, name: str) -> list[np.ndarray]:
    return [np.asarray(w) for w in agent._models()[name].get_weights()]


def test_early_advantage_uses_the_baseline_before_its_step():
    """'early': A = R - V_before(s); 'late' (True): A = R - V_after(s), V after
    the baseline optimizer's step. After one update, the policy of an 'early'
    agent equals that of a 'late' agent whose baseline step changes nothing,
    and differs from a 'late' agent with the same baseline step."""
    def create(advantage, learning_rate):
        return Agent.create(agent="tensorforce", **dict(
            GENERIC_PPO, baseline=SMALL,
            reward_estimation=dict(horizon="episode", discount=0.99,
                                   estimate_advantage=advantage),
            baseline_optimizer=dict(type="sgd", learning_rate=learning_rate)))

    early, frozen, late = create("early", 0.5), create("late", 1e-30), create(True, 0.5)
    for agent in (early, frozen, late):
        assert _interact(agent, steps=24) == 1
    for a, b in zip(_model_weights(early, "policy"), _model_weights(frozen, "policy")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(_model_weights(early, "baseline"), _model_weights(late, "baseline")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(
        _model_weights(early, "policy"), _model_weights(late, "policy")))
    assert any(not np.allclose(a, b) for a, b in zip(
        _model_weights(early, "baseline"), _model_weights(frozen, "baseline")))


def test_horizon_values_need_a_baseline_or_false():
    with pytest.raises(ArgumentError, match=r"predict_horizon_values.*False with horizon=1 "
                                            r"and no critic.*'early'"):
        Agent.create(agent="ac", states=STATES, actions=INT_ACTION, max_episode_timesteps=12,
                     batch_size=8, critic=None)
    with pytest.raises(ArgumentError, match=r"predict_horizon_values.*'late' or False.*'later'"):
        Agent.create(agent="a2c", states=STATES, actions=INT_ACTION, max_episode_timesteps=12,
                     batch_size=8, predict_horizon_values="later")


def test_estimate_advantage_values_are_checked():
    with pytest.raises(ArgumentError, match=r"estimate_advantage.*'early'.*'sometimes'"):
        Agent.create(agent="vpg", states=STATES, actions=INT_ACTION, max_episode_timesteps=12,
                     batch_size=2, estimate_advantage="sometimes")


# ---------------------------------------------------------------------- predict_horizon_values
LATE_A2C = dict(
    GENERIC_PPO, objective="policy_gradient", baseline=SMALL,
    update=dict(unit="timesteps", batch_size=8, frequency=4),
    reward_estimation=dict(horizon=3, discount=0.9, estimate_advantage=True,
                           predict_horizon_values="late"),
)


class Stream:
    """`_interact`'s stream of states, rewards and episode ends, kept to find the
    timestep of a batch row (every state is distinct)."""

    def __init__(self):
        self.states, self.rewards = [], []

    def run(self, agent: Agent, steps: int) -> None:
        rng = np.random.default_rng(0)
        for step in range(steps):
            self.states.append(rng.normal(size=4).astype(np.float32))
            agent.act(self.states[-1])
            self.rewards.append(float(rng.normal()))
            agent.observe(reward=self.rewards[-1], terminal=(step % 12 == 11))

    def timestep(self, state: np.ndarray) -> int:
        return next(i for i, s in enumerate(self.states) if np.array_equal(s, state))

    def n_step_sum(self, t: int, m: int, discount: float) -> float:
        return sum(discount ** k * self.rewards[t + k] for k in range(m))


def test_late_horizon_values_bootstrap_with_the_baseline_at_update_time():
    """`R_t = Σ_{k<m} γ^k r_{t+k} + γ^m V(s_{t+m})`, `m = min(3, e - t)` with `e`
    the end of t's segment (a cut every 4 timesteps, an episode end every 12:
    no bootstrap there), `V` the baseline when the update starts (half of each
    batch was valued when acting by the baseline before the previous update)."""
    agent = Agent.create(agent="tensorforce", **LATE_A2C)
    assert agent.agent_type == "a2c" and agent.late_horizon_values
    default = dict(LATE_A2C["reward_estimation"])
    del default["predict_horizon_values"]  # Tensorforce's default for an int horizon
    assert Agent.create(agent="tensorforce", **dict(
        LATE_A2C, reward_estimation=default)).late_horizon_values
    stream, checked, update = Stream(), [], agent._update_program_compiled

    def value(states):
        return keras.ops.convert_to_numpy(agent.baseline_model(
            {"state": np.asarray(states, np.float32)})).reshape(-1)

    def recording(batch, valid, hyper):
        n = int(valid.sum())
        late = agent._late_returns({k: keras.ops.convert_to_tensor(v) for k, v in batch.items()})
        returns = keras.ops.convert_to_numpy(late["return"])[:n]
        boundaries = range(4, 200, 4)
        for row in range(n):
            t = stream.timestep(batch["states/state"][row])
            end = next(b for b in boundaries if b > t)
            m = min(3, end - t)
            expected = stream.n_step_sum(t, m, 0.9)
            if not (end % 12 == 0 and t + m == end):  # no bootstrap after a true terminal
                expected += 0.9 ** m * value([stream.states[t + m]])[0]
            assert returns[row] == pytest.approx(expected, rel=1e-4, abs=1e-5), (t, m)
        checked.append(n)
        return update(batch, valid, hyper)

    agent._update_program_compiled = recording
    stream.run(agent, 40)
    assert checked == [4] + [8] * 8  # the cut at 40 waits for the next act


def test_late_and_early_horizon_values_make_different_updates():
    late = Agent.create(agent="tensorforce", **LATE_A2C)
    early = Agent.create(agent="tensorforce", **dict(LATE_A2C, reward_estimation=dict(
        LATE_A2C["reward_estimation"], predict_horizon_values="early")))
    assert not early.late_horizon_values
    assert _interact(late, steps=40) == _interact(early, steps=40) == 9
    assert any(not np.allclose(a, b) for a, b in zip(_weights(late), _weights(early)))


def test_late_horizon_values_survive_save_and_load(tmp_path):
    agent = Agent.create(agent="tensorforce", **LATE_A2C)
    _interact(agent, steps=24)  # the memory holds rows valued before the last update
    agent.save(tmp_path)
    loaded = Agent.load(tmp_path)
    assert loaded.late_horizon_values
    assert _interact(loaded, steps=24) == _interact(agent, steps=24) == 6
    for a, b in zip(_weights(agent), _weights(loaded)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_int_horizon_without_a_baseline_sums_n_rewards():
    """No baseline: no horizon values (Tensorforce's rule), `R_t = Σ_{k<m} γ^k r_{t+k}`,
    `m = min(3, e - t)` with `e` the end of t's segment (an update every 8
    timesteps, an episode end every 12)."""
    spec = dict(LATE_A2C, baseline=None, update=dict(unit="timesteps", batch_size=8),
                reward_estimation=dict(horizon=3, discount=0.9))
    agent = Agent.create(agent="tensorforce", **spec)
    assert agent.agent_type == "vpg" and agent.unbootstrapped_horizon
    assert agent.spec["reward_estimation"]["predict_horizon_values"] is False
    stream, checked, update = Stream(), [], agent._update_program_compiled

    def recording(batch, valid, hyper):
        boundaries = sorted(set(range(8, 200, 8)) | set(range(12, 200, 12)))
        for row in range(int(valid.sum())):
            t = stream.timestep(batch["states/state"][row])
            m = min(3, next(b for b in boundaries if b > t) - t)
            expected = stream.n_step_sum(t, m, 0.9)
            assert batch["return"][row] == pytest.approx(expected, rel=1e-5, abs=1e-6), (t, m)
        checked.append(int(valid.sum()))
        return update(batch, valid, hyper)

    agent._update_program_compiled = recording
    stream.run(agent, 32)
    assert checked == [8] * 4
    with pytest.raises(ArgumentError, match=re.escape("does not compose reward_estimation["
                                                      "'predict_horizon_values']='early'")):
        Agent.create(agent="tensorforce", **dict(spec, reward_estimation=dict(
            horizon=3, predict_horizon_values="early")))
