"""Vanilla policy gradient / REINFORCE (Williams, 1992), Tensorforce's `vpg`.

Implementation details:

1. Episodes are collected with the stochastic policy; an update runs every
   `update_frequency` episodes on the last `batch_size` episodes.
2. Returns are discounted Monte-Carlo returns to the end of the episode
   (aborted episodes, terminal 2, are bootstrapped with V(s) when there is a
   baseline).
3. Without a baseline the policy is trained on the return itself; with one
   (`baseline='auto'`, a separate value network), on `return - V(s)` with V
   predicted at update time after the baseline's step, or GAE(λ) when
   `gae_decay > 0`.
4. Loss: `-mean(log π(a|s) · A) - entropy_regularization · H(π)`; one Adam
   step per update (`multi_step=1`).

Logged metrics (`agent.last_metrics`): `policy_loss`, `entropy`, `loss`,
`gradient_norm`, and `value_loss` with a baseline. With several actions also
`entropy/<name>` per action (`entropy` is their sum), and `approx_kl` with
`approx_kl/<name>`: `E[(ρ-1) - log ρ]` of the policy after the update against
the one before it, on the update's batch (one more policy pass inside the
compiled update).
"""

from __future__ import annotations

from typing import Any

from kerasrl.agents.on_policy import OnPolicyAgent, _weighted_mean, parse_update
from kerasrl.optimizers import OptimizerSpec, optimizer_config


def policy_gradient_objective(agent, batch, weights, hyper):
    """`-E[log π(a|s) A] - c H(π)` over the weighted batch."""
    params = agent._policy_params(batch, training=True)
    terms = agent._action_terms(params, batch)
    log_prob, entropy = agent._sum_terms(terms)
    policy_loss = -_weighted_mean(log_prob * batch["advantage"], weights)
    entropy = _weighted_mean(entropy, weights)
    loss = policy_loss - hyper["entropy_regularization"] * entropy
    return loss, {"policy_loss": policy_loss, "entropy": entropy,
                  **agent._action_metrics(terms, batch, weights, kl=False)}


class VPG(OnPolicyAgent):
    """Vanilla policy gradient (REINFORCE), optionally with a baseline.

    Args:
        states, actions, max_episode_timesteps: See `Agent`.
        batch_size: Episodes per update (or give `update=dict(...)`).
        network: Policy network spec (`policy` is an alias).
        use_beta_distribution: Beta distributions for bounded float actions.
        memory: `'minimum'` or a capacity in timesteps.
        update_frequency: Every this many episodes (int) or share of
            `batch_size` (float, default 1.0).
        learning_rate: Adam learning rate (parameter, default 1e-3).
        discount: γ (parameter, default 0.99).
        gae_decay: GAE λ with a baseline (default 0: Monte-Carlo returns).
        reward_processing, return_processing, advantage_processing,
        predict_terminal_values: As for PPO.
        baseline: Baseline network spec (default None).
        baseline_optimizer: Loss weight or optimizer spec (default 1.0).
        l2_regularization, entropy_regularization, state_preprocessing,
        exploration, variable_noise: As for PPO.
        update: Generic update dict instead of batch_size/update_frequency.
        optimizer, max_grad_norm: Optimizer type/kwargs and gradient clipping.
        parallel_interactions, config: See `Agent`.

    Example:

    ```python
    agent = Agent.create(agent='vpg', environment='CartPole-v1', batch_size=4,
                         baseline='auto')
    ```
    """

    agent_type = "vpg"
    policy_metrics = ("policy_loss", "entropy")

    def __init__(
        self, states: Any, actions: Any, max_episode_timesteps: int | None = None,
        batch_size: int | None = None, network: Any = "auto", use_beta_distribution: bool = False,
        memory: Any = "minimum", update_frequency: Any = 1.0, learning_rate: Any = 1e-3,
        discount: Any = 0.99, gae_decay: float = 0.0, reward_processing: Any = None,
        return_processing: Any = None, advantage_processing: Any = None,
        predict_terminal_values: bool = False, baseline: Any = None,
        baseline_optimizer: Any = None, l2_regularization: Any = 0.0,
        entropy_regularization: Any = 0.0, state_preprocessing: Any = "linear_normalization",
        exploration: Any = 0.0, variable_noise: float = 0.0, update: Any = None,
        optimizer: Any = None, max_grad_norm: float | None = None, policy: Any = None,
        distributions: Any = None, parallel_interactions: int = 1, config: Any = None,
        **kwargs: Any,
    ):
        arguments = _arguments(locals())
        super().__init__(
            states, actions, max_episode_timesteps,
            update=parse_update(update, batch_size, update_frequency, "episodes", self.agent_type),
            network=network, policy=policy,
            optimizer=OptimizerSpec(optimizer_config(optimizer, learning_rate, max_grad_norm,
                                                     multi_step=1, subsampling_fraction=1.0)),
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
        self._store_spec(**arguments)

    def policy_objective(self, batch, weights, hyper):
        return policy_gradient_objective(self, batch, weights, hyper)


def _arguments(local_variables: dict) -> dict:
    """The constructor arguments worth storing in the agent spec."""
    from kerasrl import parameters

    skip = {"self", "states", "actions", "max_episode_timesteps", "kwargs",
            "parallel_interactions", "config", "__class__"}
    return {
        key: parameters.get_config(value) if isinstance(value, parameters.Parameter) else value
        for key, value in local_variables.items()
        if key not in skip and (value is not None or key == "batch_size")
    }
