"""Keras layers for Tensorforce-style layer specs.

Each layer spec `dict(type=KEY, **arguments)` maps onto a `keras.layers.Layer`
through `LAYERS` (resolved with `kerasrl.registry.resolve`). The custom
classes are registered for Keras serialization under `kerasrl>ClassName` and
have a `get_config()` that holds the Tensorforce arguments.

The structural types `register`, `retrieve`, `block` and `reuse` connect
layers inside a network and are handled by `kerasrl.networks`; `Retrieve` is
the layer that aggregates several retrieved tensors.

Example:

>>> import keras
>>> from kerasrl.layers import LAYERS
>>> layer = LAYERS['dense'](size=32)
>>> tuple(layer(keras.ops.ones((2, 4))).shape)
(2, 32)
"""

from __future__ import annotations

from kerasrl.layers.attention import SelfAttention
from kerasrl.layers.base import NONLINEARITIES
from kerasrl.layers.convolution import Conv1d, Conv1dTranspose, Conv2d, Conv2dTranspose
from kerasrl.layers.dense import Dense, Linear
from kerasrl.layers.embedding import Embedding
from kerasrl.layers.image import Image
from kerasrl.layers.misc import (
    Activation,
    Cast,
    Flatten,
    Function,
    Reshape,
    Retrieve,
    dropout,
    keras_layer,
)
from kerasrl.layers.normalization import (
    BatchNormalization,
    Clipping,
    ExponentialNormalization,
    InstanceNormalization,
    LinearNormalization,
)
from kerasrl.layers.pooling import Pool1d, Pool2d, Pooling
from kerasrl.layers.recurrent import InputRnn, Rnn, gru, input_gru, input_lstm, lstm

#: Layer type key → class or factory (the `type` of a layer spec).
LAYERS = {
    "activation": Activation,
    "batch_normalization": BatchNormalization,
    "clipping": Clipping,
    "conv1d": Conv1d,
    "conv1d_transpose": Conv1dTranspose,
    "conv2d": Conv2d,
    "conv2d_transpose": Conv2dTranspose,
    "dense": Dense,
    "dropout": dropout,
    "embedding": Embedding,
    "exponential_normalization": ExponentialNormalization,
    "image": Image,
    "flatten": Flatten,
    "function": Function,
    "gru": gru,
    "input_gru": input_gru,
    "input_lstm": input_lstm,
    "input_rnn": InputRnn,
    "instance_normalization": InstanceNormalization,
    "keras": keras_layer,
    "linear": Linear,
    "linear_normalization": LinearNormalization,
    "lstm": lstm,
    "pool1d": Pool1d,
    "pool2d": Pool2d,
    "pooling": Pooling,
    "reshape": Reshape,
    "rnn": Rnn,
    "self_attention": SelfAttention,
}

#: Types that connect layers inside a network (handled by `kerasrl.networks`).
STRUCTURAL_TYPES = ("block", "register", "retrieve", "reuse")

#: Tensorforce layer types that kerasrl does not support yet.
UNSUPPORTED_TYPES = ("deltafier", "sequence")

__all__ = [
    "LAYERS",
    "STRUCTURAL_TYPES",
    "UNSUPPORTED_TYPES",
    "NONLINEARITIES",
    "Activation",
    "BatchNormalization",
    "Cast",
    "Clipping",
    "Conv1d",
    "Conv1dTranspose",
    "Conv2d",
    "Conv2dTranspose",
    "Dense",
    "Embedding",
    "ExponentialNormalization",
    "Flatten",
    "Function",
    "Image",
    "InputRnn",
    "InstanceNormalization",
    "Linear",
    "LinearNormalization",
    "Pool1d",
    "Pool2d",
    "Pooling",
    "Reshape",
    "Retrieve",
    "Rnn",
    "SelfAttention",
    "dropout",
    "gru",
    "input_gru",
    "input_lstm",
    "lstm",
    "keras_layer",
]
