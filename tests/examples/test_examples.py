"""Every script in examples/ runs as it is (smoke tests, short budgets)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

ARGUMENTS = {
    "ppo_cartpole.py": ["--timesteps", "2048", "--quiet"],
    "atari_ppo.py": ["--timesteps", "256", "--num-parallel", "2", "--batch-size", "128",
                     "--quiet"],
    "atari_dqn.py": ["--timesteps", "600", "--memory", "1000", "--quiet"],
}
#: Examples that need the extra kerasrl[atari]: run by `nox -s atari`, skipped elsewhere.
HAVE_ATARI = all(importlib.util.find_spec(name) for name in ("ale_py", "cv2"))


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
    if script.startswith("atari_") and not HAVE_ATARI and \
            os.environ.get("KERASRL_REQUIRE_ATARI") != "1":
        pytest.skip("needs the extra kerasrl[atari] (ale-py, opencv-python-headless); "
                    "`nox -s atari` runs it")
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
