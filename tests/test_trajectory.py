"""The trajectory data model: shapes, time steps, validation."""

import numpy as np
import pytest

from mdsr_plugin.trajectory import Trajectory, TrajectoryError, check_uniform_times, concatenate


def test_shapes_and_defaults():
    traj = Trajectory(numbers=[6, 1], positions=np.zeros((3, 2, 3)), times=[0, 5, 10])
    assert (traj.n_frames, traj.n_atoms, traj.dt) == (3, 2, 5.0)
    assert traj.masses == pytest.approx([12.011, 1.008])
    assert not traj.has_velocities and not traj.is_periodic


def test_fixed_cell_is_broadcast_without_copies():
    cell = np.eye(3) * 10
    traj = Trajectory(numbers=[1], positions=np.zeros((1000, 1, 3)), times=np.arange(1000.0), cell=cell, pbc=True)
    assert traj.cell.shape == (1000, 3, 3)
    assert traj.cell.strides[0] == 0  # one stored cell, viewed per frame


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(positions=np.zeros((2, 3))), "positions must have shape"),
        (dict(times=[0.0]), "times has 1 values for 2 frames"),
        (dict(velocities=np.zeros((2, 2, 3))), "velocities has shape"),
        (dict(numbers=[1, 1]), "numbers has shape"),
    ],
)
def test_bad_shapes_are_refused(kwargs, message):
    base = dict(numbers=[1, 1, 8], positions=np.zeros((2, 3, 3)), times=[0.0, 1.0])
    with pytest.raises(TrajectoryError, match=message):
        Trajectory(**{**base, **kwargs})


def test_validate_names_first_bad_frame():
    positions = np.zeros((5, 2, 3))
    positions[3, 1, 2] = np.nan
    traj = Trajectory(numbers=[1, 1], positions=positions, times=np.arange(5.0))
    with pytest.raises(TrajectoryError, match="frame 13: positions contain NaN"):
        traj.validate(first_frame=10)


def test_non_uniform_time_names_frame():
    with pytest.raises(TrajectoryError, match="frame 3: non-uniform time step"):
        check_uniform_times(np.array([0.0, 10.0, 20.0, 35.0, 45.0]))
    with pytest.raises(TrajectoryError, match="does not increase"):
        check_uniform_times(np.array([0.0, 0.0, 0.0]))
    check_uniform_times(np.array([0.0, 10.0, 20.0 + 1e-5]))  # float rounding is tolerated


def test_slicing_and_concatenation_round_trip(small_traj):
    parts = [small_traj[:2], small_traj[2:5], small_traj[5:]]
    joined = concatenate(parts)
    np.testing.assert_array_equal(joined.positions, small_traj.positions)
    np.testing.assert_array_equal(joined.velocities, small_traj.velocities)
    np.testing.assert_array_equal(joined.steps, small_traj.steps)
    assert small_traj[::2].dt == pytest.approx(4.0)
    assert small_traj[-1].n_frames == 1
