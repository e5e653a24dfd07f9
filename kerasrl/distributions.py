"""Action distributions written with `keras.ops` and `keras.random` only.

One small class per distribution. Each is bound to an action `ValueSpec` and
has two halves:

- `build(embedding)` adds the head layers to a Keras functional graph and
  returns the distribution parameters (a dict of tensors);
- `sample`, `mode`, `log_prob`, `entropy`, `kl_divergence` and `explore` are
  pure functions of those parameters, safe inside `jax.jit`, `tf.function`
  and torch (no Python control flow on tensor values).

Shapes: `B` is the batch size, `S` the action shape (`spec.shape`) and `n`
the number of values of an int action. `log_prob`, `entropy` and
`kl_divergence` are summed over `S` and return shape `(B,)`.

Formulas (`σ = exp(log_stddev)`, `ψ` = digamma, `log B(a, b) = lgamma(a) +
lgamma(b) - lgamma(a + b)`):

- `Categorical` (int), parameters `logits (B, *S, n)`. With a mask, the
  logits of forbidden values are set to a large negative number, so
  `log p = log_softmax(logits)` is renormalised over allowed values.
  `H = -Σ p log p`, `KL(p‖q) = Σ p (log p - log q)`. Sampling is Gumbel-max
  restricted to allowed values: `argmax(logits / temperature - log(-log u))`.
- `Bernoulli` (bool), parameters `logits (B, *S)`. `p = sigmoid(logits)`,
  `log p(a) = a log p + (1 - a) log(1 - p)`,
  `H = -p log p - (1 - p) log(1 - p)`,
  `KL = p log(p/q) + (1 - p) log((1 - p)/(1 - q))`.
- `Gaussian` (float), parameters `mean`, `log_stddev` `(B, *S)`.
  `log N(x) = -(x - μ)² / (2σ²) - log σ - ½ log 2π`,
  `H = log σ + ½ log(2πe)`,
  `KL = log(σ_q/σ_p) + (σ_p² + (μ_p - μ_q)²) / (2σ_q²) - ½`.
  With finite bounds and `bounded_transform='tanh'`, an action is
  `a = c + h tanh(u)` with `u ~ N(μ, σ)`, `c = (max + min)/2`,
  `h = (max - min)/2`, so `log p(a) = log N(u) - log h - log(1 - tanh²u)`
  with `u = atanh((a - c)/h)`. Entropy and KL are those of `u` (the KL is
  exact: it is invariant under the bijection; the entropy omits the
  action-dependent Jacobian term). With `'clipping'` (or when only one bound
  is finite), samples are clipped and densities are those of the Gaussian.
- `Beta` (bounded float), parameters `alpha`, `beta` `(B, *S)`, both in
  `[1, 1000]`. An action is `a = min + (max - min) y` with
  `y ~ Beta(α, β)`. `log p(a) = (α-1) log y + (β-1) log(1-y) - log B(α,β)
  - log(max - min)`, `H = log B(α,β) - (α-1)ψ(α) - (β-1)ψ(β)
  + (α+β-2)ψ(α+β) + log(max - min)`,
  `KL = log B(α_q,β_q) - log B(α_p,β_p) + (α_p-α_q)ψ(α_p)
  + (β_p-β_q)ψ(β_p) + (α_q-α_p+β_q-β_p)ψ(α_p+β_p)`.

Deterministic actions (`mode`): argmax over allowed values, `logits > 0`,
the mean (squashed with tanh or clipped when bounded), and the mean of the
Beta (well defined for all `α, β ≥ 1`, unlike the Beta's mode).

Int actions are returned as `'int32'` (the host converts to `np.int64`),
bool actions as `'bool'`, float actions in `keras.config.floatx()`.

Example:

>>> from kerasrl.specs import ValueSpec
>>> spec = ValueSpec(type='int', shape=(), num_values=3)
>>> dist = create(spec, name='action')
>>> inputs = keras.Input((8,))
>>> model = keras.Model(inputs, dist.build(inputs))
>>> params = model(np.zeros((4, 8), 'float32'))
>>> tuple(dist.sample(params, keras.random.SeedGenerator(0)).shape)
(4,)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from kerasrl import registry
from kerasrl.errors import ArgumentError, InputError, UnknownTypeError
from kerasrl.specs import BOUND_INFINITY, ValueSpec

Tensor = Any
Params = Mapping[str, Tensor]

LOG_STDDEV_RANGE = (-20.0, 2.0)  # clamp of a Gaussian's log standard deviation
MAX_CONCENTRATION = 1000.0  # upper clamp of a Beta's alpha and beta
MIN_TEMPERATURE = 1e-5  # a sampling temperature below this acts deterministically
_HEAD_GAIN = 0.01  # orthogonal init gain of auxiliary heads (temperature, log stddev)
_SOFTPLUS_INVERSE_ONE = math.log(math.e - 1.0)  # softplus(x) = 1
_TANH_EPSILON = 1e-6  # keeps atanh finite when inverting the squash
_BETA_EPSILON = 1e-6  # keeps log y and log(1 - y) finite
_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


# ---------------------------------------------------------------------- helpers
def _floatx() -> str:
    return keras.config.floatx()


def _to_float(x: Tensor) -> Tensor:
    return ops.cast(x, _floatx())


def _large_negative(dtype: str) -> float:
    """A finite logit for forbidden values: exp() underflows to 0, arithmetic stays finite."""
    return -3.0e4 if dtype == "float16" else -1.0e9


def _lowest_score(dtype: str) -> float:
    """A score below any real one, for argmax over allowed values only."""
    return -6.0e4 if dtype == "float16" else -1.0e30


def _sum_over_action(x: Tensor, rank: int) -> Tensor:
    """Sums the trailing `rank` axes (the action shape), giving shape `(B,)`."""
    if rank == 0:
        return x
    return ops.sum(x, axis=tuple(range(-rank, 0)))


def _apply_mask(logits: Tensor, mask: Tensor | None, value: float) -> Tensor:
    if mask is None:
        return logits
    return ops.where(ops.cast(mask, "bool"), logits, ops.full_like(logits, value))


def _lgamma(x: Tensor) -> Tensor:
    """log Γ(x) for x > 0: recurrence to x + 6, then Stirling's series."""
    z = x + 6.0
    shift = ops.log(x * (x + 1.0) * (x + 2.0) * (x + 3.0) * (x + 4.0) * (x + 5.0))
    inverse = 1.0 / z
    inverse2 = inverse * inverse
    series = inverse * (1.0 / 12.0 - inverse2 * (1.0 / 360.0 - inverse2 / 1260.0))
    return (z - 0.5) * ops.log(z) - z + _HALF_LOG_TWO_PI + series - shift


def _digamma(x: Tensor) -> Tensor:
    """ψ(x) for x > 0: recurrence to x + 6, then the asymptotic series."""
    z = x + 6.0
    shift = sum(1.0 / (x + float(i)) for i in range(6))
    inverse2 = 1.0 / (z * z)
    series = inverse2 * (1.0 / 12.0 - inverse2 * (1.0 / 120.0 - inverse2 / 252.0))
    return ops.log(z) - 0.5 / z - series - shift


def _log_beta_function(alpha: Tensor, beta: Tensor) -> Tensor:
    return _lgamma(alpha) + _lgamma(beta) - _lgamma(alpha + beta)


def _flat_bounds(spec: ValueSpec) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Finite bounds of a float spec as float arrays of `spec.shape` (None if absent)."""
    bounds = []
    for bound in (spec.min_value, spec.max_value):
        if bound is None:
            bounds.append(None)
            continue
        array = np.broadcast_to(np.asarray(bound, dtype=np.float64), spec.shape)
        finite = np.isfinite(array) & (np.abs(array) < BOUND_INFINITY)
        bounds.append(array.astype(np.float32) if finite.all() else None)
    return bounds[0], bounds[1]


@keras.saving.register_keras_serializable(package="kerasrl")
class GlobalParameter(keras.layers.Layer):
    """A trainable array of a fixed shape, independent of the input, batched.

    Used for state-independent parameters (a global log standard deviation or
    temperature): one weight per action dimension, broadcast to the batch.

    Args:
        shape: Shape of the parameter (the action shape).
        initial_value: Initial value of every entry.
        **kwargs: Layer arguments (`name`, ...).

    Call arguments:
        inputs: Any tensor with a leading batch axis (only its batch size is used).

    Returns:
        A tensor of shape `(batch,) + shape`.
    """

    def __init__(self, shape: tuple[int, ...] = (), initial_value: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.value_shape = tuple(int(d) for d in shape)
        self.initial_value = float(initial_value)

    def build(self, input_shape: tuple) -> None:
        self.value = self.add_weight(
            name="value",
            shape=self.value_shape,
            initializer=keras.initializers.Constant(self.initial_value),
            trainable=True,
        )

    def call(self, inputs: Tensor) -> Tensor:
        first_entries = inputs[(slice(None),) + (0,) * (len(inputs.shape) - 1)]
        batch_zeros = ops.zeros_like(first_entries)  # (batch,), no NaN from the inputs
        batch_zeros = ops.reshape(batch_zeros, (-1,) + (1,) * len(self.value_shape))
        return ops.cast(batch_zeros, self.compute_dtype) + ops.cast(self.value, self.compute_dtype)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0],) + self.value_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(shape=list(self.value_shape), initial_value=self.initial_value)
        return config


# ---------------------------------------------------------------------- base class
class Distribution:
    """Base class of action distributions.

    Args:
        spec: The action `ValueSpec`.
        name: Name of the action, used as prefix of the head layers' names
            (`'/'` is replaced by `'_'`) and in error messages.

    Raises:
        ArgumentError: if the distribution does not fit the action type.
    """

    type_key: str = ""
    action_types: tuple[str, ...] = ()

    def __init__(self, spec: ValueSpec, name: str = "action"):
        if not isinstance(spec, ValueSpec):
            raise ArgumentError.invalid(
                "spec", "a kerasrl.specs.ValueSpec", spec, where=f"action '{name}'"
            )
        if spec.type not in self.action_types:
            raise ArgumentError.invalid(
                "distributions",
                f"a distribution for a {spec.type} action ({_DEFAULT_BY_TYPE[spec.type]})",
                f"{self.type_key} (for {' or '.join(self.action_types)} actions)",
                where=f"action '{name}'",
            )
        self.spec = spec
        self.name = str(name)
        self.prefix = self.name.replace("/", "_")

    # -------------------------------------------------------------- config
    def get_config(self) -> dict:
        """Returns the Tensorforce-style distribution spec: `create(spec, config)` rebuilds it."""
        return {"type": self.type_key}

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "type")
        return f"{type(self).__name__}({self.name!r}{', ' if options else ''}{options})"

    # -------------------------------------------------------------- helpers
    @property
    def rank(self) -> int:
        return self.spec.rank

    @property
    def size(self) -> int:
        return self.spec.size

    def _flatten(self, embedding: Tensor) -> Tensor:
        if len(embedding.shape) == 2:
            return embedding
        if len(embedding.shape) < 2:
            raise ArgumentError.invalid(
                "embedding", "a tensor of shape (batch, size)", tuple(embedding.shape),
                where=f"distribution of action '{self.name}'",
            )
        return keras.layers.Flatten(name=f"{self.prefix}_flatten")(embedding)

    def _check_scale(self, initialization_scale: Any) -> float:
        if (isinstance(initialization_scale, bool)
                or not isinstance(initialization_scale, (int, float))
                or not math.isfinite(initialization_scale) or initialization_scale < 0):
            raise ArgumentError.invalid(
                "initialization_scale", "a finite float >= 0", initialization_scale,
                where=f"{self.type_key} distribution of action '{self.name}'",
            )
        return float(initialization_scale)

    def _dense(self, x: Tensor, units: int, suffix: str, bias: float = 0.0,
               gain: float = _HEAD_GAIN) -> Tensor:
        return keras.layers.Dense(
            units,
            kernel_initializer=keras.initializers.Orthogonal(gain=gain),
            bias_initializer=keras.initializers.Constant(bias),
            name=f"{self.prefix}_{suffix}",
        )(x)

    def _reshape(self, x: Tensor, suffix_shape: tuple[int, ...] = ()) -> Tensor:
        shape = self.spec.shape + suffix_shape
        if isinstance(x, keras.KerasTensor):  # functional graph: a named layer
            name = getattr(x, "_keras_history", None)
            layer = name.operation.name if name is not None else self.prefix
            return keras.layers.Reshape(shape, name=f"{layer}_reshape")(x)
        return ops.reshape(x, (-1,) + shape)

    # -------------------------------------------------------------- interface
    def build(self, embedding: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        """Adds the head layers on top of an embedding.

        Args:
            embedding: A Keras functional tensor of shape `(batch, size)`
                (higher ranks are flattened).

        Returns:
            A dict of parameter tensors, each `(batch,) + spec.shape` (plus
            `(num_values,)` for categorical logits).
        """
        raise NotImplementedError

    def sample(
        self, params: Params, seed: Any, mask: Tensor | None = None, temperature: Any = 1.0
    ) -> Tensor:  # pragma: no cover - abstract
        """Samples actions.

        Args:
            params: The parameters returned by the `build` model.
            seed: A `keras.random.SeedGenerator` (or any seed `keras.random`
                accepts). One random draw is made per call.
            mask: Optional bool mask `(batch, *shape, num_values)` (int actions
                only; ignored by the other distributions).
            temperature: A float or scalar tensor; below `MIN_TEMPERATURE`
                the deterministic `mode` is returned.

        Returns:
            Actions of shape `(batch,) + spec.shape`: int32, bool or float.
        """
        raise NotImplementedError

    def mode(self, params: Params, mask: Tensor | None = None) -> Tensor:  # pragma: no cover
        """Returns the deterministic action `(batch,) + spec.shape`."""
        raise NotImplementedError

    def log_prob(
        self, params: Params, action: Tensor, mask: Tensor | None = None
    ) -> Tensor:  # pragma: no cover - abstract
        """Returns the log-likelihood of `action`, summed over the action shape, `(batch,)`."""
        raise NotImplementedError

    def entropy(self, params: Params, mask: Tensor | None = None) -> Tensor:  # pragma: no cover
        """Returns the entropy, summed over the action shape, `(batch,)`."""
        raise NotImplementedError

    def kl_divergence(
        self, params_p: Params, params_q: Params, mask: Tensor | None = None
    ) -> Tensor:  # pragma: no cover - abstract
        """Returns KL(p‖q), summed over the action shape, `(batch,)`."""
        raise NotImplementedError

    def explore(
        self, action: Tensor, exploration: Any, seed: Any, mask: Tensor | None = None
    ) -> Tensor:  # pragma: no cover - abstract
        """Applies Tensorforce's exploration to actions (one random draw).

        Bool/int: with probability `exploration`, replace by a uniform random
        (allowed) value. Float: add `N(0, 1) * exploration`, then clip to the
        bounds.

        Args:
            action: Actions `(batch,) + spec.shape`.
            exploration: A float or scalar tensor.
            seed: A `keras.random.SeedGenerator` (or any seed `keras.random` accepts).
            mask: Optional bool mask (int actions only).

        Returns:
            Actions of the same shape and dtype kind.
        """
        raise NotImplementedError


# ---------------------------------------------------------------------- categorical
class Categorical(Distribution):
    """Categorical distribution for int actions, with optional action masks.

    Args:
        spec: An int `ValueSpec` with `num_values` (any shape).
        temperature_mode: None (plain logits), `'predicted'` (a positive
            temperature per action dimension predicted from the embedding) or
            `'global'` (one trainable temperature per action dimension); the
            logits are divided by it. Initial temperature: about 1.
        skip_linear: Use the embedding itself as logits (its size must be
            `prod(shape) * num_values`) instead of a dense layer.
        initialization_scale: Gain of the orthogonal initializer of the
            logits layer. The default 1.0 is Tensorforce's (its `linear`
            layer); 0.01 starts from a near-uniform policy, as
            Stable-Baselines3 does.
        name: Action name (layer-name prefix).

    Parameters: `{'logits': (B, *shape, num_values)}`. Masks are boolean,
    shaped like the logits, True = allowed.

    Example:

    >>> dist = Categorical(ValueSpec(type='int', shape=(2,), num_values=4))
    >>> logits = ops.zeros((3, 2, 4))
    >>> tuple(dist.log_prob({'logits': logits}, ops.zeros((3, 2), 'int32')).shape)
    (3,)
    """

    type_key = "categorical"
    action_types = ("int",)

    def __init__(
        self,
        spec: ValueSpec,
        temperature_mode: str | None = None,
        skip_linear: bool = False,
        initialization_scale: float = 1.0,
        name: str = "action",
    ):
        super().__init__(spec, name)
        self.initialization_scale = self._check_scale(initialization_scale)
        if spec.num_values is None:
            raise ArgumentError.invalid(
                "num_values", "an int action spec with num_values", spec, where=f"action '{name}'"
            )
        if temperature_mode not in (None, "predicted", "global"):
            raise ArgumentError.invalid(
                "temperature_mode", "None, 'predicted' or 'global'", temperature_mode,
                where=f"categorical distribution of action '{name}'",
            )
        self.num_values = spec.num_values
        self.temperature_mode = temperature_mode
        self.skip_linear = bool(skip_linear)

    def get_config(self) -> dict:
        return {
            "type": self.type_key,
            "temperature_mode": self.temperature_mode,
            "skip_linear": self.skip_linear,
            "initialization_scale": self.initialization_scale,
        }

    def build(self, embedding: Tensor) -> dict[str, Tensor]:
        """Returns `{'logits': (B, *shape, num_values)}` computed from `embedding`."""
        x = self._flatten(embedding)
        units = self.size * self.num_values
        if self.skip_linear:
            if x.shape[-1] != units:
                raise ArgumentError.invalid(
                    "skip_linear", f"an embedding of size prod(shape) * num_values = {units}",
                    x.shape[-1], where=f"categorical distribution of action '{self.name}'",
                )
            logits = x
        else:
            logits = self._dense(x, units, "logits", gain=self.initialization_scale)
        logits = self._reshape(logits, (self.num_values,))
        if self.temperature_mode is not None:
            if self.temperature_mode == "predicted":
                raw = self._reshape(self._dense(x, self.size, "temperature", _SOFTPLUS_INVERSE_ONE))
            else:
                raw = GlobalParameter(
                    self.spec.shape, _SOFTPLUS_INVERSE_ONE, name=f"{self.prefix}_temperature"
                )(x)
            temperature = ops.softplus(raw) + 1e-2
            logits = logits / ops.expand_dims(temperature, -1)
        return {"logits": logits}

    def _log_probs(self, params: Params, mask: Tensor | None) -> Tensor:
        logits = _to_float(params["logits"])
        logits = _apply_mask(logits, mask, _large_negative(_floatx()))
        return ops.log_softmax(logits, axis=-1)

    def sample(
        self, params: Params, seed: Any, mask: Tensor | None = None, temperature: Any = 1.0
    ) -> Tensor:
        """Samples int32 actions `(B, *shape)`, only among allowed values.

        Args:
            params: `{'logits': ...}`.
            seed: A `keras.random.SeedGenerator` (or any seed `keras.random` accepts).
            mask: Optional boolean mask `(B, *shape, num_values)`, True = allowed.
            temperature: Logits are divided by it; below `MIN_TEMPERATURE`
                the mode is returned (a float or a scalar tensor).

        Returns:
            An int32 tensor of shape `(B, *shape)`.
        """
        logits = _to_float(params["logits"])
        temperature = ops.cast(temperature, logits.dtype)
        uniform = keras.random.uniform(
            ops.shape(logits), minval=1e-7, maxval=1.0, dtype=logits.dtype, seed=seed
        )
        gumbel = -ops.log(-ops.log(uniform))
        scores = logits / ops.maximum(temperature, MIN_TEMPERATURE) + gumbel
        scores = _apply_mask(scores, mask, _lowest_score(_floatx()))
        sampled = ops.cast(ops.argmax(scores, axis=-1), "int32")
        return ops.where(temperature < MIN_TEMPERATURE, self.mode(params, mask), sampled)

    def mode(self, params: Params, mask: Tensor | None = None) -> Tensor:
        """Returns the most likely allowed value (int32, `(B, *shape)`)."""
        logits = _apply_mask(_to_float(params["logits"]), mask, _lowest_score(_floatx()))
        return ops.cast(ops.argmax(logits, axis=-1), "int32")

    def log_prob(self, params: Params, action: Tensor, mask: Tensor | None = None) -> Tensor:
        """Log-probability of `action` `(B, *shape)`, renormalised over allowed values, `(B,)`.

        A forbidden action gets a huge negative log-probability (about -1e9), not -inf.
        """
        log_probs = self._log_probs(params, mask)
        index = ops.expand_dims(ops.cast(action, "int32"), -1)
        selected = ops.squeeze(ops.take_along_axis(log_probs, index, axis=-1), -1)
        return _sum_over_action(selected, self.rank)

    def entropy(self, params: Params, mask: Tensor | None = None) -> Tensor:
        """Entropy `-Σ p log p` over allowed values, summed over the action shape, `(B,)`."""
        log_probs = self._log_probs(params, mask)
        return _sum_over_action(-ops.sum(ops.exp(log_probs) * log_probs, axis=-1), self.rank)

    def kl_divergence(
        self, params_p: Params, params_q: Params, mask: Tensor | None = None
    ) -> Tensor:
        """KL(p‖q) with both renormalised over allowed values, `(B,)`."""
        log_p = self._log_probs(params_p, mask)
        log_q = self._log_probs(params_q, mask)
        return _sum_over_action(ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1), self.rank)

    def explore(
        self, action: Tensor, exploration: Any, seed: Any, mask: Tensor | None = None
    ) -> Tensor:
        """With probability `exploration`, replaces each action by a uniform allowed value."""
        action = ops.cast(action, "int32")
        uniform = keras.random.uniform(
            tuple(ops.shape(action)) + (self.num_values + 1,), dtype=_floatx(), seed=seed
        )
        scores = _apply_mask(uniform[..., : self.num_values], mask, -1.0)
        random_action = ops.cast(ops.argmax(scores, axis=-1), "int32")
        replace = uniform[..., self.num_values] < ops.cast(exploration, uniform.dtype)
        return ops.where(replace, random_action, action)


# ---------------------------------------------------------------------- bernoulli
class Bernoulli(Distribution):
    """Bernoulli distribution for bool actions.

    Args:
        spec: A bool `ValueSpec` (any shape).
        initialization_scale: Gain of the orthogonal initializer of the
            logits layer (default 1.0, Tensorforce's).
        name: Action name (layer-name prefix).

    Parameters: `{'logits': (B, *shape)}`, `p(True) = sigmoid(logits)`.
    Masks are ignored.
    """

    type_key = "bernoulli"
    action_types = ("bool",)

    def __init__(self, spec: ValueSpec, initialization_scale: float = 1.0,
                 name: str = "action"):
        super().__init__(spec, name)
        self.initialization_scale = self._check_scale(initialization_scale)

    def get_config(self) -> dict:
        return {"type": self.type_key, "initialization_scale": self.initialization_scale}

    def build(self, embedding: Tensor) -> dict[str, Tensor]:
        """Returns `{'logits': (B, *shape)}` computed from `embedding`."""
        x = self._flatten(embedding)
        return {"logits": self._reshape(self._dense(x, self.size, "logits",
                                                    gain=self.initialization_scale))}

    def sample(
        self, params: Params, seed: Any, mask: Tensor | None = None, temperature: Any = 1.0
    ) -> Tensor:
        """Samples bool actions `(B, *shape)`; logits are divided by `temperature`."""
        logits = _to_float(params["logits"])
        temperature = ops.cast(temperature, logits.dtype)
        uniform = keras.random.uniform(ops.shape(logits), dtype=logits.dtype, seed=seed)
        probability = ops.sigmoid(logits / ops.maximum(temperature, MIN_TEMPERATURE))
        sampled = uniform < probability
        return ops.where(temperature < MIN_TEMPERATURE, self.mode(params), sampled)

    def mode(self, params: Params, mask: Tensor | None = None) -> Tensor:
        """Returns `logits > 0` (bool, `(B, *shape)`)."""
        return _to_float(params["logits"]) > 0.0

    def log_prob(self, params: Params, action: Tensor, mask: Tensor | None = None) -> Tensor:
        logits = _to_float(params["logits"])
        action = ops.cast(action, logits.dtype)
        log_p = action * ops.log_sigmoid(logits) + (1.0 - action) * ops.log_sigmoid(-logits)
        return _sum_over_action(log_p, self.rank)

    def entropy(self, params: Params, mask: Tensor | None = None) -> Tensor:
        logits = _to_float(params["logits"])
        p = ops.sigmoid(logits)
        h = -p * ops.log_sigmoid(logits) - (1.0 - p) * ops.log_sigmoid(-logits)
        return _sum_over_action(h, self.rank)

    def kl_divergence(
        self, params_p: Params, params_q: Params, mask: Tensor | None = None
    ) -> Tensor:
        logits_p = _to_float(params_p["logits"])
        logits_q = _to_float(params_q["logits"])
        p = ops.sigmoid(logits_p)
        kl = p * (ops.log_sigmoid(logits_p) - ops.log_sigmoid(logits_q)) + (1.0 - p) * (
            ops.log_sigmoid(-logits_p) - ops.log_sigmoid(-logits_q)
        )
        return _sum_over_action(kl, self.rank)

    def explore(
        self, action: Tensor, exploration: Any, seed: Any, mask: Tensor | None = None
    ) -> Tensor:
        """With probability `exploration`, replaces each action by a uniform random bool."""
        action = ops.cast(action, "bool")
        uniform = keras.random.uniform(tuple(ops.shape(action)) + (2,), dtype=_floatx(), seed=seed)
        replace = uniform[..., 0] < ops.cast(exploration, uniform.dtype)
        return ops.where(replace, uniform[..., 1] < 0.5, action)


# ---------------------------------------------------------------------- continuous base
class _Continuous(Distribution):
    """Shared parts of float distributions: bounds and exploration noise."""

    action_types = ("float",)

    def __init__(self, spec: ValueSpec, name: str = "action"):
        super().__init__(spec, name)
        self.min_value, self.max_value = _flat_bounds(spec)

    def _clip_to_bounds(self, x: Tensor) -> Tensor:
        if self.min_value is not None:
            x = ops.maximum(x, ops.convert_to_tensor(self.min_value, dtype=x.dtype))
        if self.max_value is not None:
            x = ops.minimum(x, ops.convert_to_tensor(self.max_value, dtype=x.dtype))
        return x

    def explore(
        self, action: Tensor, exploration: Any, seed: Any, mask: Tensor | None = None
    ) -> Tensor:
        """Adds `N(0, 1) * exploration` noise, then clips to the bounds (if any)."""
        action = _to_float(action)
        noise = keras.random.normal(ops.shape(action), dtype=action.dtype, seed=seed)
        return self._clip_to_bounds(action + noise * ops.cast(exploration, action.dtype))


# ---------------------------------------------------------------------- gaussian
class Gaussian(_Continuous):
    """Diagonal Gaussian for float actions, optionally squashed or clipped to bounds.

    Args:
        spec: A float `ValueSpec` (any shape).
        stddev_mode: `'predicted'` (the log standard deviation is a dense
            output of the embedding) or `'global'` (one trainable log
            standard deviation per action dimension, independent of the
            state). Initial standard deviation: about 1. The log standard
            deviation is clamped to `LOG_STDDEV_RANGE`.
        bounded_transform: For actions with finite `min_value` and
            `max_value`: `'tanh'` (squash, with the change-of-variables
            correction in `log_prob`) or `'clipping'` (clip samples). An
            action with only one finite bound is always clipped.
        initialization_scale: Gain of the orthogonal initializer of the mean
            layer. Default 0.01 (a mean near 0 in every state at the start;
            with a tanh squash, a larger gain starts many states near the
            bounds).
        name: Action name (layer-name prefix).

    Parameters: `{'mean': (B, *shape), 'log_stddev': (B, *shape)}`, both
    of the underlying (unsquashed) Gaussian.
    """

    type_key = "gaussian"

    def __init__(
        self,
        spec: ValueSpec,
        stddev_mode: str = "predicted",
        bounded_transform: str = "tanh",
        initialization_scale: float = _HEAD_GAIN,
        name: str = "action",
    ):
        super().__init__(spec, name)
        self.initialization_scale = self._check_scale(initialization_scale)
        where = f"gaussian distribution of action '{name}'"
        if stddev_mode not in ("predicted", "global"):
            raise ArgumentError.invalid(
                "stddev_mode", "'predicted' or 'global'", stddev_mode, where
            )
        if bounded_transform not in ("tanh", "clipping"):
            raise ArgumentError.invalid(
                "bounded_transform", "'tanh' or 'clipping'", bounded_transform, where
            )
        self.stddev_mode = stddev_mode
        self.bounded_transform = bounded_transform
        has_bounds = self.min_value is not None and self.max_value is not None
        self.squashed = bounded_transform == "tanh" and has_bounds
        if self.squashed:
            self.center = (self.max_value + self.min_value) / 2.0
            self.half_range = np.maximum((self.max_value - self.min_value) / 2.0, 1e-6)

    def get_config(self) -> dict:
        return {
            "type": self.type_key,
            "stddev_mode": self.stddev_mode,
            "bounded_transform": self.bounded_transform,
            "initialization_scale": self.initialization_scale,
        }

    def build(self, embedding: Tensor) -> dict[str, Tensor]:
        """Returns `{'mean': (B, *shape), 'log_stddev': (B, *shape)}` from `embedding`."""
        x = self._flatten(embedding)
        mean = self._reshape(self._dense(x, self.size, "mean", gain=self.initialization_scale))
        if self.stddev_mode == "predicted":
            log_stddev = self._reshape(self._dense(x, self.size, "log_stddev"))
        else:
            log_stddev = GlobalParameter(self.spec.shape, 0.0, name=f"{self.prefix}_log_stddev")(x)
        log_stddev = ops.clip(log_stddev, *LOG_STDDEV_RANGE)
        return {"mean": mean, "log_stddev": log_stddev}

    def _params(self, params: Params) -> tuple[Tensor, Tensor]:
        mean = _to_float(params["mean"])
        log_stddev = ops.clip(_to_float(params["log_stddev"]), *LOG_STDDEV_RANGE)
        return mean, log_stddev

    def _squash(self, u: Tensor) -> Tensor:
        center = ops.convert_to_tensor(self.center, dtype=u.dtype)
        half_range = ops.convert_to_tensor(self.half_range, dtype=u.dtype)
        return center + half_range * ops.tanh(u)

    def _to_action(self, u: Tensor) -> Tensor:
        return self._squash(u) if self.squashed else self._clip_to_bounds(u)

    def sample(
        self, params: Params, seed: Any, mask: Tensor | None = None, temperature: Any = 1.0
    ) -> Tensor:
        """Samples float actions `(B, *shape)`: `mean + stddev * temperature * N(0, 1)`,
        then squashed or clipped into the bounds. `mask` is ignored."""
        mean, log_stddev = self._params(params)
        noise = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=seed)
        u = mean + ops.exp(log_stddev) * ops.cast(temperature, mean.dtype) * noise
        return self._to_action(u)

    def mode(self, params: Params, mask: Tensor | None = None) -> Tensor:
        """Returns the mean, squashed (`tanh`) or clipped into the bounds."""
        mean, _ = self._params(params)
        return self._to_action(mean)

    def log_prob(self, params: Params, action: Tensor, mask: Tensor | None = None) -> Tensor:
        """Log-density of `action`, `(B,)`; for tanh squashing, that of the squashed variable."""
        mean, log_stddev = self._params(params)
        action = _to_float(action)
        if self.squashed:
            center = ops.convert_to_tensor(self.center, dtype=action.dtype)
            half_range = ops.convert_to_tensor(self.half_range, dtype=action.dtype)
            y = ops.clip((action - center) / half_range, -1.0 + _TANH_EPSILON, 1.0 - _TANH_EPSILON)
            u = ops.arctanh(y)
            correction = ops.log(half_range) + ops.log1p(-y) + ops.log1p(y)
        else:
            u = action
            correction = 0.0
        z = (u - mean) * ops.exp(-log_stddev)
        log_p = -0.5 * z * z - log_stddev - _HALF_LOG_TWO_PI - correction
        return _sum_over_action(log_p, self.rank)

    def entropy(self, params: Params, mask: Tensor | None = None) -> Tensor:
        """Entropy of the underlying (unsquashed) Gaussian, `(B,)`."""
        _, log_stddev = self._params(params)
        return _sum_over_action(log_stddev + 0.5 + _HALF_LOG_TWO_PI, self.rank)

    def kl_divergence(
        self, params_p: Params, params_q: Params, mask: Tensor | None = None
    ) -> Tensor:
        """KL of the underlying Gaussians (exact for tanh squashing), `(B,)`."""
        mean_p, log_stddev_p = self._params(params_p)
        mean_q, log_stddev_q = self._params(params_q)
        variance_ratio = ops.exp(2.0 * (log_stddev_p - log_stddev_q))
        distance = (mean_p - mean_q) * ops.exp(-log_stddev_q)
        kl = log_stddev_q - log_stddev_p + 0.5 * (variance_ratio + distance * distance) - 0.5
        return _sum_over_action(kl, self.rank)


# ---------------------------------------------------------------------- beta
class Beta(_Continuous):
    """Beta distribution for bounded float actions, mapped affinely to `[min, max]`.

    Args:
        spec: A float `ValueSpec` with finite `min_value` and `max_value`.
        name: Action name (layer-name prefix).

    Parameters: `{'alpha': (B, *shape), 'beta': (B, *shape)}`, each
    `1 + softplus(dense(embedding))` clamped to `[1, MAX_CONCENTRATION]`
    (unimodal). The deterministic action is the mean `α / (α + β)`.
    """

    type_key = "beta"

    def __init__(self, spec: ValueSpec, name: str = "action"):
        super().__init__(spec, name)
        if not spec.is_bounded():
            raise ArgumentError.invalid(
                "distributions",
                "a float action with finite min_value and max_value for a beta distribution",
                {"min_value": spec.min_value, "max_value": spec.max_value},
                where=f"action '{name}'",
            )
        self.range = np.maximum(self.max_value - self.min_value, 1e-6).astype(np.float32)

    def build(self, embedding: Tensor) -> dict[str, Tensor]:
        """Returns `{'alpha': (B, *shape), 'beta': (B, *shape)}` from `embedding`."""
        x = self._flatten(embedding)
        params = {}
        for key in ("alpha", "beta"):
            raw = self._reshape(self._dense(x, self.size, key))
            params[key] = ops.clip(1.0 + ops.softplus(raw), 1.0, MAX_CONCENTRATION)
        return params

    def _params(self, params: Params) -> tuple[Tensor, Tensor]:
        alpha = ops.clip(_to_float(params["alpha"]), 1.0, MAX_CONCENTRATION)
        beta = ops.clip(_to_float(params["beta"]), 1.0, MAX_CONCENTRATION)
        return alpha, beta

    def _to_action(self, y: Tensor) -> Tensor:
        low = ops.convert_to_tensor(self.min_value, dtype=y.dtype)
        scale = ops.convert_to_tensor(self.range, dtype=y.dtype)
        return self._clip_to_bounds(low + scale * ops.clip(y, 0.0, 1.0))

    def sample(
        self, params: Params, seed: Any, mask: Tensor | None = None, temperature: Any = 1.0
    ) -> Tensor:
        """Samples float actions in `[min, max]`, `(B, *shape)`.

        A `temperature` below `MIN_TEMPERATURE` returns the mode (the mean);
        otherwise it has no effect. `mask` is ignored.
        """
        alpha, beta = self._params(params)
        y = keras.random.beta(ops.shape(alpha), alpha, beta, dtype=alpha.dtype, seed=seed)
        deterministic = ops.cast(temperature, alpha.dtype) < MIN_TEMPERATURE
        return ops.where(deterministic, self.mode(params), self._to_action(y))

    def mode(self, params: Params, mask: Tensor | None = None) -> Tensor:
        """Returns the mean `min + (max - min) α / (α + β)`."""
        alpha, beta = self._params(params)
        return self._to_action(alpha / (alpha + beta))

    def log_prob(self, params: Params, action: Tensor, mask: Tensor | None = None) -> Tensor:
        alpha, beta = self._params(params)
        action = _to_float(action)
        low = ops.convert_to_tensor(self.min_value, dtype=action.dtype)
        scale = ops.convert_to_tensor(self.range, dtype=action.dtype)
        y = ops.clip((action - low) / scale, _BETA_EPSILON, 1.0 - _BETA_EPSILON)
        log_p = (
            (alpha - 1.0) * ops.log(y)
            + (beta - 1.0) * ops.log1p(-y)
            - _log_beta_function(alpha, beta)
            - ops.log(scale)
        )
        return _sum_over_action(log_p, self.rank)

    def entropy(self, params: Params, mask: Tensor | None = None) -> Tensor:
        alpha, beta = self._params(params)
        scale = ops.convert_to_tensor(self.range, dtype=alpha.dtype)
        h = (
            _log_beta_function(alpha, beta)
            - (alpha - 1.0) * _digamma(alpha)
            - (beta - 1.0) * _digamma(beta)
            + (alpha + beta - 2.0) * _digamma(alpha + beta)
            + ops.log(scale)
        )
        return _sum_over_action(h, self.rank)

    def kl_divergence(
        self, params_p: Params, params_q: Params, mask: Tensor | None = None
    ) -> Tensor:
        alpha_p, beta_p = self._params(params_p)
        alpha_q, beta_q = self._params(params_q)
        kl = (
            _log_beta_function(alpha_q, beta_q)
            - _log_beta_function(alpha_p, beta_p)
            + (alpha_p - alpha_q) * _digamma(alpha_p)
            + (beta_p - beta_q) * _digamma(beta_p)
            + (alpha_q - alpha_p + beta_q - beta_p) * _digamma(alpha_p + beta_p)
        )
        return _sum_over_action(kl, self.rank)


# ---------------------------------------------------------------------- factory
DISTRIBUTIONS: dict[str, type[Distribution]] = {
    "bernoulli": Bernoulli,
    "categorical": Categorical,
    "gaussian": Gaussian,
    "beta": Beta,
}
_DEFAULT_BY_TYPE = {"bool": "bernoulli", "int": "categorical", "float": "gaussian or beta"}


def default_type(spec: ValueSpec, use_beta_distribution: bool = False) -> str:
    """Returns the default distribution key for an action spec (Tensorforce's choice)."""
    if spec.type == "bool":
        return "bernoulli"
    if spec.type == "int":
        return "categorical"
    return "beta" if use_beta_distribution and spec.is_bounded() else "gaussian"


def create(
    spec: ValueSpec,
    config: Any = None,
    use_beta_distribution: bool = False,
    name: str = "action",
) -> Distribution:
    """Creates the distribution of one action from a Tensorforce-style spec.

    Args:
        spec: The action `ValueSpec`.
        config: None (the default for the action type), a type key
            (`'categorical'`, `'bernoulli'`, `'gaussian'`, `'beta'`), a dict
            with `type` and options (`dict(type='gaussian',
            stddev_mode='global')`), a dict of options of the default type, a
            dict keyed by action name and/or action type (`'bool'`, `'int'`,
            `'float'`; the name wins) whose entries are any of these, a
            `Distribution` subclass, or an instance (returned unchanged).
        use_beta_distribution: Default to `Beta` for bounded float actions.
        name: Action name (layer-name prefix and error messages).

    Returns:
        A `Distribution`.

    Raises:
        UnknownTypeError: for an unknown type key.
        ArgumentError: for a distribution that does not fit the action type,
            or invalid options.

    Example:

    >>> spec = ValueSpec(type='float', shape=(2,), min_value=-1.0, max_value=1.0)
    >>> create(spec, dict(float=dict(type='gaussian', stddev_mode='global')))
    Gaussian('action', stddev_mode='global', bounded_transform='tanh', initialization_scale=0.01)
    """
    if isinstance(config, Distribution):
        return config
    where = f"action '{name}'"
    if registry.is_json_path(config):
        config = registry.load_json(config, "distributions")
    if isinstance(config, Mapping) and "type" not in config and _is_per_action(config, name):
        selected = config.get(name, config.get(spec.type))
        return create(spec, selected, use_beta_distribution, name)
    if config is None or isinstance(config, (str, type)):
        type_, options = config, {}
    elif isinstance(config, Mapping):
        options = dict(config)
        type_ = options.pop("type", None)
        if registry.is_json_path(type_):
            loaded = registry.load_json(type_, "distributions")
            return create(spec, {**loaded, **options}, use_beta_distribution, name)
    else:
        raise ArgumentError.invalid(
            "distributions", "None, a type key, a dict with 'type', or a Distribution",
            config, where=where,
        )
    if type_ is None:
        type_ = default_type(spec, use_beta_distribution)
    cls = _distribution_class(type_, where)
    options.pop("name", None)
    try:
        return cls(spec, name=name, **options)
    except TypeError as exc:
        key = cls.type_key or cls.__name__
        raise ArgumentError(
            f"Invalid options {options!r} for distribution '{key}' of {where}: {exc}."
        ) from None


def _is_per_action(config: Mapping, name: str) -> bool:
    """A dict keyed by action names/types (rather than options of the default type)."""
    if set(config) & ({name} | set(_DEFAULT_BY_TYPE)):
        return True
    return all(isinstance(value, Mapping) for value in config.values())


def _distribution_class(type_: Any, where: str) -> type[Distribution]:
    """Resolves a type key, an import path or a class to a `Distribution` subclass."""
    if isinstance(type_, str):
        obj = DISTRIBUTIONS.get(type_.lower()) or registry.import_object(
            type_, Distribution, "distributions")
    else:
        obj = type_
    if isinstance(obj, type) and issubclass(obj, Distribution):
        return obj
    error = UnknownTypeError if isinstance(type_, str) else ArgumentError
    raise error.invalid(
        "distributions",
        f"one of {sorted(DISTRIBUTIONS)}, or an import path or class of a Distribution subclass",
        type_, where=where,
    )


# ---------------------------------------------------------------------- masks (host side)
def check_mask(mask: Any, spec: ValueSpec, argument: str = "action_mask") -> np.ndarray:
    """Validates a batched action mask on the host.

    Args:
        mask: Bool array (or 0/1 ints) of shape `(batch,) + spec.shape +
            (spec.num_values,)`, True = allowed.
        spec: The int action `ValueSpec`.
        argument: Name of the argument, used in error messages.

    Returns:
        The mask as a numpy bool array.

    Raises:
        InputError: wrong dtype or shape, or a position without any allowed value.
        ArgumentError: if `spec` is not an int spec with `num_values`.
    """
    if spec.type != "int" or spec.num_values is None:
        raise ArgumentError.invalid(
            argument, "a mask only for an int action with num_values", spec
        )
    array = np.asarray(mask)
    kind = array.dtype.kind
    if kind not in "biuf" or (kind != "b" and not np.isin(array, (0, 1)).all()):
        raise InputError.invalid(argument, "a bool mask (True = allowed)", mask)
    array = array.astype(np.bool_, copy=False)
    expected = spec.mask_shape()
    if array.ndim != 1 + len(expected) or tuple(array.shape[1:]) != expected:
        raise InputError.invalid(
            argument, f"a bool mask of shape (batch,) + {spec.shape} + ({spec.num_values},) "
            f"= (batch, {', '.join(str(d) for d in expected)})", array,
        )
    invalid = ~array.any(axis=-1)
    if invalid.any():
        position = tuple(int(i) for i in np.argwhere(invalid)[0])
        where = f" at batch index {position[0]}"
        if len(position) > 1:
            where += f", action index {position[1:] if len(position) > 2 else position[1]}"
        raise InputError(
            f"Invalid argument '{argument}': expected at least one allowed (True) value per "
            f"action, received all-False mask{where}."
        )
    return array


__all__ = [
    "Distribution",
    "Categorical",
    "Bernoulli",
    "Gaussian",
    "Beta",
    "GlobalParameter",
    "DISTRIBUTIONS",
    "create",
    "default_type",
    "check_mask",
]
