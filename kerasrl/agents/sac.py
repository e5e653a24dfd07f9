"""Soft Actor-Critic (Haarnoja et al., 2018, with automatic entropy tuning).

Implementation details (CleanRL style):

1. Actor: the `network` spec on the states, then per float action a
   Gaussian head (`kerasrl.distributions.Gaussian`, predicted log standard
   deviation clipped to [-20, 2]); an action with both bounds is squashed,
   `y = tanh(u)`, `a = c + h·y`. Deterministic acting returns
   `c + h·tanh(mean)`.
2. Critics: two independent `Q(s, a)` networks (the `critic` spec on the
   states, the normalized actions concatenated, a ReLU dense layer, a
   linear output) and their target copies.
3. Critic loss: `0.5 Σ_i (Q_i(s, a) - y)²` with
   `y = R + (1 - done) γ^k (min_i Q'_i(s', ã') - α log π(ã'|s'))`,
   `ã' ~ π(·|s')` from the current actor.
4. Actor loss: `α log π(ã|s) - min_i Q_i(s, ã)`, `ã ~ π(·|s)`
   reparameterized (`u = μ + σ ε`).
5. Log-probabilities are those of the normalized action `y` (SB3's
   convention): `log N(u) - Σ log(1 - tanh²u)`, computed stably as
   `2 (log 2 - u - softplus(-2u))`.
6. Entropy temperature: with `alpha='auto'`, `log α` is trained with its
   own Adam on `-log α (log π(ã|s) + H̄)`, target entropy `H̄ = -dim(A)`
   (`target_entropy`); a float `alpha` keeps it fixed.
7. The Gaussian noise `ε` of both samples is drawn on the host with the
   agent's NumPy generator and shipped with the minibatch, so a seeded
   update is identical on every backend.
8. Targets: Polyak averaging with τ = `target_update_weight` (0.005) after
   every gradient step (every `target_sync_frequency`), inside the compiled
   update. Order per gradient step: critics, actor, temperature, targets.
9. Replay and update schedule as in DQN; default one update (one gradient
   step) per timestep after `start_updating` timesteps.

Logged metrics (`agent.last_metrics`): `critic_loss`, `actor_loss`,
`alpha_loss`, `alpha`, `entropy` (`-mean log π` of the actor's samples, in
normalized units), `q_value`, `critic_gradient_norm`, `actor_gradient_norm`,
averaged over the update's gradient steps. With several actions also
`entropy/<name>` per action (the same estimate on that action's dimensions;
`entropy` is their sum). There is no KL metric: an off-policy update keeps no
reference policy.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from kerasrl import backend as kbackend
from kerasrl import distributions as kdistributions
from kerasrl.agents.off_policy import (
    ContinuousActorCritic,
    build_critic,
    l2_penalty,
    network_of_policy,
)
from kerasrl.networks import NetworkBuilder
from kerasrl.validation import check_float

_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)
_LOG_STDDEV_RANGE = (-20.0, 2.0)


class SAC(ContinuousActorCritic):
    """Soft Actor-Critic agent (float actions).

    Args:
        states: State spec.
        actions: Action spec: float actions (bounds recommended).
        memory: Replay capacity in transitions (required).
        batch_size: Transitions per minibatch (required unless `update`).
        max_episode_timesteps: Maximum episode length, if any.
        network: Actor network spec (default `'auto'`); `policy` is an alias.
        update_frequency: Update every this many timesteps (int, default 1)
            or this share of `batch_size` (float in (0, 1]).
        start_updating: Timesteps before the first update (default
            `batch_size`).
        learning_rate: Adam learning rate of the actor (parameter, default
            3e-4).
        horizon: n of the n-step returns (default 1).
        discount: γ (parameter, default 0.99).
        predict_terminal_values: Bootstrap true terminals too.
        critic: Critic network spec on the states (default `'auto'`).
        critic_optimizer: A float (default 1.0) scaling `learning_rate` for
            the critics' Adam, or an optimizer spec.
        alpha: `'auto'` (tuned) or a fixed float entropy temperature.
        initial_alpha: Initial temperature with `alpha='auto'` (default 1.0).
        target_entropy: `'auto'` (`-dim(A)`) or a float.
        alpha_optimizer: None (Adam with `learning_rate`) or an optimizer spec.
        state_preprocessing: Default `'linear_normalization'`.
        reward_processing: None or `dict(type='clipping', lower, upper)`.
        l2_regularization: L2 penalty on the actor's kernels (parameter).
        exploration: Extra Gaussian noise on normalized actions (default 0).
        variable_noise: Standard deviation of the Gaussian noise on the policy
            weights while sampling (parameter-space exploration, default 0).
        target_update_weight: Polyak τ (default 0.005).
        target_sync_frequency: Target update every this many gradient steps.
        update: Tensorforce's update dict instead of `batch_size`,
            `update_frequency`, `start_updating`.
        multi_step: Gradient steps per update, each on a fresh minibatch.
        optimizer: Optimizer type or dict for the actor instead of Adam.
        max_grad_norm: Clip the global gradient norm of each step.
        parallel_interactions, config: See `Agent`.

    Example:

    ```python
    agent = Agent.create(agent='sac', environment='Pendulum-v1', memory=100_000,
                         batch_size=256)
    ```
    """

    agent_type = "sac"
    metric_names = ("critic_loss", "actor_loss", "alpha_loss", "alpha", "entropy", "q_value",
                    "critic_gradient_norm", "actor_gradient_norm")

    def __init__(
        self,
        states: Any,
        actions: Any,
        memory: Any = None,
        batch_size: int | None = None,
        max_episode_timesteps: int | None = None,
        network: Any = "auto",
        update_frequency: Any = 1,
        start_updating: int | None = None,
        learning_rate: Any = 3e-4,
        horizon: int = 1,
        discount: Any = 0.99,
        predict_terminal_values: bool = False,
        critic: Any = "auto",
        critic_optimizer: Any = 1.0,
        alpha: Any = "auto",
        initial_alpha: float = 1.0,
        target_entropy: Any = "auto",
        alpha_optimizer: Any = None,
        state_preprocessing: Any = "linear_normalization",
        reward_processing: Any = None,
        l2_regularization: Any = 0.0,
        exploration: Any = 0.0,
        variable_noise: float = 0.0,
        target_update_weight: float = 0.005,
        target_sync_frequency: int = 1,
        update: Any = None,
        multi_step: int = 1,
        optimizer: Any = None,
        max_grad_norm: float | None = None,
        policy: Any = None,
        parallel_interactions: int = 1,
        config: Any = None,
        **kwargs: Any,
    ):
        arguments = self._constructor_arguments(locals())
        name = self.agent_type
        network = network_of_policy(network, policy, "parametrized_distributions")
        where = f"agent '{name}'"
        if alpha != "auto":
            check_float(alpha, "alpha", low=0.0, low_open=True, where=where)
        check_float(initial_alpha, "initial_alpha", low=0.0, low_open=True, where=where)
        if target_entropy != "auto":
            check_float(target_entropy, "target_entropy", where=where)
        super().__init__(
            states, actions, max_episode_timesteps, parallel_interactions=parallel_interactions,
            config=config, **self._base_arguments(arguments), **kwargs,
        )
        self._init_actor_critic(optimizer, critic_optimizer, learning_rate, max_grad_norm)
        if len(self._layout) > 1:  # per-action entropies too
            self.metric_names = type(self).metric_names + tuple(
                f"entropy/{entry['name']}" for entry in self._layout)
        self.tune_alpha = alpha == "auto"
        self.target_entropy = float(-self.action_size if target_entropy == "auto"
                                    else target_entropy)
        self.alpha_optimizer_spec = self._optimizer(alpha_optimizer, learning_rate, None,
                                                    "alpha_optimizer") if self.tune_alpha else None
        initial = float(initial_alpha if self.tune_alpha else alpha)
        self.log_alpha = keras.Variable(np.float32(math.log(initial)), dtype="float32",
                                        trainable=self.tune_alpha, name="log_alpha")

        # ---------------------------------------------------------------- networks
        self.network_builder = NetworkBuilder()
        network_model = self.network_builder.build(
            network, self.states_spec, name="policy_network", preprocessing=state_preprocessing)
        embedding = network_model.outputs[0] if isinstance(network_model.outputs, list) else (
            network_model.outputs)
        self.distributions, outputs = {}, {}
        for action_name, spec in self.actions_spec.items():
            dist = kdistributions.Gaussian(spec, stddev_mode="predicted",
                                           name=action_name.replace("/", "_"))
            outputs[action_name] = dist.build(embedding)
            self.distributions[action_name] = dist
        self.policy_model = keras.Model(network_model.input, outputs, name="policy")
        self.critic_model = build_critic(self.network_builder, critic, self.states_spec,
                                         self.action_size, state_preprocessing, "critic")
        self.critic2_model = build_critic(NetworkBuilder(), critic, self.states_spec,
                                          self.action_size, state_preprocessing, "critic2")
        self.target_critic_model = build_critic(NetworkBuilder(), critic, self.states_spec,
                                                self.action_size, state_preprocessing,
                                                "target_critic")
        self.target_critic2_model = build_critic(NetworkBuilder(), critic, self.states_spec,
                                                 self.action_size, state_preprocessing,
                                                 "target_critic2")
        self._target_variable_pairs = (
            self._target_pairs(self.target_critic_model, self.critic_model, "critic")
            + self._target_pairs(self.target_critic2_model, self.critic2_model, "second critic"))
        self._freeze([self.target_critic_model, self.target_critic2_model])
        self._build_optimizers([self.critic_model, self.critic2_model])
        if self.tune_alpha:
            self.alpha_optimizer_spec.optimizer.build([self.log_alpha])
        self._bounded = self._bounded_mask()
        self._finish_init(arguments, list(self.policy_model.variables))

    # ------------------------------------------------------------------ construction
    def _optimizer_specs(self) -> dict:
        specs = {"optimizer": self.optimizer_spec, "critic_optimizer": self.critic_optimizer_spec}
        if self.tune_alpha:
            specs["alpha_optimizer"] = self.alpha_optimizer_spec
        return specs

    def _extra_state_variables(self) -> dict:
        return {"alpha/log_alpha": self.log_alpha}

    @property
    def alpha(self) -> float:
        """The current entropy temperature α."""
        self._sync_weights()
        return float(np.exp(keras.ops.convert_to_numpy(self.log_alpha.value)))

    def _update_noise(self, num_batches: int, batch_size: int) -> dict:
        shape = (num_batches, batch_size, self.action_size)
        return {"noise/current": self._rng.standard_normal(shape).astype(np.float32),
                "noise/next": self._rng.standard_normal(shape).astype(np.float32)}

    # ------------------------------------------------------------------ compiled programs
    def _sample(self, params, noise):
        """Reparameterized normalized actions `(B, D)` and their log-probabilities `(B,)`."""
        y, log_prob = self._sample_terms(params, noise)
        return y, ops.sum(log_prob, axis=-1)

    def _sample_terms(self, params, noise):
        """Like `_sample`, with the log-probability per dimension `(B, D)`."""
        mean = self._flat_params(params, "mean")
        log_stddev = ops.clip(self._flat_params(params, "log_stddev"), *_LOG_STDDEV_RANGE)
        u = mean + ops.exp(log_stddev) * noise
        y = self._squash(u)
        log_prob = -0.5 * ops.square(noise) - log_stddev - _HALF_LOG_TWO_PI
        correction = 2.0 * (math.log(2.0) - u - ops.softplus(-2.0 * u))
        if not self._bounded.all():
            correction = correction * ops.convert_to_tensor(self._bounded)
        return y, log_prob - correction

    def _act_program(self, states, masks, exploration, deterministic: bool):
        params = self._call_policy(self.policy_model, states, exploration, deterministic)
        if deterministic:
            y = self._squash(self._flat_params(params, "mean"))
        else:
            mean = self._flat_params(params, "mean")
            noise = keras.random.normal(ops.shape(mean), seed=self._act_seed)
            y, _ = self._sample(params, noise)
            if any(self._explores(name) for name in self.actions_spec):
                y = self._exploration_noise(y, exploration)
        return self._denormalize(y)

    def _critic_loss(self, batch, hyper):
        states = self._batch_states(batch)
        next_states = self._batch_states(batch, "next_states")
        alpha = ops.exp(ops.stop_gradient(self.log_alpha.value))
        next_params = kbackend.call_model(self.policy_model, next_states)
        next_y, next_log_prob = self._sample(next_params, batch["noise/next"])
        next_inputs = self._critic_inputs(next_states, next_y)
        next_q = ops.minimum(kbackend.call_model(self.target_critic_model, next_inputs),
                             kbackend.call_model(self.target_critic2_model, next_inputs))
        target = ops.stop_gradient(batch["reward"] + (1.0 - batch["terminal"])
                                   * batch["discount"] * (next_q - alpha * next_log_prob))
        inputs = self._critic_inputs(states, self._normalize(
            {name: batch[f"actions/{name}"] for name in self.actions_spec}))
        q1 = kbackend.call_model(self.critic_model, inputs, training=True)
        q2 = kbackend.call_model(self.critic2_model, inputs, training=True)
        loss = 0.5 * ops.mean(ops.square(q1 - target)) + 0.5 * ops.mean(ops.square(q2 - target))
        return loss, {"q_value": ops.mean(q1)}

    def _actor_loss(self, batch, hyper):
        states = self._batch_states(batch)
        alpha = ops.exp(ops.stop_gradient(self.log_alpha.value))
        params = kbackend.call_model(self.policy_model, states, training=True)
        y, terms = self._sample_terms(params, batch["noise/current"])
        log_prob = ops.sum(terms, axis=-1)
        inputs = self._critic_inputs(states, y)
        q = ops.minimum(kbackend.call_model(self.critic_model, inputs),
                        kbackend.call_model(self.critic2_model, inputs))
        loss = ops.mean(alpha * log_prob - q)
        loss = loss + hyper["l2_regularization"] * l2_penalty(self._actor_variables)
        aux = {"log_prob": ops.mean(log_prob)}
        if len(self._layout) > 1:  # per action: the sum over its own dimensions
            for entry in self._layout:
                start = entry["offset"]
                aux[f"log_prob/{entry['name']}"] = ops.mean(ops.sum(
                    terms[:, start:start + entry["size"]], axis=-1))
        return loss, aux

    def _alpha_loss(self, mean_log_prob):
        loss = -self.log_alpha.value * ops.stop_gradient(mean_log_prob + self.target_entropy)
        return loss, {}

    def _train_step(self, batch, hyper, step):
        critic_loss, metrics, critic_norm = kbackend.gradient_step(
            self._critic_loss, self.critic_optimizer_spec.optimizer, self._critic_variables,
            batch, hyper, clip_norm=self.critic_optimizer_spec.clip_norm,
        )
        actor_loss, actor_aux, actor_norm = kbackend.gradient_step(
            self._actor_loss, self.optimizer_spec.optimizer, self._actor_variables,
            batch, hyper, clip_norm=self.optimizer_spec.clip_norm,
        )
        mean_log_prob = ops.stop_gradient(actor_aux["log_prob"])
        if self.tune_alpha:
            alpha_loss, _, _ = kbackend.gradient_step(
                self._alpha_loss, self.alpha_optimizer_spec.optimizer, [self.log_alpha],
                mean_log_prob,
            )
        else:
            alpha_loss = ops.zeros((), "float32")
        weight = self.target_update_weight * self._every(step, self.target_sync_frequency)
        kbackend.polyak_update(self._target_variable_pairs, weight)
        metrics = {**metrics, "critic_loss": critic_loss, "actor_loss": actor_loss,
                   "alpha_loss": alpha_loss, "alpha": ops.exp(self.log_alpha.value),
                   "entropy": -mean_log_prob, "critic_gradient_norm": critic_norm,
                   "actor_gradient_norm": actor_norm}
        for key, value in actor_aux.items():
            if key.startswith("log_prob/"):
                metrics[f"entropy/{key[len('log_prob/'):]}"] = -ops.stop_gradient(value)
        return metrics

    # ------------------------------------------------------------------ checkpoint state
    def _models(self) -> dict:
        return {"policy": self.policy_model, "critic": self.critic_model,
                "critic2": self.critic2_model, "target_critic": self.target_critic_model,
                "target_critic2": self.target_critic2_model}
