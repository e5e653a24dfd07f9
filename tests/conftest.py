"""Shared test setup: the backend comes from KERAS_BACKEND (nox sets it)."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_report_header(config):
    return f"kerasrl: KERAS_BACKEND={keras.backend.backend()}"


@pytest.fixture
def shared_dir() -> Path:
    """The `shared/` folder beside the repository (Tensorforce data)."""
    if not SHARED.is_dir():
        pytest.fail(f"shared/ folder not found at {SHARED}")
    return SHARED


@pytest.fixture
def backend() -> str:
    return keras.backend.backend()


def pytest_configure(config):
    """On JAX, a compilation cache for the session (`KERASRL_TEST_JAX_CACHE=0` turns it off).

    Many tests build the same programs (a saved agent reloaded, parametrized
    specs that compile identically); XLA then compiles each program once per
    run instead of once per test. Tracing, and therefore every compilation
    count the tests check, is unchanged.
    """
    if keras.backend.backend() != "jax" or os.environ.get("KERASRL_TEST_JAX_CACHE") == "0":
        return
    import tempfile

    import jax

    directory = tempfile.mkdtemp(prefix="kerasrl-jax-cache-")
    config._kerasrl_jax_cache = directory
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
    directory = getattr(config, "_kerasrl_jax_cache", None)
    if directory is not None:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
