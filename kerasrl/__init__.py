"""kerasrl: declarative reinforcement learning on Keras 3.

Public names: `Agent`, `Environment`, `Runner`, `KerasRLError`.
"""

from kerasrl.errors import KerasRLError

__version__ = "0.1.0"

__all__ = ["Agent", "Environment", "Runner", "KerasRLError", "__version__"]


def __getattr__(name):  # lazy imports keep `import kerasrl` light
    if name == "Agent":
        from kerasrl.agents.agent import Agent

        return Agent
    if name == "Environment":
        from kerasrl.environments.environment import Environment

        return Environment
    if name == "Runner":
        from kerasrl.execution.runner import Runner

        return Runner
    raise AttributeError(f"module 'kerasrl' has no attribute '{name}'")
