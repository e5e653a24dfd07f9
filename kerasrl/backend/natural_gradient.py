"""Backend-independent maths of the natural-gradient (TRPO) step, in `keras.ops`.

Each backend module (`jax.py`, `tensorflow.py`, `torch.py`) computes the
derivatives its own way (the gradient `g` of the surrogate loss and
Hessian-vector products of the mean KL divergence) and hands them to
`natural_gradient_update`, which does the rest the same way everywhere:

1. Conjugate gradient solves `(H + damping·I) x = g` for `x ≈ F⁻¹ g`, where
   `H` is the Hessian of the mean KL between the old (fixed) policy and the
   new one at the current parameters (the Fisher information matrix).
2. The full step `-sqrt(2·max_kl / xᵀFx) · x` is the one whose quadratic KL
   estimate equals `max_kl`.
3. A backtracking line search tries the fractions `1, β, β², ...` of the full
   step and accepts the first candidate whose loss is lower than before and
   whose mean KL is at most `kl_tolerance · max_kl`; if none passes, the
   parameters stay as they were.

Parameters and vectors are lists of tensors shaped like the variables (no
flattening). Loops are `keras.ops.fori_loop`/`while_loop`, so the whole
update compiles into one function on JAX and TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from keras import ops

#: Below this squared residual norm, conjugate gradient stops changing `x`.
RESIDUAL_TOLERANCE = 1e-10
_TINY = 1e-12


def dot(a: Sequence[Any], b: Sequence[Any]) -> Any:
    """Inner product of two lists of tensors (summed over all elements)."""
    total = ops.sum(a[0] * b[0])
    for x, y in zip(a[1:], b[1:]):
        total = total + ops.sum(x * y)
    return total


def conjugate_gradient(
    matvec: Callable[[list], list], b: Sequence[Any], iterations: int,
    residual_tolerance: float = RESIDUAL_TOLERANCE,
) -> tuple[list, Any]:
    """Solves `A x = b` for a symmetric positive-definite `A` given as `matvec`.

    Args:
        matvec: `v -> A v` on lists of tensors shaped like `b`.
        b: Right-hand side, a list of tensors.
        iterations: Number of iterations (a Python int; exact after
            `len(x)` iterations in exact arithmetic).
        residual_tolerance: Once the squared residual norm is below this,
            the remaining iterations leave `x` unchanged.

    Returns:
        `(x, squared_residual_norm)`.

    Example:

    ```python
    a = np.array([[4.0, 1.0], [1.0, 3.0]], "float32")
    (x,), _ = conjugate_gradient(lambda v: [ops.matmul(a, v[0])],
                                 [np.array([1.0, 2.0], "float32")], iterations=2)
    # x ≈ np.linalg.solve(a, [1.0, 2.0])
    ```
    """
    b = [ops.convert_to_tensor(t) for t in b]
    x = [ops.zeros_like(t) for t in b]
    residual_norm = dot(b, b)

    def body(_, state):
        x, r, p, rr = state
        active = rr > residual_tolerance
        ap = matvec(p)
        alpha = ops.where(active, rr / ops.maximum(dot(p, ap), _TINY), 0.0)
        x = [xi + alpha * pi for xi, pi in zip(x, p)]
        r = [ri - alpha * api for ri, api in zip(r, ap)]
        rr_new = ops.where(active, dot(r, r), rr)
        beta = rr_new / ops.maximum(rr, _TINY)
        p = [ops.where(active, ri + beta * pi, pi) for ri, pi in zip(r, p)]
        return x, r, p, rr_new

    x, _, _, residual_norm = ops.fori_loop(
        0, iterations, body, (x, list(b), list(b), residual_norm)
    )
    return list(x), residual_norm


def natural_gradient_update(
    values: Sequence[Any],
    gradient: Sequence[Any],
    hessian_vector_product: Callable[[list], list],
    evaluate: Callable[[list], tuple[Any, Any]],
    loss: Any,
    *,
    max_kl: Any,
    cg_iterations: int = 10,
    cg_damping: float = 0.1,
    linesearch_iterations: int = 10,
    backtracking_factor: float = 0.5,
    kl_tolerance: float = 1.5,
) -> tuple[list, dict]:
    """Conjugate gradient, step scaling and line search (see module docstring).

    Args:
        values: Current parameter values (list of tensors).
        gradient: Gradient of the loss at `values`.
        hessian_vector_product: `v -> H v`, H the Hessian of the mean KL at
            `values` (damping is added here).
        evaluate: `candidate_values -> (loss, mean_kl)` without gradients.
        loss: The loss at `values`.
        max_kl: The KL step size δ (a float or scalar tensor).
        cg_iterations: Conjugate-gradient iterations.
        cg_damping: Damping added to the Fisher matrix.
        linesearch_iterations: Candidates tried (fractions
            `backtracking_factor**i`, i = 0, 1, ...). 0 applies the full step
            without checks.
        backtracking_factor: Shrink factor of the line search.
        kl_tolerance: A candidate's mean KL must be at most
            `kl_tolerance * max_kl`.

    Returns:
        `(new_values, metrics)`: metrics `loss_after`, `kl` (mean KL of the
        new policy from the old), `step_fraction` (accepted fraction of the
        full step, 0 when rejected), `backtracks` (rejected candidates),
        `accepted` (1 or 0), `gradient_norm`, `expected_improvement` (the
        linear estimate `-gᵀ·step` of the full step) and `cg_residual`.
    """
    values = list(values)
    gradient = [ops.convert_to_tensor(g) for g in gradient]
    max_kl = ops.cast(max_kl, "float32")

    def damped(vector):
        product = hessian_vector_product(vector)
        return [hv + cg_damping * v for hv, v in zip(product, vector)]

    x, residual = conjugate_gradient(damped, gradient, cg_iterations)
    curvature = dot(x, damped(x))  # xᵀ F x
    scale = ops.sqrt(2.0 * max_kl / ops.maximum(curvature, _TINY))
    step = [-scale * xi for xi in x]
    expected_improvement = -dot(gradient, step)
    loss = ops.cast(loss, "float32")

    def candidate(fraction):
        return [v + ops.cast(fraction, v.dtype) * s for v, s in zip(values, step)]

    if linesearch_iterations == 0:
        loss_after, kl = evaluate(candidate(1.0))
        accepted = ops.convert_to_tensor(True)
        fraction = ops.convert_to_tensor(1.0, "float32")
        tries = ops.convert_to_tensor(1, "int32")
    else:
        factor = ops.convert_to_tensor(backtracking_factor, "float32")
        kl_bound = kl_tolerance * max_kl
        descent = expected_improvement > 0.0  # Tensorforce's only_positive_updates

        def cond(i, accepted, fraction, loss_after, kl):
            return ops.logical_and(i < linesearch_iterations, ops.logical_not(accepted))

        def body(i, accepted, fraction, loss_after, kl):
            trial = ops.power(factor, ops.cast(i, "float32"))
            new_loss, new_kl = evaluate(candidate(trial))
            new_loss = ops.cast(new_loss, "float32")
            new_kl = ops.cast(new_kl, "float32")
            ok = descent
            for condition in (new_loss < loss, new_kl <= kl_bound, ops.isfinite(new_loss),
                              ops.isfinite(new_kl)):
                ok = ops.logical_and(ok, condition)
            return (i + 1, ok, ops.where(ok, trial, 0.0), ops.where(ok, new_loss, loss),
                    ops.where(ok, new_kl, 0.0))

        init = (ops.convert_to_tensor(0, "int32"), ops.convert_to_tensor(False),
                ops.zeros((), "float32"), loss, ops.zeros((), "float32"))
        tries, accepted, fraction, loss_after, kl = ops.while_loop(cond, body, init)
    # A non-finite loss, gradient or step is never applied (even a zero fraction of
    # a NaN step would be NaN): the variables keep their values.
    gradient_norm = ops.sqrt(dot(gradient, gradient))
    finite = ops.logical_and(ops.isfinite(loss), ops.logical_and(
        ops.isfinite(gradient_norm), ops.isfinite(scale)))
    accepted = ops.logical_and(accepted, finite)
    accepted_float = ops.cast(accepted, "float32")
    new_values = [ops.where(accepted, value, old)
                  for value, old in zip(candidate(fraction), values)]
    metrics = {
        "loss_after": loss_after,
        "kl": kl,
        "step_fraction": fraction,
        "backtracks": ops.cast(tries, "float32") - accepted_float,
        "accepted": accepted_float,
        "gradient_norm": gradient_norm,
        "expected_improvement": expected_improvement,
        "cg_residual": ops.sqrt(residual),
    }
    return new_values, metrics


def apply_natural_gradient(
    variables: Sequence[Any],
    values: Sequence[Any],
    gradient: Sequence[Any],
    hessian_vector_product: Callable[[list], list],
    evaluate: Callable[[list], tuple[Any, Any]],
    loss: Any,
    **options: Any,
) -> dict:
    """`natural_gradient_update`, then assigns the new values to `variables`.

    Args:
        variables: The Keras variables whose current values are `values`.
        values, gradient, hessian_vector_product, evaluate, loss: See
            `natural_gradient_update`.
        **options: `max_kl` and the other keyword arguments of
            `natural_gradient_update`.

    Returns:
        The metrics of `natural_gradient_update`.
    """
    new_values, metrics = natural_gradient_update(
        values, gradient, hessian_vector_product, evaluate, loss, **options)
    for variable, value in zip(variables, new_values):
        variable.assign(value)
    return metrics
