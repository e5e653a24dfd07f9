"""Trust Region Policy Optimization (Schulman et al., 2015), Tensorforce's `trpo`.

Implementation details (CleanRL style):

1. Experience is collected with the current stochastic policy; act records
   the log-probability of each action and, with a baseline, V(s). An update
   runs every `update_frequency` episodes on the last `batch_size` episodes
   (or on rollouts of `update=dict(unit='timesteps', batch_size=...)`).
2. Advantages as for PPO: without a baseline the discounted return; with a
   baseline and `gae_decay > 0`, GAE(λ) on the values recorded while acting;
   with `gae_decay=0`, the Monte-Carlo return minus V(s) predicted at update
   time, after the baseline's step. `advantage_processing='normalize'`
   standardizes them over the batch.
3. The baseline (if any) is trained first by its own optimizer
   (`baseline_optimizer`, default Adam, learning rate 1e-3, 10 steps per
   update) on `(V(s) - R)^2`. A float loss weight is not accepted: the
   policy step is not a gradient step on a combined loss.
4. Surrogate loss (Tensorforce's policy_gradient objective with importance
   sampling): `L(θ) = -mean(ρ A) - entropy_regularization · H(π_θ)` with
   `ρ = exp(log π_θ(a|s) - log π_act(a|s))`, plus the L2 penalty.
5. One natural-gradient step per update (`kerasrl.backend.natural_gradient_step`):
   the gradient `g = ∇L`, conjugate gradient (`cg_iterations`) on
   Fisher-vector products `F v = ∇(∇KL · v) + cg_damping · v`, where KL is
   the mean KL(π_old ‖ π_θ) over the batch, π_old the policy before the
   update (fixed); the full step `-sqrt(2 δ / xᵀFx) x` with `δ =
   learning_rate` makes the quadratic KL estimate equal δ.
6. Backtracking line search over `linesearch_iterations` fractions
   `1, β, β², ...` (β = `backtracking_factor`): the first candidate that lowers
   `L` and keeps the mean KL ≤ 1.5 δ is accepted; if none does (or the
   direction is not a descent direction), the policy is left unchanged.
7. Everything (baseline steps, advantages, CG, line search) runs inside one
   compiled call.

Logged metrics (`agent.last_metrics`): `policy_loss`, `entropy` and `loss`
(surrogate, before the step), `loss_after`, `kl` (mean KL of the new policy
from the old one on the batch), `step_fraction` (accepted share of the full
step, 0 when rejected), `backtracks`, `accepted`, `gradient_norm`,
`expected_improvement` (`-gᵀ step` for the full step), `cg_residual`, and with
a baseline `value_loss` and `baseline_gradient_norm`. With several actions also
`entropy/<name>` (before the step; `entropy` is their sum) and
`approx_kl/<name>`: the exact mean KL of that action's distribution after the
step (their sum is `kl`; the key is shared with the other on-policy agents).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops, tree

from kerasrl import backend as kbackend
from kerasrl import parameters
from kerasrl.agents.on_policy import (
    OnPolicyAgent,
    _snapshot,
    _weighted_mean,
    change_norm,
    parse_update,
)
from kerasrl.agents.vpg import _arguments
from kerasrl.errors import ArgumentError
from kerasrl.optimizers import OptimizerSpec
from kerasrl.validation import check_float, check_int

#: The baseline optimizer used when `baseline` is given without one.
DEFAULT_BASELINE_OPTIMIZER = {"optimizer": "adam", "learning_rate": 1e-3, "multi_step": 10}
#: A line-search candidate must keep the mean KL at most this times `learning_rate`.
KL_TOLERANCE = 1.5


class TRPO(OnPolicyAgent):
    """Trust Region Policy Optimization agent.

    Args:
        states: State spec.
        actions: Action spec.
        max_episode_timesteps: Maximum episode length.
        batch_size: Number of **episodes** per update (Tensorforce semantics);
            or give `update=dict(unit='timesteps', batch_size=...)`.
        network: Policy network spec (default `'auto'`); `policy` is an alias.
        use_beta_distribution: Beta distributions for bounded float actions.
        memory: `'minimum'` or a capacity in timesteps.
        update_frequency: Every this many episodes (int), or this share of
            `batch_size` (float in (0, 1]; default 1.0).
        learning_rate: The KL step size δ, i.e. the maximum mean KL divergence
            between the policies before and after an update (parameter,
            default 1e-2).
        linesearch_iterations: Line-search candidates (default 10; 0 applies
            the full step without checks).
        subsampling_fraction: Share of the batch used by the update
            (default 1.0).
        discount: γ (parameter, default 0.99).
        gae_decay: GAE λ with a baseline (default 0: Monte-Carlo returns).
        advantage_processing: None or `'normalize'`.
        predict_terminal_values: Bootstrap true terminals too.
        reward_processing, return_processing: None or clipping dicts.
        baseline: Baseline network spec (e.g. `'auto'`), default None.
        baseline_optimizer: Optimizer spec of the baseline (default, with a
            baseline: `dict(optimizer='adam', learning_rate=1e-3,
            multi_step=10)`). A float loss weight raises `ArgumentError`.
        l2_regularization, entropy_regularization: Loss coefficients.
        state_preprocessing: Default `'linear_normalization'`.
        exploration: Extra exploration (default 0).
        cg_iterations: Conjugate-gradient iterations (Tensorforce's
            `cg_max_iterations`, default 10).
        cg_damping: Damping added to the Fisher matrix (default 0.1).
        backtracking_factor: Shrink factor of the line search (default 0.75,
            as Tensorforce's `linesearch_step`).
        update: Tensorforce's generic update dict, instead of `batch_size` and
            `update_frequency`.
        parallel_interactions, config: See `Agent`.

    The base class' policy optimizer is a plain SGD whose learning-rate
    variable only carries the scheduled δ; it never updates the policy.

    Example:

    ```python
    agent = Agent.create(agent='trpo', environment='CartPole-v1', batch_size=10,
                         baseline='auto', learning_rate=1e-2)
    ```
    """

    agent_type = "trpo"
    policy_metrics = ("policy_loss", "entropy")

    def __init__(
        self, states: Any, actions: Any, max_episode_timesteps: int | None = None,
        batch_size: int | None = None, network: Any = "auto", use_beta_distribution: bool = False,
        memory: Any = "minimum", update_frequency: Any = 1.0, learning_rate: Any = 1e-2,
        linesearch_iterations: int = 10, subsampling_fraction: float = 1.0,
        discount: Any = 0.99, gae_decay: float = 0.0, reward_processing: Any = None,
        return_processing: Any = None, advantage_processing: Any = None,
        predict_terminal_values: bool = False, baseline: Any = None,
        baseline_optimizer: Any = None, l2_regularization: Any = 0.0,
        entropy_regularization: Any = 0.0, state_preprocessing: Any = "linear_normalization",
        exploration: Any = 0.0, variable_noise: float = 0.0, cg_iterations: int = 10,
        cg_damping: float = 0.1, backtracking_factor: float = 0.75, update: Any = None,
        policy: Any = None, distributions: Any = None, parallel_interactions: int = 1,
        config: Any = None, **kwargs: Any,
    ):
        arguments = _arguments(locals())
        where = "agent 'trpo'"
        max_kl = parameters.create(learning_rate, "learning_rate", low=0.0, low_open=True,
                                   where=where)  # the max-KL step size
        self.linesearch_iterations = check_int(linesearch_iterations, "linesearch_iterations",
                                               minimum=0, where=where)
        self.cg_iterations = check_int(cg_iterations, "cg_iterations", minimum=1, where=where)
        self.cg_damping = check_float(cg_damping, "cg_damping", low=0.0, where=where)
        self.backtracking_factor = check_float(backtracking_factor, "backtracking_factor",
                                               low=0.0, high=1.0, low_open=True,
                                               high_open=True, where=where)
        if baseline is not None:
            if baseline_optimizer is None:
                baseline_optimizer = dict(DEFAULT_BASELINE_OPTIMIZER)
            elif isinstance(baseline_optimizer, (int, float)) and not isinstance(
                    baseline_optimizer, bool):
                raise ArgumentError.invalid(
                    "baseline_optimizer",
                    "an optimizer spec (TRPO's natural-gradient policy step cannot share a "
                    "loss with the baseline, so a loss weight is not accepted)",
                    baseline_optimizer, where="agent 'trpo'",
                )
        # The base class wants an optimizer for the policy: a plain SGD whose
        # learning-rate variable holds δ (assigned before each update) and is
        # never applied.
        optimizer = OptimizerSpec(
            {"type": "sgd", "learning_rate": max_kl, "subsampling_fraction": subsampling_fraction},
            name="optimizer",
        )
        super().__init__(
            states, actions, max_episode_timesteps,
            update=parse_update(update, batch_size, update_frequency, "episodes", self.agent_type),
            network=network, policy=policy, optimizer=optimizer,
            discount=discount, gae_decay=gae_decay, baseline=baseline,
            baseline_optimizer=baseline_optimizer, use_beta_distribution=use_beta_distribution,
            distributions=distributions, state_preprocessing=state_preprocessing, memory=memory,
            entropy_regularization=entropy_regularization, l2_regularization=l2_regularization,
            exploration=exploration, variable_noise=variable_noise,
            predict_terminal_values=predict_terminal_values,
            advantage_processing=advantage_processing, reward_processing=reward_processing,
            return_processing=return_processing, parallel_interactions=parallel_interactions,
            config=config, **kwargs,
        )
        self.max_kl = max_kl
        self._store_spec(**arguments)

    # ------------------------------------------------------------------ losses
    def policy_objective(self, batch, weights, hyper):
        """The importance-sampled surrogate loss `-mean(ρ A) - c H(π)` (+ L2)."""
        params = self._policy_params(batch)
        terms = self._action_terms(params, batch)
        log_prob, entropy = self._sum_terms(terms)
        ratio = ops.exp(log_prob - batch["log_prob"])
        policy_loss = -_weighted_mean(ratio * batch["advantage"], weights)
        entropy = _weighted_mean(entropy, weights)
        loss = policy_loss - hyper["entropy_regularization"] * entropy
        loss = loss + hyper["l2_regularization"] * self._l2_penalty(
            self.policy_model.trainable_variables)
        return loss, {"policy_loss": policy_loss, "entropy": entropy,
                      **self._action_metrics(terms, batch, weights, kl=False)}

    def _kl_terms(self, batch, old_params) -> dict:
        """`{action name: KL(π_old ‖ π_θ)}` per batch row, `(B,)` each."""
        params = self._policy_params(batch)
        masks = self._batch_masks(batch)
        return {name: dist.kl_divergence(old_params[name], params[name], mask=masks.get(name))
                for name, dist in self.distributions.items()}

    def policy_kl(self, batch, weights, old_params):
        """Mean KL(π_old ‖ π_θ) over the weighted batch (π_old given by `old_params`)."""
        kl = None
        for term in self._kl_terms(batch, old_params).values():
            kl = term if kl is None else kl + term
        return _weighted_mean(kl, weights)

    # ------------------------------------------------------------------ update
    def _update_program(self, batch, valid, hyper):
        batch, metrics = self._baseline_and_advantage(batch, valid, hyper)
        weights = valid
        fraction = self.optimizer_spec.subsampling_fraction
        if not (isinstance(fraction, float) and fraction >= 1.0):
            weights = self._subsample_weights(valid, hyper["rows"])
        old_params = tree.map_structure(ops.stop_gradient, self._policy_params(batch))
        policy_variables = list(self.policy_model.trainable_variables)
        before = _snapshot(policy_variables)
        loss, policy_metrics, step_metrics = kbackend.natural_gradient_step(
            lambda b, w, h, _: self.policy_objective(b, w, h),
            lambda b, w, _, old: self.policy_kl(b, w, old),
            policy_variables, batch, weights, hyper, old_params,
            max_kl=hyper["max_kl"], cg_iterations=self.cg_iterations,
            cg_damping=self.cg_damping, linesearch_iterations=self.linesearch_iterations,
            backtracking_factor=self.backtracking_factor, kl_tolerance=KL_TOLERANCE,
        )
        metrics.update(policy_metrics)
        metrics.update(step_metrics)
        metrics["loss"] = loss
        metrics["update_norm"] = change_norm(policy_variables, before)
        if len(self.actions_spec) > 1:
            # Per action, the exact KL of the updated policy (as `kl`, which is
            # their sum), from one more policy pass inside the compiled update.
            for name, term in self._kl_terms(batch, old_params).items():
                metrics[f"approx_kl/{name}"] = ops.stop_gradient(_weighted_mean(term, weights))
        return metrics

    def _hyper(self, n: int, counters: dict) -> dict:
        hyper = super()._hyper(n, counters)
        hyper["max_kl"] = np.float32(self.max_kl.value(counters))
        return hyper
