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
WRAPPER_KEYS = (
    "multi_step", "subsampling_fraction", "gradient_norm_clipping", "clipping_threshold",
    "linesearch_iterations", "doublecheck_update",
)


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
        # Clipped by kerasrl's gradient step (the norm is computed once, also as a metric).
        self.clip_norm = None if clip is None else check_float(
            clip, f"{name}['gradient_norm_clipping']", low=0.0, low_open=True)
        cls = getattr(keras.optimizers, OPTIMIZERS[self.type])
        try:
            self.optimizer = cls(learning_rate=float(self.learning_rate.value({})), **kwargs)
        except (TypeError, ValueError) as exc:
            raise ArgumentError(f"Invalid arguments for {name} '{self.type}': {exc}.") from None

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
