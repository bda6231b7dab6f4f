"""Privileged scripted controllers that produce demonstrations for the simulated tasks.

They read the true object poses from the task (``task.get_observation()``) and the arm state
from ``arm.state()`` of the unwrapped :class:`~robot_rl.env.RobotEnv`, and return actions in the
env's action space, so they work with the state and pixel variants and with any simulation
backend whose task exposes ``cube_position`` (and ``target_position`` for push).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from robot_rl.env import RobotEnv, tool_yaw_rad

Policy = Callable[[Any], np.ndarray]


@dataclass
class PickLiftScript:
    """Waypoints of the pick-and-lift controller (metres above / around the cube centre)."""

    hover_above_m: float = 0.06
    """approach height of the TCP above the cube centre."""
    grasp_below_centre_m: float = 0.005
    """the TCP goes this far below the cube centre to grasp (clipped by the workspace)."""
    lift_above_m: float = 0.12
    """the TCP lifts to this height above the grasp point."""
    position_tolerance_m: float = 0.008
    """a waypoint counts as reached within this distance."""
    close_steps: int = 3
    """control steps the gripper closes before lifting."""
    drop_height_m: float = 0.02
    """while lifting, a cube less than this above the grasp point with the TCP far above it was
    dropped: start over."""


@dataclass
class PushScript:
    """Waypoints of the push controller (metres)."""

    hover_height_m: float = 0.08
    """TCP height while moving to the pre-push point."""
    push_height_m: float = 0.02
    """TCP height while pushing (the fingertips are ~8 mm below the TCP)."""
    standoff_m: float = 0.045
    """horizontal distance from the cube centre to the pre-push point behind it."""
    position_tolerance_m: float = 0.01
    """a waypoint counts as reached within this distance."""
    max_lateral_error_m: float = 0.02
    """while pushing, a TCP further than this off the cube-target line starts a new approach."""
    goal_tolerance_m: float = 0.008
    """stop pushing when the cube centre is this close to the target centre."""


def _toward(goal: np.ndarray, ee: np.ndarray, max_step_m: float) -> np.ndarray:
    """(3,) xyz action in [-1, 1] that moves the TCP from ``ee`` towards ``goal``."""
    return np.clip((goal - ee) / max_step_m, -1.0, 1.0)


def _yaw_action(env: RobotEnv, desired_yaw: float, current_yaw: float) -> list[float]:
    if not env.enable_yaw:
        return []
    err = (desired_yaw - current_yaw + np.pi) % (2 * np.pi) - np.pi
    return [float(np.clip(err / env.max_yaw_step_rad, -1.0, 1.0))]


def _cube_grasp_yaw(cube_quat_xyzw: np.ndarray, current_yaw: float) -> float:
    """Tool yaw (rad) aligned with a cube face, the one of the four closest to ``current_yaw``."""
    cube_yaw = tool_yaw_rad(cube_quat_xyzw)
    return current_yaw + ((cube_yaw - current_yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)


def pick_lift_policy(env: gym.Env, script: PickLiftScript | None = None) -> Policy:
    """Scripted pick-and-lift: hover over the cube, descend, close, lift; retry after a drop."""
    u: RobotEnv = env.unwrapped
    sc = script if script is not None else PickLiftScript()
    mem = {"phase": "approach", "closed_for": 0}

    def policy(_obs: Any) -> np.ndarray:
        if u.episode_step == 0:  # called once per episode before its first step
            mem.update(phase="approach", closed_for=0)
        s = u.arm.state()
        task_obs = u.task.get_observation()
        cube = task_obs["cube_position"].astype(np.float64)
        ee, yaw = s.ee_position, tool_yaw_rad(s.ee_quaternion)
        grasp = cube - [0.0, 0.0, sc.grasp_below_centre_m]
        grasp = u.arm.workspace.clip(grasp)
        gripper = 1.0
        if mem["phase"] == "approach":
            goal = cube + [0.0, 0.0, sc.hover_above_m]
            if np.linalg.norm(ee[:2] - cube[:2]) > sc.position_tolerance_m:
                goal[2] = max(goal[2], ee[2])  # do not sweep through the cube
            else:
                mem["phase"] = "descend"
        if mem["phase"] == "descend":
            goal = grasp
            if np.linalg.norm(ee - grasp) < sc.position_tolerance_m:
                mem["phase"] = "close"
        if mem["phase"] == "close":
            goal, gripper = grasp, -1.0
            mem["closed_for"] += 1
            if mem["closed_for"] > sc.close_steps:
                mem["phase"], mem["lift_from"] = "lift", grasp.copy()
        if mem["phase"] == "lift":
            goal, gripper = mem["lift_from"] + [0.0, 0.0, sc.lift_above_m], -1.0
            if cube[2] - mem["lift_from"][2] < sc.drop_height_m < ee[2] - cube[2] - sc.drop_height_m:
                mem.update(phase="approach", closed_for=0)  # dropped: try again
        desired_yaw = _cube_grasp_yaw(task_obs["cube_quaternion"], yaw) if mem["phase"] == "approach" else yaw
        return np.array([*_toward(goal, ee, u.max_ee_step_m), *_yaw_action(u, desired_yaw, yaw), gripper],
                        dtype=np.float32)

    return policy


def push_policy(env: gym.Env, script: PushScript | None = None) -> Policy:
    """Scripted push: go behind the cube (seen from the target), lower, push along the line; re-approach when off it."""
    u: RobotEnv = env.unwrapped
    sc = script if script is not None else PushScript()
    mem = {"phase": "above"}

    def policy(_obs: Any) -> np.ndarray:
        if u.episode_step == 0:  # called once per episode before its first step
            mem["phase"] = "above"
        s = u.arm.state()
        task_obs = u.task.get_observation()
        cube = task_obs["cube_position"].astype(np.float64)
        target = task_obs["target_position"].astype(np.float64)
        ee = s.ee_position
        to_target = target[:2] - cube[:2]
        remaining = float(np.linalg.norm(to_target))
        direction = to_target / max(remaining, 1e-9)
        behind = cube[:2] - direction * sc.standoff_m
        rel = ee[:2] - cube[:2]
        along = float(rel @ direction)
        lateral = float(rel @ np.array([-direction[1], direction[0]]))
        if mem["phase"] == "push" and (abs(lateral) > sc.max_lateral_error_m or along > -sc.standoff_m / 2):
            mem["phase"] = "up"
        if mem["phase"] == "up":
            goal = np.array([ee[0], ee[1], sc.hover_height_m])
            if ee[2] > sc.hover_height_m - sc.position_tolerance_m:
                mem["phase"] = "above"
        if mem["phase"] == "above":
            goal = np.array([behind[0], behind[1], sc.hover_height_m])
            if np.linalg.norm(ee[:2] - behind) < sc.position_tolerance_m:
                mem["phase"] = "down"
        if mem["phase"] == "down":
            goal = np.array([behind[0], behind[1], sc.push_height_m])
            if abs(ee[2] - sc.push_height_m) < sc.position_tolerance_m:
                mem["phase"] = "push"
        if mem["phase"] == "push":
            # advance along the cube-target line and steer back onto it
            advance = float(np.clip(remaining - sc.goal_tolerance_m, 0.0, u.max_ee_step_m))
            goal_xy = ee[:2] + direction * advance - lateral * np.array([-direction[1], direction[0]])
            goal = np.array([goal_xy[0], goal_xy[1], sc.push_height_m])
        yaw = tool_yaw_rad(s.ee_quaternion)
        return np.array([*_toward(goal, ee, u.max_ee_step_m), *_yaw_action(u, yaw, yaw), -1.0], dtype=np.float32)

    return policy


@dataclass
class PegInsertionScript:
    """Waypoints and gains of the peg-insertion controller (metres, radians)."""

    hover_above_m: float = 0.015
    """the tip first lines up with the hole this far above the entry, along the hole's axis."""
    insert_below_m: float = 0.025
    """then it descends towards this far below the entry (past the success depth)."""
    insert_step_m: float = 0.008
    """largest descent per control step while inserting (slower than free motion: contacts)."""
    align_tolerance_m: float = 0.0004
    """the tip must be this close to the hovering waypoint before descending (the play per side is 0.5 mm)."""
    rotation_tolerance_rad: float = 0.01
    """... and the peg's rotation this close to the hole's."""
    stuck_steps: int = 4
    """while inserting, this many steps without 1 mm more depth outside the opening: back up and line up again."""
    gain: float = 0.8
    """fraction of the remaining pose error commanded per step (below 1: no overshoot from the arm's lag)."""
    aim_offset_m: tuple[float, float] = (0.0, 0.0)
    """aim this far off the hole's axis (hole-frame x, y) throughout: a deliberately misaligned
    insertion, to measure what the lead-in and a compliant arm absorb (benchmarks/insertion.py)."""


def _rotation_action(env: RobotEnv, rotvec: np.ndarray) -> list[float]:
    """Rotation entries of an action that turns the tool by the (3,) base-frame rotation vector
    ``rotvec`` (radians): all three with ``rotation="full"``, the z part with yaw, none otherwise."""
    mode = getattr(env, "rotation", "yaw" if env.enable_yaw else "none")
    if mode == "full":
        return list(np.clip(rotvec / env.max_rot_step_rad, -1.0, 1.0))
    if mode == "yaw":
        return [float(np.clip(rotvec[2] / env.max_yaw_step_rad, -1.0, 1.0))]
    return []


def _gripper_action(env: RobotEnv, value: float) -> list[float]:
    """The gripper entry of an action (none when the env holds the gripper fixed)."""
    return [value] if getattr(env, "gripper_action", True) else []


def peg_insertion_policy(env: gym.Env, script: PegInsertionScript | None = None) -> Policy:
    """Scripted peg insertion: line the peg up above the hole (position and rotation, the grasp
    offset compensated), descend along the hole's axis, back up and line up again when stuck.

    Reads the hole and peg poses from the task (:class:`robot_rl.sim.tasks.PegInsertionTask`).
    With ``rotation="full"`` it corrects the peg's tilt and yaw; with ``"yaw"`` only its yaw.
    """
    from scipy.spatial.transform import Rotation

    u: RobotEnv = env.unwrapped
    sc = script if script is not None else PegInsertionScript()
    mem = {"phase": "align", "best_depth": 0.0, "stalled": 0}

    def policy(_obs: Any) -> np.ndarray:
        if u.episode_step == 0:  # called once per episode before its first step
            mem.update(phase="align", best_depth=0.0, stalled=0)
        s = u.arm.state()
        hole_pos, hole_rot = u.task.hole_pose()
        tip, peg_rot = u.task.peg_pose()
        tool_rot = Rotation.from_quat(s.ee_quaternion)
        rel = u.task.peg_rotation_in_hole()  # the peg in the hole frame, smallest of the square's four
        turn = peg_rot * rel.inv() * peg_rot.inv()  # base frame: turns the peg onto the hole's rotation
        mode = getattr(u, "rotation", "yaw" if u.enable_yaw else "none")
        if mode != "full":  # the part of the turn the env can execute: its yaw, or none
            turn = Rotation.from_rotvec([0.0, 0.0, turn.as_rotvec()[2] if mode == "yaw" else 0.0])
            rel = peg_rot.inv() * turn * peg_rot
        tip_in_tool = tool_rot.inv().apply(tip - s.ee_position)
        axis = hole_rot.apply([0.0, 0.0, 1.0])  # out of the hole
        tip_in_hole = hole_rot.inv().apply(tip - hole_pos)
        lateral_m = float(np.linalg.norm(tip_in_hole[:2]))
        depth_m = -float(tip_in_hole[2])
        aim = hole_rot.apply([*sc.aim_offset_m, 0.0])
        if mem["phase"] == "align":
            goal_tip = hole_pos + aim + axis * sc.hover_above_m
            if (np.linalg.norm(tip - goal_tip) < sc.align_tolerance_m and rel.magnitude() < sc.rotation_tolerance_rad):
                mem.update(phase="insert", best_depth=depth_m, stalled=0)
        if mem["phase"] == "insert":
            if depth_m > mem["best_depth"] + 0.001:
                mem.update(best_depth=depth_m, stalled=0)
            else:
                mem["stalled"] += 1
            if mem["stalled"] >= sc.stuck_steps and not u.task.is_success():
                mem["phase"] = "align"  # jammed or on the rim: back up and line up again
                goal_tip = hole_pos + aim + axis * sc.hover_above_m
            else:
                # on the axis at a depth at most insert_step_m below the tip's current one
                goal_depth = min(sc.insert_below_m, depth_m + sc.insert_step_m)
                goal_tip = hole_pos + aim - axis * goal_depth
        goal_rot = turn * tool_rot
        goal_tcp = goal_tip - goal_rot.apply(tip_in_tool)
        step = sc.gain * (goal_tcp - s.ee_position)
        if mem["phase"] == "align" and lateral_m > 0.003 and depth_m > -sc.hover_above_m:
            step[2] = max(step[2], 0.0)  # do not sweep the tip sideways through the fixture
        rotvec = sc.gain * turn.as_rotvec()
        return np.array([*np.clip(step / u.max_ee_step_m, -1.0, 1.0), *_rotation_action(u, rotvec),
                         *_gripper_action(u, -1.0)], dtype=np.float32)

    return policy


#: Scripted controller factory per task class name.
SCRIPTED_POLICIES: dict[str, Callable[[gym.Env], Policy]] = {
    "PickLiftTask": pick_lift_policy,
    "PushTask": push_policy,
    "PegInsertionTask": peg_insertion_policy,
    "TiltedPegInsertionTask": peg_insertion_policy,
}


def scripted_policy_for(env: gym.Env, noise_std: float = 0.0, rng: np.random.Generator | None = None) -> Policy:
    """The scripted controller of ``env``'s task, as ``policy(obs) -> action``.

    Args:
        env: a (wrapped) :class:`~robot_rl.env.RobotEnv`.
        noise_std: std of Gaussian noise added to each action, in action units ([-1, 1]), for
            diverse demonstrations; the result is clipped to the action space.
        rng: generator of the noise (a fresh unseeded one when None).

    Returns:
        A callable from an observation to a float32 action of ``env.action_space.shape``; it
        resets itself at the start of every episode.

    Raises:
        TypeError: ``env`` is not a ``RobotEnv``.
        KeyError: there is no scripted controller for the env's task.
    """
    u = env.unwrapped
    if not isinstance(u, RobotEnv):
        raise TypeError(f"scripted controllers drive a robot_rl RobotEnv, got {type(u).__name__}")
    # a task over ROS (robot_rl.ros.env.RosTask) names the sim task it mirrors
    name = getattr(u.task, "task_class_name", type(u.task).__name__)
    if name not in SCRIPTED_POLICIES:
        raise KeyError(f"no scripted controller for task {name}; available: {sorted(SCRIPTED_POLICIES)}")
    policy = SCRIPTED_POLICIES[name](env)
    if noise_std <= 0.0:
        return policy
    noise_rng = rng if rng is not None else np.random.default_rng()

    def noisy(obs: Any) -> np.ndarray:
        a = policy(obs)
        return np.clip(a + noise_rng.normal(0.0, noise_std, a.shape), -1.0, 1.0).astype(np.float32)

    return noisy
