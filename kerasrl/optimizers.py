"""Optimizer specs, Tensorforce style, mapped onto `keras.optimizers`.

Accepted forms:

- `'adam'` (a key), or `dict(type='adam', learning_rate=1e-3, ...)`;
- Tensorforce's wrapper form `dict(optimizer='adam', learning_rate=...,
  multi_step=1, subsampling_fraction=1.0, gradient_norm_clipping=None,
  clipping_threshold=None, linesearch_iterations=0, doublecheck_update=False)`.

`multi_step` is the number of gradient steps per update (PPO's epochs) and
`subsampling_fraction` the share of the batch each step uses (a float in
(0, 1], or an int number of timesteps). `gradient_norm_clipping` (alias
`clipping_threshold`) clips the global gradient norm. Other keyword arguments
go to the Keras optimizer. `learning_rate` may be a parameter schedule; its
value is set on the host before each update.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from kerasrl import parameters
from kerasrl.errors import ArgumentError, UnknownTypeError
from kerasrl.validation import check_float, check_int, in_range, is_number

OPTIMIZERS = {
    "adam": "Adam",
    "adamw": "AdamW",
    "adamax": "Adamax",
    "adadelta": "Adadelta",
    "adagrad": "Adagrad",
    "adafactor": "Adafactor",
    "ftrl": "Ftrl",
    "lion": "Lion",
    "nadam": "Nadam",
    "rmsprop": "RMSprop",
    "sgd": "SGD",
}
#: Ranges of the numeric Keras optimizer arguments, checked before Keras sees them:
#: `(low, high, low_open, high_open)` (see `kerasrl.validation.check_float`); None
#: (the Keras default) is accepted.
KERAS_ARGUMENT_RANGES = {
    "beta_1": (0.0, 1.0, False, True),
    "beta_2": (0.0, 1.0, False, True),
    "epsilon": (0.0, None, True, False),
    "epsilon_1": (0.0, None, True, False),
    "epsilon_2": (0.0, None, True, False),
    "rho": (0.0, 1.0, False, True),
    "momentum": (0.0, 1.0, False, False),
    "weight_decay": (0.0, None, False, False),
    "ema_momentum": (0.0, 1.0, False, False),
    "initial_accumulator_value": (0.0, None, False, False),
    "l1_regularization_strength": (0.0, None, False, False),
    "l2_regularization_strength": (0.0, None, False, False),
    "l2_shrinkage_regularization_strength": (0.0, None, False, False),
    "learning_rate_power": (None, 0.0, False, False),
    "beta_2_decay": (None, 0.0, False, False),
    "beta": (0.0, None, False, False),
    "clip_threshold": (0.0, None, True, False),
    "clipnorm": (0.0, None, True, False),
    "clipvalue": (0.0, None, True, False),
    "global_clipnorm": (0.0, None, True, False),
    "loss_scale_factor": (0.0, None, True, False),
}
#: Lion's betas may be 1 but not 0 (keras.optimizers.Lion).
_LION_BETA = (0.0, 1.0, True, False)
#: Integer Keras optimizer arguments (None allowed), each >= 1.
KERAS_INT_ARGUMENTS = ("ema_overwrite_frequency", "gradient_accumulation_steps")
WRAPPER_KEYS = (
    "multi_step", "subsampling_fraction", "gradient_norm_clipping", "clipping_threshold",
    "linesearch_iterations", "doublecheck_update",
)


def optimizer_config(optimizer: Any, learning_rate: Any, max_grad_norm: Any,
                     name: str = "optimizer", **defaults: Any) -> dict:
    """The optimizer dict of an agent from its `optimizer`, `learning_rate` and `max_grad_norm`.

    Args:
        optimizer: None (Adam), an optimizer name, or a dict; its own keys win.
        learning_rate: The agent's `learning_rate` (used unless the dict has one).
        max_grad_norm: The agent's `max_grad_norm` (None: no clipping), checked > 0.
        name: Argument name for error messages.
        **defaults: Further defaults (e.g. `multi_step`, `subsampling_fraction`).

    Returns:
        A dict for `OptimizerSpec`.

    Raises:
        ArgumentError: for an optimizer that is not None, a str or a dict, or a
            bad `max_grad_norm`.
    """
    if optimizer is None:
        config: dict = {"type": "adam"}
    elif isinstance(optimizer, str):
        config = {"type": optimizer}
    elif isinstance(optimizer, Mapping):
        config = dict(optimizer)
    else:
        raise ArgumentError.invalid(name, "None, an optimizer name or dict", optimizer)
    config.setdefault("learning_rate", learning_rate)
    for key, value in defaults.items():
        config.setdefault(key, value)
    if max_grad_norm is not None:
        config.setdefault("gradient_norm_clipping", check_float(
            max_grad_norm, "max_grad_norm", low=0.0, low_open=True))
    return config


class OptimizerSpec:
    """A Keras optimizer plus Tensorforce's update-loop settings.

    Attributes:
        optimizer: The `keras.optimizers.Optimizer`.
        learning_rate: Learning-rate `Parameter`.
        multi_step: Gradient steps per update.
        subsampling_fraction: Share (float) or number (int) of batch rows per step.
        clip_norm: Global gradient-norm clipping threshold, or None.
    """

    def __init__(self, spec: Any, name: str = "optimizer", default_learning_rate: float = 1e-3):
        self.name = name
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, Mapping):
            raise ArgumentError.invalid(name, "an optimizer name or dict", spec)
        spec = dict(spec)
        self.config = dict(spec)
        type_ = spec.pop("optimizer", None) or spec.pop("type", None) or "adam"
        if type_ == "optimizer_wrapper":
            type_ = spec.pop("optimizer", "adam")
        if not isinstance(type_, str) or type_.lower() not in OPTIMIZERS:
            raise UnknownTypeError.invalid(f"{name} type", f"one of {sorted(OPTIMIZERS)}", type_)
        self.type = type_.lower()
        self.learning_rate = parameters.create(
            spec.pop("learning_rate", default_learning_rate), f"{name}['learning_rate']",
            low=0.0, low_open=True,
        )
        self.multi_step = check_int(spec.pop("multi_step", 1), f"{name}['multi_step']", minimum=1)
        self.subsampling_fraction = spec.pop("subsampling_fraction", 1.0)
        fraction = self.subsampling_fraction
        if isinstance(fraction, (int, np.integer)) and not isinstance(fraction, bool) \
                and fraction >= 1:
            self.subsampling_fraction = int(fraction)
        elif not (is_number(fraction) and in_range(float(fraction), 0.0, 1.0, low_open=True)):
            raise ArgumentError.invalid(
                f"{name}['subsampling_fraction']", "a float in (0, 1] or a positive int", fraction
            )
        else:
            self.subsampling_fraction = float(fraction)
        clip = spec.pop("gradient_norm_clipping", None)
        threshold = spec.pop("clipping_threshold", None)
        clip = clip if clip is not None else threshold
        for key in ("linesearch_iterations", "doublecheck_update"):
            if spec.pop(key, None) not in (None, 0, False):
                raise ArgumentError.invalid(
                    f"{name}['{key}']", "0/False (not available for this optimizer yet)",
                    self.config[key],
                )
        kwargs = dict(spec)
        self._check_keras_arguments(kwargs)
        # Clipped by kerasrl's gradient step (the norm is computed once, also as a metric).
        self.clip_norm = None if clip is None else check_float(
            clip, f"{name}['gradient_norm_clipping']", low=0.0, low_open=True)
        cls = getattr(keras.optimizers, OPTIMIZERS[self.type])
        try:
            self.optimizer = cls(learning_rate=float(self.learning_rate.value({})), **kwargs)
        except (TypeError, ValueError) as exc:
            raise ArgumentError(f"Invalid arguments for {name} '{self.type}': {exc}.") from None

    def _check_keras_arguments(self, kwargs: Mapping[str, Any]) -> None:
        """Checks the numeric Keras optimizer arguments against `KERAS_ARGUMENT_RANGES`.

        Raises:
            ArgumentError: naming `<name>['<key>']`, its range and the value.
        """
        for key, value in kwargs.items():
            argument = f"{self.name}['{key}']"
            if key in KERAS_INT_ARGUMENTS:
                check_int(value, argument, minimum=1, allow_none=True)
            elif key in KERAS_ARGUMENT_RANGES:
                bounds = _LION_BETA if self.type == "lion" and key.startswith("beta_") else (
                    KERAS_ARGUMENT_RANGES[key])
                low, high, low_open, high_open = bounds
                check_float(value, argument, low, high, low_open, high_open, allow_none=True)

    def learning_rate_variable(self) -> keras.Variable:
        """The optimizer's learning-rate variable (assigned before each update)."""
        return self.optimizer._learning_rate

    def steps_for(self, n: int) -> int:
        """Rows used per gradient step for a batch of `n` valid rows."""
        fraction = self.subsampling_fraction
        if isinstance(fraction, int):
            return max(1, min(n, fraction))
        return max(1, int(round(fraction * n)))

    def get_config(self) -> dict:
        config = {"optimizer": self.type,
                  "learning_rate": parameters.get_config(self.learning_rate),
                  "multi_step": self.multi_step,
                  "subsampling_fraction": self.subsampling_fraction}
        if self.clip_norm is not None:
            config["gradient_norm_clipping"] = self.clip_norm
        for key, value in self.config.items():
            if key not in config and key not in ("type", "optimizer", "clipping_threshold"):
                config[key] = value
        return config
