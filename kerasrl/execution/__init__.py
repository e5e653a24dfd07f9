"""Execution: what drives agents (the `Runner`, trace recording, pretraining).

Dependencies point one way: this package imports `kerasrl.agents`, never the
reverse (`tests/test_dependencies.py` checks it). The agents package offers
registration points instead, and importing this package fills them:

- `Agent.fit` and `Agent.evaluate` call `drivers.fit` and `drivers.evaluate`,
  `Agent.pretrain` calls `pretrain.pretrain` (`register_driver`);
- the `recorder` agent argument uses `recorder.create_recorder`
  (`register_plugin`).

`import kerasrl` imports this package, so the registrations are in place
before any agent exists. Its modules import only NumPy and kerasrl's own
light modules at import time.

`Runner` is exported as in Tensorforce (`from kerasrl.execution import
Runner`), imported on first use.
"""

from typing import Any

from kerasrl.agents.agent import register_driver, register_plugin
from kerasrl.execution import drivers
from kerasrl.execution.pretrain import pretrain as _pretrain
from kerasrl.execution.recorder import create_recorder as _create_recorder

register_driver("fit", drivers.fit)
register_driver("evaluate", drivers.evaluate)
register_driver("pretrain", _pretrain)
register_plugin("recorder", _create_recorder)

__all__ = ["Runner"]


def __getattr__(name: str) -> Any:
    if name == "Runner":
        from kerasrl.execution.runner import Runner

        return Runner
    raise AttributeError(f"module 'kerasrl.execution' has no attribute '{name}'")
