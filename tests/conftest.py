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
