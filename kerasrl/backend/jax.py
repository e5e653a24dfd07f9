"""JAX backend: `jax.jit` over Keras `StatelessScope`s.

The engine keeps the current value of every variable as a JAX array. A
compiled function takes the list of values plus the inputs, runs the user
function inside a `keras.StatelessScope` that maps each Keras variable to its
value (so `model(x)`, `optimizer.apply(...)` and `SeedGenerator.next()` work
unchanged and their assignments are recorded in the scope), and returns the
outputs and the new values. The values are written back into the Keras
variables after functions compiled with `sync=True` (a reference swap, no
copy), so `model.get_weights()` is always current.

Dispatch: on the CPU, JAX runs computations on a thread pool asynchronously
by default; an RL loop needs every act result at once, so the hand-off only
adds latency (waking a worker thread after each environment step). kerasrl
turns `jax_cpu_enable_async_dispatch` off when this module is imported (act
latency 105 -> 86 µs, training throughput +2% in benchmarks/ppo_cartpole.py);
set `KERASRL_JAX_ASYNC_DISPATCH=1` to keep JAX's default.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import keras
import numpy as np
from keras import StatelessScope
from keras.src.backend.common.stateless_scope import get_stateless_scope

from kerasrl.backend.common import Compilations, set_keras_seed, unique_variables
from kerasrl.backend.common import call_model as call_model
from kerasrl.backend.common import polyak_update as polyak_update

#: What one more compilation of an update costs, in padded batch rows (see
#: `kerasrl.memories.PaddedSizes`): a PPO update compiles in 1-3 s on XLA CPU,
#: while a padded row of a 64-64 MLP update costs about 5 microseconds.
COMPILE_ROWS = 2**18

if os.environ.get("KERASRL_JAX_ASYNC_DISPATCH", "0") != "1":
    jax.config.update("jax_cpu_enable_async_dispatch", False)

# Variables of the function being traced (set during tracing only).
_TRACING: list[list] = []


def _shapes(args: Any) -> tuple:
    """The shapes of all leaves of `args` (a key for one compiled version)."""
    return tuple(np.shape(leaf) for leaf in jax.tree_util.tree_leaves(args))


def _tree_to_numpy(tree: Any) -> Any:
    return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


class Engine:
    """Owns the values of `variables` and compiles functions over them.

    Args:
        variables: All Keras variables the compiled functions read or write
            (duplicates are removed).
    """

    def __init__(self, variables: Sequence[keras.Variable]):
        self.variables = unique_variables(variables)
        self._index = {id(v): i for i, v in enumerate(self.variables)}
        self.reload()

    def reload(self) -> None:
        """Reads the current values of the Keras variables (after external changes).

        Compiled functions also check, before each call, whether a variable
        was assigned from outside (e.g. `model.set_weights`) and use its new
        value, so calling this is only needed for code that reads
        `engine.values` directly.
        """
        self.values = [v.value for v in self.variables]

    def sync(self) -> None:
        """Writes the engine's values into the Keras variables."""
        for variable, value in zip(self.variables, self.values):
            variable.assign(value)

    def assign(self, variable: keras.Variable, value: Any) -> None:
        """Sets one variable's value from the host (e.g. a scheduled learning rate)."""
        index = self._index[id(variable)]
        value = jax.numpy.asarray(value, dtype=self.values[index].dtype)
        self.values[index] = value
        variable.assign(value)

    def function(
        self, fn: Callable, sync: bool = True, to_numpy: bool = True,
        variables: Sequence[keras.Variable] | None = None, pack: bool = False,
        guard: bool = False, name: str | None = None,
    ) -> Callable:
        """Compiles `fn(*args)`; returns a callable on host (numpy) inputs.

        Args:
            fn: A function of tensors using Keras variables, `keras.ops` and
                `keras.random` with `SeedGenerator`s among `variables`.
            sync: Accepted for symmetry with the other backends (torch uses
                it to enable gradients); on JAX every value a call changes is
                written back into its Keras variable (a reference swap).
            to_numpy: Convert outputs to numpy arrays.
            variables: The subset of the engine's variables `fn` uses (default
                all); fewer variables mean a cheaper call.
            pack: Return all outputs as one float32 buffer from the device and
                split it on the host (one transfer instead of one per output;
                for small act outputs: ints must be below 2**24).
            guard: For updates: when any float output (a loss, a gradient
                norm) is not finite, every variable keeps the value it had
                before the call (one `where` per changed variable per call; the
                per-step work of `gradient_step` stays unguarded and fast).
            name: The function's name in the recompilation warning (default
                `fn.__name__`).

        Returns:
            A callable with the same arguments as `fn`, whose `compilations`
            attribute (`kerasrl.backend.common.Compilations`) counts the
            versions compiled.
        """
        if variables is None:
            variables = list(self.variables)
        else:
            variables = list({id(v): v for v in variables}.values())
        indices = [self._index[id(v)] for v in variables]
        # Filled at trace time: which variables the function assigns, and the
        # structure of packed outputs.
        traced: dict[str, Any] = {}
        compilations = Compilations(fn, name)

        def pure(values, *args):
            compilations.traced()
            _TRACING.append(variables)
            try:
                with StatelessScope(state_mapping=list(zip(variables, values))) as scope:
                    outputs = fn(*args)
                changed = []
                new_values = []
                for position, (variable, value) in enumerate(zip(variables, values)):
                    new = scope.get_current_value(variable)
                    if new is not None and new is not value:
                        changed.append(position)
                        new_values.append(new)
            finally:
                _TRACING.pop()
            traced["changed"] = changed
            if guard:
                finite = jax.numpy.all(jax.numpy.array([
                    jax.numpy.all(jax.numpy.isfinite(leaf))
                    for leaf in jax.tree_util.tree_leaves(outputs)
                    if jax.numpy.issubdtype(jax.numpy.result_type(leaf), jax.numpy.floating)]))
                new_values = [jax.numpy.where(finite, new, values[position])
                              for position, new in zip(changed, new_values)]
            if pack:
                leaves, treedef = jax.tree_util.tree_flatten(outputs)
                # One compiled version per input shapes: remember each layout
                # as the slices of the buffer that hold its leaves.
                plan, offset = [], 0
                for leaf in leaves:
                    size = math.prod(leaf.shape)
                    plan.append((offset, offset + size, tuple(leaf.shape), np.dtype(leaf.dtype)))
                    offset += size
                layout = (treedef, plan)
                traced[_shapes(args)] = layout
                # Most functions have one layout per buffer size: look it up by
                # size, by input shapes only where two layouts share a size.
                by_size = traced.setdefault("by_size", {})
                by_size[offset] = layout if by_size.get(offset, layout) == layout else None
                outputs = jax.numpy.concatenate(
                    [jax.numpy.ravel(leaf).astype("float32") for leaf in leaves]
                )
            return outputs, new_values

        jitted = jax.jit(pure)

        def unpack(buffer, args):
            layout = traced["by_size"].get(buffer.size)
            treedef, plan = traced[_shapes(args)] if layout is None else layout
            leaves = [buffer[start:stop].reshape(shape).astype(dtype)
                      for start, stop, shape, dtype in plan]
            return jax.tree_util.tree_unflatten(treedef, leaves)

        def call(*args):
            current = self.values
            # Pick up values assigned from outside (e.g. `model.set_weights`):
            # after `sync()` the Keras variables hold the engine's own arrays.
            for i in indices:
                held = self.variables[i]._value
                if held is not current[i]:
                    current[i] = held
            outputs, new_values = jitted([current[i] for i in indices], *args)
            variables = self.variables
            for position, value in zip(traced["changed"], new_values):
                index = indices[position]
                current[index] = value
                # Keep the Keras variable on the same array (a reference, no
                # copy): `get_weights()` stays current and the check above
                # sees no outside change.
                variables[index]._direct_assign(value)
            if pack:
                return unpack(np.asarray(outputs), args)
            return _tree_to_numpy(outputs) if to_numpy else outputs

        call.jitted = jitted  # for inspection / benchmarks
        call.compilations = compilations
        return call


def _traced_variables() -> list:
    if not _TRACING:
        raise RuntimeError("gradient_step/fori_loop must run inside Engine.function")
    return _TRACING[-1]


def gradient_step(
    loss_fn: Callable, optimizer: keras.optimizers.Optimizer,
    variables: Sequence[keras.Variable], *args: Any, clip_norm: float | None = None,
) -> tuple[Any, Any, Any]:
    """One optimizer step on `loss_fn(*args) -> (loss, aux)` w.r.t. `variables`.

    Returns `(loss, aux, global_gradient_norm)` (the norm before clipping to
    `clip_norm`). Non-finite steps are not filtered here: the update function
    is compiled with `Engine.function(..., guard=True)`, which keeps every
    variable as it was when any loss or norm of the update is not finite.
    """
    scope = get_stateless_scope()
    trainable_ids = {id(v) for v in variables}
    others = [v for v in _traced_variables() if id(v) not in trainable_ids]
    other_values = [scope.get_current_value(v) for v in others]
    values = [scope.get_current_value(v) for v in variables]

    def loss_of(trainable_values):
        mapping = list(zip(others, other_values)) + list(zip(variables, trainable_values))
        with StatelessScope(state_mapping=mapping) as inner:
            loss, aux = loss_fn(*args)
        updated = [inner.get_current_value(v) for v in others]
        return loss, (aux, updated)

    (loss, (aux, updated)), grads = jax.value_and_grad(loss_of, has_aux=True)(values)
    for variable, value in zip(others, updated):
        scope.add_update((variable, value))
    norm = jax.numpy.sqrt(sum(jax.numpy.sum(jax.numpy.square(g)) for g in grads))
    if clip_norm is not None:
        scale = jax.numpy.minimum(1.0, clip_norm / (norm + 1e-6))
        grads = [g * scale for g in grads]
    optimizer.apply(grads, variables)
    return loss, aux, norm


def fori_loop(lower: Any, upper: Any, body: Callable, init: Any) -> Any:
    """`body(i, carry) -> carry` repeated; variable updates carried through."""
    scope = get_stateless_scope()
    variables = _traced_variables()
    values = [scope.get_current_value(v) for v in variables]

    def step(i, state):
        values, carry = state
        with StatelessScope(state_mapping=list(zip(variables, values))) as inner:
            carry = body(i, carry)
        new_values = [
            value if inner.get_current_value(v) is None else inner.get_current_value(v)
            for v, value in zip(variables, values)
        ]
        return new_values, carry

    values, carry = jax.lax.fori_loop(lower, upper, step, (values, init))
    for variable, value in zip(variables, values):
        scope.add_update((variable, value))
    return carry


def set_random_seed(seed: int) -> None:
    """Like `keras.utils.set_random_seed`, without importing TensorFlow."""
    set_keras_seed(seed)


def natural_gradient_step(
    loss_fn: Callable, kl_fn: Callable, variables: Sequence[keras.Variable], *args: Any,
    max_kl: Any, cg_iterations: int = 10, cg_damping: float = 0.1,
    linesearch_iterations: int = 10, backtracking_factor: float = 0.5,
    kl_tolerance: float = 1.5,
) -> tuple[Any, Any, dict]:
    """One natural-gradient (TRPO) step on `loss_fn(*args) -> (loss, aux)`.

    The gradient comes from `jax.value_and_grad`, Fisher-vector products from
    `jax.jvp` of the gradient of `kl_fn(*args)` (the mean KL between the old,
    fixed policy and the one given by `variables`; forward-over-reverse).
    Losses at other parameter values are evaluated in a nested
    `StatelessScope` that maps `variables` to the candidate values. Conjugate
    gradient, step scaling and line search: see
    `kerasrl.backend.natural_gradient`. The accepted values are assigned to
    `variables` (recorded in the engine's scope).

    Returns:
        `(loss, aux, metrics)` with the loss and aux before the step.
    """
    from kerasrl.backend.natural_gradient import apply_natural_gradient

    scope = get_stateless_scope()
    trainable_ids = {id(v) for v in variables}
    others = [v for v in _traced_variables() if id(v) not in trainable_ids]
    other_values = [scope.get_current_value(v) for v in others]
    values = [scope.get_current_value(v) for v in variables]

    def run_at(fn, trainable_values):
        mapping = list(zip(others, other_values)) + list(zip(variables, trainable_values))
        with StatelessScope(state_mapping=mapping):
            return fn(*args)

    (loss, aux), grads = jax.value_and_grad(
        lambda v: run_at(loss_fn, v), has_aux=True)(values)
    kl_gradient = jax.grad(lambda v: run_at(kl_fn, v))

    def hessian_vector_product(vector):
        return list(jax.jvp(kl_gradient, (values,), (list(vector),))[1])

    def evaluate(candidate):
        return run_at(loss_fn, candidate)[0], run_at(kl_fn, candidate)

    metrics = apply_natural_gradient(
        variables, values, grads, hessian_vector_product, evaluate, loss, max_kl=max_kl,
        cg_iterations=cg_iterations, cg_damping=cg_damping,
        linesearch_iterations=linesearch_iterations, backtracking_factor=backtracking_factor,
        kl_tolerance=kl_tolerance,
    )
    return loss, aux, metrics
