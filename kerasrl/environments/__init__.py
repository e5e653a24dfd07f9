"""Environments: `Environment.create`, the adapters, remote and vectorized stepping.

Tensorforce's names are exported too: `OpenAIGym` is the gymnasium adapter
(`GymnasiumEnvironment`), `CartPole` the vectorizable cart-pole registered as
`'custom_cartpole'`, and `MultiprocessingEnvironment`, `SocketEnvironment`
and `RemoteEnvironment` the remote environments. Tensorforce's other
adapters (`ArcadeLearningEnvironment`, `OpenAIRetro`, ...) raise a
`NotSupportedError` saying why and what to use instead. The remote and
cart-pole modules are imported on first use.
"""

from typing import Any

from kerasrl.environments.environment import (
    UNSUPPORTED_ENVIRONMENTS,
    Environment,
    EnvironmentOutputError,
    EnvironmentWrapper,
    unsupported_environment,
)
from kerasrl.environments.gymnasium import GymnasiumEnvironment
from kerasrl.environments.indexed import IndexedEnvironment
from kerasrl.environments.vectorized import (
    GymnasiumVectorEnvironment,
    LocalVectorEnvironment,
    VectorEnvironment,
)

#: Tensorforce's name of the gymnasium adapter.
OpenAIGym = GymnasiumEnvironment

_LAZY = {
    "CartPole": "kerasrl.environments.cartpole.CartPole",
    "MultiprocessingEnvironment": "kerasrl.environments.remote.client.MultiprocessingEnvironment",
    "SocketEnvironment": "kerasrl.environments.remote.client.SocketEnvironment",
    "RemoteEnvironment": "kerasrl.environments.remote.client.RemoteEnvironment",
}

__all__ = [
    "Environment",
    "EnvironmentWrapper",
    "EnvironmentOutputError",
    "GymnasiumEnvironment",
    "OpenAIGym",
    "IndexedEnvironment",
    "VectorEnvironment",
    "GymnasiumVectorEnvironment",
    "LocalVectorEnvironment",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from kerasrl.registry import import_internal

        return import_internal(_LAZY[name])
    if any(name == names[-1] for names in UNSUPPORTED_ENVIRONMENTS):  # a class name
        raise unsupported_environment(name)
    raise AttributeError(f"module 'kerasrl.environments' has no attribute '{name}'")
