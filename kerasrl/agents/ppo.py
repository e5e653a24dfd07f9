"""Proximal Policy Optimization (Schulman et al., 2017), Tensorforce's arguments.

Implementation details (CleanRL style):

1. Experience is collected with the current stochastic policy; act records
   the log-probability of each action and, with a baseline, V(s).
2. Advantages: without a baseline, the discounted return (Tensorforce's
   default); with a baseline and `gae_decay > 0`, GAE(λ) on the values
   recorded while acting; with a baseline and `gae_decay=0`, the Monte-Carlo
   return minus V(s) predicted at update time, after the baseline's own
   optimizer step (Tensorforce's "late" advantage). Aborted episodes
   (terminal 2) and rollouts cut mid-episode are bootstrapped with the value
   estimate.
3. `advantage_processing='normalize'` standardizes advantages over the batch.
4. Each update runs `multi_step` gradient steps; each step uses a random
   subset (`subsampling_fraction`) of the batch. All steps run inside one
   compiled call.
5. Policy loss: `-min(ρ A, clip(ρ, 1-ε, 1+ε) A)` with `ρ = exp(log π - log π_old)`
   and ε = `likelihood_ratio_clipping` (the paper's symmetric clip; Tensorforce
   used `1/(1+ε)` as lower bound, a negligible difference for small ε).
6. Entropy bonus `entropy_regularization * H(π)` is subtracted from the loss.
7. Baseline: a separate network trained on `(V(s) - R)^2`, either in the same
   loss with weight `baseline_optimizer` (a float) or with its own optimizer
   (a dict), which then runs first.

Logged metrics (`agent.last_metrics`): `policy_loss`, `entropy`, `approx_kl`
(`E[(ρ-1) - log ρ]`), `clip_fraction`, `value_loss`, `loss`, `gradient_norm`,
each averaged over the update's gradient steps. With several actions also
`entropy/<name>` and `approx_kl/<name>` per action (flattened action names;
`entropy` is their sum, `approx_kl` the same estimate on the joint ratio).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from kerasrl import parameters
from kerasrl.agents.on_policy import OnPolicyAgent, _weighted_mean, parse_update
from kerasrl.optimizers import OptimizerSpec, optimizer_config


class PPO(OnPolicyAgent):
    """Proximal Policy Optimization agent.

    Args:
        states: State spec.
        actions: Action spec.
        max_episode_timesteps: Maximum episode length.
        batch_size: Number of **episodes** per update (Tensorforce semantics).
            Use `update=dict(unit='timesteps', batch_size=...)` for rollouts of
            a fixed number of timesteps (counted over all parallel
            environments).
        update: Tensorforce's generic update dict, instead of `batch_size` and
            `update_frequency`.
        network: Policy network spec (default `'auto'`); `policy` is an alias.
        use_beta_distribution: Beta distributions for bounded float actions.
        memory: `'minimum'` or a capacity in timesteps.
        update_frequency: Updates every this many units (int), or this share
            of `batch_size` (float in (0, 1]; default 1.0).
        learning_rate: Adam learning rate (parameter, default 1e-3).
        multi_step: Gradient steps per update (default 10).
        subsampling_fraction: Share of the batch per gradient step (default 0.33).
        likelihood_ratio_clipping: ε of the clipped objective (parameter,
            default 0.25).
        discount: γ (parameter, default 0.99).
        gae_decay: GAE λ (default 0: Monte-Carlo returns).
        advantage_processing: None or `'normalize'`.
        predict_terminal_values: Bootstrap true terminals too.
        reward_processing, return_processing: None or clipping dicts.
        baseline: Baseline network spec (e.g. `'auto'`), default None.
        baseline_optimizer: Loss weight (float, default 1.0) or an optimizer
            spec for the baseline.
        l2_regularization, entropy_regularization: Loss coefficients.
        state_preprocessing: Default `'linear_normalization'`.
        exploration: Extra exploration (default 0).
        variable_noise: Standard deviation of the Gaussian noise on the policy
            weights while sampling (default 0, see `OnPolicyAgent`).
        optimizer: Optimizer type or dict instead of Adam (keras optimizer
            name and kwargs; `learning_rate`, `multi_step` and
            `subsampling_fraction` above still apply unless given here).
        max_grad_norm: Clip the global gradient norm (default None).
        parallel_interactions, config: See `Agent`.

    Example:

    ```python
    agent = Agent.create(agent='ppo', environment='CartPole-v1', batch_size=10,
                         baseline='auto', baseline_optimizer=1.0)
    ```
    """

    agent_type = "ppo"
    policy_metrics = ("policy_loss", "entropy", "approx_kl", "clip_fraction")

    def __init__(
        self,
        states: Any,
        actions: Any,
        max_episode_timesteps: int | None = None,
        batch_size: int | None = None,
        network: Any = "auto",
        use_beta_distribution: bool = False,
        memory: Any = "minimum",
        update_frequency: Any = 1.0,
        learning_rate: Any = 1e-3,
        multi_step: int = 10,
        subsampling_fraction: float = 0.33,
        likelihood_ratio_clipping: Any = 0.25,
        discount: Any = 0.99,
        gae_decay: float = 0.0,
        advantage_processing: Any = None,
        predict_terminal_values: bool = False,
        reward_processing: Any = None,
        return_processing: Any = None,
        baseline: Any = None,
        baseline_optimizer: Any = None,
        l2_regularization: Any = 0.0,
        entropy_regularization: Any = 0.0,
        state_preprocessing: Any = "linear_normalization",
        exploration: Any = 0.0,
        variable_noise: float = 0.0,
        update: Any = None,
        optimizer: Any = None,
        max_grad_norm: float | None = None,
        policy: Any = None,
        distributions: Any = None,
        parallel_interactions: int = 1,
        config: Any = None,
        **kwargs: Any,
    ):
        arguments = {k: v for k, v in locals().items()
                     if k not in ("self", "states", "actions", "max_episode_timesteps",
                                  "kwargs", "parallel_interactions", "config", "__class__")}
        update_spec = parse_update(update, batch_size, update_frequency, "episodes", "ppo")
        optimizer = optimizer_config(optimizer, learning_rate, max_grad_norm,
                                     multi_step=multi_step,
                                     subsampling_fraction=subsampling_fraction)
        self.likelihood_ratio_clipping = parameters.create(
            likelihood_ratio_clipping, "likelihood_ratio_clipping", low=0.0, low_open=True,
            where="agent 'ppo'",
        )
        super().__init__(
            states, actions, max_episode_timesteps,
            update=update_spec, network=network, policy=policy,
            optimizer=OptimizerSpec(optimizer, name="optimizer"),
            discount=discount, gae_decay=gae_decay, baseline=baseline,
            baseline_optimizer=baseline_optimizer,
            use_beta_distribution=use_beta_distribution, distributions=distributions,
            state_preprocessing=state_preprocessing, memory=memory,
            entropy_regularization=entropy_regularization, l2_regularization=l2_regularization,
            exploration=exploration, variable_noise=variable_noise,
            predict_terminal_values=predict_terminal_values,
            advantage_processing=advantage_processing, reward_processing=reward_processing,
            return_processing=return_processing, parallel_interactions=parallel_interactions,
            config=config, **kwargs,
        )
        self._store_spec(**{k: parameters.get_config(v) if isinstance(v, parameters.Parameter)
                            else v for k, v in arguments.items()
                            if v is not None or k in ("batch_size",)})

    def _hyper(self, n: int, counters: dict) -> dict:
        hyper = super()._hyper(n, counters)
        hyper["clip"] = np.float32(self.likelihood_ratio_clipping.value(counters))
        return hyper

    def policy_objective(self, batch, weights, hyper):
        """The clipped surrogate loss of one gradient step (see module docstring)."""
        params = self._policy_params(batch, training=True)
        terms = self._action_terms(params, batch)
        log_prob, entropy = self._sum_terms(terms)
        log_ratio = log_prob - batch["log_prob"]
        ratio = ops.exp(log_ratio)
        advantage = batch["advantage"]
        clip = hyper["clip"]
        surrogate = ops.minimum(ratio * advantage,
                                ops.clip(ratio, 1.0 - clip, 1.0 + clip) * advantage)
        policy_loss = -_weighted_mean(surrogate, weights)
        entropy = _weighted_mean(entropy, weights)
        loss = policy_loss - hyper["entropy_regularization"] * entropy
        metrics = {
            "policy_loss": policy_loss,
            "entropy": entropy,
            "approx_kl": _weighted_mean((ratio - 1.0) - log_ratio, weights),
            "clip_fraction": _weighted_mean(
                ops.cast(ops.abs(ratio - 1.0) > clip, "float32"), weights),
            **self._action_metrics(terms, batch, weights, kl=True),
        }
        return loss, metrics
