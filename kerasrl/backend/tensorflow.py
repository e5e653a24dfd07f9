"""TensorFlow backend: `tf.function` over Keras variables.

Compiled functions read and assign the Keras (tf.Variable-backed) variables
directly; gradients come from `tf.GradientTape`, and loops are `tf.while_loop`s
via `keras.ops.fori_loop`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasrl.backend.common import Compilations, DirectEngine
from kerasrl.backend.common import call_model as call_model
from kerasrl.backend.common import polyak_update as polyak_update


def _to_numpy(tree: Any) -> Any:
    return tf.nest.map_structure(lambda x: x.numpy() if hasattr(x, "numpy") else np.asarray(x), tree)


#: What one more compilation costs in padded batch rows
#: (`kerasrl.memories.PaddedSizes`): `tf.function(reduce_retracing=True)`
#: traces a shape-generic version after the second shape, so padding beyond a
#: power of two saves nothing.
COMPILE_ROWS = 0


class Engine(DirectEngine):
    """Compiles functions over Keras variables with `tf.function`.

    Args:
        variables: All Keras variables the compiled functions read or write.
    """

    def function(
        self, fn: Callable, sync: bool = True, to_numpy: bool = True,
        variables: Sequence[keras.Variable] | None = None, pack: bool = False,
        guard: bool = False, name: str | None = None,
    ) -> Callable:
        """Compiles `fn(*args)` with `tf.function(reduce_retracing=True)`.

        With `guard=True` (updates), the variables are copied at the start of
        the call and restored (one `tf.cond`) when any float output, a loss or
        a gradient norm, is not finite: a non-finite update leaves every
        variable as it was.
        """
        compilations = Compilations(fn, name)

        def traced(*args: Any) -> Any:
            compilations.traced()  # runs once per trace
            return fn(*args)

        if guard:
            variables = list(self.variables)

            def guarded(*args: Any) -> Any:
                before = [tf.identity(v.value) for v in variables]
                outputs = traced(*args)
                finite = tf.reduce_all(tf.stack([
                    tf.reduce_all(tf.math.is_finite(x)) for x in tf.nest.flatten(outputs)
                    if isinstance(x, tf.Tensor) and x.dtype.is_floating]))

                def restore() -> Any:
                    for variable, value in zip(variables, before):
                        variable.assign(value)
                    return tf.constant(False)

                tf.cond(finite, lambda: tf.constant(True), restore)
                return outputs

            compiled = tf.function(guarded, reduce_retracing=True, jit_compile=False)
        else:
            compiled = tf.function(traced, reduce_retracing=True, jit_compile=False)

        def call(*args):
            outputs = compiled(*args)
            return _to_numpy(outputs) if to_numpy else outputs

        call.compiled = compiled
        call.compilations = compilations
        return call


def gradient_step(
    loss_fn: Callable, optimizer: keras.optimizers.Optimizer,
    variables: Sequence[keras.Variable], *args: Any, clip_norm: float | None = None,
) -> tuple[Any, Any, Any]:
    """One optimizer step on `loss_fn(*args) -> (loss, aux)` w.r.t. `variables`.

    Returns `(loss, aux, global_gradient_norm)` (the norm before clipping to
    `clip_norm`). Non-finite steps are handled by the update function as a
    whole (`Engine.function(..., guard=True)`).
    """
    with tf.GradientTape() as tape:
        loss, aux = loss_fn(*args)
    grads = tape.gradient(loss, [v.value for v in variables])
    grads = [tf.zeros_like(v.value) if g is None else g for g, v in zip(grads, variables)]
    norm = tf.linalg.global_norm(grads)
    if clip_norm is not None:
        grads, _ = tf.clip_by_global_norm(grads, clip_norm, use_norm=norm)
    optimizer.apply(grads, variables)
    return loss, aux, norm


def fori_loop(lower: Any, upper: Any, body: Callable, init: Any) -> Any:
    """`body(i, carry) -> carry` repeated inside the compiled function."""
    return keras.ops.fori_loop(lower, upper, body, init)


def set_random_seed(seed: int) -> None:
    """`keras.utils.set_random_seed` (Python, NumPy, Keras and TensorFlow)."""
    keras.utils.set_random_seed(seed)


def natural_gradient_step(
    loss_fn: Callable, kl_fn: Callable, variables: Sequence[keras.Variable], *args: Any,
    max_kl: Any, cg_iterations: int = 10, cg_damping: float = 0.1,
    linesearch_iterations: int = 10, backtracking_factor: float = 0.5,
    kl_tolerance: float = 1.5,
) -> tuple[Any, Any, dict]:
    """One natural-gradient (TRPO) step on `loss_fn(*args) -> (loss, aux)`.

    The functions run inside a `keras.StatelessScope` that maps `variables` to
    tensors (their current values, or line-search candidates); the gradient
    comes from a `tf.GradientTape` watching those tensors, Fisher-vector
    products from nested tapes over `kl_fn(*args)` (the mean KL between the
    old, fixed policy and the one given by `variables`). Conjugate gradient,
    step scaling and line search: see `kerasrl.backend.natural_gradient`. The
    accepted values are assigned to `variables`.

    Returns:
        `(loss, aux, metrics)` with the loss and aux before the step.
    """
    from kerasrl.backend.natural_gradient import apply_natural_gradient

    values = [tf.convert_to_tensor(v.value) for v in variables]

    def run_at(fn, trainable_values):
        mapping = list(zip(variables, trainable_values))
        with keras.StatelessScope(state_mapping=mapping, initialize_variables=False):
            return fn(*args)

    def gradients(target, tape):
        grads = tape.gradient(target, values)
        return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, values)]

    with tf.GradientTape() as tape:
        tape.watch(values)
        loss, aux = run_at(loss_fn, values)
    grads = gradients(loss, tape)

    def hessian_vector_product(vector):
        with tf.GradientTape() as outer:
            outer.watch(values)
            with tf.GradientTape() as inner:
                inner.watch(values)
                kl = run_at(kl_fn, values)
            kl_grads = gradients(kl, inner)
            product = tf.add_n([tf.reduce_sum(g * tf.stop_gradient(v))
                                for g, v in zip(kl_grads, vector)])
        return gradients(product, outer)

    def evaluate(candidate):
        return run_at(loss_fn, candidate)[0], run_at(kl_fn, candidate)

    metrics = apply_natural_gradient(
        variables, values, grads, hessian_vector_product, evaluate, loss, max_kl=max_kl,
        cg_iterations=cg_iterations, cg_damping=cg_damping,
        linesearch_iterations=linesearch_iterations, backtracking_factor=backtracking_factor,
        kl_tolerance=kl_tolerance,
    )
    return loss, aux, metrics
