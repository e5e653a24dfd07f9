"""Environments: `Environment.create`, the gymnasium adapter and vectorized stepping."""

from kerasrl.environments.environment import (
    Environment,
    EnvironmentOutputError,
    EnvironmentWrapper,
)
from kerasrl.environments.gymnasium import GymnasiumEnvironment
from kerasrl.environments.indexed import IndexedEnvironment
from kerasrl.environments.vectorized import (
    GymnasiumVectorEnvironment,
    LocalVectorEnvironment,
    VectorEnvironment,
)

__all__ = [
    "Environment",
    "EnvironmentWrapper",
    "EnvironmentOutputError",
    "GymnasiumEnvironment",
    "IndexedEnvironment",
    "VectorEnvironment",
    "GymnasiumVectorEnvironment",
    "LocalVectorEnvironment",
]
