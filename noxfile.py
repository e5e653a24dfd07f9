"""Test automation: `nox` runs the linter and the test suite on every backend.

Sessions:
- `lint`: ruff.
- `tests-jax`, `tests-tensorflow`, `tests-torch`: the whole suite with
  `KERAS_BACKEND` set to that backend (each in its own virtualenv).

- `atari` (not run by default): the Atari tests and examples with the extra
  `kerasrl[atari]` installed (elsewhere they are skipped, saying so).
- `benchmark_recurrent` (not run by default): `benchmarks/recurrent.py`,
  kerasrl's recurrent PPO on JAX against sb3-contrib's `RecurrentPPO`, in one
  virtualenv with both (`.[jax,peers]`).

Pass pytest arguments after `--`, e.g. `nox -s tests-jax -- -k masking`.
"""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

BACKENDS = ["jax", "tensorflow", "torch"]


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "kerasrl", "tests", "examples", "benchmarks", "noxfile.py")


@nox.session
@nox.parametrize("backend", BACKENDS, ids=BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    session.install("-e", f".[dev,{backend}]")
    # Two pytest-xdist workers (the CI machine has 2 cores): 20 -> 11 min on JAX, 5 -> 3 on
    # PyTorch. TensorFlow still runs in one process (not yet checked under xdist).
    workers = [] if backend == "tensorflow" else ["-n", "2"]
    session.run(
        "pytest", "-q", *workers, *session.posargs,
        env={"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
             "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""},
    )


@nox.session
def atari(session: nox.Session) -> None:
    """The Atari tests and examples (extra `kerasrl[atari]`), on JAX."""
    session.install("-e", ".[dev,jax,atari]")
    session.run("pytest", "-q", "tests/environments/test_atari.py",
                "tests/examples/test_examples.py", "-k", "atari", *session.posargs,
                env={"KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu",
                     "CUDA_VISIBLE_DEVICES": "", "KERASRL_REQUIRE_ATARI": "1"})


BENCHMARK_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}


@nox.session
def benchmark_recurrent(session: nox.Session) -> None:
    """kerasrl's recurrent PPO against sb3-contrib's RecurrentPPO."""
    session.install("-e", ".[jax,peers]")
    session.run("python", "benchmarks/recurrent.py", *session.posargs, env=BENCHMARK_ENV)


@nox.session
def benchmark_sb3(session: nox.Session) -> None:
    """RL-Zoo PPO on CartPole-v1: kerasrl (JAX, PyTorch) against Stable-Baselines3."""
    session.install("-e", ".[jax,peers]")
    session.run("python", "benchmarks/ppo_cartpole.py", "--vs", "sb3",
                *(session.posargs or ["--backends", "jax", "torch", "--seeds", "0", "1", "2"]),
                env=BENCHMARK_ENV)
