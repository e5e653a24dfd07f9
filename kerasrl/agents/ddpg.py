"""Deep Deterministic Policy Gradient (Lillicrap et al., 2016), Tensorforce's
`dpg`/`ddpg` arguments; also the base of TD3 (`kerasrl.agents.td3`).

Implementation details (CleanRL style):

1. Actor: the `network` spec on the states, then per float action a dense
   mean head; the normalized action is `y = tanh(mean)` for actions with
   both bounds (mapped to `[min, max]` as `a = c + h·y`), `y = mean` (then
   clipped to any single bound) otherwise.
2. Critic: `Q(s, a)` = the `critic` spec on the states, the normalized
   actions concatenated to its output, a ReLU dense layer of the same
   size, a linear output (the paper's architecture: the action joins at
   the second layer).
3. Exploration: Gaussian noise of standard deviation `exploration`
   (default 0.1) added to the normalized action, i.e. `0.1 × (max - min)/2`
   in action units, then clipped to the bounds (Tensorforce's noise was
   absolute).
4. Replay as in DQN (n-step transitions, uniform sampling with replacement,
   time-limit ends bootstrapped).
5. Critic loss: `0.5 (Q(s, a) - y)²` with
   `y = R + (1 - done) γ^k Q'(s', μ'(s'))` from the target actor and
   target critic.
6. Actor loss: `-Q(s, μ(s))` (deterministic policy gradient through the
   critic; only the actor's weights move).
7. Target networks (not in Tensorforce's DPG, which had none): copies of
   actor and critic, Polyak-averaged with `target_update_weight` τ
   (default 0.005) after every gradient step, inside the compiled update.
8. Updates: every `update_frequency` timesteps after `start_updating`,
   `multi_step` gradient steps (critic step, then actor step), each on a
   fresh minibatch, in one compiled call. Separate Adam optimizers for
   actor (`learning_rate`) and critic (`critic_optimizer`).

TD3's tricks are arguments here too (`policy_delay`, `target_policy_noise`,
`target_noise_clip`; DDPG's defaults switch them off). With `policy_delay >
1`, the actor and target step is computed at every gradient step but only
kept on every `policy_delay`-th one (a masked update, which keeps a single
compiled program).

Logged metrics (`agent.last_metrics`): `critic_loss`, `actor_loss`,
`q_value` (mean Q(s, a) of the minibatch), `critic_gradient_norm`,
`actor_gradient_norm`, averaged over the update's gradient steps.
"""

from __future__ import annotations

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
from kerasrl.validation import check_float, check_int


class DDPG(ContinuousActorCritic):
    """Deep Deterministic Policy Gradient agent (float actions).

    Args:
        states: State spec.
        actions: Action spec: float actions (bounds recommended), possibly
            several named ones.
        memory: Replay capacity in transitions (required).
        batch_size: Transitions per minibatch (required unless `update`).
        max_episode_timesteps: Maximum episode length, if any.
        network: Actor network spec (default `'auto'`); `policy` is an alias.
        use_beta_distribution: Accepted for Tensorforce compatibility and
            ignored (the actor is deterministic).
        update_frequency: Update every this many timesteps (int) or this
            share of `batch_size` (float in (0, 1], default 1.0).
        start_updating: Timesteps before the first update (default
            `batch_size`).
        learning_rate: Actor Adam learning rate (parameter, default 1e-3).
        horizon: n of the n-step returns (default 1).
        discount: γ (parameter, default 0.99).
        predict_terminal_values: Bootstrap true terminals too.
        critic: Critic network spec on the states (default `'auto'`).
        critic_optimizer: A float (default 1.0): the critic's Adam uses
            `learning_rate × critic_optimizer` (Tensorforce's loss weight;
            actor and critic never share one loss here), or an optimizer
            spec.
        state_preprocessing: Default `'linear_normalization'`.
        reward_processing: None or `dict(type='clipping', lower, upper)`.
        l2_regularization: L2 penalty on the actor's kernels (parameter).
        entropy_regularization: Accepted and ignored (deterministic actor).
        exploration: Standard deviation of the Gaussian noise on normalized
            actions (parameter or dict per action; default 0.1).
        variable_noise: Standard deviation of the Gaussian noise on the policy
            weights while sampling (parameter-space exploration, default 0).
        target_update_weight: Polyak τ of the targets (default 0.005; 1.0
            copies).
        target_sync_frequency: Target update every this many gradient steps.
        policy_delay: Actor (and target) update every this many gradient
            steps (TD3; default 1).
        target_policy_noise: Std of the target-policy smoothing noise on
            normalized actions (TD3; default 0: none).
        target_noise_clip: Clip of that noise (TD3; default 0.5).
        update: Tensorforce's update dict instead of `batch_size`,
            `update_frequency`, `start_updating`.
        multi_step: Gradient steps per update, each on a fresh minibatch.
        optimizer: Optimizer type or dict for the actor instead of Adam.
        max_grad_norm: Clip the global gradient norm of each step.
        parallel_interactions, config: See `Agent`.

    Example:

    ```python
    agent = Agent.create(agent='ddpg', environment='Pendulum-v1', memory=100_000,
                         batch_size=256, update_frequency=1)
    ```
    """

    agent_type = "ddpg"
    twin = False
    metric_names = ("critic_loss", "actor_loss", "q_value", "critic_gradient_norm",
                    "actor_gradient_norm")

    def __init__(
        self,
        states: Any,
        actions: Any,
        memory: Any = None,
        batch_size: int | None = None,
        max_episode_timesteps: int | None = None,
        network: Any = "auto",
        use_beta_distribution: bool = True,
        update_frequency: Any = 1.0,
        start_updating: int | None = None,
        learning_rate: Any = 1e-3,
        horizon: int = 1,
        discount: Any = 0.99,
        predict_terminal_values: bool = False,
        critic: Any = "auto",
        critic_optimizer: Any = 1.0,
        state_preprocessing: Any = "linear_normalization",
        reward_processing: Any = None,
        return_processing: Any = None,
        l2_regularization: Any = 0.0,
        entropy_regularization: Any = 0.0,
        exploration: Any = 0.1,
        variable_noise: float = 0.0,
        target_update_weight: float = 0.005,
        target_sync_frequency: int = 1,
        policy_delay: int = 1,
        target_policy_noise: float = 0.0,
        target_noise_clip: float = 0.5,
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
        self._check_unsupported(return_processing, entropy_regularization)
        network = network_of_policy(network, policy, "parametrized_distributions")
        for key, value in (("target_policy_noise", target_policy_noise),
                           ("target_noise_clip", target_noise_clip)):
            check_float(value, key, low=0.0, where=f"agent '{name}'")
        super().__init__(
            states, actions, max_episode_timesteps, parallel_interactions=parallel_interactions,
            config=config, **self._base_arguments(arguments), **kwargs,
        )
        self.policy_delay = check_int(policy_delay, "policy_delay", minimum=1,
                                      where=f"agent '{name}'")
        self.target_policy_noise = float(target_policy_noise)
        self.target_noise_clip = float(target_noise_clip)
        self._init_actor_critic(optimizer, critic_optimizer, learning_rate, max_grad_norm)

        # ---------------------------------------------------------------- networks
        self.network_builder = NetworkBuilder()
        self.policy_model, self.distributions = self._build_actor(
            self.network_builder, network, state_preprocessing, "policy", "")
        self.critic_model = build_critic(self.network_builder, critic, self.states_spec,
                                         self.action_size, state_preprocessing, "critic")
        target_builder = NetworkBuilder()
        self.target_policy_model, _ = self._build_actor(
            target_builder, network, state_preprocessing, "target_policy", "target_")
        self.target_critic_model = build_critic(target_builder, critic, self.states_spec,
                                                self.action_size, state_preprocessing,
                                                "target_critic")
        pairs = self._target_pairs(self.target_policy_model, self.policy_model, "actor")
        pairs += self._target_pairs(self.target_critic_model, self.critic_model, "critic")
        self.critic2_model = self.target_critic2_model = None
        if self.twin:
            self.critic2_model = build_critic(NetworkBuilder(), critic, self.states_spec,
                                              self.action_size, state_preprocessing, "critic2")
            self.target_critic2_model = build_critic(NetworkBuilder(), critic, self.states_spec,
                                                     self.action_size, state_preprocessing,
                                                     "target_critic2")
            pairs += self._target_pairs(self.target_critic2_model, self.critic2_model,
                                        "second critic")
        self._target_variable_pairs = pairs
        self._freeze(self._target_models())
        self._build_optimizers([self.critic_model, self.critic2_model] if self.twin
                               else [self.critic_model])
        self._finish_init(arguments, list(self.policy_model.variables))

    # ------------------------------------------------------------------ construction
    def _build_actor(self, builder, network, preprocessing, name, prefix):
        network_model = builder.build(network, self.states_spec, name=f"{name}_network",
                                      preprocessing=preprocessing)
        embedding = network_model.outputs[0] if isinstance(network_model.outputs, list) else (
            network_model.outputs)
        distributions, outputs = {}, {}
        for action_name, spec in self.actions_spec.items():
            dist = kdistributions.Gaussian(spec, stddev_mode="global",
                                           name=prefix + action_name.replace("/", "_"))
            outputs[action_name] = dist.build(embedding)
            distributions[action_name] = dist
        model = keras.Model(network_model.input, outputs, name=name)
        for layer in model.layers:  # the deterministic actor has no standard deviation
            if layer.name.endswith("_log_stddev"):
                layer.trainable = False
        return model, distributions

    def _target_models(self) -> list:
        models = [self.target_policy_model, self.target_critic_model]
        if self.twin:
            models.append(self.target_critic2_model)
        return models

    def _optimizer_specs(self) -> dict:
        return {"optimizer": self.optimizer_spec, "critic_optimizer": self.critic_optimizer_spec}

    def _update_noise(self, num_batches: int, batch_size: int) -> dict:
        if self.target_policy_noise <= 0.0:
            return {}
        noise = self._rng.standard_normal((num_batches, batch_size, self.action_size))
        noise = np.clip(noise * self.target_policy_noise, -self.target_noise_clip,
                        self.target_noise_clip)
        return {"noise/smoothing": noise.astype(np.float32)}

    # ------------------------------------------------------------------ compiled programs
    def _actor_output(self, model, states, training=False):
        params = kbackend.call_model(model, states, training=training)
        return self._squash(self._flat_params(params, "mean"))

    def _act_program(self, states, masks, exploration, deterministic: bool):
        params = self._call_policy(self.policy_model, states, exploration, deterministic)
        y = self._squash(self._flat_params(params, "mean"))
        if not deterministic and any(self._explores(name) for name in self.actions_spec):
            y = self._exploration_noise(y, exploration)
        return self._denormalize(y)

    def _critic_loss(self, batch, hyper):
        states = self._batch_states(batch)
        next_states = self._batch_states(batch, "next_states")
        next_y = ops.stop_gradient(self._actor_output(self.target_policy_model, next_states))
        if "noise/smoothing" in batch:
            next_y = self._clip_normalized(next_y + batch["noise/smoothing"])
        next_inputs = self._critic_inputs(next_states, next_y)
        next_q = kbackend.call_model(self.target_critic_model, next_inputs)
        if self.twin:
            next_q = ops.minimum(next_q, kbackend.call_model(self.target_critic2_model,
                                                             next_inputs))
        target = ops.stop_gradient(
            batch["reward"] + (1.0 - batch["terminal"]) * batch["discount"] * next_q)
        inputs = self._critic_inputs(states, self._normalize(self._batch_actions(batch)))
        q = kbackend.call_model(self.critic_model, inputs, training=True)
        loss = 0.5 * ops.mean(ops.square(q - target))
        if self.twin:
            q2 = kbackend.call_model(self.critic2_model, inputs, training=True)
            loss = loss + 0.5 * ops.mean(ops.square(q2 - target))
        return loss, {"q_value": ops.mean(q)}

    def _batch_actions(self, batch):
        return {name: batch[f"actions/{name}"] for name in self.actions_spec}

    def _actor_loss(self, batch, hyper):
        states = self._batch_states(batch)
        y = self._actor_output(self.policy_model, states, training=True)
        q = kbackend.call_model(self.critic_model, self._critic_inputs(states, y))
        loss = -ops.mean(q) + hyper["l2_regularization"] * l2_penalty(self._actor_variables)
        return loss, {}

    def _train_step(self, batch, hyper, step):
        critic_loss, metrics, critic_norm = kbackend.gradient_step(
            self._critic_loss, self.critic_optimizer_spec.optimizer, self._critic_variables,
            batch, hyper, clip_norm=self.critic_optimizer_spec.clip_norm,
        )

        def actor_step():
            return kbackend.gradient_step(
                self._actor_loss, self.optimizer_spec.optimizer, self._actor_variables,
                batch, hyper, clip_norm=self.optimizer_spec.clip_norm,
            )

        weight = self.target_update_weight * self._every(step, self.target_sync_frequency)
        if self.policy_delay > 1:
            delayed = self._every(step, self.policy_delay)
            actor_loss, _, actor_norm = self._masked_step(
                delayed, self._actor_variables + list(self.optimizer_spec.optimizer.variables),
                actor_step)
            weight = weight * delayed
        else:
            actor_loss, _, actor_norm = actor_step()
        kbackend.polyak_update(self._target_variable_pairs, weight)
        return {**metrics, "critic_loss": critic_loss, "actor_loss": actor_loss,
                "critic_gradient_norm": critic_norm, "actor_gradient_norm": actor_norm}

    # ------------------------------------------------------------------ checkpoint state
    def _models(self) -> dict:
        models = {"policy": self.policy_model, "critic": self.critic_model}
        if self.twin:
            models["critic2"] = self.critic2_model
        models["target_policy"] = self.target_policy_model
        models["target_critic"] = self.target_critic_model
        if self.twin:
            models["target_critic2"] = self.target_critic2_model
        return models
