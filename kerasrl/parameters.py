"""Hyper-parameters that may change during training (schedules).

Wherever an agent argument is documented as a *parameter*, it accepts a
constant or a schedule spec, as in Tensorforce:

- `constant(value)`
- `linear(unit, num_steps, initial_value, final_value)`
- `exponential(unit, num_steps, initial_value, decay_rate, staircase=False)`
- `decaying(decay, unit, num_steps, initial_value, ...)` with `decay` one of
  `linear`, `exponential`, `polynomial`, `inverse_time`, `cosine`,
  `cosine_restarts`, `linear_cosine`, `linear_cosine_noisy` (also usable
  directly as `type`)
- `piecewise_constant(unit, boundaries, values)`
- `ornstein_uhlenbeck(theta=0.15, sigma=0.3, mu=0.0, absolute=False)`
- `random(distribution='normal'|'uniform', ...)`

`unit` is `'timesteps'`, `'episodes'` or `'updates'`. Values are computed on
the host from the agent's counters and fed to the compiled functions as
inputs, so a schedule never triggers recompilation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from kerasrl import registry
from kerasrl.errors import ArgumentError
from kerasrl.validation import check_float, check_int, describe_range, in_range

UNITS = ("timesteps", "episodes", "updates")


class Parameter:
    """Base class: a value that depends on the agent's counters.

    Args:
        unit: Counter the schedule follows: `'timesteps'`, `'episodes'` or
            `'updates'` (None for constant-like parameters).
    """

    def __init__(self, unit: str | None = None):
        if unit is not None and unit not in UNITS:
            raise ArgumentError.invalid("unit", f"one of {UNITS}", unit, where="parameter")
        self.unit = unit

    def step_of(self, counters: Mapping[str, int]) -> int:
        return int(counters.get(self.unit, 0)) if self.unit else 0

    def value(self, counters: Mapping[str, int] | None = None) -> float:
        """Current value given `counters` (`{'timesteps': .., 'episodes': .., 'updates': ..}`)."""
        return float(self.compute(self.step_of(counters or {})))

    def final_value(self) -> float:
        """The value used by independent acting (Tensorforce: the final value)."""
        return self.value({})

    def compute(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def is_constant(self) -> bool:
        return False

    def key_values(self) -> list[float] | None:
        """The values that bound the schedule (None for a stochastic one).

        `create(..., low=, high=)` checks each of them against the range of
        the hyper-parameter.
        """
        return None

    def get_config(self) -> dict:
        raise NotImplementedError


class Constant(Parameter):
    """A constant value."""

    def __init__(self, value: float):
        super().__init__(None)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
                math.isnan(value):
            raise ArgumentError.invalid("value", "a number (not NaN)", value,
                                        where="constant parameter")
        self._value = float(value)

    def compute(self, step: int) -> float:
        return self._value

    def key_values(self) -> list[float]:
        return [self._value]

    def is_constant(self) -> bool:
        return True

    def get_config(self) -> dict:
        return {"type": "constant", "value": self._value}


class Decaying(Parameter):
    """A decaying schedule following Keras/TF learning-rate schedule formulas.

    Args:
        decay: One of `linear`, `exponential`, `polynomial`, `inverse_time`,
            `cosine`, `cosine_restarts`, `linear_cosine`, `linear_cosine_noisy`.
        unit: Counter the schedule follows.
        num_steps: Number of steps of the decay.
        initial_value: Value at step 0.
        increasing: Mirror the decay so the value increases (`2*initial - value`
            is *not* used; instead `initial + (initial - value)`).
        inverse: Use `1/value`.
        scale: Multiply the result by this.
        final_value: For `linear`/`polynomial`: value at `num_steps` (default 0).
        power: Exponent for `polynomial` (default 1).
        cycle: For `polynomial`: restart after `num_steps`.
        decay_rate: For `exponential`/`inverse_time` (default 0.5).
        staircase: Integer division of the step (exponential/inverse_time).
        alpha: Minimum fraction for cosine schedules (default 0).
        t_mul, m_mul: For `cosine_restarts`.
        num_periods, beta: For `linear_cosine`.
    """

    DECAYS = (
        "linear", "exponential", "polynomial", "inverse_time", "cosine",
        "cosine_restarts", "linear_cosine", "linear_cosine_noisy",
    )

    def __init__(
        self,
        decay: str,
        unit: str = "timesteps",
        num_steps: int = 1,
        initial_value: float = 1.0,
        increasing: bool = False,
        inverse: bool = False,
        scale: float = 1.0,
        final_value: float = 0.0,
        power: float = 1.0,
        cycle: bool = False,
        decay_rate: float = 0.5,
        staircase: bool = False,
        alpha: float = 0.0,
        t_mul: float = 2.0,
        m_mul: float = 1.0,
        num_periods: float = 0.5,
        beta: float = 0.001,
        **unused: Any,
    ):
        super().__init__(unit)
        if decay not in self.DECAYS:
            raise ArgumentError.invalid("decay", f"one of {self.DECAYS}", decay, "parameter")
        self.decay = decay
        where = f"{decay} parameter"
        self.num_steps = check_int(num_steps, "num_steps", minimum=1, where=where)
        self.initial_value = check_float(initial_value, "initial_value", where=where)
        self.increasing = bool(increasing)
        self.inverse = bool(inverse)
        self.scale = check_float(scale, "scale", where=where)
        self.end_value = check_float(final_value, "final_value", where=where)
        self.power = check_float(power, "power", where=where)
        self.cycle = bool(cycle)
        self.decay_rate = check_float(decay_rate, "decay_rate", low=0.0, where=where)
        self.staircase = bool(staircase)
        self.alpha = check_float(alpha, "alpha", where=where)
        self.t_mul = check_float(t_mul, "t_mul", low=0.0, low_open=True, where=where)
        self.m_mul = check_float(m_mul, "m_mul", low=0.0, where=where)
        self.num_periods = check_float(num_periods, "num_periods", where=where)
        self.beta = check_float(beta, "beta", where=where)
        self._rng = np.random.default_rng(0)

    def compute(self, step: int) -> float:  # noqa: C901 - one formula per decay
        n, v0 = self.num_steps, self.initial_value
        d = self.decay
        if d in ("linear", "polynomial"):
            power = 1.0 if d == "linear" else self.power
            if self.cycle and d == "polynomial":
                n = n * max(1, math.ceil(step / n))
                t = step
            else:
                t = min(step, n)
            value = (v0 - self.end_value) * (1.0 - t / n) ** power + self.end_value
        elif d == "exponential":
            p = step / n
            p = math.floor(p) if self.staircase else p
            value = v0 * self.decay_rate**p
        elif d == "inverse_time":
            p = step / n
            p = math.floor(p) if self.staircase else p
            value = v0 / (1.0 + self.decay_rate * p)
        elif d == "cosine":
            t = min(step, n) / n
            value = v0 * ((1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * t)) + self.alpha)
        elif d == "cosine_restarts":
            period, t, mult = float(n), float(step), 1.0
            while t >= period:
                t -= period
                period *= self.t_mul
                mult *= self.m_mul
            frac = t / period
            value = v0 * mult * ((1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * frac)) + self.alpha)
        else:  # linear_cosine(_noisy)
            t = min(step, n)
            linear = (n - t) / n
            cosine = 0.5 * (1 + math.cos(math.pi * 2 * self.num_periods * t / n))
            if d == "linear_cosine_noisy":
                linear += self._rng.normal(0.0, 1.0 / (1 + t) ** 0.55)
            value = v0 * ((self.alpha + linear) * cosine + self.beta)
        if self.increasing:
            value = 2.0 * v0 - value
        if self.inverse:
            value = 1.0 / value
        return value * self.scale

    def final_value(self) -> float:
        return self.compute(self.num_steps) if self.decay != "cosine_restarts" else self.compute(0)

    def key_values(self) -> list[float] | None:
        if self.decay == "linear_cosine_noisy":
            return None
        n = self.num_steps
        steps = sorted({0, n // 4, n // 2, (3 * n) // 4, n, 2 * n, 10 * n})
        return [self.compute(step) for step in steps]

    def get_config(self) -> dict:
        return {
            "type": "decaying", "decay": self.decay, "unit": self.unit,
            "num_steps": self.num_steps, "initial_value": self.initial_value,
            "increasing": self.increasing, "inverse": self.inverse, "scale": self.scale,
            "final_value": self.end_value,
            "power": self.power, "cycle": self.cycle, "decay_rate": self.decay_rate,
            "staircase": self.staircase, "alpha": self.alpha,
        }


def _linear(unit: str, num_steps: int, initial_value: float, final_value: float, **kw: Any) -> Decaying:
    return Decaying("linear", unit, num_steps, initial_value, final_value=final_value, **kw)


def _exponential(
    unit: str, num_steps: int, initial_value: float, decay_rate: float, staircase: bool = False,
    **kw: Any,
) -> Decaying:
    return Decaying(
        "exponential", unit, num_steps, initial_value, decay_rate=decay_rate,
        staircase=staircase, **kw,
    )


class PiecewiseConstant(Parameter):
    """Constant pieces: `values[i]` while `step < boundaries[i]`, then the last value."""

    def __init__(self, unit: str, boundaries: list, values: list):
        super().__init__(unit)
        where = "piecewise_constant parameter"
        for argument, value in (("boundaries", boundaries), ("values", values)):
            if not isinstance(value, (list, tuple)):
                raise ArgumentError.invalid(argument, "a list", value, where=where)
        if len(values) != len(boundaries) + 1:
            raise ArgumentError.invalid(
                "values", f"len(boundaries)+1 = {len(boundaries) + 1} values", values,
                where=where,
            )
        self.boundaries = [check_int(b, "boundaries", minimum=0, where=where) for b in boundaries]
        if any(a >= b for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise ArgumentError.invalid("boundaries", "strictly increasing step counts",
                                        boundaries, where=where)
        self.values = [check_float(v, "values", where=where) for v in values]

    def compute(self, step: int) -> float:
        for boundary, value in zip(self.boundaries, self.values):
            if step < boundary:
                return value
        return self.values[-1]

    def final_value(self) -> float:
        return self.values[-1]

    def key_values(self) -> list[float]:
        return list(self.values)

    def get_config(self) -> dict:
        return {"type": "piecewise_constant", "unit": self.unit,
                "boundaries": self.boundaries, "values": self.values}


class OrnsteinUhlenbeck(Parameter):
    """An Ornstein-Uhlenbeck process, advanced once per value request."""

    def __init__(self, theta: float = 0.15, sigma: float = 0.3, mu: float = 0.0,
                 absolute: bool = False, seed: int | None = None):
        super().__init__(None)
        where = "ornstein_uhlenbeck parameter"
        self.theta = check_float(theta, "theta", low=0.0, where=where)
        self.sigma = check_float(sigma, "sigma", low=0.0, where=where)
        self.mu = check_float(mu, "mu", where=where)
        self.absolute = bool(absolute)
        self._state = self.mu
        self._rng = np.random.default_rng(check_int(seed, "seed", minimum=0, where=where,
                                                    allow_none=True))

    def compute(self, step: int) -> float:
        self._state += self.theta * (self.mu - self._state) + self.sigma * self._rng.normal()
        return abs(self._state) if self.absolute else self._state

    def final_value(self) -> float:
        return self.mu

    def get_config(self) -> dict:
        return {"type": "ornstein_uhlenbeck", "theta": self.theta, "sigma": self.sigma,
                "mu": self.mu, "absolute": self.absolute}


class Random(Parameter):
    """A random value drawn anew for every request."""

    def __init__(self, distribution: str = "normal", mean: float = 0.0, stddev: float = 1.0,
                 minval: float = 0.0, maxval: float = 1.0, seed: int | None = None):
        super().__init__(None)
        if distribution not in ("normal", "uniform"):
            raise ArgumentError.invalid("distribution", "'normal' or 'uniform'", distribution,
                                        where="random parameter")
        self.distribution = distribution
        where = "random parameter"
        self.mean = check_float(mean, "mean", where=where)
        self.stddev = check_float(stddev, "stddev", low=0.0, where=where)
        self.minval = check_float(minval, "minval", where=where)
        self.maxval = check_float(maxval, "maxval", low=self.minval, low_open=True, where=where)
        self._rng = np.random.default_rng(check_int(seed, "seed", minimum=0, where=where,
                                                    allow_none=True))

    def compute(self, step: int) -> float:
        if self.distribution == "normal":
            return float(self._rng.normal(self.mean, self.stddev))
        return float(self._rng.uniform(self.minval, self.maxval))

    def final_value(self) -> float:
        return self.mean if self.distribution == "normal" else 0.5 * (self.minval + self.maxval)

    def key_values(self) -> list[float] | None:
        """The bounds of a uniform distribution (None for a normal one: unbounded)."""
        return [self.minval, self.maxval] if self.distribution == "uniform" else None

    def get_config(self) -> dict:
        return {"type": "random", "distribution": self.distribution, "mean": self.mean,
                "stddev": self.stddev, "minval": self.minval, "maxval": self.maxval}


REGISTRY: dict[str, Any] = {
    "constant": Constant,
    "decaying": Decaying,
    "linear": _linear,
    "exponential": _exponential,
    "piecewise_constant": PiecewiseConstant,
    "ornstein_uhlenbeck": OrnsteinUhlenbeck,
    "random": Random,
}
for _decay in Decaying.DECAYS:
    if _decay not in REGISTRY:
        REGISTRY[_decay] = (lambda d: (lambda **kw: Decaying(d, **kw)))(_decay)


def create(spec: Any, name: str = "parameter", low: float | None = None,
           high: float | None = None, low_open: bool = False, high_open: bool = False,
           where: str | None = None) -> Parameter:
    """Creates a `Parameter` from a number or a schedule spec, checking its range.

    Args:
        spec: A number, a `Parameter`, or a schedule dict such as
            `dict(type='linear', unit='updates', num_steps=100,
            initial_value=1e-3, final_value=0.0)`.
        name: Argument name for error messages.
        low, high, low_open, high_open: The range of the hyper-parameter
            (see `kerasrl.validation.check_float`). A constant must lie in it;
            a schedule must stay in it at its key steps (`Parameter.key_values`:
            start, quarters, end, twice and ten times `num_steps`), where an
            open bound counts as closed (a learning rate may decay to 0).
            Of the stochastic schedules, a uniform `random` one is checked
            at its `minval` and `maxval`; normal `random` and
            `ornstein_uhlenbeck` ones are unbounded and not checked.
        where: Optional context for messages (e.g. `"agent 'ppo'"`).

    Returns:
        A `Parameter`.

    Raises:
        ArgumentError: for a malformed spec or a value out of range.

    Example:

    >>> create(0.5).value()
    0.5
    >>> create(dict(type='linear', unit='timesteps', num_steps=10,
    ...             initial_value=1.0, final_value=0.0)).value({'timesteps': 5})
    0.5
    """
    if isinstance(spec, Parameter):
        parameter = spec
    elif isinstance(spec, (int, float, np.number)) and not isinstance(spec, bool):
        if math.isnan(spec):
            raise ArgumentError.invalid(
                name, describe_range(low, high, low_open, high_open), spec, where=where)
        parameter = Constant(float(spec))
    elif isinstance(spec, Mapping):
        if "type" not in spec and "decay" in spec:
            spec = {"type": "decaying", **spec}
        parameter = registry.resolve(spec, REGISTRY, kind=f"parameter '{name}'",
                                     base_class=Parameter)
    else:
        number = describe_range(low, high, low_open, high_open) if (
            low is not None or high is not None) else "a number"
        raise ArgumentError.invalid(name, f"{number} or a parameter schedule dict", spec,
                                    where=where)
    if low is not None or high is not None:
        expected = describe_range(low, high, low_open, high_open)
        constant = parameter.is_constant()
        for value in parameter.key_values() or ():
            if not in_range(value, low, high, low_open and constant, high_open and constant):
                if constant:
                    raise ArgumentError.invalid(name, expected, spec, where=where)
                context = f" of {where}" if where else ""
                raise ArgumentError(
                    f"Invalid argument '{name}'{context}: expected {expected} at every step of "
                    f"the schedule, received a '{get_config(parameter).get('type')}' schedule "
                    f"that takes the value {value:g} ({get_config(parameter)})."
                )
    return parameter


def exploration(spec: Any, action_type: str, name: str = "exploration") -> Parameter:
    """Creates the exploration parameter of one action, checked for its action type.

    For `int` and `bool` actions it is the probability of a random action, in
    [0, 1]; for `float` actions the standard deviation of the Gaussian noise
    added to the action, >= 0.

    Args:
        spec: A number or a schedule spec.
        action_type: `'int'`, `'bool'` or `'float'`.
        name: Argument name for error messages.

    Returns:
        A `Parameter`.
    """
    high = None if action_type == "float" else 1.0
    return create(spec, name, low=0.0, high=high)


def get_config(parameter: Parameter | float) -> Any:
    """Returns the spec of a parameter: a float for constants, else its dict."""
    if isinstance(parameter, Constant):
        return parameter.compute(0)
    if isinstance(parameter, Parameter):
        return parameter.get_config()
    return parameter
