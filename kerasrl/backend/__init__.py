"""Backend-specific execution: compiled functions and gradient steps.

Everything that differs between JAX, TensorFlow and PyTorch lives in one
small module per backend (`jax.py`, `tensorflow.py`, `torch.py`) with the same
public names:

- `Engine(variables)`: owns the state of a set of Keras variables (all the
  variables of an agent: networks, optimizers, seed generators) and compiles
  functions over them with `engine.function(fn, sync=...)`. Inside a compiled
  function, code reads and assigns Keras variables as usual.
- `gradient_step(loss_fn, optimizer, variables, *args, clip_norm=None)`:
  inside a compiled function, computes `loss, aux = loss_fn(*args)`, its
  gradients with respect to `variables`, clips them to the global norm
  `clip_norm` and applies them with the Keras `optimizer`. Returns
  `(loss, aux, global_gradient_norm)`.
- `natural_gradient_step(loss_fn, kl_fn, variables, *args, max_kl,
  cg_iterations=10, cg_damping=0.1, linesearch_iterations=10,
  backtracking_factor=0.5, kl_tolerance=1.5)`: inside a compiled function,
  one TRPO step: conjugate gradient on Fisher-vector products of the mean KL
  `kl_fn(*args)`, a step scaled to `max_kl`, a backtracking line search on
  `loss_fn(*args) -> (loss, aux)`; assigns the accepted values. Returns
  `(loss, aux, metrics)`. The backend-independent maths is in
  `kerasrl.backend.natural_gradient`.
- `fori_loop(lower, upper, body, init)`: like `keras.ops.fori_loop`, but
  variable updates made by `body` are carried through the loop (JAX needs
  this, the others delegate to `keras.ops.fori_loop`).
- `call_model(model, inputs, training=False)`: runs a Keras model inside a
  compiled function (torch runs functional graphs node by node, calling each
  layer's `call`, to skip Keras' per-call overhead).
- `polyak_update(pairs, weight)`: inside a compiled function, moves each
  target variable towards its online variable (`target ← weight·online +
  (1-weight)·target`); torch does it in place and skips a zero weight.
- `COMPILE_ROWS`: what one more compiled version of an update costs, counted
  in padded batch rows (`kerasrl.memories.PaddedSizes`; 0 where shapes do
  not compile).
- `set_random_seed(seed)`: seeds Python, NumPy, Keras and the backend
  (without importing TensorFlow on the other backends).

What the backend modules have in common (variable de-duplication, the
engine of TensorFlow and PyTorch that uses the variables directly, seeding
without TensorFlow, the plain model call) is in `kerasrl.backend.common`,
which imports none of the three frameworks.

The shared code (agents, losses, distributions) only uses `keras.ops` and
`keras.random`, and calls these three names.
"""

from __future__ import annotations

import keras

_BACKEND = keras.backend.backend()

if _BACKEND == "jax":
    from kerasrl.backend.jax import (
        COMPILE_ROWS,
        Engine,
        call_model,
        fori_loop,
        gradient_step,
        natural_gradient_step,
        polyak_update,
        set_random_seed,
    )
elif _BACKEND == "tensorflow":
    from kerasrl.backend.tensorflow import (
        COMPILE_ROWS,
        Engine,
        call_model,
        fori_loop,
        gradient_step,
        natural_gradient_step,
        polyak_update,
        set_random_seed,
    )
elif _BACKEND == "torch":
    from kerasrl.backend.torch import (
        COMPILE_ROWS,
        Engine,
        call_model,
        fori_loop,
        gradient_step,
        natural_gradient_step,
        polyak_update,
        set_random_seed,
    )
else:  # pragma: no cover - numpy/openvino cannot train
    from kerasrl.errors import ArgumentError

    raise ArgumentError.invalid(
        "KERAS_BACKEND", "'jax', 'tensorflow' or 'torch'", _BACKEND
    )


def name() -> str:
    """The name of the active Keras backend."""
    return _BACKEND


__all__ = ["COMPILE_ROWS", "Engine", "call_model", "gradient_step", "fori_loop",
           "natural_gradient_step",
           "polyak_update", "set_random_seed", "name"]
