"""Backend-independent pieces of the simulated Panda's end-effector control: the ready posture,
the tool-down orientation and the differential-IK gains, shared by the MuJoCo and PyBullet arms."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from robot_rl.interfaces import tool_down_quaternion

#: Franka's "ready" posture (rad): elbow up, tool pointing down; the null-space posture target.
READY_Q_RAD = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
#: Joint velocity limits of the Panda (rad/s; Franka's datasheet and the URDF's ``velocity``).
PANDA_JOINT_VELOCITY_LIMITS_RAD_S = np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61])


@functools.lru_cache(maxsize=16)
def tool_down_rotation(yaw_rad: float) -> np.ndarray:
    """(3, 3) read-only rotation matrix of a tool pointing down (-z) with yaw ``yaw_rad`` about the
    base z axis: :func:`robot_rl.interfaces.tool_down_quaternion` as a matrix.

    Cached: the arms ask for it every control step, nearly always at the same yaw (the home yaw
    when the yaw action is off), and a scipy ``Rotation`` round trip costs ~0.1 ms.
    """
    matrix = Rotation.from_quat(tool_down_quaternion(yaw_rad)).as_matrix()
    matrix.flags.writeable = False
    return matrix


@dataclass
class DiffIKConfig:
    """Gains of the damped-least-squares differential IK that turns EE targets into joint targets.

    At ``ik_hz`` the joint servos get ``q + dq`` with
    ``dq = J^T (J J^T + damping I)^-1 e + (I - J^+ J) nullspace_gain (q_ready - q)``, where ``e``
    stacks the position error (m) and the orientation error (rad, axis-angle) to the target,
    which ramps from the pose at the start of the control period to the commanded pose.
    """

    damping: float = 1e-4
    """Tikhonov damping of the least-squares solve (m², rad²); keeps dq bounded near singularities."""
    nullspace_gain: float = 0.2
    """fraction of the posture error (towards the ready posture) corrected per physics step."""
    ramp_fraction: float = 0.7
    """fraction of the control period over which the target ramps to the commanded pose."""
    ik_hz: float = 100.0
    """rate of the IK solve (joint targets are held between solves); divides the physics rate."""
    home_tolerance_m: float = 1e-3
    """position tolerance of the IK solve for the home posture."""


def control_substeps(control_hz: float, sim_dt_s: float, ik_hz: float) -> tuple[int, int]:
    """Physics steps per control period and per IK update: ``(n_substeps, ik_every)``.

    ``n_substeps = round(1 / (control_hz * sim_dt_s))``, derived once here for both backends.

    Raises:
        ValueError: the control period is not a whole multiple of the physics step, or ``ik_hz``
            does not divide the physics rate into a divisor of ``n_substeps``.
    """
    control_dt = 1.0 / control_hz
    n_substeps = int(round(control_dt / sim_dt_s))
    if n_substeps < 1 or abs(n_substeps * sim_dt_s - control_dt) > 1e-9:
        raise ValueError(f"control period {control_dt} s is not a whole multiple of the physics step "
                         f"{sim_dt_s} s; choose control_hz so that 1 / (control_hz * {sim_dt_s}) is an integer")
    ik_every = int(round(1.0 / (ik_hz * sim_dt_s)))
    if ik_every < 1 or n_substeps % ik_every:
        raise ValueError(f"ik_hz={ik_hz} must divide the physics rate {1 / sim_dt_s} Hz and be a "
                         f"multiple of control_hz={control_hz}")
    return n_substeps, ik_every


def pinhole_intrinsics(height: int, width: int, fovy_deg: float):
    """:class:`~robot_rl.interfaces.CameraIntrinsics` of a symmetric frustum with square pixels:
    focal length ``(H / 2) / tan(fovy / 2)`` px, principal point at the image centre, no distortion."""
    from robot_rl.interfaces import CameraIntrinsics

    focal_px = 0.5 * height / np.tan(0.5 * np.deg2rad(fovy_deg))
    return CameraIntrinsics(width=int(width), height=int(height),
                            K=np.array([[focal_px, 0.0, width / 2.0], [0.0, focal_px, height / 2.0], [0.0, 0.0, 1.0]]))
