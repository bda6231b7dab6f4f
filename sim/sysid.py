"""System identification: fit MuJoCo sim parameters to recorded arm trajectories.

A :class:`Trajectory` is what the arm was told and what it did: the env actions of each control
step and the measured TCP position, joint angles and gripper opening before and after each
step. Trajectories come from the other simulator (:func:`record_sim_trajectories`, e.g. PyBullet,
or MuJoCo with known parameters as ground truth) or from a rosbag2 MCAP bag of the real arm
(:func:`load_mcap_trajectories`: ``/joint_states``, ``/arm/ee_pose`` and the
``/arm/equilibrium_pose`` commands as ``robot_rl.ros.recorder`` writes them).

:func:`fit_sim_params` replays the same actions in a MuJoCo env whose :class:`SimParams` are
varied and minimises the trajectory error with scipy (bounded Powell by default, or
``scipy.optimize.least_squares``, see :func:`fit_sim_params`): the residuals are the TCP position error in mm, the
joint error in mrad (weighted 0.1) and the gripper opening error in mm, over every step. The action latency is
an integer: each candidate in ``0..max_latency_steps`` is scored at the starting parameters, the
best is kept for the continuous fit and re-checked against its neighbours at the fitted
parameters. CLI: ``robot-rl sysid`` (see :class:`SysIdConfig`).

Source of the approach (replay the logged commands in a parameterised simulator and fit the
parameters to the logged states by least squares): Ljung, "System Identification: Theory for the
User", 2nd ed. 1999, ch. 7 (prediction-error methods).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError

from .params import SimParams, load_sim_params, save_sim_params

#: Parameters :func:`fit_sim_params` can fit: name -> (typical magnitude used as the optimiser's
#: unit, upper bound in those units, MuJoCo built-in value). Lower bound 0 for all.
FITTABLE: dict[str, tuple[float, float, float]] = {
    "joint_damping_nms_per_rad": (1.0, 50.0, 1.0),
    "joint_frictionloss_nm": (0.5, 20.0, 0.0),
    "armature_kgm2": (0.1, 20.0, 0.1),
    "gripper_force_n": (20.0, 5.0, 20.0),
}
_ARM_JOINT_COUNT = 7


@dataclass
class Trajectory:
    """One recorded episode: ``T`` actions and the ``T + 1`` measured states around them.

    Attributes:
        actions: (T, A) float32 env actions in [-1, 1] (TCP step x, y, z [, yaw], gripper), as
            commanded (before any latency).
        ee_positions_m: (T + 1, 3) float64 measured TCP positions, metres, base frame; row ``t``
            is the state before action ``t``.
        joint_positions_rad: (T + 1, 7) float64 measured arm joint angles, or None.
        gripper: (T + 1,) float64 measured gripper opening in [0, 1], or None.
        reset_seed: seed of ``env.reset`` that starts the replay (sim recordings).
        initial_q_rad: (7,) joint angles to start the replay from instead of the home pose
            (real recordings), or None.
        source: where it came from (for reports).
    """

    actions: np.ndarray
    ee_positions_m: np.ndarray
    joint_positions_rad: np.ndarray | None = None
    gripper: np.ndarray | None = None
    reset_seed: int = 0
    initial_q_rad: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        t = len(self.actions)
        if t < 1 or self.ee_positions_m.shape != (t + 1, 3):
            raise ConfigError(f"a trajectory needs T >= 1 actions and (T + 1, 3) TCP positions; got {t} actions "
                              f"and positions of shape {self.ee_positions_m.shape}")
        for name in ("joint_positions_rad", "gripper"):
            value = getattr(self, name)
            if value is not None and len(value) != t + 1:
                raise ConfigError(f"trajectory {name} has {len(value)} rows, expected T + 1 = {t + 1}")


# ---------------------------------------------------------------------------- recording
def _make_env(backend: str, sim_params: SimParams | None = None):
    from .envs import make_sim_env

    return make_sim_env("pick_lift", backend=backend, sim_params=sim_params)


def random_actions(steps: int, rng: np.random.Generator, gripper_switch_prob: float = 0.15) -> np.ndarray:
    """(steps, 4) float32 exciting actions: uniform TCP steps in [-1, 1] and a gripper that
    toggles between open (+1) and closed (-1) with probability ``gripper_switch_prob`` per step."""
    actions = np.empty((steps, 4), np.float32)
    actions[:, :3] = rng.uniform(-1.0, 1.0, (steps, 3))
    gripper = 1.0
    for t in range(steps):
        if rng.random() < gripper_switch_prob:
            gripper = -gripper
        actions[t, 3] = gripper
    return actions


#: Where the cube is parked during sysid recordings and replays (base frame, metres): on the
#: table but out of the arm's workspace, so trajectories are free-space motion without contacts
#: (contacts make the replay error non-smooth in the parameters).
_CUBE_PARKED_M = np.array([0.95, 0.5, 0.02])


def _park_cube(robot_env) -> None:
    physics = robot_env.arm.physics
    physics.set_cube_pose(_CUBE_PARKED_M, 0.0)
    physics.forward()


def _state_arrays(arm) -> tuple[np.ndarray, np.ndarray, float]:
    s = arm.state()
    return s.ee_position.copy(), s.q.copy(), float(s.gripper)


def record_sim_trajectories(backend: str = "pybullet", n_trajectories: int = 3, steps: int = 30, seed: int = 0,
                            sim_params: SimParams | None = None) -> list[Trajectory]:
    """Record trajectories of random exciting actions in a sim (the pick-lift scene).

    The cube is parked out of reach: free-space motion, no contacts.

    Args:
        backend: ``"mujoco"`` or ``"pybullet"``.
        n_trajectories: number of episodes.
        steps: control steps per episode (10 Hz).
        seed: seeds the actions and the env resets.
        sim_params: parameters of the recording sim (ground truth for tests); its latency delays
            the actions as :class:`~robot_rl.sim.randomization.DomainRandomization` does.

    Returns:
        ``n_trajectories`` :class:`Trajectory` objects.
    """
    env = _make_env(backend, sim_params)
    rng = np.random.default_rng(seed)
    out = []
    try:
        for i in range(n_trajectories):
            actions = random_actions(steps, rng)
            env.reset(seed=seed + i)
            _park_cube(env.unwrapped)
            arm = env.unwrapped.arm
            states = [_state_arrays(arm)]
            for a in actions:
                env.step(a)
                states.append(_state_arrays(arm))
            ee, q, g = (np.array(x) for x in zip(*states))
            out.append(Trajectory(actions, ee, q, g, reset_seed=seed + i, source=f"{backend} sim"))
    finally:
        env.close()
    return out


# ---------------------------------------------------------------------------- MCAP bags
def load_mcap_trajectories(path: str | Path, *, control_hz: float = 10.0, max_ee_step_m: float = 0.03,
                           ) -> list[Trajectory]:
    """Trajectories from rosbag2 MCAP bag(s) of a robot_rl arm node (real or simulated).

    Reads ``/arm/equilibrium_pose`` (``geometry_msgs/PoseStamped`` commands: one per control
    step), ``/joint_states`` (``sensor_msgs/JointState``, arm joints then the ``gripper`` entry
    in [0, 1]), ``/arm/ee_pose`` (``PoseStamped``, measured TCP) and, if present,
    ``/arm/gripper_cmd`` (``std_msgs/Float64`` opening). Times are the bag's log times. Each
    command becomes the env action ``(commanded - measured TCP) / max_ee_step_m`` (clipped to
    [-1, 1]; gripper +1 open if the last gripper command is > 0.5, else -1), measured at the
    latest state messages not after the command; the last state is the one a control period
    after the last command.

    Args:
        path: one bag directory (with ``metadata.yaml``) or a folder of them (``episode_0000``, ...).
        control_hz: control rate of the recording.
        max_ee_step_m: TCP step of a full action (``RobotEnv.max_ee_step_m``).

    Returns:
        One :class:`Trajectory` per bag (bags with fewer than 2 commands are skipped).

    Raises:
        ConfigError: no bag at ``path``, or a bag lacks one of the three required topics.
    """
    from rosbags.rosbag2 import Reader

    from robot_rl.ros import convert
    from robot_rl.ros.messages import TYPESTORE

    path = Path(path)
    bags = [path] if (path / "metadata.yaml").is_file() else sorted(p.parent for p in path.glob("*/metadata.yaml"))
    if not bags:
        raise ConfigError(f"no rosbag2 bag (metadata.yaml) at or under {path}; record one with robot_rl.ros.recorder")
    required = (convert.POSE_CMD, convert.JOINT_STATES, convert.EE_POSE)
    out = []
    for bag in bags:
        series: dict[str, list[tuple[int, Any]]] = {t: [] for t in (*required, convert.GRIPPER_CMD)}
        with Reader(bag) as reader:
            conns = [c for c in reader.connections if c.topic in series]
            for conn, t_ns, raw in reader.messages(connections=conns):
                series[conn.topic].append((t_ns, TYPESTORE.deserialize_cdr(raw, conn.msgtype)))
        missing = [t for t in required if not series[t]]
        if missing:
            raise ConfigError(f"bag {bag} has no messages on {missing}; record {list(required)} "
                              "(and optionally /arm/gripper_cmd)")
        traj = _trajectory_from_series(series, control_hz, max_ee_step_m, str(bag))
        if traj is not None:
            out.append(traj)
    return out


def _latest(series: list[tuple[int, Any]], t_ns: int) -> Any | None:
    times = [t for t, _ in series]
    i = int(np.searchsorted(times, t_ns, side="right")) - 1
    return series[i][1] if i >= 0 else None


def _trajectory_from_series(series: dict, control_hz: float, max_ee_step_m: float, source: str) -> Trajectory | None:
    from robot_rl.ros import convert

    commands = series[convert.POSE_CMD]
    if len(commands) < 2:
        return None
    period_ns = int(round(1e9 / control_hz))
    times = [t for t, _ in commands] + [commands[-1][0] + period_ns]
    ee, q, g = [], [], []
    for t in times:
        js, pose = _latest(series[convert.JOINT_STATES], t), _latest(series[convert.EE_POSE], t)
        if js is None or pose is None:
            raise ConfigError(f"{source}: no /joint_states or /arm/ee_pose before the command at {t} ns; "
                              "start recording before the first command")
        names = list(js.name)
        arm_idx = [i for i, n in enumerate(names) if n != convert.GRIPPER_JOINT][:_ARM_JOINT_COUNT]
        q.append(np.asarray(js.position, float)[arm_idx])
        g.append(float(js.position[names.index(convert.GRIPPER_JOINT)]) if convert.GRIPPER_JOINT in names else np.nan)
        ee.append(convert.pose_to_arrays(pose.pose)[0])
    actions = []
    for k, (t, cmd) in enumerate(commands):
        target = convert.pose_to_arrays(cmd.pose)[0]
        grip = _latest(series[convert.GRIPPER_CMD], t)
        grip_action = 1.0 if grip is None or grip.data > 0.5 else -1.0
        actions.append([*np.clip((target - ee[k]) / max_ee_step_m, -1.0, 1.0), grip_action])
    gripper = np.array(g)
    q_arr = np.array(q)
    return Trajectory(np.array(actions, np.float32), np.array(ee), q_arr if q_arr.shape[1] == _ARM_JOINT_COUNT else None,
                      None if np.isnan(gripper).any() else gripper, initial_q_rad=q_arr[0].copy(), source=source)


# ---------------------------------------------------------------------------- replay and fit
def delayed(actions: np.ndarray, latency_steps: int) -> np.ndarray:
    """(T, A) actions as executed with ``latency_steps`` of delay: the hold action (zeros,
    gripper +1 open) first, as :class:`~robot_rl.sim.randomization.DomainRandomization` does."""
    if latency_steps <= 0:
        return actions
    hold = np.zeros((latency_steps, actions.shape[1]), actions.dtype)
    hold[:, -1] = 1.0
    return np.concatenate([hold, actions])[:len(actions)]


class Replayer:
    """A MuJoCo pick-lift env that replays trajectories under given :class:`SimParams`."""

    def __init__(self):
        self.env = _make_env("mujoco")
        self.robot_env = self.env.unwrapped
        self.physics = self.robot_env.arm.physics

    def _start(self, traj: Trajectory) -> None:
        self.robot_env.reset(seed=traj.reset_seed)
        _park_cube(self.robot_env)
        if traj.initial_q_rad is not None:
            ph = self.physics
            ph.data.qpos[ph.arm_qpos_adr] = traj.initial_q_rad
            ph.data.qvel[:] = 0.0
            ph.data.ctrl[ph.arm_actuator_ids] = traj.initial_q_rad
            ph.forward()

    def replay(self, traj: Trajectory, params: SimParams) -> Trajectory:
        """The trajectory the sim produces for ``traj.actions`` under ``params`` (same shapes)."""
        self.physics.apply_sim_params(params)
        self._start(traj)
        arm = self.robot_env.arm
        states = [_state_arrays(arm)]
        for a in delayed(traj.actions, params.action_latency_steps):
            self.robot_env.step(a)
            states.append(_state_arrays(arm))
        ee, q, g = (np.array(x) for x in zip(*states))
        return replace(traj, ee_positions_m=ee, joint_positions_rad=q, gripper=g, source="mujoco replay")

    def residuals(self, trajectories: Sequence[Trajectory], params: SimParams, joint_weight: float = 0.1) -> np.ndarray:
        """Flat residual vector: TCP error in mm, joint error in mrad times ``joint_weight``,
        gripper opening error in mm (opening x 80 mm), for every step of every trajectory (the
        measured part of each).

        The joint term is down-weighted because the Panda is redundant: a joint-limit or
        null-space event can shift the joints by ~0.2 mrad at no TCP cost, which makes the joint
        error jump (not vary smoothly) with the parameters."""
        from .mujoco.scene import FINGER_TRAVEL_M

        parts = []
        for traj in trajectories:
            sim = self.replay(traj, params)
            parts.append(1e3 * (sim.ee_positions_m - traj.ee_positions_m).ravel())
            if traj.joint_positions_rad is not None:
                parts.append(joint_weight * 1e3 * (sim.joint_positions_rad - traj.joint_positions_rad).ravel())
            if traj.gripper is not None:
                parts.append(2e3 * FINGER_TRAVEL_M * (sim.gripper - traj.gripper))
        return np.concatenate(parts)

    def errors(self, trajectories: Sequence[Trajectory], params: SimParams) -> dict[str, float]:
        """``{"ee_rms_mm", "joint_rms_mrad"}`` of the replay under ``params``."""
        ee, q = [], []
        for traj in trajectories:
            sim = self.replay(traj, params)
            ee.append(np.sum((sim.ee_positions_m - traj.ee_positions_m) ** 2, axis=1))
            if traj.joint_positions_rad is not None:
                q.append(np.mean((sim.joint_positions_rad - traj.joint_positions_rad) ** 2, axis=1))
        return {"ee_rms_mm": 1e3 * float(np.sqrt(np.mean(np.concatenate(ee)))),
                "joint_rms_mrad": 1e3 * float(np.sqrt(np.mean(np.concatenate(q)))) if q else float("nan")}

    def close(self) -> None:
        self.env.close()


@dataclass
class SysIdResult:
    """What :func:`fit_sim_params` found."""

    params: SimParams
    """the fitted parameters (unfitted ones as the starting point)."""
    initial: SimParams
    """the starting point (the MuJoCo built-in values unless given)."""
    before: dict[str, float]
    """trajectory errors at the starting point (``ee_rms_mm``, ``joint_rms_mrad``)."""
    after: dict[str, float]
    """trajectory errors at the fit."""
    fitted: tuple[str, ...]
    """names of the fitted continuous parameters."""
    evaluations: int = 0
    """trajectory-set replays the fit took."""
    latency_costs: dict[int, float] = field(default_factory=dict)
    """latency candidate (steps) -> sum of squared residuals at the point it was scored."""

    def table(self, truth: SimParams | None = None) -> str:
        """A plain-text report: trajectory errors before / after, and each parameter (with its
        relative error when ``truth`` is known)."""
        lines = [f"{'trajectory error':<28}{'before':>12}{'after':>12}{'ratio':>9}"]
        for key, label in (("ee_rms_mm", "TCP position RMS (mm)"), ("joint_rms_mrad", "joint RMS (mrad)")):
            b, a = self.before[key], self.after[key]
            lines.append(f"{label:<28}{b:>12.4f}{a:>12.4f}{(a / b if b else float('nan')):>9.3f}")
        head = f"\n{'parameter':<28}{'start':>12}{'fitted':>12}"
        lines.append(head + (f"{'truth':>12}{'error':>10}" if truth else ""))
        for name in (*self.fitted, "action_latency_steps"):
            start, fit = getattr(self.initial, name), getattr(self.params, name)
            start = FITTABLE[name][2] if start is None and name in FITTABLE else start
            row = f"{name:<28}{start:>12.4g}{fit:>12.4g}"
            if truth is not None:
                true = getattr(truth, name)
                true = FITTABLE[name][2] if true is None and name in FITTABLE else true
                err = (f"{100 * (fit - true) / true:>+9.2f}%" if name != "action_latency_steps" and true
                       else f"{fit - true:>+10.4g}")
                row += f"{true:>12.4g}{err}"
            lines.append(row)
        return "\n".join(lines)


#: Multiples of each parameter's unit (:data:`FITTABLE`) tried by the coarse scan before the fit.
SCAN_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def _coordinate_scan(cost, x0: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """One pass of coordinate search over :data:`SCAN_GRID`: a start for the local fit that is
    not trapped by the replay error's small jumps (which hold local optimisers at spurious
    minima far from the truth, e.g. damping 11.7 for a true 2.0 from a start at 1.0)."""
    x, best = x0.copy(), cost(x0)
    for i in range(len(x)):
        for value in SCAN_GRID:
            trial = x.copy()
            trial[i] = min(value, upper[i])
            c = cost(trial)
            if c < best:
                x, best = trial, c
    return x


def fit_sim_params(trajectories: Sequence[Trajectory], fit: Sequence[str] = tuple(FITTABLE), *,
                   max_latency_steps: int = 2, initial: SimParams | None = None, max_evaluations: int = 80,
                   method: str = "powell", progress: bool = True) -> SysIdResult:
    """Fit MuJoCo :class:`SimParams` to ``trajectories`` by replaying their actions.

    Args:
        trajectories: recorded trajectories (e.g. 3 x 30 steps).
        fit: names of the continuous parameters to fit (keys of :data:`FITTABLE`).
        max_latency_steps: latency candidates are ``0..max_latency_steps`` control steps.
        initial: starting point; the MuJoCo built-in values when None.
        max_evaluations: budget of objective evaluations of the continuous fit (each replays
            every trajectory once; about 0.1 s per 30-step trajectory).
        method: ``"powell"`` (default: bounded Powell on the sum of squared residuals) or
            ``"least_squares"`` (scipy's trust-region reflective with finite differences).
            Powell is the default because the replay error is not smooth at fine scales:
            discrete constraint events in MuJoCo make it jump by ~0.05 mm when a parameter moves
            by 1 %, which misleads finite-difference Jacobians (measured: damping x2 with latency
            1 recovered to +-0.1 % by Powell, -4.5 % by least_squares, on 3 x 30 steps). Either
            starts from a coarse coordinate scan over :data:`SCAN_GRID` (7 replays per parameter).
        progress: show a tqdm progress bar of the evaluations.

    Returns:
        The :class:`SysIdResult`.

    Raises:
        ConfigError: no trajectories, or an unknown parameter name.
    """
    from scipy.optimize import least_squares, minimize
    from tqdm.auto import tqdm

    if not trajectories:
        raise ConfigError("fit_sim_params needs at least one trajectory")
    if method not in ("powell", "least_squares"):
        raise ConfigError(f"method must be 'powell' or 'least_squares', got {method!r}")
    unknown = [n for n in fit if n not in FITTABLE]
    if unknown:
        raise ConfigError(f"cannot fit {unknown}; fittable parameters: {list(FITTABLE)}")
    fit = tuple(fit)
    start = initial if initial is not None else SimParams()
    start = replace(start, **{n: FITTABLE[n][2] for n in fit if getattr(start, n) is None})
    replayer = Replayer()
    bar = tqdm(total=max_evaluations + len(fit) * len(SCAN_GRID) + max_latency_steps + 4, desc="sysid replays",
               disable=not progress)
    count = [0]

    def residuals(params: SimParams) -> np.ndarray:
        count[0] += 1
        bar.update(1)
        return replayer.residuals(trajectories, params)

    def params_of(x: np.ndarray, latency: int) -> SimParams:
        return replace(start, action_latency_steps=latency, **{n: float(v) * FITTABLE[n][0] for n, v in zip(fit, x)})

    try:
        before = replayer.errors(trajectories, start)
        costs = {k: float(np.sum(residuals(replace(start, action_latency_steps=k)) ** 2))
                 for k in range(max_latency_steps + 1)}
        latency = min(costs, key=costs.get)
        x0 = np.array([getattr(start, n) / FITTABLE[n][0] for n in fit])
        x = x0
        if fit:
            upper = np.array([FITTABLE[n][1] for n in fit])
            best = {"x": np.clip(x0, 0.0, upper), "cost": np.inf}

            def clipped_residuals(v: np.ndarray) -> np.ndarray:
                v = np.clip(v, 0.0, upper)
                r = residuals(params_of(v, latency))
                cost = float(np.sum(r ** 2))
                if cost < best["cost"]:  # keep the best point ever replayed
                    best.update(x=v.copy(), cost=cost)
                return r

            def cost_of(v: np.ndarray) -> float:
                return float(np.sum(clipped_residuals(v) ** 2))

            x0 = _coordinate_scan(cost_of, best["x"], upper)
            if method == "least_squares":
                least_squares(clipped_residuals, x0, bounds=(np.zeros(len(fit)), upper), diff_step=1e-3,
                              max_nfev=max_evaluations, method="trf", ftol=1e-10, xtol=1e-10, gtol=1e-10)
            else:  # unbounded Powell (Brent line searches bracket locally; bounded ones scan the whole
                # interval and land in the error's spurious minima); the bounds act by clipping
                minimize(cost_of, x0, method="Powell", options={"xtol": 1e-3, "ftol": 1e-8, "maxfev": max_evaluations})
            x = best["x"]
        for k in (latency - 1, latency + 1):  # re-check the neighbours at the fitted parameters
            if 0 <= k <= max_latency_steps:
                costs[k] = float(np.sum(residuals(params_of(x, k)) ** 2))
        costs[latency] = float(np.sum(residuals(params_of(x, latency)) ** 2))
        latency = min(costs, key=costs.get)
        fitted = params_of(x, latency)
        after = replayer.errors(trajectories, fitted)
    finally:
        bar.close()
        replayer.close()
    return SysIdResult(fitted, start, before, after, fit, count[0], costs)


# ---------------------------------------------------------------------------- CLI
@dataclass
class SysIdConfig:
    """Fit MuJoCo joint damping / friction / armature, gripper force and action latency to recorded
    trajectories (an MCAP bag of the real arm, or the other simulator), and write them to YAML."""

    bag: str | None = None
    """rosbag2 MCAP bag (or a folder of episode bags) of the arm; None: record in ``source_backend``."""
    source_backend: str = "pybullet"
    """sim to record reference trajectories in when no bag is given (``pybullet`` or ``mujoco``)."""
    source_sim_params: str | None = None
    """sim params YAML of the recording sim (a known ground truth for the report), optional."""
    trajectories: int = 3
    """number of recorded trajectories (sim source)."""
    steps: int = 30
    """control steps per trajectory (sim source)."""
    seed: int = 0
    """seed of the recorded actions (sim source)."""
    fit: tuple[str, ...] = tuple(FITTABLE)
    """parameters to fit (besides the latency)."""
    max_latency_steps: int = 2
    """largest action latency tried, control steps."""
    max_evaluations: int = 80
    """budget of the continuous fit (trajectory-set replays)."""
    method: str = "powell"
    """``powell`` (derivative-free, robust to the replay error's small jumps) or ``least_squares``."""
    control_hz: float = 10.0
    """control rate of the bag's commands."""
    out: str = "sysid.yaml"
    """where the fitted parameters are written (load with ``gym.make(ID, sim_params=...)``)."""


def run_sysid(cfg: SysIdConfig) -> SysIdResult:
    """Record or load the trajectories, fit, print the report table and write ``cfg.out``."""
    truth = None
    if cfg.bag is not None:
        trajectories = load_mcap_trajectories(cfg.bag, control_hz=cfg.control_hz)
        source = f"bag {cfg.bag}"
    else:
        truth = load_sim_params(cfg.source_sim_params) if cfg.source_sim_params else None
        trajectories = record_sim_trajectories(cfg.source_backend, cfg.trajectories, cfg.steps, cfg.seed, truth)
        source = f"{cfg.source_backend} sim ({cfg.trajectories} x {cfg.steps} steps)"
        if cfg.source_backend != "mujoco":
            truth = None  # a different engine: no parameter ground truth
    if not trajectories:
        raise ConfigError(f"no trajectory with at least 2 commands in {source}")
    result = fit_sim_params(trajectories, cfg.fit, max_latency_steps=cfg.max_latency_steps,
                            max_evaluations=cfg.max_evaluations, method=cfg.method)
    print(f"\nsystem identification from {source}, {result.evaluations} replays\n{result.table(truth)}")
    save_sim_params(result.params, cfg.out, extra={"fit": {
        "source": source, "fitted": list(result.fitted), "before": result.before, "after": result.after}})
    print(f"\nwrote {cfg.out}  (use: gymnasium.make(ID, sim_params={cfg.out!r}))")
    return result


__all__ = ["FITTABLE", "Replayer", "SimParams", "SysIdConfig", "SysIdResult", "Trajectory", "delayed",
           "fit_sim_params", "load_mcap_trajectories", "record_sim_trajectories", "run_sysid"]
