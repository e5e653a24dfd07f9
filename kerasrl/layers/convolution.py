"""Convolution layers: `conv1d`, `conv2d`, `conv1d_transpose`, `conv2d_transpose`.

They are the Keras convolution layers (channels last) with Tensorforce's
argument names and defaults: `size` (filters), `window` (kernel size),
`stride`, `padding` (`'same'` or `'valid'`), `dilation`, `bias`,
`activation='relu'`, `dropout`, and an orthogonal kernel initializer.
"""

from __future__ import annotations

from typing import Any

import keras

from kerasrl.errors import ArgumentError
from kerasrl.layers import base

PADDINGS = ("same", "valid")


class _ConvolutionMixin(base.TransformationMixin):
    """Tensorforce arguments on top of a Keras convolution class."""

    TYPE = "conv"
    RANK = 1

    def _keras_arguments(
        self, size: Any, window: Any, stride: Any, padding: Any, dilation: Any, bias: Any,
        activation: Any, initialization_scale: Any, l2_regularization: Any, kwargs: dict,
    ) -> dict:
        location = base.where(kwargs, self.TYPE)
        nonlinearity = base.normalize_activation(activation, location)
        scale = base.check_float(initialization_scale, "initialization_scale", location, 0.0)
        l2 = base.check_float(l2_regularization, "l2_regularization", location, 0.0)
        return dict(
            filters=base.check_int(size, "size", location, minimum=1),
            kernel_size=base.check_ints(window, "window", location, self.RANK),
            strides=base.check_ints(stride, "stride", location, self.RANK),
            padding=base.check_choice(padding, "padding", location, PADDINGS),
            dilation_rate=base.check_ints(dilation, "dilation", location, self.RANK),
            use_bias=base.check_bool(bias, "bias", location),
            activation=None,
            kernel_initializer=base.orthogonal(scale, nonlinearity),
            kernel_regularizer=base.l2(l2),
        )

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != self.RANK + 2 or input_shape[-1] is None:
            raise ArgumentError.invalid(
                "input shape",
                f"rank {self.RANK + 1} per sample (spatial axes, then channels) "
                "with a known channel axis",
                tuple(input_shape), f"layer '{self.name}'",
            )
        super().build(input_shape)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self._finish(super().call(base.as_float(inputs, self.compute_dtype)), training)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return self._finish_shape(tuple(super().compute_output_shape(input_shape)))

    def get_config(self) -> dict:
        config = keras.layers.Layer.get_config(self)
        config.update(
            size=self.filters,
            window=_plain(self.kernel_size),
            stride=_plain(self.strides),
            padding=self.padding,
            dilation=_plain(self.dilation_rate),
            bias=self.use_bias,
            **self._transformation_config(),
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> Any:
        return cls(**config)


def _plain(value: Any) -> Any:
    """A 1-tuple becomes an int, longer tuples become lists (JSON-friendly)."""
    value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    return int(value[0]) if len(set(value)) == 1 else [int(v) for v in value]


def _conv_init(
    layer: Any, keras_class: type, size: Any, window: Any, stride: Any, padding: Any,
    dilation: Any, bias: Any, activation: Any, dropout: Any, initialization_scale: Any,
    l2_regularization: Any, vars_trainable: Any, kwargs: dict, **extra: Any,
) -> None:
    arguments = layer._keras_arguments(
        size, window, stride, padding, dilation, bias, activation, initialization_scale,
        l2_regularization, kwargs,
    )
    keras_class.__init__(
        layer, **arguments, **extra, **base.trainable_kwargs(kwargs, vars_trainable)
    )
    layer.input_spec = None  # `build` checks the input rank with a kerasrl error
    layer._setup_transformation(
        activation, dropout, initialization_scale, l2_regularization, f"layer '{layer.name}'"
    )


@base.serializable
class Conv1d(_ConvolutionMixin, keras.layers.Conv1D):
    """1D convolution over `(batch, width, channels)` (Tensorforce `conv1d`).

    Args:
        size: Number of filters (output channels).
        window: Kernel width (default 3).
        stride: Stride (default 1).
        padding: `'same'` (default) or `'valid'`.
        dilation: Dilation rate (default 1).
        bias: Whether to add a bias.
        activation: One of `base.NONLINEARITIES` or None (default `'relu'`).
        dropout: Dropout rate in [0, 1), active with `training=True`.
        initialization_scale: Gain of the orthogonal kernel initializer.
        l2_regularization: L2 coefficient of the kernel.
        vars_trainable: Tensorforce's name for Keras' `trainable`.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    >>> tuple(Conv1d(size=8)(keras.ops.ones((2, 10, 3))).shape)
    (2, 10, 8)
    """

    TYPE = "conv1d"
    RANK = 1

    def __init__(
        self, size: int, window: int = 3, stride: int = 1, padding: str = "same",
        dilation: int = 1, bias: bool = True, activation: str | None = "relu",
        dropout: float = 0.0, initialization_scale: float = 1.0,
        l2_regularization: float = 0.0, vars_trainable: bool | None = None, **kwargs: Any,
    ):
        _conv_init(
            self, keras.layers.Conv1D, size, window, stride, padding, dilation, bias,
            activation, dropout, initialization_scale, l2_regularization, vars_trainable, kwargs,
        )


@base.serializable
class Conv2d(_ConvolutionMixin, keras.layers.Conv2D):
    """2D convolution over `(batch, height, width, channels)` (Tensorforce `conv2d`).

    Args:
        size: Number of filters (output channels).
        window: Kernel size, an int or a pair (default 3).
        stride: Stride, an int or a pair (default 1).
        padding: `'same'` (default) or `'valid'`.
        dilation: Dilation rate, an int or a pair (default 1).
        bias: Whether to add a bias.
        activation: One of `base.NONLINEARITIES` or None (default `'relu'`).
        dropout: Dropout rate in [0, 1), active with `training=True`.
        initialization_scale: Gain of the orthogonal kernel initializer.
        l2_regularization: L2 coefficient of the kernel.
        vars_trainable: Tensorforce's name for Keras' `trainable`.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    >>> tuple(Conv2d(size=16, stride=2)(keras.ops.ones((2, 16, 16, 3))).shape)
    (2, 8, 8, 16)
    """

    TYPE = "conv2d"
    RANK = 2

    def __init__(
        self, size: int, window: int | tuple = 3, stride: int | tuple = 1,
        padding: str = "same", dilation: int | tuple = 1, bias: bool = True,
        activation: str | None = "relu", dropout: float = 0.0,
        initialization_scale: float = 1.0, l2_regularization: float = 0.0,
        vars_trainable: bool | None = None, **kwargs: Any,
    ):
        _conv_init(
            self, keras.layers.Conv2D, size, window, stride, padding, dilation, bias,
            activation, dropout, initialization_scale, l2_regularization, vars_trainable, kwargs,
        )


class _TransposeMixin(_ConvolutionMixin):
    """Checks the optional requested output size of a transposed convolution."""

    def _requested_output(self) -> tuple | None:
        raise NotImplementedError

    def build(self, input_shape: tuple) -> None:
        super().build(input_shape)
        requested = self._requested_output()
        if requested is not None:
            natural = tuple(super().compute_output_shape(input_shape))[1:-1]
            if tuple(requested) != natural:
                raise ArgumentError.invalid(
                    "output shape",
                    f"the natural output size {natural} for this input (other output sizes "
                    "are not supported)",
                    requested, f"layer '{self.name}'",
                )


@base.serializable
class Conv1dTranspose(_TransposeMixin, keras.layers.Conv1DTranspose):
    """Transposed 1D convolution (Tensorforce `conv1d_transpose`).

    Args:
        size: Number of filters (output channels).
        window: Kernel width (default 3).
        stride: Stride (default 1); with `'same'` padding the width is
            multiplied by `stride`.
        padding: `'same'` (default) or `'valid'`.
        dilation: Dilation rate (default 1).
        bias: Whether to add a bias.
        activation: One of `base.NONLINEARITIES` or None (default `'relu'`).
        dropout: Dropout rate in [0, 1).
        output_width: Optional expected output width; only the natural output
            width is supported (checked when the layer is built).
        initialization_scale: Gain of the orthogonal kernel initializer.
        l2_regularization: L2 coefficient of the kernel.
        vars_trainable: Tensorforce's name for Keras' `trainable`.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    >>> tuple(Conv1dTranspose(size=4, stride=2)(keras.ops.ones((2, 5, 3))).shape)
    (2, 10, 4)
    """

    TYPE = "conv1d_transpose"
    RANK = 1

    def __init__(
        self, size: int, window: int = 3, stride: int = 1, padding: str = "same",
        dilation: int = 1, bias: bool = True, activation: str | None = "relu",
        dropout: float = 0.0, output_width: int | None = None,
        initialization_scale: float = 1.0, l2_regularization: float = 0.0,
        vars_trainable: bool | None = None, **kwargs: Any,
    ):
        location = base.where(kwargs, self.TYPE)
        if output_width is not None:
            output_width = base.check_int(output_width, "output_width", location, minimum=1)
        _conv_init(
            self, keras.layers.Conv1DTranspose, size, window, stride, padding, dilation, bias,
            activation, dropout, initialization_scale, l2_regularization, vars_trainable, kwargs,
        )
        self._output_width = output_width

    def _requested_output(self) -> tuple | None:
        return None if self._output_width is None else (self._output_width,)

    def get_config(self) -> dict:
        return {**super().get_config(), "output_width": self._output_width}


@base.serializable
class Conv2dTranspose(_TransposeMixin, keras.layers.Conv2DTranspose):
    """Transposed 2D convolution (Tensorforce `conv2d_transpose`).

    Args:
        size: Number of filters (output channels).
        window: Kernel size, an int or a pair (default 3).
        stride: Stride, an int or a pair (default 1).
        padding: `'same'` (default) or `'valid'`.
        dilation: Dilation rate, an int or a pair (default 1).
        bias: Whether to add a bias.
        activation: One of `base.NONLINEARITIES` or None (default `'relu'`).
        dropout: Dropout rate in [0, 1).
        output_shape: Optional expected `(height, width)`; only the natural
            output size is supported (checked when the layer is built).
        initialization_scale: Gain of the orthogonal kernel initializer.
        l2_regularization: L2 coefficient of the kernel.
        vars_trainable: Tensorforce's name for Keras' `trainable`.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    >>> tuple(Conv2dTranspose(size=4, stride=2)(keras.ops.ones((2, 5, 5, 3))).shape)
    (2, 10, 10, 4)
    """

    TYPE = "conv2d_transpose"
    RANK = 2

    def __init__(
        self, size: int, window: int | tuple = 3, stride: int | tuple = 1,
        padding: str = "same", dilation: int | tuple = 1, bias: bool = True,
        activation: str | None = "relu", dropout: float = 0.0,
        output_shape: tuple | None = None, initialization_scale: float = 1.0,
        l2_regularization: float = 0.0, vars_trainable: bool | None = None, **kwargs: Any,
    ):
        location = base.where(kwargs, self.TYPE)
        if output_shape is not None:
            if not isinstance(output_shape, (list, tuple)) or len(output_shape) != 2:
                raise ArgumentError.invalid(
                    "output_shape", "a pair (height, width)", output_shape, location
                )
            output_shape = tuple(
                base.check_int(v, "output_shape", location, minimum=1) for v in output_shape
            )
        _conv_init(
            self, keras.layers.Conv2DTranspose, size, window, stride, padding, dilation, bias,
            activation, dropout, initialization_scale, l2_regularization, vars_trainable, kwargs,
        )
        self._requested_shape = output_shape

    def _requested_output(self) -> tuple | None:
        return self._requested_shape

    def get_config(self) -> dict:
        shape = None if self._requested_shape is None else list(self._requested_shape)
        return {**super().get_config(), "output_shape": shape}
