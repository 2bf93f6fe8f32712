"""The package's outputs on the bundled example equal those recorded before the
architecture refactoring (``tests/make_golden_outputs.py`` wrote them; re-recorded when
the example's stored forces were corrected to the potential's: only quintic Hermite,
the one method using forces, changed)."""

import numpy as np
import pytest

from make_golden_outputs import GOLDEN, golden_runs

#: Classical methods are numpy/scipy arithmetic in float64: rounding only.  The neural
#: integrator runs in float32, whose results may differ in the last bits between CPUs
#: (positions Å; velocities Å/fs: 1.4e-7 Å/fs on a machine other than the recording one,
#: over 20 integration steps, against model errors of 1e-4).
TOLERANCE = {"linear": 1e-12, "spline": 1e-12, "hermite": 1e-12, "quintic": 1e-12}


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return dict(data)


def test_every_method_reproduces_the_recorded_outputs(golden):
    # in the quick loop (about 8 s): it is what guards a refactoring of any method
    seen = set()
    for label, fine in golden_runs():
        atol = TOLERANCE.get(label, 1e-6)
        np.testing.assert_allclose(fine.positions, golden[f"{label}/positions"], rtol=0, atol=atol,
                                   err_msg=label)
        np.testing.assert_allclose(fine.velocities, golden[f"{label}/velocities"], rtol=0, atol=atol,
                                   err_msg=label)
        for key, values in fine.frame_data.items():
            np.testing.assert_allclose(values, golden[f"{label}/{key}"], rtol=0, atol=atol, err_msg=label)
        seen.update(k for k in golden if k.startswith(f"{label}/"))
    assert seen == set(golden), "a recorded output was not produced"
