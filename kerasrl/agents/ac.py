"""Actor-critic (`ac`) and advantage actor-critic (`a2c`), Tensorforce's arguments.

Implementation details:

1. `batch_size` counts **timesteps** (over all parallel environments); the
   rollout is cut every `update_frequency` timesteps and bootstrapped with the
   critic's value of the next state (the update then runs at the next `act`,
   see `kerasrl.agents.on_policy`).
2. Returns are n-step bootstrapped returns with `horizon` (default 1):
   `R_t = Σ_{k<n} γ^k r_{t+k} + γ^n V(s_{t+n})`, truncated at episode ends
   (0 after a true terminal, V(s) after an aborted one).
3. The critic (`critic='auto'`, a separate value network) minimises
   `(V(s) - R)^2`; with `critic_optimizer` a float (default 1.0) it is trained
   in the same loss with that weight, otherwise by its own optimizer first.
4. `ac` trains the actor on the return itself, `-log π(a|s) R` (Tensorforce's
   choice); `a2c` on the advantage `R - V(s)` (V predicted at update time).
   `advantage_processing='normalize'` standardizes it.
5. One Adam step per update on the whole batch.

Logged metrics: `policy_loss`, `entropy`, `value_loss`, `loss`, `gradient_norm`.
With several actions also `entropy/<name>` per action (`entropy` is their
sum), and `approx_kl` with `approx_kl/<name>`: `E[(ρ-1) - log ρ]` of the policy
after the update against the one before it, on the update's batch.
"""

from __future__ import annotations

from typing import Any

from kerasrl.agents.on_policy import OnPolicyAgent, parse_update
from kerasrl.agents.vpg import _arguments, policy_gradient_objective
from kerasrl.optimizers import OptimizerSpec, optimizer_config


class AC(OnPolicyAgent):
    """Actor-critic: the policy is trained on n-step bootstrapped returns.

    Args:
        states, actions, max_episode_timesteps: See `Agent`.
        batch_size: Timesteps per update (or give `update=dict(...)`).
        network: Actor network spec (`policy` is an alias).
        use_beta_distribution: Beta distributions for bounded float actions.
        memory: `'minimum'` or a capacity in timesteps.
        update_frequency: Every this many timesteps (int) or share of
            `batch_size` (float, default 1.0).
        learning_rate: Adam learning rate (parameter, default 1e-3).
        horizon: n of the n-step returns (default 1).
        discount: γ (parameter, default 0.99).
        reward_processing, return_processing, advantage_processing,
        predict_terminal_values: As for PPO.
        critic: Critic network spec (default `'auto'`).
        critic_optimizer: Loss weight (float, default 1.0) or optimizer spec.
        l2_regularization, entropy_regularization, state_preprocessing,
        exploration, variable_noise: As for PPO.
        update, optimizer, max_grad_norm: As for PPO.
        parallel_interactions, config: See `Agent`.

    Example:

    ```python
    agent = Agent.create(agent='a2c', environment='CartPole-v1', batch_size=64,
                         parallel_interactions=8)
    ```
    """

    agent_type = "ac"
    policy_metrics = ("policy_loss", "entropy")
    baseline_argument = "critic"
    estimates_advantage = False

    def __init__(
        self, states: Any, actions: Any, batch_size: int | None = None,
        max_episode_timesteps: int | None = None, network: Any = "auto",
        use_beta_distribution: bool = False, memory: Any = "minimum",
        update_frequency: Any = 1.0, learning_rate: Any = 1e-3, horizon: int = 1,
        discount: Any = 0.99, reward_processing: Any = None, return_processing: Any = None,
        advantage_processing: Any = None, predict_terminal_values: bool = False,
        critic: Any = "auto", critic_optimizer: Any = 1.0, l2_regularization: Any = 0.0,
        entropy_regularization: Any = 0.0, state_preprocessing: Any = "linear_normalization",
        exploration: Any = 0.0, variable_noise: float = 0.0, update: Any = None,
        optimizer: Any = None, max_grad_norm: float | None = None, policy: Any = None,
        distributions: Any = None, parallel_interactions: int = 1, config: Any = None,
        **kwargs: Any,
    ):
        arguments = _arguments(locals())
        # the generic agent's reward_estimation['estimate_advantage'] ('early'/'late')
        estimate_advantage = kwargs.pop("estimate_advantage", self.estimates_advantage)
        super().__init__(
            states, actions, max_episode_timesteps,
            update=parse_update(update, batch_size, update_frequency, "timesteps",
                                self.agent_type),
            network=network, policy=policy,
            optimizer=OptimizerSpec(optimizer_config(optimizer, learning_rate, max_grad_norm,
                                                     multi_step=1, subsampling_fraction=1.0)),
            discount=discount, baseline=critic, baseline_optimizer=critic_optimizer,
            use_beta_distribution=use_beta_distribution, distributions=distributions,
            state_preprocessing=state_preprocessing, memory=memory,
            entropy_regularization=entropy_regularization, l2_regularization=l2_regularization,
            exploration=exploration, variable_noise=variable_noise,
            predict_terminal_values=predict_terminal_values,
            advantage_processing=advantage_processing, reward_processing=reward_processing,
            return_processing=return_processing, horizon=horizon,
            estimate_advantage=estimate_advantage,
            parallel_interactions=parallel_interactions, config=config, **kwargs,
        )
        self._store_spec(**arguments)

    def policy_objective(self, batch, weights, hyper):
        return policy_gradient_objective(self, batch, weights, hyper)


class A2C(AC):
    """Advantage actor-critic: like `AC`, with the policy trained on `R - V(s)`.

    Same arguments as `AC`.
    """

    agent_type = "a2c"
    estimates_advantage = True
