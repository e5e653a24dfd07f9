"""PyTorch backend: eager execution over Keras variables.

Keras' own default for torch is eager; small RL networks gain little from
`torch.compile` and pay seconds of compile time, so functions run eagerly:
acting under `torch.no_grad()`, gradient steps with `torch.autograd.grad`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import torch


def _to_tensor(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_tensor(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_tensor(v) for v in value)
    if isinstance(value, np.ndarray) or np.isscalar(value):
        return torch.as_tensor(np.asarray(value))
    return value


def _to_numpy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_numpy(v) for v in value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


class Engine:
    """Runs functions eagerly over Keras variables (torch tensors).

    Args:
        variables: All Keras variables the functions read or write.
    """

    def __init__(self, variables: Sequence[keras.Variable]):
        unique: dict[int, keras.Variable] = {}
        for variable in variables:
            unique.setdefault(id(variable), variable)
        self.variables = list(unique.values())

    def reload(self) -> None:
        """No-op: torch functions use the variables directly."""

    def sync(self) -> None:
        """No-op: torch functions use the variables directly."""

    def assign(self, variable: keras.Variable, value: Any) -> None:
        variable.assign(value)

    def function(
        self, fn: Callable, sync: bool = True, to_numpy: bool = True,
        variables: Sequence[keras.Variable] | None = None,
    ) -> Callable:
        """Returns a callable running `fn` eagerly; without gradients when `sync` is False."""
        track_gradients = sync

        def call(*args):
            args = _to_tensor(args)
            if track_gradients:
                outputs = fn(*args)
            else:
                with torch.no_grad():
                    outputs = fn(*args)
            return _to_numpy(outputs) if to_numpy else outputs

        return call


def gradient_step(
    loss_fn: Callable, optimizer: keras.optimizers.Optimizer,
    variables: Sequence[keras.Variable], *args: Any,
) -> tuple[Any, Any, list]:
    """One optimizer step on `loss_fn(*args) -> (loss, aux)` w.r.t. `variables`."""
    with torch.enable_grad():
        loss, aux = loss_fn(*args)
        tensors = [v.value for v in variables]
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, tensors)]
    with torch.no_grad():
        optimizer.apply(grads, variables)
    loss = loss.detach()
    aux = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in aux.items()} if isinstance(aux, dict) else aux
    return loss, aux, grads


def fori_loop(lower: Any, upper: Any, body: Callable, init: Any) -> Any:
    """`body(i, carry) -> carry` repeated eagerly."""
    carry = init
    for i in range(int(lower), int(upper)):
        carry = body(i, carry)
    return carry
