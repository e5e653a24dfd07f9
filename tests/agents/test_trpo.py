"""TRPO: the natural-gradient step (conjugate gradient, KL-scaled step, line
search) on each backend, and the agent's creation, defaults, updates and
argument checks (the learning test lives in tests/test_learning.py)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from kerasrl import Agent
from kerasrl import backend as kbackend
from kerasrl.agents.trpo import TRPO
from kerasrl.backend.natural_gradient import conjugate_gradient
from kerasrl.errors import ArgumentError, KerasRLError

STATES = dict(type="float", shape=(3,))
ACTIONS = dict(type="int", num_values=3)
NETWORK = [dict(type="dense", size=8)]
BASE = dict(states=STATES, actions=ACTIONS, max_episode_timesteps=10, network=NETWORK)


def create(**kwargs):
    return Agent.create(agent="trpo", **{**BASE, **kwargs})


def run_until_update(agent, rng, max_steps=200):
    """Acts with rewards that favour action 0 until the first update."""
    for t in range(max_steps):
        action = agent.act(rng.normal(size=3))
        if agent.observe(reward=float(action == 0), terminal=int(t % 10 == 9)):
            return
    raise AssertionError("no update happened")


def softmax(logits):
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def numpy_of(variable):
    return np.array(keras.ops.convert_to_numpy(variable.value))


def natural_step(loss_fn, kl_fn, variable, **kwargs):
    """Runs one `natural_gradient_step` on `[variable]` in a compiled engine function."""
    engine = kbackend.Engine([variable])
    step = engine.function(
        lambda: kbackend.natural_gradient_step(loss_fn, kl_fn, [variable], **kwargs)[2]
    )
    return {k: float(v) for k, v in step().items()}


# ====================================================================== conjugate gradient
def test_conjugate_gradient_solves_spd_system_on_lists():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(6, 6))
    a = (m @ m.T + 6 * np.eye(6)).astype("float32")
    b = rng.normal(size=6).astype("float32")

    def matvec(vector):  # the vector is a list: a (4,) and a (2,) piece
        product = ops.matmul(a, ops.concatenate(vector))
        return [product[:4], product[4:]]

    x, residual = conjugate_gradient(matvec, [b[:4], b[4:]], iterations=6)
    np.testing.assert_allclose(np.concatenate([ops.convert_to_numpy(t) for t in x]),
                               np.linalg.solve(a, b), rtol=1e-3, atol=1e-4)
    assert float(residual) < 1e-3
    # Fewer iterations than the dimension: an approximation, not the solution.
    few, _ = conjugate_gradient(matvec, [b[:4], b[4:]], iterations=1)
    assert not np.allclose(np.concatenate([ops.convert_to_numpy(t) for t in few]),
                           np.linalg.solve(a, b), atol=1e-3)


# ====================================================================== natural_gradient_step
def test_step_matches_closed_form_natural_gradient():
    """Categorical logits: F = diag(p) - ppᵀ; the accepted full step is the analytic one."""
    theta0 = np.array([0.2, -0.1, 0.4], "float32")
    advantage = np.array([1.0, -0.5, 0.2], "float32")
    theta = keras.Variable(theta0, name="theta")
    old = softmax(theta0)
    max_kl, damping = 1e-3, 0.1

    def loss_fn():
        loss = -ops.sum(ops.softmax(theta.value) * ops.convert_to_tensor(advantage))
        return loss, {}

    def kl_fn():
        log_old = ops.convert_to_tensor(np.log(old).astype("float32"))
        return ops.sum(ops.exp(log_old) * (log_old - ops.log_softmax(theta.value)))

    metrics = natural_step(loss_fn, kl_fn, theta, max_kl=max_kl, cg_damping=damping)
    p = old
    gradient = -p * (advantage - p @ advantage)
    fisher = np.diag(p) - np.outer(p, p) + damping * np.eye(3)
    x = np.linalg.solve(fisher, gradient)
    step = -np.sqrt(2 * max_kl / (x @ fisher @ x)) * x
    np.testing.assert_allclose(numpy_of(theta), theta0 + step, rtol=1e-4, atol=1e-6)
    assert metrics["accepted"] == 1.0 and metrics["step_fraction"] == 1.0
    assert metrics["backtracks"] == 0.0
    assert metrics["loss_after"] < -float(old @ advantage)
    assert 0.0 < metrics["kl"] <= 1.5 * max_kl
    np.testing.assert_allclose(metrics["expected_improvement"], -gradient @ step, rtol=1e-4)


def quadratic_problem(kl_quartic=0.0):
    """θ ∈ R, loss (θ-1)², KL ½θ² + c·θ⁴ (Fisher 1 at θ=0), starting at 0."""
    theta = keras.Variable(np.zeros(1, "float32"), name="theta")

    def loss_fn():
        loss = ops.sum(ops.square(theta.value - 1.0))
        return loss, {"loss": loss}

    def kl_fn():
        value = theta.value
        return ops.sum(0.5 * ops.square(value) + kl_quartic * ops.square(ops.square(value)))

    return theta, loss_fn, kl_fn


def test_line_search_backtracks_over_steps_that_make_the_loss_worse():
    # max_kl=50: full step θ = sqrt(2·50/(4/1.1))·(2/1.1) ≈ 9.53, loss 72 > 1;
    # halving: 4.77 (worse), 2.38 (worse), 1.19 (better): accepted at 1/8.
    full = np.sqrt(2 * 50.0 / (4 / 1.1)) * (2 / 1.1)
    theta, loss_fn, kl_fn = quadratic_problem()
    metrics = natural_step(loss_fn, kl_fn, theta, max_kl=50.0, linesearch_iterations=10,
                           backtracking_factor=0.5)
    np.testing.assert_allclose(numpy_of(theta), [full / 8], rtol=1e-5)
    assert metrics["accepted"] == 1.0 and metrics["backtracks"] == 3.0
    assert metrics["step_fraction"] == 0.125
    np.testing.assert_allclose(metrics["loss_after"], (full / 8 - 1) ** 2, rtol=1e-4)


def test_line_search_rejects_when_no_candidate_improves():
    theta, loss_fn, kl_fn = quadratic_problem()
    metrics = natural_step(loss_fn, kl_fn, theta, max_kl=50.0, linesearch_iterations=3,
                           backtracking_factor=0.5)
    np.testing.assert_array_equal(numpy_of(theta), [0.0])
    assert metrics["accepted"] == 0.0 and metrics["step_fraction"] == 0.0
    assert metrics["backtracks"] == 3.0 and metrics["kl"] == 0.0
    assert metrics["loss_after"] == 1.0


def test_line_search_rejects_steps_over_the_kl_bound():
    # max_kl=0.5: full step ≈ 0.953 lowers the loss, but the true KL
    # (0.454 + 0.825) exceeds 1.5·0.5; the half step is accepted.
    theta, loss_fn, kl_fn = quadratic_problem(kl_quartic=1.0)
    metrics = natural_step(loss_fn, kl_fn, theta, max_kl=0.5, backtracking_factor=0.5)
    full = np.sqrt(2 * 0.5 / (4 / 1.1)) * (2 / 1.1)
    assert (full - 1) ** 2 < 1.0  # the full step alone would improve the loss
    np.testing.assert_allclose(numpy_of(theta), [full / 2], rtol=1e-5)
    assert metrics["backtracks"] == 1.0 and metrics["accepted"] == 1.0
    assert metrics["kl"] <= 0.75


def test_without_line_search_the_full_step_is_applied():
    theta, loss_fn, kl_fn = quadratic_problem()
    metrics = natural_step(loss_fn, kl_fn, theta, max_kl=50.0, linesearch_iterations=0)
    full = np.sqrt(2 * 50.0 / (4 / 1.1)) * (2 / 1.1)
    np.testing.assert_allclose(numpy_of(theta), [full], rtol=1e-5)
    assert metrics["step_fraction"] == 1.0 and metrics["loss_after"] > 1.0


# ====================================================================== agent
def test_registry_defaults_and_config():
    agent = create(batch_size=2)
    assert isinstance(agent, TRPO) and agent.agent_type == "trpo"
    assert agent.max_kl.value() == 1e-2
    assert agent.linesearch_iterations == 10
    assert agent.cg_iterations == 10 and agent.cg_damping == 0.1
    assert agent.backtracking_factor == 0.75
    assert agent.optimizer_spec.subsampling_fraction == 1.0
    assert agent.update_spec == {"unit": "episodes", "batch_size": 2, "frequency": 2, "start": 0}
    assert agent.discount.value() == 0.99
    assert agent.baseline_model is None and agent.baseline_optimizer_spec is None
    config = agent.get_config()
    assert config["agent"] == "trpo" and config["learning_rate"] == 1e-2
    assert type(Agent.create(agent=config)) is TRPO
    agent.close()


def test_one_update_changes_policy_within_the_kl_bound():
    max_kl = 0.01
    agent = create(batch_size=2, learning_rate=max_kl, config=dict(seed=0))
    before = agent.policy_model.get_weights()
    run_until_update(agent, np.random.default_rng(0))
    after = agent.policy_model.get_weights()
    assert agent.updates == 1
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    metrics = agent.last_metrics
    assert metrics["accepted"] == 1.0 and 0.0 < metrics["step_fraction"] <= 1.0
    assert metrics["loss_after"] < metrics["loss"]
    # KL(old ‖ new) measured outside the update, on the batch it used.
    states = {"state": agent.memory.latest_episodes(2)["states/state"]}

    def logits():
        return ops.convert_to_numpy(agent.policy_model(states)["action"]["logits"])

    new_logits = logits()
    agent.policy_model.set_weights(before)
    old_logits = logits()
    agent.policy_model.set_weights(after)
    p, q = softmax(old_logits), softmax(new_logits)
    kl = np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=-1))
    assert 0.0 < kl <= 1.5 * max_kl
    np.testing.assert_allclose(metrics["kl"], kl, rtol=1e-3, atol=1e-6)
    change = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(after, before)))
    np.testing.assert_allclose(metrics["update_norm"], change, rtol=1e-4)
    agent.close()


def test_baseline_has_its_own_optimizer():
    agent = create(update=dict(unit="timesteps", batch_size=16), baseline=NETWORK,
                   gae_decay=0.9, advantage_processing="normalize", subsampling_fraction=0.5,
                   config=dict(seed=0))
    spec = agent.baseline_optimizer_spec
    assert spec.type == "adam" and spec.multi_step == 10
    assert spec.learning_rate.value() == 1e-3
    baseline_before = agent.baseline_model.get_weights()
    run_until_update(agent, np.random.default_rng(1))
    metrics = agent.last_metrics
    assert {"value_loss", "baseline_gradient_norm", "kl", "accepted"} <= set(metrics)
    assert np.isfinite(list(metrics.values())).all()
    assert metrics["kl"] <= 1.5 * 1e-2
    assert any(not np.allclose(a, b)
               for a, b in zip(baseline_before, agent.baseline_model.get_weights()))
    agent.close()


def test_float_actions_update():
    agent = create(actions=dict(type="float", shape=(2,), min_value=-1.0, max_value=1.0),
                   batch_size=1, config=dict(seed=0))
    rng = np.random.default_rng(2)
    for t in range(10):
        action = agent.act(rng.normal(size=3))
        agent.observe(reward=-float(np.sum(np.square(action))), terminal=int(t == 9))
    assert agent.updates == 1
    assert np.isfinite(list(agent.last_metrics.values())).all()
    assert agent.last_metrics["kl"] <= 1.5 * 1e-2
    agent.close()


@pytest.mark.parametrize("arguments, name", [
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(learning_rate=-1e-2), "learning_rate"),
    (dict(linesearch_iterations=-1), "linesearch_iterations"),
    (dict(linesearch_iterations=2.5), "linesearch_iterations"),
    (dict(cg_iterations=0), "cg_iterations"),
    (dict(cg_damping=-0.1), "cg_damping"),
    (dict(backtracking_factor=1.0), "backtracking_factor"),
    (dict(baseline="auto", baseline_optimizer=0.5), "baseline_optimizer"),
    (dict(baseline_optimizer=dict(optimizer="adam")), "baseline_optimizer"),
    (dict(subsampling_fraction=1.5), "subsampling_fraction"),
    (dict(foo=1), "foo"),
])
def test_bad_arguments(arguments, name):
    with pytest.raises(ArgumentError, match=name):
        create(batch_size=2, **arguments)


def test_missing_batch_size():
    with pytest.raises(KerasRLError, match="batch_size"):
        Agent.create(agent="trpo", states=STATES, actions=ACTIONS)
