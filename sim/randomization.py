"""Domain randomisation of the simulated Panda envs, one config for both backends.

:class:`RandomizationConfig` names a range per randomised quantity (``None`` turns it off);
:class:`DomainRandomization` draws a new set at every ``reset`` from its own seeded generator and
applies it: visual and physical quantities through small hooks of the backend's ``PandaPhysics``
(``set_light``, ``set_geom_rgba``, ``set_camera_pose_offset``, ``set_object_mass_scale``,
``set_friction_scale``; for peg insertion the hole's clearance through ``physics.insertion.set_clearance``,
MuJoCo only), action latency, action noise, control-period jitter and observation noise (EE position and
velocity) in the wrapper itself (so latency, action noise and observation noise also work on any
env with a ``Box`` action space, real arms included).

Control-period jitter changes the number of physics substeps of the step (the simulated time a
command acts), never sleeps: the simulation stays deterministic and as fast as without jitter.
The substeps are whole IK intervals (``arm.ik_every``, 5 physics steps = 10 % of a 10 Hz period
with the default 2 ms step and 100 Hz IK), so the jitter is quantised to that grid.

Peg insertion: ``friction_scale`` also scales the peg's and the fixture's friction (both engines)
and ``hole_clearance_m`` re-sizes the hole each episode (MuJoCo, the training engine; PyBullet's
fixture is one compound body pinned by the scene's saved reset state, so re-sizing it there is a
``ConfigError``). The hole's pose (position and yaw) is not randomised here: the task draws it
every episode (``PegInsertionConfig.hole_xy_half_range_m`` / ``hole_yaw_half_range_rad``).

Sources: Tobin et al. 2017, "Domain Randomization for Transferring Deep Neural Networks from
Simulation to the Real World", arXiv:1703.06907 (visual randomisation); Peng et al. 2018,
"Sim-to-Real Transfer of Robotic Control with Dynamics Randomization", arXiv:1710.06537 (masses,
friction, latency, action noise, time step, observation noise).

Example::

    env = gymnasium.make("robot_rl/PandaPickLift-v0", randomize="config/randomization.yaml")
    # or: DomainRandomization(env, load_randomization_yaml("config/randomization.yaml"), seed=0)
    obs, info = env.reset(seed=0)
    info["randomization"]   # {'object_mass_scale': 1.31, 'action_latency_steps': 1, ...}
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robot_rl.config_io import load_yaml_dataclass
from robot_rl.env import PROPRIO_LAYOUT
from robot_rl.errors import ConfigError

Range = tuple[float, float]

#: Observation-noise fields and the ``PROPRIO_LAYOUT`` entry each perturbs.
_OBS_NOISE = {"ee_position_noise_std": "ee_position", "ee_velocity_noise_std": "ee_linear_velocity"}
_PROPRIO_SLICES: dict[str, slice] = {}
_start = 0
for _name, _size in PROPRIO_LAYOUT:
    _PROPRIO_SLICES[_name] = slice(_start, _start + _size)
    _start += _size
RgbRange = tuple[tuple[float, float, float], tuple[float, float, float]]
#: largest hole clearance accepted, metres: a guard against millimetres given as metres
_MAX_CLEARANCE_M = 0.005


@dataclass
class RandomizationConfig:
    """Ranges of the randomised quantities; every field ``None`` = not randomised.

    Scalar ranges are ``(low, high)`` and drawn uniformly; colour ranges are ``((r, g, b) low,
    (r, g, b) high)`` drawn per channel.
    """

    light_tilt_deg: Range | None = None
    """tilt of the top light from straight down, degrees (azimuth uniform in [0, 360))."""
    light_intensity: Range | None = None
    """diffuse intensity of the light, 0..1 (MuJoCo built-in 0.6, PyBullet 0.35)."""
    light_ambient: Range | None = None
    """ambient light level, 0..1 (MuJoCo headlight built-in 0.3, PyBullet 0.6)."""
    cube_rgb: RgbRange | None = None
    """cube colour, RGB in [0, 1] (built-in red 0.85, 0.1, 0.1)."""
    table_rgb: RgbRange | None = None
    """table colour, RGB in [0, 1] (built-in 0.55, 0.42, 0.3)."""
    camera_position_m: Range | None = None
    """offset of each camera position per axis, metres, in the camera's parent frame."""
    camera_rotation_deg: Range | None = None
    """rotation of each camera about each parent-frame axis, degrees (a rotation vector)."""
    camera_pose_std: tuple[float, float] | str | None = None
    """``(position std m, rotation std deg)``: Gaussian camera pose jitter instead of the two
    uniform ranges above; or ``"hand_eye"``: the uncertainty of the hand-eye calibrations the env
    was given (``gym.make(ID, hand_eye={...}, randomize=...)``; see
    :func:`robot_rl.sim.extrinsics.hand_eye_uncertainty`), for the calibrated cameras."""
    cameras: tuple[str, ...] = ("front", "wrist")
    """cameras whose pose is jittered (names of the scene's cameras)."""
    object_mass_scale: Range | None = None
    """factor on the cube mass (and inertia)."""
    friction_scale: Range | None = None
    """factor on the sliding friction of the cube, table and finger pads, and of the peg and the
    fixture in the insertion scenes (their contact's coefficient x this factor in both engines)."""
    hole_clearance_m: Range | None = None
    """hole side minus peg side of the insertion fixture, metres, e.g. (0.0008, 0.0012) around the
    nominal 1 mm; MuJoCo only (the fixture's boxes are re-sized in the compiled model). Needs a
    peg-insertion env; 0 < low <= high <= 5 mm."""
    action_latency_steps: tuple[int, int] | None = None
    """delay of every action in control steps, integer range, both ends included."""
    action_noise_std: Range | None = None
    """std of Gaussian noise added to each action entry (action units; the action is then clipped
    to [-1, 1]); the std is drawn once per episode."""
    control_period_jitter: Range | None = None
    """relative change of each step's control period, e.g. (-0.1, 0.1), drawn every step."""
    ee_position_noise_std: Range | None = None
    """std of Gaussian noise on the observed EE position (``obs["state"]`` entries
    ``ee_position``), metres; the std is drawn once per episode, the noise every step."""
    ee_velocity_noise_std: Range | None = None
    """std of Gaussian noise on the observed EE linear velocity (``ee_linear_velocity``), m/s;
    drawn as ``ee_position_noise_std``. Velocity read at a control-step boundary is where
    simulators (and real arms' state estimators) differ most: a policy trained on one engine's
    clean velocities can over-trust them."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name in ("cameras", "camera_pose_std"):
                continue
            low, high = (np.asarray(v, float) for v in value) if len(value) == 2 else (None, None)
            if low is None or np.any(low > high):
                raise ConfigError(f"RandomizationConfig.{f.name} must be (low, high) with low <= high, got {value}")
        if self.action_latency_steps is not None:
            lo, hi = self.action_latency_steps
            if int(lo) != lo or int(hi) != hi or lo < 0:
                raise ConfigError(f"action_latency_steps must be whole control steps >= 0, got {self.action_latency_steps}")
        if isinstance(self.camera_pose_std, str):
            if self.camera_pose_std != "hand_eye":
                raise ConfigError(f"camera_pose_std must be (position std m, rotation std deg) or 'hand_eye', got {self.camera_pose_std!r}")
        elif self.camera_pose_std is not None and (len(self.camera_pose_std) != 2 or min(self.camera_pose_std) < 0):
            raise ConfigError(f"camera_pose_std must be (position std m, rotation std deg) >= 0, got {self.camera_pose_std}")
        if self.hole_clearance_m is not None:
            lo, hi = self.hole_clearance_m
            if not 0.0 < lo <= hi <= _MAX_CLEARANCE_M:
                raise ConfigError(f"hole_clearance_m must be (low, high) in metres with 0 < low <= high <= "
                                  f"{_MAX_CLEARANCE_M} (e.g. [0.0008, 0.0012] for 0.8 to 1.2 mm), got {self.hole_clearance_m}")
        for name in ("object_mass_scale", "friction_scale"):
            value = getattr(self, name)
            if value is not None and value[0] <= 0.0:
                raise ConfigError(f"RandomizationConfig.{name} must be (low, high) factors > 0, got {value}")


def load_randomization_yaml(path: str | Path) -> RandomizationConfig:
    """A :class:`RandomizationConfig` from a YAML mapping of field names to ranges (lists).

    A top-level ``randomization:`` key is accepted (for files that also hold other sections).

    Raises:
        ConfigError: the file is missing, or has an unknown key or an invalid range.
    """
    return load_yaml_dataclass(path, RandomizationConfig, section="randomization",
                               missing_hint="see config/randomization.yaml for an example")


def _physics_of(env: gym.Env) -> Any:
    arm = getattr(env.unwrapped, "arm", None)
    return getattr(arm, "physics", None)


class DomainRandomization(gym.Wrapper):
    """Re-draw the quantities of a :class:`RandomizationConfig` at every reset and apply them.

    Physical and visual parameters are applied before the wrapped env resets, so the first
    observation already shows them. ``info["randomization"]`` of ``reset`` holds the drawn values
    (plain floats and lists, loggable); ``step``'s info holds ``applied_action`` (the action the
    env executed after noise and latency) and ``control_substeps`` (with period jitter).

    Latency of ``k`` steps: the action of step ``t`` is executed at step ``t + k``; during the
    first ``k`` steps of an episode the env executes a hold action (no motion, gripper open as
    at reset: zeros with the last entry +1; all zeros for an env without a gripper action).

    Args:
        env: a ``robot_rl/Panda*`` sim env (any env with a ``Box`` action space when only latency,
            noise are randomised).
        config: the ranges.
        seed: seed of the parameter draws; the same seed gives the same sequence of parameters.
            ``reset(seed=s)`` re-seeds from ``(seed, s)``. Per-step draws (noise, jitter) use a
            separate stream, so they do not shift the per-episode parameters.

    Raises:
        ConfigError: a visual or physical quantity is randomised but the env has no simulated
            physics with the hooks (e.g. a real arm), or period jitter without a simulated arm;
            ``hole_clearance_m`` on an env without a peg and fixture, or on the PyBullet backend.
    """

    def __init__(self, env: gym.Env, config: RandomizationConfig, seed: int | None = None):
        super().__init__(env)
        if not isinstance(env.action_space, gym.spaces.Box):
            raise ConfigError(f"DomainRandomization needs a Box action space, got {env.action_space}")
        if config.camera_pose_std == "hand_eye":
            raise ConfigError("camera_pose_std: hand_eye takes the std from the env's hand-eye calibrations: build the env "
                              "with both, gym.make(ID, hand_eye={'front': 'handeye.yaml'}, randomize=...)")
        self.config = config
        self.seed = seed
        self._seed_streams(None)
        physical = [f.name for f in fields(config) if getattr(config, f.name) is not None
                    and f.name not in ("cameras", "action_latency_steps", "action_noise_std", *_OBS_NOISE)]
        physics = _physics_of(env)
        if physical and not hasattr(physics, "set_object_mass_scale"):
            raise ConfigError(f"randomising {physical} needs a simulated robot_rl Panda env (its physics hooks); "
                              f"{env.unwrapped!r} has none. Only action_latency_steps, action_noise_std and the "
                              "observation noises work on any env.")
        if config.hole_clearance_m is not None:
            insertion = getattr(physics, "insertion", None)
            if insertion is None:
                raise ConfigError("hole_clearance_m needs a peg-insertion env (robot_rl/PandaPegInsertion-v0 or its "
                                  f"variants); {env.unwrapped!r} has no peg and fixture")
            if not hasattr(insertion, "set_clearance"):
                raise ConfigError("hole_clearance_m is MuJoCo-only (the training engine): the PyBullet fixture is one "
                                  "compound body fixed by the scene's saved reset state. Drop hole_clearance_m from the "
                                  "config for backend='pybullet' (the sim-to-sim benchmark evaluates there without "
                                  "randomisation)")
        self.arm = getattr(env.unwrapped, "arm", None)
        self._nominal_substeps = getattr(self.arm, "n_substeps", None)
        self._hold = np.zeros(env.action_space.shape, np.float32)
        if getattr(env.unwrapped, "gripper_action", True):  # insertion envs have no gripper entry
            self._hold[-1] = 1.0
        self._queue: deque[np.ndarray] = deque()
        self.params: dict[str, Any] = {}

    def _seed_streams(self, reset_seed: int | None) -> None:
        entropy = self.seed if reset_seed is None else [self.seed if self.seed is not None else 0, reset_seed]
        param_seq, step_seq = np.random.SeedSequence(entropy).spawn(2)
        self._param_rng, self._step_rng = np.random.default_rng(param_seq), np.random.default_rng(step_seq)

    # ------------------------------------------------------------------ drawing
    def sample(self) -> dict[str, Any]:
        """Draw one set of parameters from the config (advances the parameter generator).

        Returns:
            ``{name: value}`` with only the enabled quantities: ``light`` (``direction`` (3,),
            ``intensity``, ``ambient``), ``cube_rgba`` / ``table_rgba`` (4,), ``camera_offsets``
            (``{camera: {"position_m": (3,), "rotation_deg": (3,)}}``), ``object_mass_scale``,
            ``friction_scale``, ``hole_clearance_m``, ``action_latency_steps`` (int), ``action_noise_std``,
            ``ee_position_noise_std``, ``ee_velocity_noise_std``.
        """
        c, rng = self.config, self._param_rng
        out: dict[str, Any] = {}

        def uniform(r: Any) -> Any:
            return rng.uniform(np.asarray(r[0], float), np.asarray(r[1], float))

        if c.light_tilt_deg or c.light_intensity or c.light_ambient:
            tilt = np.deg2rad(uniform(c.light_tilt_deg)) if c.light_tilt_deg else 0.0
            azimuth = rng.uniform(0.0, 2 * np.pi)
            direction = [np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth), -np.cos(tilt)]
            out["light"] = {"direction": [float(x) for x in direction],
                            "intensity": float(uniform(c.light_intensity)) if c.light_intensity else 0.6,
                            "ambient": float(uniform(c.light_ambient)) if c.light_ambient else 0.3}
        for name in ("cube", "table"):
            rgb_range = getattr(c, f"{name}_rgb")
            if rgb_range is not None:
                out[f"{name}_rgba"] = [*(float(x) for x in uniform(rgb_range)), 1.0]
        if c.camera_pose_std is not None or c.camera_position_m is not None or c.camera_rotation_deg is not None:
            offsets = {}
            for cam in c.cameras:
                if c.camera_pose_std is not None:
                    pos, rot = rng.normal(0.0, c.camera_pose_std[0], 3), rng.normal(0.0, c.camera_pose_std[1], 3)
                else:
                    pos = rng.uniform(*c.camera_position_m, 3) if c.camera_position_m else np.zeros(3)
                    rot = rng.uniform(*c.camera_rotation_deg, 3) if c.camera_rotation_deg else np.zeros(3)
                offsets[cam] = {"position_m": [float(x) for x in pos], "rotation_deg": [float(x) for x in rot]}
            out["camera_offsets"] = offsets
        for name in ("object_mass_scale", "friction_scale", "action_noise_std", *_OBS_NOISE, "hole_clearance_m"):
            if getattr(c, name) is not None:
                out[name] = float(uniform(getattr(c, name)))
        if c.action_latency_steps is not None:
            lo, hi = c.action_latency_steps
            out["action_latency_steps"] = int(rng.integers(int(lo), int(hi) + 1))
        return out

    def _apply(self, p: dict[str, Any]) -> None:
        physics = _physics_of(self.env)
        if "light" in p:
            physics.set_light(p["light"]["direction"], p["light"]["intensity"], p["light"]["ambient"])
        for name in ("cube", "table"):
            if f"{name}_rgba" in p:
                physics.set_geom_rgba(name, p[f"{name}_rgba"])
        for cam, off in p.get("camera_offsets", {}).items():
            physics.set_camera_pose_offset(cam, off["position_m"], np.deg2rad(off["rotation_deg"]))
        if "object_mass_scale" in p:
            physics.set_object_mass_scale(p["object_mass_scale"])
        if "friction_scale" in p:
            physics.set_friction_scale(p["friction_scale"])
        if "hole_clearance_m" in p:
            physics.insertion.set_clearance(p["hole_clearance_m"])

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict[str, Any]]:
        """Draw and apply new parameters, then reset the env; ``info["randomization"]`` holds them."""
        if seed is not None:
            self._seed_streams(seed)
        self.params = self.sample()
        self._apply(self.params)
        if self._nominal_substeps is not None:
            self.arm.n_substeps = self._nominal_substeps
        self._queue = deque([self._hold.copy() for _ in range(self.params.get("action_latency_steps", 0))])
        obs, info = self.env.reset(seed=seed, options=options)
        return self._observation_noise(obs), {**info, "randomization": self.params}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Add noise, delay by the latency, jitter the control period, then step the env."""
        a = np.asarray(action, np.float32)
        std = self.params.get("action_noise_std", 0.0)
        if std > 0:
            a = np.clip(a + self._step_rng.normal(0.0, std, a.shape), -1.0, 1.0).astype(np.float32)
        self._queue.append(a)
        applied = self._queue.popleft()
        extra: dict[str, Any] = {"applied_action": applied}
        if self.config.control_period_jitter is not None:
            if self._nominal_substeps is None:
                raise ConfigError("control_period_jitter needs a simulated arm with n_substeps (a robot_rl sim env)")
            every = self.arm.ik_every
            scale = 1.0 + self._step_rng.uniform(*self.config.control_period_jitter)
            self.arm.n_substeps = every * max(1, int(round(self._nominal_substeps * scale / every)))
            extra["control_substeps"] = self.arm.n_substeps
        obs, reward, terminated, truncated, info = self.env.step(applied)
        return self._observation_noise(obs), reward, terminated, truncated, {**info, **extra}

    def _observation_noise(self, obs: Any) -> Any:
        """Add the episode's EE position / velocity noise to a copy of ``obs["state"]``."""
        stds = {name: self.params.get(f"{name}_noise_std", 0.0) for name in ("ee_position", "ee_velocity")}
        if not any(stds.values()):
            return obs
        if not isinstance(obs, dict) or "state" not in obs:
            raise ConfigError("EE observation noise needs a robot_rl env observation (a dict with 'state')")
        state = np.array(obs["state"], copy=True)
        for name, std in stds.items():
            if std > 0:
                sl = _PROPRIO_SLICES[_OBS_NOISE[name + "_noise_std"]]
                state[sl] += self._step_rng.normal(0.0, std, sl.stop - sl.start).astype(state.dtype)
        return {**obs, "state": state}
