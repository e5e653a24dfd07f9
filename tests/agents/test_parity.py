"""Cross-backend parity: from the same initial weights and the same experience,
one update gives the same loss and the same updated weights on JAX,
TensorFlow and PyTorch (within 1e-4 relative).

The reference values in tests/data/parity/*.npz were written once by
`tests/data/parity/make_parity.py` (which also defines the cases and the
procedure, and says how update randomness is made deterministic); this test
replays every case on the current backend and compares.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "parity"
RTOL, ATOL = 1e-4, 1e-6


def _reference_module():
    spec = importlib.util.spec_from_file_location("make_parity", DATA / "make_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PARITY = _reference_module()


@pytest.mark.parametrize("name", sorted(PARITY.CASES))
def test_one_update_matches_reference(name):
    with np.load(DATA / f"{name}.npz", allow_pickle=False) as data:
        stored = {key: data[key] for key in data.files}
    initial = {k[len("init/"):]: v for k, v in stored.items() if k.startswith("init/")}
    expected = {k[len("final/"):]: v for k, v in stored.items() if k.startswith("final/")}
    expected_metrics = {k[len("metrics/"):]: float(v) for k, v in stored.items()
                        if k.startswith("metrics/")}
    _, metrics, final = PARITY.run(name, initial)

    assert metrics.keys() == expected_metrics.keys()
    for key, value in expected_metrics.items():
        assert metrics[key] == pytest.approx(value, rel=RTOL, abs=ATOL), (
            f"{name}: metric '{key}' = {metrics[key]}, reference ({stored['backend']}) {value}")
    assert final.keys() == expected.keys()
    moved = 0
    for key, value in expected.items():
        np.testing.assert_allclose(final[key], value, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{name}: weight '{key}'")
        moved += not np.array_equal(value, initial[key])
    assert moved > len(expected) // 3, f"{name}: the update changed too few weights"
