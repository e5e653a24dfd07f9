"""Deep Q-Networks: DQN (Mnih et al., 2015), Double DQN (van Hasselt et al.,
2016) and Dueling DQN (Wang et al., 2016), Tensorforce's arguments.

Implementation details (CleanRL style):

1. Q-network: the `network` spec (default `'auto'`) on the states, then per
   int action a dense head with `prod(shape) × num_values` outputs reshaped
   to `shape + (num_values,)` (Q-values, orthogonal initialization with a
   small gain). A bool action is a 2-valued int action internally.
   Dueling: per action a state-value head `V` (one per action element) and
   an advantage head `A`; `Q = V + A - mean(A)`, where the mean is taken
   over the **allowed** values when a mask is known (training and acting),
   over all values in the exported/plain model.
2. Acting: argmax of Q over the allowed values (masked values get a score
   of -1e30, so they are never the argmax); in training, with probability
   `exploration` (ε) the action is replaced by a value drawn uniformly among
   the allowed values (never a masked one). Default ε: linear decay from
   1.0 to 0.05 over the first 10,000 timesteps (Tensorforce's default was
   0, i.e. no exploration at all). Independent acting with
   `deterministic=False` uses the final ε.
3. Replay: transitions (with the masks of the state and of the next state,
   the latter recorded at the next `act` of the same environment) go to a
   ring buffer of capacity `memory`; minibatches are drawn uniformly with
   replacement. `horizon=n` stores n-step transitions.
4. TD target: `y = R + (1 - done) γ^k max_{a' allowed} Q_target(s', a')`.
   Double DQN: `a* = argmax_{a' allowed} Q(s', a')` with the online network,
   valued by the target network. Time-limit ends (terminal 2) bootstrap.
5. Loss: `0.5·δ²` (or Huber with threshold `huber_loss`) of the TD error
   `δ = Q(s, a) - y`; with several action elements or named actions each
   has its own TD error against the shared reward (independent branches),
   and the losses are **summed** over action elements and names, then
   averaged over the minibatch. Plus `l2_regularization × Σ kernel²`.
6. Updates: every `update_frequency` timesteps after `start_updating`,
   `multi_step` gradient steps (Adam), each on a fresh minibatch of
   `batch_size` transitions, in one compiled call.
7. Target network: a separate copy of the Q-network; every
   `target_sync_frequency` gradient steps,
   `θ' ← w θ + (1 - w) θ'` with `w = target_update_weight` (1.0 copies),
   inside the compiled update.

Logged metrics (`agent.last_metrics`, averaged over the update's gradient
steps): `loss`, `q_value` (mean Q(s, a) of the minibatch), `td_error` (mean
|δ|), `gradient_norm`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from kerasrl import backend as kbackend
from kerasrl import distributions as kdistributions
from kerasrl.agents.off_policy import (
    OffPolicyAgent,
    l2_penalty,
    network_of_policy,
)
from kerasrl.errors import ArgumentError
from kerasrl.networks import NetworkBuilder
from kerasrl.specs import ValueSpec
from kerasrl.validation import in_range, is_number

#: Default exploration of the DQN agents: ε decays linearly from 1.0 to 0.05
#: over the first 10,000 timesteps.
DEFAULT_EXPLORATION = dict(type="linear", unit="timesteps", num_steps=10_000,
                           initial_value=1.0, final_value=0.05)
_LOWEST = -1.0e30
_HEAD_GAIN = 0.01


class DQN(OffPolicyAgent):
    """Deep Q-Network agent.

    Args:
        states: State spec.
        actions: Action spec: int (with `num_values`, any shape, masks
            honoured) or bool actions, possibly several named ones.
        memory: Replay capacity in transitions (required), or
            `dict(type='replay', capacity=N)`.
        batch_size: Transitions per minibatch (required unless `update`).
        max_episode_timesteps: Maximum episode length, if any.
        network: Q-network spec (default `'auto'`); `policy` is an alias.
        update_frequency: Update every this many timesteps (int) or this
            share of `batch_size` (float in (0, 1], default 0.25), or
            `'never'`.
        start_updating: Timesteps before the first update (default
            `batch_size`).
        learning_rate: Adam learning rate (parameter, default 1e-3).
        huber_loss: None (squared error) or the Huber threshold.
        horizon: n of the n-step returns (default 1).
        discount: γ (parameter, default 0.99).
        predict_terminal_values: Bootstrap true terminals too.
        target_update_weight: `w` of the target update (1.0 = copy; < 1
            Polyak averaging).
        target_sync_frequency: Target update every this many gradient steps
            (= updates with `multi_step=1`).
        state_preprocessing: Default `'linear_normalization'`.
        reward_processing: None or `dict(type='clipping', lower, upper)`.
        l2_regularization: L2 penalty on the kernels (parameter).
        entropy_regularization: Accepted for Tensorforce compatibility;
            ignored (a Q-network has no entropy).
        exploration: ε of ε-greedy (parameter, or dict per action name);
            default `DEFAULT_EXPLORATION`.
        variable_noise: Standard deviation of the Gaussian noise on the policy
            weights while sampling (parameter-space exploration, default 0).
        update: Tensorforce's update dict instead of `batch_size`,
            `update_frequency`, `start_updating`.
        multi_step: Gradient steps per update, each on a fresh minibatch
            (default 1).
        optimizer: Optimizer type or dict instead of Adam.
        max_grad_norm: Clip the global gradient norm (default None).
        parallel_interactions, config: See `Agent`.

    Example:

    ```python
    agent = Agent.create(agent='dqn', environment='CartPole-v1', memory=10_000,
                         batch_size=32)
    ```
    """

    agent_type = "dqn"
    double = False
    dueling = False
    metric_names = ("loss", "q_value", "td_error", "gradient_norm")

    def __init__(
        self,
        states: Any,
        actions: Any,
        memory: Any = None,
        batch_size: int | None = None,
        max_episode_timesteps: int | None = None,
        network: Any = "auto",
        update_frequency: Any = 0.25,
        start_updating: int | None = None,
        learning_rate: Any = 1e-3,
        huber_loss: float | None = None,
        horizon: int = 1,
        discount: Any = 0.99,
        predict_terminal_values: bool = False,
        target_update_weight: float = 1.0,
        target_sync_frequency: int = 1,
        state_preprocessing: Any = "linear_normalization",
        reward_processing: Any = None,
        return_processing: Any = None,
        l2_regularization: Any = 0.0,
        entropy_regularization: Any = 0.0,
        exploration: Any = None,
        variable_noise: float = 0.0,
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
        self._check_unsupported(return_processing, entropy_regularization)
        network = network_of_policy(network, policy, "parametrized_value_policy")
        if huber_loss is not None and not (is_number(huber_loss) and in_range(
                float(huber_loss), 0.0, None, low_open=True)):
            raise ArgumentError.invalid("huber_loss", "None or a float > 0", huber_loss,
                                        where=f"agent '{self.agent_type}'")
        if exploration is None:
            arguments["exploration"] = dict(DEFAULT_EXPLORATION)
        super().__init__(
            states, actions, max_episode_timesteps, parallel_interactions=parallel_interactions,
            config=config, **self._base_arguments(arguments), **kwargs,
        )
        self.huber_loss = None if huber_loss is None else float(huber_loss)
        self.optimizer_spec = self._optimizer(optimizer, learning_rate, max_grad_norm, "optimizer")

        # ---------------------------------------------------------------- networks
        self._q_specs = {
            action_name: ValueSpec(type="int", shape=spec.shape,
                                   num_values=2 if spec.type == "bool" else spec.num_values,
                                   name=action_name)
            for action_name, spec in self.actions_spec.items()
        }
        self.distributions = {
            action_name: kdistributions.Categorical(spec, name=action_name.replace("/", "_"))
            for action_name, spec in self._q_specs.items()
        }
        self.network_builder = NetworkBuilder()
        self.q_model = self._build_q_model(self.network_builder, network, state_preprocessing,
                                           "policy", "")
        self.target_q_model = self._build_q_model(NetworkBuilder(), network, state_preprocessing,
                                                  "target", "target_")
        self._freeze([self.target_q_model])
        self._target_variable_pairs = self._target_pairs(self.target_q_model, self.q_model,
                                                         "Q-network")
        self._q_variables = list(self.q_model.trainable_variables)
        self.optimizer_spec.optimizer.build(self._q_variables)
        self._finish_init(arguments, list(self.q_model.variables))

    @property
    def policy_model(self) -> keras.Model:
        """The Q-network (alias of `q_model`): states → `{action: {'logits': Q}}`."""
        return self.q_model

    # ------------------------------------------------------------------ construction
    def _check_actions(self) -> None:
        for action_name, spec in self.actions_spec.items():
            if spec.type == "float":
                raise ArgumentError.invalid(
                    "actions", "int or bool actions (use 'ddpg', 'td3' or 'sac' for float "
                    "actions)", spec.get_config(),
                    where=f"agent '{self.agent_type}', action '{action_name}'",
                )
            if spec.type == "int" and spec.num_values is None:
                raise ArgumentError.invalid(
                    "num_values", "a positive int for an int action", None,
                    where=f"agent '{self.agent_type}', action '{action_name}'",
                )

    def _build_q_model(self, builder, network, preprocessing, name, prefix) -> keras.Model:
        network_model = builder.build(network, self.states_spec, name=f"{name}_network",
                                      preprocessing=preprocessing)
        embedding = network_model.outputs[0] if isinstance(network_model.outputs, list) else (
            network_model.outputs)
        if len(embedding.shape) > 2:
            embedding = keras.layers.Flatten(name=f"{prefix}q_flatten")(embedding)
        outputs = {}
        for action_name, spec in self._q_specs.items():
            head = prefix + action_name.replace("/", "_")
            size = spec.size
            shape = spec.shape + (spec.num_values,)
            if self.dueling:
                advantage = keras.layers.Dense(
                    size * spec.num_values, name=f"{head}_advantage",
                    kernel_initializer=keras.initializers.Orthogonal(_HEAD_GAIN),
                )(embedding)
                advantage = keras.layers.Reshape(shape, name=f"{head}_advantage_reshape")(
                    advantage)
                value = keras.layers.Dense(
                    size, name=f"{head}_value",
                    kernel_initializer=keras.initializers.Orthogonal(_HEAD_GAIN),
                )(embedding)
                value = keras.layers.Reshape(spec.shape + (1,), name=f"{head}_value_reshape")(
                    value)
                logits = value + advantage - ops.mean(advantage, axis=-1, keepdims=True)
                outputs[action_name] = {"logits": logits, "advantage": advantage}
            else:
                q = keras.layers.Dense(
                    size * spec.num_values, name=f"{head}_q",
                    kernel_initializer=keras.initializers.Orthogonal(_HEAD_GAIN),
                )(embedding)
                outputs[action_name] = {"logits": keras.layers.Reshape(
                    shape, name=f"{head}_q_reshape")(q)}
        return keras.Model(network_model.input, outputs, name=f"{name}_q")

    def _optimizer_specs(self) -> dict:
        return {"optimizer": self.optimizer_spec}

    # ------------------------------------------------------------------ Q-values
    def _q_values(self, params, mask):
        """Q-values `(B, *shape, n)`; dueling: the advantage mean over allowed values."""
        q = params["logits"]
        if self.dueling and mask is not None:
            advantage = params["advantage"]
            allowed = ops.cast(mask, advantage.dtype)
            masked_mean = ops.sum(advantage * allowed, axis=-1, keepdims=True) / ops.maximum(
                ops.sum(allowed, axis=-1, keepdims=True), 1.0)
            q = q + ops.mean(advantage, axis=-1, keepdims=True) - masked_mean
        return q

    @staticmethod
    def _masked(q, mask):
        if mask is None:
            return q
        return ops.where(ops.cast(mask, "bool"), q, ops.full_like(q, _LOWEST))

    # ------------------------------------------------------------------ compiled programs
    def _act_program(self, states, masks, exploration, deterministic: bool):
        params = self._call_policy(self.q_model, states, exploration, deterministic)
        actions = {}
        for action_name in self._q_specs:
            mask = masks.get(action_name)
            q = self._masked(params[action_name]["logits"], mask)
            action = ops.cast(ops.argmax(q, axis=-1), "int32")
            if not deterministic and self._explores(action_name):
                action = self.distributions[action_name].explore(
                    action, exploration[action_name], self._act_seed, mask=mask)
            actions[action_name] = action
        return actions

    def _q_loss(self, batch, hyper):
        states = {n: batch[f"states/{n}"] for n in self.states_spec}
        next_states = {n: batch[f"next_states/{n}"] for n in self.states_spec}
        params = kbackend.call_model(self.q_model, states, training=True)
        next_target = kbackend.call_model(self.target_q_model, next_states)
        if self.double:
            next_online = kbackend.call_model(self.q_model, next_states)
        reward, terminal, discount = batch["reward"], batch["terminal"], batch["discount"]
        total = 0.0
        q_sum, td_sum, count = 0.0, 0.0, 0
        for action_name, spec in self._q_specs.items():
            mask = batch.get(f"masks/{action_name}")
            next_mask = batch.get(f"next_masks/{action_name}")
            q = self._q_values(params[action_name], mask)
            action = ops.expand_dims(ops.cast(batch[f"actions/{action_name}"], "int32"), -1)
            q_taken = ops.squeeze(ops.take_along_axis(q, action, axis=-1), -1)
            target_q = ops.stop_gradient(self._q_values(next_target[action_name], next_mask))
            if self.double:
                online_q = ops.stop_gradient(self._q_values(next_online[action_name], next_mask))
                best = ops.argmax(self._masked(online_q, next_mask), axis=-1)
                best = ops.expand_dims(ops.cast(best, "int32"), -1)
                next_value = ops.squeeze(ops.take_along_axis(target_q, best, axis=-1), -1)
            else:
                next_value = ops.max(self._masked(target_q, next_mask), axis=-1)
            expand = (-1,) + (1,) * spec.rank
            target = ops.reshape(reward, expand) + ops.reshape(
                (1.0 - terminal) * discount, expand) * next_value
            td = q_taken - ops.stop_gradient(target)
            if self.huber_loss is None:
                per_element = 0.5 * ops.square(td)
            else:
                delta = self.huber_loss
                absolute = ops.abs(td)
                per_element = ops.where(absolute <= delta, 0.5 * ops.square(td),
                                        delta * (absolute - 0.5 * delta))
            if spec.rank:
                per_element = ops.sum(per_element, axis=tuple(range(1, 1 + spec.rank)))
            total = total + per_element
            q_sum = q_sum + ops.mean(q_taken)
            td_sum = td_sum + ops.mean(ops.abs(td))
            count += 1
        loss = ops.mean(total)
        loss = loss + hyper["l2_regularization"] * l2_penalty(self._q_variables)
        return loss, {"q_value": q_sum / count, "td_error": td_sum / count}

    def _train_step(self, batch, hyper, step):
        loss, metrics, norm = kbackend.gradient_step(
            self._q_loss, self.optimizer_spec.optimizer, self._q_variables, batch, hyper,
            clip_norm=self.optimizer_spec.clip_norm,
        )
        weight = self.target_update_weight * self._every(step, self.target_sync_frequency)
        kbackend.polyak_update(self._target_variable_pairs, weight)
        return {**metrics, "loss": loss, "gradient_norm": norm}

    # ------------------------------------------------------------------ checkpoint state
    def _models(self) -> dict:
        return {"policy": self.q_model, "target": self.target_q_model}


class DoubleDQN(DQN):
    """Double DQN: the online network picks the next action, the target network values it.

    Same arguments as `DQN`.
    """

    agent_type = "double_dqn"
    double = True


class DuelingDQN(DQN):
    """Dueling DQN: separate state-value and advantage heads, `Q = V + A - mean(A)`.

    Same arguments as `DQN`. Like Tensorforce's, it also uses the Double-DQN
    target (`predict_action_values=True`).
    """

    agent_type = "dueling_dqn"
    double = True
    dueling = True
