"""PyTorch backend: eager execution over Keras variables.

Keras' own default for torch is eager; small RL networks gain little from
`torch.compile` and pay seconds of compile time, so functions run eagerly:
acting under `torch.no_grad()`, gradient steps with `torch.autograd.grad`.
Functional models run node by node, with plain-torch dense layers where that
is exact (`call_model`), and target networks are blended in place
(`polyak_update`): both skip Keras' per-op dispatch, the main cost of small
networks in eager mode.

Threads: RL networks are small and environments need the CPU too, so torch
runs on one intra-op thread unless `KERASRL_TORCH_THREADS` says otherwise
(with 2 threads on a busy 2-core machine, a batch-8 forward pass was 40x
slower than with 1, see docs/performance.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import torch

from kerasrl.backend.common import Compilations, DirectEngine, set_keras_seed

_THREADS = os.environ.get("KERASRL_TORCH_THREADS")
torch.set_num_threads(int(_THREADS) if _THREADS else 1)


def _to_tensor(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_tensor(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_tensor(v) for v in value)
    if isinstance(value, np.ndarray) or np.isscalar(value):
        array = np.asarray(value)
        if any(stride < 0 for stride in array.strides):  # e.g. x[::-1]: torch refuses them
            array = array.copy()
        return torch.as_tensor(array)
    return value


def _to_numpy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_numpy(v) for v in value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


#: What one more compilation costs in padded batch rows
#: (`kerasrl.memories.PaddedSizes`): nothing is compiled, so a padded row is
#: pure extra work.
COMPILE_ROWS = 0


class Engine(DirectEngine):
    """Runs functions eagerly over Keras variables (torch tensors).

    Args:
        variables: All Keras variables the functions read or write.
    """

    def function(
        self, fn: Callable, sync: bool = True, to_numpy: bool = True,
        variables: Sequence[keras.Variable] | None = None, pack: bool = False,
        guard: bool = False, name: str | None = None,
    ) -> Callable:
        """Returns a callable running `fn` eagerly; without gradients when `sync` is False.

        With `guard=True` (updates), the variables are copied before the call
        and copied back when any float output, a loss or a gradient norm, is
        not finite: a non-finite update leaves every variable as it was.
        """
        track_gradients = sync
        guarded = list(self.variables) if guard else []
        compilations = Compilations(fn, name)

        def call(*args):
            args = _to_tensor(args)
            compilations.called_with(args)
            with torch.no_grad():
                before = [v.value.detach().clone() for v in guarded]
            if track_gradients:
                outputs = fn(*args)
            else:
                with torch.no_grad():
                    outputs = fn(*args)
            if guard and not _all_finite(outputs):
                with torch.no_grad():
                    for variable, value in zip(guarded, before):
                        variable.value.copy_(value)
            return _to_numpy(outputs) if to_numpy else outputs

        call.compilations = compilations
        return call


def _all_finite(outputs: Any) -> bool:
    """Whether every float tensor of `outputs` is finite (one host read)."""
    flags = [torch.isfinite(x).all() for x in keras.tree.flatten(outputs)
             if isinstance(x, torch.Tensor) and x.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def gradient_step(
    loss_fn: Callable, optimizer: keras.optimizers.Optimizer,
    variables: Sequence[keras.Variable], *args: Any, clip_norm: float | None = None,
) -> tuple[Any, Any, Any]:
    """One optimizer step on `loss_fn(*args) -> (loss, aux)` w.r.t. `variables`.

    Returns `(loss, aux, global_gradient_norm)` (the norm before clipping to
    `clip_norm`). Non-finite steps are handled by the update function as a
    whole (`Engine.function(..., guard=True)`).
    """
    with torch.enable_grad():
        loss, aux = loss_fn(*args)
        tensors = [v.value for v in variables]
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, tensors)]
    with torch.no_grad():
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        if clip_norm is not None:
            torch._foreach_mul_(grads, torch.clamp(clip_norm / (norm + 1e-6), max=1.0))
        optimizer.apply(grads, variables)
    loss = loss.detach()
    aux = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in aux.items()} if isinstance(aux, dict) else aux
    return loss, aux, norm


def fori_loop(lower: Any, upper: Any, body: Callable, init: Any) -> Any:
    """`body(i, carry) -> carry` repeated eagerly."""
    carry = init
    for i in range(int(lower), int(upper)):
        carry = body(i, carry)
    return carry


def polyak_update(pairs: Sequence[tuple[keras.Variable, keras.Variable]], weight: Any) -> None:
    """`target ← weight·online + (1-weight)·target`, in place with `torch._foreach_lerp_`.

    Eager, so a zero weight (most steps with `target_sync_frequency > 1`)
    skips the work instead of blending with 0.
    """
    w = float(weight)
    if w == 0.0:
        return
    floats = [(t, o) for t, o in pairs if "float" in str(t.dtype)]
    with torch.no_grad():
        targets = [t.value for t, _ in floats]
        onlines = [o.value for _, o in floats]
        if w == 1.0:
            torch._foreach_copy_(targets, onlines)
        elif targets:
            torch._foreach_lerp_(targets, onlines, w)
        for target, online in pairs:
            if "float" not in str(target.dtype):
                target.value.copy_(online.value)


def set_random_seed(seed: int) -> None:
    """Like `keras.utils.set_random_seed`, without importing TensorFlow."""
    set_keras_seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------- fast model calls
# Keras' `Layer.__call__` costs ~0.1 ms per layer on torch (input conversion,
# autocast scopes, tracking), more than a small layer's arithmetic. Inside
# kerasrl's own functions, functional models are run node by node calling each
# built layer's `call` directly, which is what `__call__` ends up doing.
_PLANS: dict[int, Any] = {}

#: Activations with the same torch function as Keras' own, for the dense fast path.
_TORCH_ACTIVATIONS = {"none": None, "tanh": torch.tanh, "relu": torch.relu,
                      "sigmoid": torch.sigmoid}


def _fast_dense(layer: Any) -> Callable | None:
    """A plain-torch `call` for a float32 dense layer with a simple activation, or None.

    kerasrl's `dense`/`linear` layers (without dropout and with an output
    axis) and `keras.layers.Dense` compute `activation(x @ kernel + bias)`;
    on a 2-D float32 input this is one `torch.addmm` and one activation,
    without the ~10 µs of Keras op dispatch per `keras.ops` call. Other
    inputs (ints, higher ranks) go through the layer's own `call`.
    """
    from kerasrl.layers.dense import Dense, Linear

    if type(layer) in (Dense, Linear):
        if (layer.dropout > 0.0 or layer.size == 0
                or layer.nonlinearity not in _TORCH_ACTIVATIONS):
            return None
        activation = _TORCH_ACTIVATIONS[layer.nonlinearity]
        kernel, bias = layer.kernel, layer.bias
    elif type(layer) is keras.layers.Dense:
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            return None
        activations = {keras.activations.linear: None, keras.activations.tanh: torch.tanh,
                       keras.activations.relu: torch.relu,
                       keras.activations.sigmoid: torch.sigmoid}
        if layer.activation not in activations:
            return None
        activation = activations[layer.activation]
        kernel, bias = layer.kernel, layer.bias
    else:
        return None
    if layer.compute_dtype != "float32" or str(kernel.dtype) != "float32":
        return None
    slow = layer.call

    def call(inputs: Any, training: Any = None) -> Any:
        if (not isinstance(inputs, torch.Tensor) or inputs.dtype is not torch.float32
                or inputs.dim() != 2):
            return slow(inputs, training=training)
        x = (torch.addmm(bias.value, inputs, kernel.value) if bias is not None
             else inputs @ kernel.value)
        return activation(x) if activation is not None else x

    return call



def _plan(model: keras.Model) -> Any:
    from keras.src import tree
    from keras.src.models.functional import Functional

    plan = _PLANS.get(id(model))
    if plan is not None and plan[0] is model:
        return plan
    if not isinstance(model, Functional) or not model.built:
        plan = (model, None)
    else:
        nodes = []
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if not node.operation or node.is_input:
                    continue
                operation = node.operation
                if isinstance(operation, keras.layers.Layer) and not isinstance(
                    operation, (Functional, keras.Sequential)
                ):
                    function = _fast_dense(operation) or operation.call
                    takes_training = getattr(operation, "_call_has_training_arg", False)
                else:
                    function = operation
                    takes_training = False
                nodes.append((function, takes_training, node.arguments,
                              [id(x) for x in node.outputs]))
        struct = model._inputs_struct
        if isinstance(struct, dict):
            keys = tree.flatten({key: key for key in struct})
        else:
            keys = None
        plan = (model, (nodes, keys, [id(x) for x in model.inputs],
                        [id(x) for x in model.outputs], model._outputs_struct))
    _PLANS[id(model)] = plan
    return plan


def call_model(model: keras.Model, inputs: Any, training: bool = False) -> Any:
    """Runs `model` on `inputs` (fast path for built functional models)."""
    from keras.src import tree

    _, plan = _plan(model)
    if plan is None:
        return model(inputs, training=training)
    nodes, keys, input_ids, output_ids, outputs_struct = plan
    if keys is not None:
        flat = [inputs[key] for key in keys]
    else:
        flat = tree.flatten(inputs)
    values = dict(zip(input_ids, flat))
    for function, takes_training, arguments, outputs in nodes:
        args, kwargs = arguments.fill_in(values)
        if takes_training:
            kwargs["training"] = training
        result = function(*args, **kwargs)
        if len(outputs) == 1:
            values[outputs[0]] = result if not isinstance(result, (list, tuple)) else result[0]
        else:
            for key, value in zip(outputs, tree.flatten(result)):
                values[key] = value
    return tree.pack_sequence_as(outputs_struct, [values[i] for i in output_ids])


def natural_gradient_step(
    loss_fn: Callable, kl_fn: Callable, variables: Sequence[keras.Variable], *args: Any,
    max_kl: Any, cg_iterations: int = 10, cg_damping: float = 0.1,
    linesearch_iterations: int = 10, backtracking_factor: float = 0.5,
    kl_tolerance: float = 1.5,
) -> tuple[Any, Any, dict]:
    """One natural-gradient (TRPO) step on `loss_fn(*args) -> (loss, aux)`.

    The gradient comes from `torch.autograd.grad`; Fisher-vector products
    differentiate `∇KL · v` again through the graph of `∇KL` (built once with
    `create_graph=True`; `kl_fn(*args)` is the mean KL between the old, fixed
    policy and the one given by `variables`). Line-search candidates are
    evaluated without gradients inside a `keras.StatelessScope` mapping
    `variables` to the candidate values. Conjugate gradient, step scaling and
    line search: see `kerasrl.backend.natural_gradient`. The accepted values
    are assigned to `variables`.

    Returns:
        `(loss, aux, metrics)` with the loss and aux before the step.
    """
    from kerasrl.backend.natural_gradient import apply_natural_gradient

    values = [v.value for v in variables]

    def gradients(target, **kwargs):
        if not target.requires_grad:
            return [torch.zeros_like(v) for v in values]
        grads = torch.autograd.grad(target, values, allow_unused=True, **kwargs)
        return [torch.zeros_like(v) if g is None else g for g, v in zip(grads, values)]

    with torch.enable_grad():
        loss, aux = loss_fn(*args)
        grads = gradients(loss)
        kl_grads = gradients(kl_fn(*args), create_graph=True)

    def hessian_vector_product(vector):
        with torch.enable_grad():
            product = sum(torch.sum(g * v.detach()) for g, v in zip(kl_grads, vector))
            return gradients(product, retain_graph=True)

    def evaluate(candidate):
        mapping = list(zip(variables, candidate))
        with keras.StatelessScope(state_mapping=mapping, initialize_variables=False):
            candidate_loss, _ = loss_fn(*args)
            return candidate_loss, kl_fn(*args)

    with torch.no_grad():
        metrics = apply_natural_gradient(
            variables, [v.detach() for v in values], grads, hessian_vector_product, evaluate,
            loss.detach(), max_kl=max_kl, cg_iterations=cg_iterations, cg_damping=cg_damping,
            linesearch_iterations=linesearch_iterations,
            backtracking_factor=backtracking_factor, kl_tolerance=kl_tolerance,
        )
    aux = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in aux.items()} if (
        isinstance(aux, dict)) else aux
    return loss.detach(), aux, metrics
