"""kerasrl: declarative reinforcement learning on Keras 3.

Public names: `Agent`, `Environment`, `Runner`, `check_environment`,
`KerasRLError` (also under Tensorforce's name, `TensorforceError`).
"""

import importlib.util
import os


def _select_backend() -> None:
    """Picks an installed Keras backend when the user has not chosen one.

    Keras uses `KERAS_BACKEND`, else the backend in `~/.keras/keras.json`,
    else TensorFlow. When the backend it would pick is not installed (e.g.
    after `pip install kerasrl[jax]`), use the first installed of JAX,
    PyTorch and TensorFlow instead. An explicit `KERAS_BACKEND` is never
    overridden.
    """
    if "KERAS_BACKEND" in os.environ:
        return
    configured = "tensorflow"
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    try:
        import json

        with open(os.path.join(keras_home, "keras.json"), encoding="utf-8") as file:
            configured = json.load(file).get("backend", configured)
    except (OSError, ValueError):
        pass
    if importlib.util.find_spec(configured) is not None:
        return
    for name in ("jax", "torch", "tensorflow"):
        if importlib.util.find_spec(name) is not None:
            os.environ["KERAS_BACKEND"] = name
            return


_select_backend()

from kerasrl.errors import KerasRLError, TensorforceError  # noqa: E402
from kerasrl.registry import custom_object_scope, register  # noqa: E402

__version__ = "0.1.0"

# Register kerasrl's Keras serializables (layers, distribution heads, the
# exported inference layer) so `keras.saving.load_model` works after
# `import kerasrl`. `execution` registers its implementations of `Agent.fit`,
# `Agent.evaluate`, `Agent.pretrain` and of the `recorder` plugin with the
# agents package, which does not import execution; every `kerasrl.*` import
# runs this first, so they are in place before any agent exists. It imports
# NumPy and light kerasrl modules only.
from kerasrl import distributions as _distributions  # noqa: E402, F401
from kerasrl import execution as _execution  # noqa: E402, F401
from kerasrl import export as _export  # noqa: E402, F401
from kerasrl import layers as _layers  # noqa: E402, F401

__all__ = ["Agent", "Environment", "Runner", "KerasRLError", "TensorforceError", "util", "register",
           "custom_object_scope", "check_environment", "__version__"]


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
    if name == "check_environment":
        from kerasrl.environments.checker import check_environment

        return check_environment
    if name == "util":  # Tensorforce's `from tensorforce import util`
        import importlib

        return importlib.import_module("kerasrl.util")
    raise AttributeError(f"module 'kerasrl' has no attribute '{name}'")
