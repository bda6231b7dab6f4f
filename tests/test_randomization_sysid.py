"""Domain randomisation (both backends) and system identification, on the real simulators.

Each test reads the effect back from the physics or the rendered images; nothing is mocked.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import robot_rl  # noqa: F401  (registers the env IDs)
from robot_rl.errors import ConfigError
from robot_rl.sim.params import SimParams, load_sim_params, save_sim_params
from robot_rl.sim.randomization import DomainRandomization, RandomizationConfig, load_randomization_yaml

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("mujoco", "pybullet")
ENV_ID = "robot_rl/PandaPickLift-v0"
HOLD = np.array([0.0, 0.0, 0.0, 1.0], np.float32)


def _make(backend: str, **kwargs):
    return gym.make(ENV_ID, backend=backend, **kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_physical_and_camera_parameters_read_back_from_the_physics(backend):
    cfg = RandomizationConfig(object_mass_scale=(0.5, 2.0), friction_scale=(0.6, 1.4), cube_rgb=((0, 0, 0.5), (0.2, 0.2, 1)),
                              camera_position_m=(-0.02, 0.02), camera_rotation_deg=(-3, 3))
    env = DomainRandomization(_make(backend), cfg, seed=1)
    physics = env.unwrapped.arm.physics
    nominal_mass = physics.object_mass_kg()
    nominal_friction = physics.friction_coefficients()
    try:
        for _ in range(2):
            _, info = env.reset()
            p = info["randomization"]
            assert physics.object_mass_kg() == pytest.approx(nominal_mass * p["object_mass_scale"], rel=1e-6)
            for key, value in physics.friction_coefficients().items():
                assert value == pytest.approx(nominal_friction[key] * p["friction_scale"], rel=1e-6)
            assert np.allclose(physics.geom_rgba("cube"), p["cube_rgba"], atol=1e-6)
            for cam in ("front", "wrist"):
                assert np.allclose(physics.camera_position_offset_m(cam), p["camera_offsets"][cam]["position_m"])
            env.step(HOLD)  # parameters survive stepping
            assert physics.object_mass_kg() == pytest.approx(nominal_mass * p["object_mass_scale"], rel=1e-6)
    finally:
        env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_parameters(backend):
    cfg = load_randomization_yaml(REPO / "config" / "randomization.yaml")
    draws = []
    for seed in (5, 5, 6):
        env = _make(backend, randomize=cfg, randomize_seed=seed)
        draws.append([env.reset()[1]["randomization"] for _ in range(3)])
        env.close()
    assert draws[0] == draws[1]
    assert draws[0] != draws[2]
    assert draws[0][0] != draws[0][1]  # a new draw at every reset


@pytest.mark.parametrize("backend", BACKENDS)
def test_colour_and_light_change_the_camera_image(backend):
    env = _make(backend, cameras=("front",), image_size=64)
    base = env.reset(seed=0)[0]["images"]["front"].astype(float)
    blue = DomainRandomization(env, RandomizationConfig(table_rgb=((0.0, 0.0, 0.9), (0.0, 0.0, 0.9))), seed=0)
    img = blue.reset(seed=0)[0]["images"]["front"].astype(float)
    # the table fills the lower image: it turns blue
    lower_base, lower = base[40:].mean(axis=(0, 1)), img[40:].mean(axis=(0, 1))
    assert lower[2] - lower[0] > 30 and lower_base[0] - lower_base[2] > 10
    dark = DomainRandomization(env, RandomizationConfig(light_intensity=(0.05, 0.05), light_ambient=(0.05, 0.05)), seed=0)
    bright = DomainRandomization(env, RandomizationConfig(light_intensity=(0.9, 0.9), light_ambient=(0.6, 0.6)), seed=0)
    dark_mean = dark.reset(seed=0)[0]["images"]["front"].mean()
    bright_img = bright.reset(seed=0)[0]["images"]["front"].astype(float)
    assert bright_img.mean() > dark_mean + 20
    # quantities a wrapper does not randomise keep their last values: only the pose changes here
    jitter = DomainRandomization(env, RandomizationConfig(camera_rotation_deg=(3.0, 3.0), cameras=("front",)), seed=0)
    moved = jitter.reset(seed=0)[0]["images"]["front"].astype(float)
    assert np.abs(moved - bright_img).mean() > 3
    env.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_latency_delays_actions_by_exactly_k_steps(backend):
    k = 2
    env = DomainRandomization(_make(backend), RandomizationConfig(action_latency_steps=(k, k)), seed=0)
    env.reset(seed=0)
    physics = env.unwrapped.arm.physics
    actions = [np.array([1.0, 0.0, 0.0, 1.0], np.float32), np.array([0.0, 1.0, 0.0, -1.0], np.float32),
               np.array([-1.0, 0.0, 0.5, 1.0], np.float32), np.array([0.0, 0.0, 0.0, 1.0], np.float32)]
    applied, x = [], [physics.tcp_position()[0]]
    for a in actions:
        applied.append(env.step(a)[4]["applied_action"])
        x.append(physics.tcp_position()[0])
    assert [a.tolist() for a in applied] == [HOLD.tolist()] * k + [a.tolist() for a in actions[:len(actions) - k]]
    assert abs(x[k] - x[0]) < 1e-3  # no motion while the queue holds
    assert x[k + 1] - x[k] > 0.02  # the first action (+x, 3 cm) arrives at step k + 1
    env.close()


def test_action_noise_statistics_and_period_jitter():
    std = 0.1
    cfg = RandomizationConfig(action_noise_std=(std, std), control_period_jitter=(-0.2, 0.2))
    env = DomainRandomization(_make("mujoco"), cfg, seed=3)
    env.reset(seed=0)
    physics = env.unwrapped.arm.physics
    noise, substeps = [], []
    for _ in range(150):
        t0 = physics.data.time
        info = env.step(np.zeros(4, np.float32))[4]
        noise.append(info["applied_action"])
        substeps.append(info["control_substeps"])
        assert physics.data.time - t0 == pytest.approx(info["control_substeps"] * physics.model.opt.timestep)
    noise = np.array(noise)
    assert np.abs(noise.mean()) < 0.02
    assert noise.std() == pytest.approx(std, rel=0.1)
    assert set(substeps) <= {40, 45, 50, 55, 60} and len(set(substeps)) >= 4
    env.close()


def test_observation_noise_on_ee_position_and_velocity_only():
    """The noise lands on the EE position / velocity entries of obs["state"] with the drawn std;
    the rest of the observation and the simulation itself are untouched."""
    cfg = RandomizationConfig(ee_position_noise_std=(0.01, 0.01), ee_velocity_noise_std=(0.05, 0.05))
    env, clean = DomainRandomization(_make("mujoco"), cfg, seed=3), _make("mujoco")
    obs, info = env.reset(seed=0)
    ref, _ = clean.reset(seed=0)
    assert info["randomization"]["ee_velocity_noise_std"] == pytest.approx(0.05)
    diffs = [obs["state"] - ref["state"]]
    for _ in range(120):
        a = np.zeros(4, np.float32)
        obs, ref = env.step(a)[0], clean.step(a)[0]
        diffs.append(obs["state"] - ref["state"])
    d = np.array(diffs)
    assert d[:, 0:3].std() == pytest.approx(0.01, rel=0.15) and d[:, 3:6].std() == pytest.approx(0.05, rel=0.15)
    np.testing.assert_array_equal(d[:, 6:], 0.0)  # yaw, gripper and the task entries are exact
    env.close(), clean.close()


def test_yaml_config_and_clear_errors(tmp_path):
    cfg = load_randomization_yaml(REPO / "config" / "randomization.yaml")
    assert cfg.action_latency_steps == (0, 1) and cfg.cameras == ("front", "wrist")
    bad = tmp_path / "bad.yaml"
    bad.write_text("randomization:\n  object_mass: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \[.object_mass.\] for RandomizationConfig; valid keys: .*friction_scale"):
        load_randomization_yaml(bad)
    with pytest.raises(ConfigError, match="low <= high"):
        RandomizationConfig(friction_scale=(2.0, 1.0))
    with pytest.raises(ConfigError, match="does not exist"):
        load_randomization_yaml(tmp_path / "missing.yaml")


def test_sim_params_yaml_round_trip_loads_into_both_backends(tmp_path):
    params = SimParams(joint_damping_nms_per_rad=3.5, joint_frictionloss_nm=0.2, armature_kgm2=0.05,
                       gripper_force_n=12.0, action_latency_steps=1)
    path = save_sim_params(params, tmp_path / "sysid.yaml")
    assert load_sim_params(path) == params
    env = gym.make(ENV_ID, sim_params=str(path))
    m, ph = env.unwrapped.arm.physics.model, env.unwrapped.arm.physics
    assert np.allclose(m.dof_damping[ph.arm_dof_adr], 3.5) and np.allclose(m.dof_frictionloss[ph.arm_dof_adr], 0.2)
    assert np.allclose(m.dof_armature[ph.arm_dof_adr], 0.05)
    assert np.allclose(m.actuator_forcerange[ph.finger_actuator_id], (-12.0, 12.0))
    env.reset(seed=0)
    assert env.step(np.array([1, 0, 0, 1], np.float32))[4]["applied_action"].tolist() == HOLD.tolist()  # latency 1
    env.close()
    pb_params = replace(params, joint_frictionloss_nm=None, armature_kgm2=None)
    tcp = {}
    for damping in (None, 50.0):  # PyBullet: read back, and a heavily damped arm lags behind
        env = gym.make(ENV_ID, backend="pybullet", sim_params=replace(pb_params, joint_damping_nms_per_rad=damping))
        ph = env.unwrapped.arm.physics
        assert np.allclose(ph.arm_joint_damping(), 0.0 if damping is None else damping)
        assert env.unwrapped.arm._finger_force_n() == 12.0
        env.reset(seed=0)
        for _ in range(3):
            env.step(np.array([1, 1, 0, 1], np.float32))
        tcp[damping] = ph.tcp_position()
        env.close()
    assert np.linalg.norm(tcp[None] - tcp[50.0]) > 1e-3
    with pytest.raises(ConfigError, match="PyBullet backend cannot apply"):
        gym.make(ENV_ID, backend="pybullet", sim_params=params)


def test_sysid_recovers_perturbed_mujoco_parameters(capsys):
    from robot_rl.sim.sysid import fit_sim_params, record_sim_trajectories

    # damping x2.6 (off the fit's coarse scan grid, so the local fit has to find it), 1 step late
    truth = SimParams(joint_damping_nms_per_rad=2.6, action_latency_steps=1)
    trajectories = record_sim_trajectories("mujoco", n_trajectories=2, steps=25, seed=0, sim_params=truth)
    result = fit_sim_params(trajectories, ("joint_damping_nms_per_rad",), max_latency_steps=2, progress=False)
    print(result.table(truth))
    assert result.params.action_latency_steps == 1
    assert result.params.joint_damping_nms_per_rad == pytest.approx(2.6, rel=0.03)
    assert result.after["ee_rms_mm"] < result.before["ee_rms_mm"] / 100
    assert "joint_damping_nms_per_rad" in capsys.readouterr().out


def test_mcap_bag_round_trip(tmp_path):
    from robot_rl.interfaces import ArmCommand
    from robot_rl.ros import convert
    from robot_rl.ros.recorder import BagRecorder
    from robot_rl.sim.mujoco.scene import ARM_JOINTS
    from robot_rl.sim.sysid import Replayer, load_mcap_trajectories, random_actions

    env = gym.make(ENV_ID).unwrapped
    env.reset(seed=0)
    actions = random_actions(12, np.random.default_rng(1))
    actions[:, :3] *= 0.5  # stay clear of the workspace walls: actions are recovered exactly
    bag = BagRecorder(tmp_path / "bag")
    bag.open()
    for topic, msgtype in ((convert.JOINT_STATES, "sensor_msgs/msg/JointState"),
                           (convert.EE_POSE, "geometry_msgs/msg/PoseStamped"),
                           (convert.POSE_CMD, "geometry_msgs/msg/PoseStamped"),
                           (convert.GRIPPER_CMD, "std_msgs/msg/Float64")):
        bag.add_topic(topic, msgtype)
    t0_ns, period_ns = 1_700_000_000_000_000_000, 100_000_000
    states = [env.arm.state()]
    for k, a in enumerate(actions):
        t = t0_ns + k * period_ns
        msgs = convert.arm_state_msgs(states[-1], list(ARM_JOINTS), t * 1e-9)
        bag.write_message(convert.JOINT_STATES, msgs["joint_states"], t - 1_000_000)
        bag.write_message(convert.EE_POSE, msgs["ee_pose"], t - 1_000_000)
        env.step(a)
        cmd: ArmCommand = env.last_command
        bag.write_message(convert.GRIPPER_CMD, convert.gripper_command_msg(cmd.gripper), t)
        bag.write_message(convert.POSE_CMD, convert.pose_command_msg(cmd, t * 1e-9), t)
        states.append(env.arm.state())
    msgs = convert.arm_state_msgs(states[-1], list(ARM_JOINTS), (t0_ns + len(actions) * period_ns) * 1e-9)
    bag.write_message(convert.JOINT_STATES, msgs["joint_states"], t0_ns + len(actions) * period_ns - 1_000_000)
    bag.write_message(convert.EE_POSE, msgs["ee_pose"], t0_ns + len(actions) * period_ns - 1_000_000)
    bag.close()
    env.close()

    (traj,) = load_mcap_trajectories(tmp_path / "bag")
    assert traj.actions.shape == (12, 4)
    assert np.allclose(traj.actions, actions, atol=1e-5)
    assert np.allclose(traj.ee_positions_m, [s.ee_position for s in states])
    assert np.allclose(traj.joint_positions_rad, [s.q for s in states])
    assert np.allclose(traj.gripper, [s.gripper for s in states])
    replayer = Replayer()
    errors = replayer.errors([traj], SimParams())
    replayer.close()
    assert errors["ee_rms_mm"] < 0.05  # the bag's commands replay to the recorded motion
    with pytest.raises(ConfigError, match="no rosbag2 bag"):
        load_mcap_trajectories(tmp_path / "nothing")
