"""The `image` preprocessing layer: resize and grayscale (Tensorforce `image`).

For image states, `state_preprocessing=[dict(type='image', height=84, width=84,
grayscale=True), 'linear_normalization']` resizes, converts to one channel
and then scales the values to [-2, 2] from the state's bounds (a `uint8` Box
observation has the bounds 0 and 255, so `linear_normalization` is the
"divide by 255" scaling of other libraries, centred). Frame stacking belongs
to the environment (`kerasrl.environments.atari`, gymnasium's
`FrameStackObservation`): the memory then stores stacked frames, and acting
needs no state kept between steps.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from kerasrl.errors import ArgumentError
from kerasrl.layers import base

#: ITU-R BT.601 luma weights of (red, green, blue), Tensorforce's and OpenCV's grayscale.
LUMA = (0.299, 0.587, 0.114)


@base.serializable
class Image(keras.layers.Layer):
    """Resizes (bilinear) and/or grayscales a batch of images, channels last.

    Computes `resize(x, (height, width))`, then with grayscale
    `sum_c(x[..., c] * w_c)` over the channel axis, kept with size 1.

    Args:
        height: Output height (None keeps the input's).
        width: Output width (None keeps the input's).
        grayscale: False; True (the BT.601 luma weights for 3 channels, the
            mean otherwise); or one weight per channel.
        **kwargs: `keras.layers.Layer` arguments.

    Raises:
        ArgumentError: invalid sizes or weights, or an input that is not
            `(height, width, channels)` per sample.

    Example:

    >>> layer = Image(height=2, width=3, grayscale=True)
    >>> tuple(layer(np.ones((5, 8, 8, 3), np.float32)).shape)
    (5, 2, 3, 1)
    """

    TYPE = "image"

    def __init__(self, height: int | None = None, width: int | None = None,
                 grayscale: Any = False, **kwargs: Any):
        location = base.where(kwargs, self.TYPE)
        self.height = None if height is None else base.check_int(height, "height", location, 1)
        self.width = None if width is None else base.check_int(width, "width", location, 1)
        if isinstance(grayscale, bool):
            self.grayscale: bool | list[float] = grayscale
        else:
            try:
                weights = np.asarray(grayscale, dtype=np.float64)
            except (TypeError, ValueError):
                weights = np.asarray([np.nan])
            if weights.ndim != 1 or weights.size == 0 or not np.isfinite(weights).all():
                raise ArgumentError.invalid("grayscale", "True, False or a list of finite "
                                            "per-channel weights", grayscale, location)
            self.grayscale = weights.tolist()
        super().__init__(**kwargs)

    def _weights(self, channels: int) -> np.ndarray | None:
        if self.grayscale is False:
            return None
        if self.grayscale is True:
            weights = LUMA if channels == 3 else [1.0 / channels] * channels
        else:
            weights = self.grayscale
            if len(weights) != channels:
                raise ArgumentError.invalid(
                    "grayscale", f"{channels} weights, one per input channel", weights,
                    f"layer '{self.name}'")
        return np.asarray(weights, dtype=np.float32)

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ArgumentError.invalid(
                "input shape", "(height, width, channels) per sample, channels last",
                tuple(input_shape[1:]), f"layer '{self.name}'")
        self._channels = int(input_shape[-1])
        self._weights(self._channels)  # checked now, not at the first call

    def call(self, inputs: Any) -> Any:
        x = base.as_float(inputs, self.compute_dtype)
        if self.height is not None or self.width is not None:
            size = (self.height or x.shape[1], self.width or x.shape[2])
            if tuple(size) != tuple(x.shape[1:3]):
                x = ops.image.resize(x, size, interpolation="bilinear")
        weights = self._weights(int(x.shape[-1]))
        if weights is not None:
            x = ops.sum(ops.multiply(x, weights), axis=-1, keepdims=True)
        return x

    def output_bounds(self, low: np.ndarray, high: np.ndarray,
                      shape: tuple) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Bounds of the output given the input's: a bilinear resize stays within
        the input's overall range; grayscale with weights w >= 0 scales it by sum(w).
        (None, None) when negative weights make the bound unknown."""
        low, high = float(np.min(low)), float(np.max(high))
        weights = self._weights(int(self._channels))
        if weights is not None:
            if (weights < 0).any():
                return None, None
            total = float(weights.sum())
            low, high = total * low, total * high
        return np.full(shape, low), np.full(shape, high)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        channels = 1 if self.grayscale is not False else input_shape[-1]
        return (input_shape[0], self.height or input_shape[1], self.width or input_shape[2],
                channels)

    def get_config(self) -> dict:
        return {**super().get_config(), "height": self.height, "width": self.width,
                "grayscale": self.grayscale}
