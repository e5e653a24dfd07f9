"""Every script in examples/ runs as it is (smoke tests, short budgets)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

ARGUMENTS = {
    "ppo_cartpole.py": ["--timesteps", "2048", "--quiet"],
}


def _run(script: str) -> str:
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *ARGUMENTS.get(script, [])],
        capture_output=True, text=True, timeout=600, env=env, cwd=EXAMPLES.parent,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


@pytest.mark.parametrize(
    "script", sorted(path.name for path in EXAMPLES.glob("*.py"))
)
def test_example_runs(script):
    _run(script)


def test_multi_input_example_shows_both_branches():
    output = _run("multi_input.py")
    assert "conv2d" in output.lower() and "embedding" in output.lower()
    assert "inputs: ['attributes', 'observation']" in output


def test_masking_example_never_chooses_masked_action():
    output = _run("action_masking.py")
    assert "actions chosen: [" in output
    counts = output.split("actions chosen: [")[1].split("]")[0]
    assert counts.split(",")[1].strip() == "0"
