"""Cartesian (operational-space) impedance control with reference limiting, shared by both sims.

One implementation of the control law; the MuJoCo and PyBullet arms only supply the Jacobian,
the joint-space inertia, the measured state and apply the torque (plus their engine's gravity
and Coriolis compensation).

Law (Khatib 1987, "A unified approach for motion and force control of robot manipulators: the
operational space formulation", IEEE J. Robotics and Automation 3(1); as in libfranka's
``examples/cartesian_impedance_control.cpp`` and SERL's ``serl_franka_controllers``
``cartesian_impedance_controller.cpp``, Luo et al. 2024, arXiv:2401.16013)::

    e      = [p_d - p, rotvec(R_d R^T)]                  pose error, base frame
    e      <- reference limiting: e_p scaled so |K_p e_p| <= max_force_n, e_r so |K_r e_r| <= max_torque_nm
    F      = K e - D J dq                                 wrench at the TCP, base frame
    tau    = J^T F + (I - J^T Jbar^T) (k_ns (q_ready - q) - d_ns dq)

``K = diag(K_p, K_r)`` per base-frame axis. ``D = diag(2 zeta sqrt(K_i Lambda_ii))``:
critical damping (``zeta = 1``) of each axis with respect to the diagonal of the
operational-space inertia ``Lambda = (J M^-1 J^T)^-1`` (libfranka's example uses
``2 sqrt(K)``, i.e. a unit mass; with the Panda's 2-4 kg apparent mass that is under-damped).
``Lambda`` only shapes the damping; the stiffness is the physical one, so the spring force
bound of the reference limiting is a bound on the commanded force (SERL's reference limiting
clips each axis of the error instead; the norm keeps the error's direction). The null-space
projector uses the dynamically consistent inverse ``Jbar = M^-1 J^T Lambda`` (Khatib 1987), so
the posture torque accelerates no TCP direction and the steady-state pose error is zero in free
space.

The F/T sensor's ``max_force_n`` bound is a bound on the *spring*; the contact force can exceed
it transiently by the momentum the arm brings into contact (see tests/test_impedance.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from robot_rl.errors import ConfigError

from .kinematics import READY_Q_RAD

#: Franka Panda (FR3) limits the validation enforces. The stiffness limits are the range of the
#: Franka Control Interface's internal Cartesian impedance (libfranka ``Robot::setCartesianImpedance``:
#: translation up to 3000 N/m, rotation up to 300 N·m/rad).
MAX_TRANSLATIONAL_STIFFNESS_N_PER_M = 3000.0
MAX_ROTATIONAL_STIFFNESS_NM_PER_RAD = 300.0
#: Rated payload of the Panda, kg; the force bound may not exceed its weight (29.4 N): a spring the
#: arm is rated to hold statically at the flange in any pose, whatever the task.
PANDA_PAYLOAD_KG = 3.0
MAX_FORCE_BOUND_N = PANDA_PAYLOAD_KG * 9.81
#: The torque bound may not exceed the wrist joints' rated torque (joints 5-7: 12 N·m).
MAX_TORQUE_BOUND_NM = 12.0


def _triple(name: str, value: Any) -> tuple[float, float, float]:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (3,)) if np.ndim(value) == 0 else np.asarray(value, dtype=np.float64)
    if arr.shape != (3,):
        raise ConfigError(f"{name} must be a number or 3 numbers (x, y, z, base frame), got {value!r}")
    return tuple(float(v) for v in arr)


@dataclass(frozen=True)
class ImpedanceConfig:
    """Gains and bounds of the Cartesian impedance controller (:class:`CartesianImpedance`).

    Defaults are SERL's Franka insertion settings (translational stiffness 2000 N/m, rotational
    150 N·m/rad, spring force bounded to 20 N, i.e. a 1 cm reference limit).

    Raises:
        ConfigError: a non-positive or non-finite value, a stiffness above the Franka's limits
            (:data:`MAX_TRANSLATIONAL_STIFFNESS_N_PER_M`, :data:`MAX_ROTATIONAL_STIFFNESS_NM_PER_RAD`),
            a force bound above :data:`MAX_FORCE_BOUND_N` or a torque bound above
            :data:`MAX_TORQUE_BOUND_NM`.
    """

    translational_stiffness_n_per_m: tuple[float, float, float] = (2000.0, 2000.0, 2000.0)
    """K_p per base-frame axis x, y, z, N/m (a single number sets all three)."""
    rotational_stiffness_nm_per_rad: tuple[float, float, float] = (150.0, 150.0, 150.0)
    """K_r per base-frame axis, N·m/rad (a single number sets all three)."""
    damping_ratio: float = 1.0
    """zeta of ``D_i = 2 zeta sqrt(K_i Lambda_ii)``; 1 is critical damping."""
    nullspace_stiffness_nm_per_rad: float = 10.0
    """k_ns of the posture spring towards the ready posture; damping ``2 sqrt(k_ns)``, as libfranka's example."""
    max_force_n: float = 20.0
    """reference limiting: the spring force |K_p e_p| is at most this, N."""
    max_torque_nm: float = 7.5
    """reference limiting: the spring torque |K_r e_r| is at most this, N·m."""

    def __post_init__(self) -> None:
        kp = _triple("translational_stiffness_n_per_m", self.translational_stiffness_n_per_m)
        kr = _triple("rotational_stiffness_nm_per_rad", self.rotational_stiffness_nm_per_rad)
        object.__setattr__(self, "translational_stiffness_n_per_m", kp)
        object.__setattr__(self, "rotational_stiffness_nm_per_rad", kr)
        scalars = {"damping_ratio": self.damping_ratio, "nullspace_stiffness_nm_per_rad": self.nullspace_stiffness_nm_per_rad,
                   "max_force_n": self.max_force_n, "max_torque_nm": self.max_torque_nm}
        for name, v in {**{f"translational_stiffness_n_per_m[{i}]": k for i, k in enumerate(kp)},
                        **{f"rotational_stiffness_nm_per_rad[{i}]": k for i, k in enumerate(kr)}, **scalars}.items():
            if not (np.isfinite(v) and v > 0):
                raise ConfigError(f"ImpedanceConfig.{name} must be a positive finite number, got {v!r}")
        if max(kp) > MAX_TRANSLATIONAL_STIFFNESS_N_PER_M:
            raise ConfigError(f"translational stiffness {kp} N/m exceeds the Franka's limit of "
                              f"{MAX_TRANSLATIONAL_STIFFNESS_N_PER_M:.0f} N/m; lower it")
        if max(kr) > MAX_ROTATIONAL_STIFFNESS_NM_PER_RAD:
            raise ConfigError(f"rotational stiffness {kr} N·m/rad exceeds the Franka's limit of "
                              f"{MAX_ROTATIONAL_STIFFNESS_NM_PER_RAD:.0f} N·m/rad; lower it")
        if self.max_force_n > MAX_FORCE_BOUND_N:
            raise ConfigError(f"max_force_n={self.max_force_n} N exceeds {MAX_FORCE_BOUND_N:.1f} N (the weight of the "
                              f"Panda's {PANDA_PAYLOAD_KG:.0f} kg rated payload); lower it")
        if self.max_torque_nm > MAX_TORQUE_BOUND_NM:
            raise ConfigError(f"max_torque_nm={self.max_torque_nm} N·m exceeds {MAX_TORQUE_BOUND_NM:.0f} N·m (the "
                              "Panda's wrist joint torque); lower it")

    @classmethod
    def from_any(cls, value: ImpedanceConfig | dict[str, Any] | None) -> ImpedanceConfig:
        """An :class:`ImpedanceConfig` from itself, a dict of its fields (YAML, ``--env-kwargs``) or None (defaults).

        Raises:
            ConfigError: unknown field names, or an invalid value (see the class).
        """
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - {f.name for f in fields(cls)})
            if unknown:
                raise ConfigError(f"unknown ImpedanceConfig field(s) {unknown}; fields: {sorted(asdict(cls()))}")
            return cls(**value)
        raise ConfigError(f"impedance must be an ImpedanceConfig, a dict of its fields or None, got {type(value).__name__}")

    @property
    def stiffness(self) -> np.ndarray:
        """(6,) float64 diagonal of K: N/m for x, y, z, then N·m/rad, base frame."""
        return np.array(self.translational_stiffness_n_per_m + self.rotational_stiffness_nm_per_rad)


def limit_reference(error: np.ndarray, config: ImpedanceConfig) -> np.ndarray:
    """Reference limiting (SERL): scale the pose error so the spring wrench stays within the bounds.

    Args:
        error: (6,) position error (m) and rotation vector (rad) from the TCP to the target, base frame.
        config: stiffness and bounds.

    Returns:
        (6,) float64 error with ``|K_p e_p| <= max_force_n`` and ``|K_r e_r| <= max_torque_nm``,
        each part scaled as a whole (its direction kept).
    """
    e = np.array(error, dtype=np.float64)
    k = config.stiffness
    for part, bound in ((slice(0, 3), config.max_force_n), (slice(3, 6), config.max_torque_nm)):
        spring = float(np.linalg.norm(k[part] * e[part]))
        if spring > bound:
            e[part] *= bound / spring
    return e


def rotation_error(target_rotation: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(3,) rotation vector (radians, base frame) of ``target_rotation @ rotation.T``: the rotation
    that carries the current (3, 3) rotation onto the target.

    The axis-angle of a rotation matrix (``2 sin(angle) axis = vee(R - R^T)``,
    ``cos(angle) = (trace R - 1) / 2``) in numpy, ~20x faster than a scipy ``Rotation`` round trip
    (the controller calls it every physics step); near a half turn, where the formula loses
    precision, scipy's conversion.
    """
    r = target_rotation @ rotation.T
    vee = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    cos = (r[0, 0] + r[1, 1] + r[2, 2] - 1.0) / 2.0
    sin = 0.5 * float(np.linalg.norm(vee))
    angle = float(np.arctan2(sin, cos))
    if angle > np.pi - 1e-3:
        return Rotation.from_matrix(r).as_rotvec()
    if sin < 1e-9:
        return 0.5 * vee
    return vee * (angle / (2.0 * sin))


class CartesianImpedance:
    """The impedance law of the module docstring for a 7-joint arm.

    Args:
        config: gains and bounds.
        posture_q_rad: (7,) null-space posture target, radians (the ready posture by default).
    """

    def __init__(self, config: ImpedanceConfig, posture_q_rad: np.ndarray = READY_Q_RAD):
        self.config = config
        self.posture_q_rad = np.asarray(posture_q_rad, dtype=np.float64)
        self._k = config.stiffness
        self._k_ns = config.nullspace_stiffness_nm_per_rad
        self._d_ns = 2.0 * np.sqrt(self._k_ns)
        self.last_spring_wrench = np.zeros(6)
        """(6,) K e after reference limiting at the last call (N, N·m, base frame)."""

    def torque(self, jac: np.ndarray, mass: np.ndarray, position: np.ndarray, rotation: np.ndarray,
               q: np.ndarray, dq: np.ndarray, target_position: np.ndarray, target_rotation: np.ndarray) -> np.ndarray:
        """Joint torques of the impedance law, without gravity and Coriolis terms (the engine adds those).

        Args:
            jac: (6, 7) TCP Jacobian (linear rows first), base frame.
            mass: (7, 7) joint-space inertia matrix M(q), kg·m² (including reflected rotor inertia).
            position: (3,) TCP position, metres, base frame.
            rotation: (3, 3) TCP rotation matrix, base frame.
            q: (7,) joint angles, radians.
            dq: (7,) joint velocities, rad/s.
            target_position: (3,) target TCP position, metres, base frame.
            target_rotation: (3, 3) target TCP rotation, base frame.

        Returns:
            (7,) float64 joint torques, N·m.
        """
        error = np.concatenate([target_position - position, rotation_error(target_rotation, rotation)])
        error = limit_reference(error, self.config)
        m_inv_jt = np.linalg.solve(mass, jac.T)  # M^-1 J^T, (7, 6)
        lam = np.linalg.inv(jac @ m_inv_jt + 1e-9 * np.eye(6))  # operational-space inertia Lambda
        damping = 2.0 * self.config.damping_ratio * np.sqrt(self._k * np.clip(np.diag(lam), 0.0, None))
        spring = self._k * error
        self.last_spring_wrench = spring
        wrench = spring - damping * (jac @ dq)
        jbar = m_inv_jt @ lam  # dynamically consistent generalised inverse, (7, 6)
        posture = self._k_ns * (self.posture_q_rad - q) - self._d_ns * dq
        return jac.T @ wrench + posture - jac.T @ (jbar.T @ posture)
