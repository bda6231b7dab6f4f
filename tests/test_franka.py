"""The Franka backend (drivers/franka.py) through franky-control, against franky-sim.

franky-sim (PyPI) is a MuJoCo simulator that speaks libfranka's network protocol; it binds
0.0.0.0 and libfranka's ports are fixed, so simulator and client run together inside a private
network namespace (``unshare -n``, loopback only). It lives in ``.venv-franky-sim`` (made by
``scripts/setup_franky_sim.sh``, which CI runs) because it pins its own mujoco.

What franky-sim 1.0.4 serves (read from its source and checked here): joint/Cartesian position
and velocity motions, the gripper, and libfranka's torque interface (it adds gravity like the
robot), so franky's 1 kHz Cartesian impedance motion of the compliant mode runs end to end. It
acknowledges but does not simulate ``set_cartesian_impedance`` / ``set_joint_impedance`` and
``set_collision_behavior`` (no reflexes), and reports ``O_F_ext_hat_K`` as zeros; the contact
force is therefore read from MuJoCo in a franky-sim server with a table (WALL_SERVER below).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.errors import DeviceUnavailableError

ROOT = Path(__file__).resolve().parents[1]
FRANKY_SIM = Path(os.environ.get("FRANKY_SIM", ROOT / ".venv-franky-sim" / "bin" / "franky-sim"))
pytest.importorskip("franky", reason="franky-control is not installed (pip install -e .[test])")


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def _in_namespace(tmp: Path, script: str, client: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run ``script`` (bash, may start servers in the background) then ``client`` (python source)
    inside a private network namespace with only loopback, in directory ``tmp``."""
    (tmp / "client.py").write_text(textwrap.dedent(client))
    runner = "\n".join(["ip link set lo up", script, f"{sys.executable} client.py", "rc=$?",
                        "kill $(jobs -p) 2>/dev/null", "exit $rc"])
    return subprocess.run(["unshare", "-n", "bash", "-c", runner], capture_output=True, text=True, timeout=timeout,
                          cwd=tmp, env={**os.environ, "MUJOCO_GL": "egl"})


needs_unshare = pytest.mark.skipif(not _can_unshare(), reason="needs `unshare -n` (root or user namespaces)")
needs_franky_sim = pytest.mark.skipif(not FRANKY_SIM.exists(),
                                      reason=f"franky-sim not found at {FRANKY_SIM}: bash scripts/setup_franky_sim.sh")


@needs_unshare
def test_missing_robot_is_a_clear_error_within_seconds():
    t0 = time.monotonic()
    with pytest.raises(DeviceUnavailableError, match="no Franka control interface"):
        from robot_rl.drivers.franka import FrankaArm, FrankaConfig

        FrankaArm(FrankaConfig(host="127.0.0.1", realtime=False, connect_timeout_s=2.0))
    assert time.monotonic() - t0 < 5


@needs_unshare
def test_a_host_that_accepts_but_never_answers_times_out(tmp_path):
    # libfranka alone would hang forever here; the watchdog gives up after connect_timeout_s
    out = _in_namespace(tmp_path, 
        f"{sys.executable} -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\",1337)); s.listen(); "
        f"c=s.accept(); time.sleep(60)' & sleep 1",
        """
        import time
        from robot_rl.drivers.franka import FrankaArm, FrankaConfig
        from robot_rl.errors import DeviceUnavailableError
        t0 = time.monotonic()
        try:
            FrankaArm(FrankaConfig(host="127.0.0.1", realtime=False, connect_timeout_s=2.0))
        except DeviceUnavailableError as e:
            print("REFUSED", round(time.monotonic() - t0, 2), e)
        """, timeout=60)
    assert "REFUSED" in out.stdout, out.stdout + out.stderr
    assert float(out.stdout.split("REFUSED")[1].split()[0]) < 5


@needs_unshare
@needs_franky_sim
def test_cartesian_move_round_trips_through_franky_sim(tmp_path):
    out = _in_namespace(tmp_path, 
        f"MUJOCO_GL=egl {FRANKY_SIM} -s mujoco --hostname 127.0.0.1 > sim.log 2>&1 &\n"
        "for i in $(seq 1 120); do grep -q 'Connect to the server' sim.log && break; sleep 0.5; done",
        """
        import numpy as np
        from robot_rl.drivers.franka import FrankaArm, FrankaConfig
        from robot_rl.interfaces import ArmCommand
        arm = FrankaArm(FrankaConfig(host="127.0.0.1", realtime=False, control_hz=10))
        arm.home()
        s0 = arm.state()
        # 5 cm down, gripper closed; then a target outside the workspace box, which is clipped
        goal = s0.ee_position + [0.0, 0.0, -0.05]
        for _ in range(80):  # 8 s at most; the simulator may run slower than real time on a busy machine
            arm.command(ArmCommand.tool_down(goal, 0.0, 0.0))
            if np.linalg.norm(arm.state().ee_position - goal) < 0.001 and arm.state().gripper < 0.1:
                break
        s1 = arm.state()
        sent = arm.command(ArmCommand.tool_down(np.array([2.0, 0.0, 0.3]), 0.0, 0.0))
        print("RESULT", *s0.ee_position, *s1.ee_position, *(s1.q - s0.q), s0.gripper, s1.gripper, *sent.ee_target_position)
        arm.close()
        """)
    assert "RESULT" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]
    v = [float(x) for x in out.stdout.split("RESULT")[1].split()]
    p0, p1, dq, g0, g1, sent = v[0:3], v[3:6], v[6:13], v[13], v[14], v[15:18]
    assert abs((p1[2] - p0[2]) + 0.05) < 0.003 and abs(p1[0] - p0[0]) < 0.003 and abs(p1[1] - p0[1]) < 0.003
    assert max(abs(x) for x in dq) > 0.05, "JointState did not reflect the move"
    assert g0 > 0.9 and g1 < 0.1, "the gripper did not close"
    # clipped to the box and to max_ee_speed_mps / control_hz (0.03 m) from the current position
    assert sent[0] <= 0.70 and abs(sent[0] - p1[0]) <= 0.0301


# -- compliant mode (FrankaConfig(control_mode="impedance")) ---------------------------------------

def test_reference_limiting_doctest():
    import doctest

    import robot_rl.drivers.franka as franka

    assert doctest.testmod(franka).failed == 0


def test_reference_limiting_bounds_the_spring_force_and_torque():
    """Random and adversarial targets: |K_p e| <= max_force_n, |K_r r| <= max_torque_nm, the
    direction kept, and a target already inside the bounds passes unchanged."""
    from scipy.spatial.transform import Rotation

    from robot_rl.drivers.franka import limit_reference
    from robot_rl.sim.impedance import ImpedanceConfig

    rng = np.random.default_rng(0)
    for trial in range(500):
        cfg = ImpedanceConfig(translational_stiffness_n_per_m=tuple(rng.uniform(50, 3000, 3)),
                              rotational_stiffness_nm_per_rad=tuple(rng.uniform(5, 300, 3)),
                              max_force_n=float(rng.uniform(1, 29)), max_torque_nm=float(rng.uniform(0.5, 12)))
        p = rng.uniform(-1, 1, 3)
        q = Rotation.random(random_state=trial).as_quat()
        scale = [1e-4, 1e-2, 1.0, 1e3][trial % 4]  # from inside the bound to absurd (1 km away)
        target = p + rng.normal(size=3) * scale
        target_q = (Rotation.from_rotvec(rng.normal(size=3) * min(scale * 30, 3.0)) * Rotation.from_quat(q)).as_quat()
        lp, lq, clipped = limit_reference(p, q, target, target_q, cfg)
        e, e0 = lp - p, target - p
        r = (Rotation.from_quat(lq) * Rotation.from_quat(q).inv()).as_rotvec()
        r0 = (Rotation.from_quat(target_q) * Rotation.from_quat(q).inv()).as_rotvec()
        k_p, k_r = np.asarray(cfg.translational_stiffness_n_per_m), np.asarray(cfg.rotational_stiffness_nm_per_rad)
        assert np.linalg.norm(k_p * e) <= cfg.max_force_n * (1 + 1e-9)
        assert np.linalg.norm(k_r * r) <= cfg.max_torque_nm * (1 + 1e-6)
        assert np.isclose(np.linalg.norm(lq), 1.0)
        inside = np.linalg.norm(k_p * e0) <= cfg.max_force_n and np.linalg.norm(k_r * r0) <= cfg.max_torque_nm
        assert clipped == (not inside)
        if inside:
            assert np.allclose(lp, target) and np.allclose(r, r0, atol=1e-9)
        else:  # pulled straight towards the measured pose, not sideways
            assert np.linalg.norm(np.cross(e, e0)) <= 1e-9 * max(1.0, np.linalg.norm(e0) ** 2) and e @ e0 >= 0
            assert np.linalg.norm(np.cross(r, r0)) <= 1e-6 and r @ r0 >= 0


@pytest.mark.parametrize("bad, match", [
    (dict(impedance=dict(translational_stiffness_n_per_m=(2000.0, 0.0, 2000.0))), r"must be a positive finite number"),
    (dict(impedance=dict(translational_stiffness_n_per_m=(2000.0, 2000.0, 5000.0))), r"exceeds the Franka's limit of 3000"),
    (dict(impedance=dict(rotational_stiffness_nm_per_rad=(150.0, -1.0, 150.0))), r"must be a positive finite number"),
    (dict(impedance=dict(rotational_stiffness_nm_per_rad=(150.0, 150.0, 400.0))), r"exceeds the Franka's limit of 300"),
    (dict(impedance=dict(rotational_stiffness_nm_per_rad=(150.0, 150.0, float("nan")))), r"positive finite"),
    (dict(impedance=dict(max_force_n=0.0)), r"max_force_n must be a positive finite number"),
    (dict(impedance=dict(max_force_n=35.0)), r"max_force_n=35.0 N exceeds 29.4 N"),
    (dict(impedance=dict(max_torque_nm=-1.0)), r"max_torque_nm must be a positive finite number"),
    (dict(impedance=dict(max_torque_nm=40.0)), r"max_torque_nm=40.0 N·m exceeds 12 N·m"),
    (dict(impedance=dict(stiffness=1.0)), r"unknown ImpedanceConfig field"),
    (dict(collision_force_threshold_n=15.0), r"collision thresholds .* must exceed the spring bounds"),
    (dict(max_delta_tau_nm=0.0), r"max_delta_tau_nm must be > 0"),
    (dict(control_mode="torque"), r"control_mode must be one of"),
])
def test_unsafe_compliance_settings_are_refused_before_connecting(bad, match):
    # the host is unreachable on purpose: a ConfigError (not DeviceUnavailableError) proves nothing connected;
    # impedance given as a dict (as from YAML) is validated by the sims' ImpedanceConfig, the one definition
    from robot_rl.drivers.franka import FrankaArm, FrankaConfig
    from robot_rl.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        FrankaArm(FrankaConfig(host="192.0.2.1", **{"control_mode": "impedance", **bad}))


def test_impedance_motion_carries_the_gains_bounds_and_posture():
    """The franky motion object the compliant mode starts (built without a robot)."""
    from robot_rl.drivers.franka import FrankaConfig, impedance_motion
    from robot_rl.sim.impedance import ImpedanceConfig

    cfg = FrankaConfig(max_delta_tau_nm=0.5, impedance=ImpedanceConfig(
        translational_stiffness_n_per_m=(1000.0, 2000.0, 500.0), rotational_stiffness_nm_per_rad=(100.0, 100.0, 50.0),
        max_force_n=10.0, max_torque_nm=5.0))
    m = impedance_motion(cfg)
    k = np.array([1000, 2000, 500, 100, 100, 50.0])
    assert np.allclose(np.diag(m.get_gains().stiffness), k)
    assert np.allclose(np.diag(m.get_gains().damping), 2 * np.sqrt(k))  # damping_ratio 1 of franky's 2 sqrt(K)
    # the 1 kHz reference limiting: |error| <= bound / stiffness per axis
    assert np.allclose(m.params.translational_error_clip, [0.01, 0.005, 0.02])
    assert np.allclose(m.params.rotational_error_clip, [0.05, 0.05, 0.1])
    assert m.params.safety.max_delta_tau == 0.5
    assert all(v is None for v in m.params.force_constraints)  # force_constraints would replace the spring
    assert len(m.params.nullspace_tasks) == 1
    # starts no stiffer than the softest axis, then blends to the per-axis gains
    assert np.allclose(np.diag(m.params.stiffness), [500, 500, 500, 50, 50, 50])
    iso = impedance_motion(FrankaConfig())  # SERL's 2000 N/m, 150 N·m/rad, 20 N, 7.5 N·m
    assert np.allclose(np.diag(iso.params.stiffness), [2000, 2000, 2000, 150, 150, 150])
    assert iso.get_gains().damping is None  # franky's own critical damping 2 sqrt(K)
    assert np.allclose(iso.params.translational_error_clip, 0.01) and np.allclose(iso.params.rotational_error_clip, 0.05)
    damped = impedance_motion(FrankaConfig(impedance=ImpedanceConfig(damping_ratio=1.5)))
    assert np.allclose(np.diag(damped.get_gains().damping), 1.5 * 2 * np.sqrt([2000] * 3 + [150] * 3))


# A franky-sim server (franky-sim's embedded Python API) with a fixed table top under the gripper;
# it prints the MuJoCo contact normal force on the table (N) every 20 ms of sim time.
WALL_SERVER = """
import sys, xml.etree.ElementTree as ET
import mujoco, numpy as np, franky_sim
from franky_sim.mujoco_simulator import MujocoSimulator
table_top_z = float(sys.argv[1])
with MujocoSimulator() as sim:
    sim.add_robot()
    ET.SubElement(sim.worldbody, "geom", name="table", type="box", size="0.3 0.3 0.02",
                  pos=f"0.5 0 {table_top_z - 0.02}")
    with franky_sim.SimulationServer(sim, hostname_candidates=["127.0.0.1"]) as server:
        print("Connect to the server", flush=True)
        m, d = sim.model, sim.data
        table = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "table")
        f6, tick, peak = np.zeros(6), 0, 0.0
        server.running = True
        while True:
            server.run_once()
            total = 0.0
            for i in range(d.ncon):
                if table in (d.contact[i].geom1, d.contact[i].geom2):
                    mujoco.mj_contactForce(m, d, i, f6)
                    total += f6[0]
            peak, tick = max(peak, total), tick + 1
            if tick % 20 == 0:
                print(f"FORCE {d.time:.3f} {total:.3f} {peak:.3f}", flush=True)
                peak = 0.0
"""


@needs_unshare
@needs_franky_sim
def test_impedance_mode_tracks_poses_and_bounds_contact_force_in_franky_sim(tmp_path):
    """franky-sim serves libfranka's torque interface, so franky's 1 kHz Cartesian impedance runs
    end to end: free-space position and orientation tracking, then pressing into a table with
    ever deeper commanded penetration; the force is MuJoCo's contact force on the table."""
    table_z = 0.30  # table top, m (the TCP starts at z ~0.49)
    max_force = 15.0
    (tmp_path / "wall_server.py").write_text(WALL_SERVER)
    sim_python = FRANKY_SIM.parent / "python"
    out = _in_namespace(tmp_path,
        f"{sim_python} wall_server.py {table_z} > sim.log 2>&1 &\n"
        "for i in $(seq 1 120); do grep -q 'Connect to the server' sim.log && break; sleep 0.5; done",
        f"""
        import numpy as np
        from scipy.spatial.transform import Rotation
        from robot_rl.drivers.franka import FrankaArm, FrankaConfig
        from robot_rl.interfaces import ArmCommand
        arm = FrankaArm(FrankaConfig(host="127.0.0.1", realtime=False, control_hz=10, control_mode="impedance",
                                     workspace_low=(0.3, -0.25, 0.0), workspace_high=(0.7, 0.25, 0.6), gripper=False,
                                     impedance=dict(max_force_n={max_force})))
        arm.home()
        s0 = arm.state()
        # free space: 5 cm forward and down, turned 0.3 rad about base z and tilted 0.15 rad about base x
        goal = s0.ee_position + [0.05, 0.0, -0.05]
        goal_q = (Rotation.from_rotvec([0.15, 0.0, 0.3]) * Rotation.from_quat(s0.ee_quaternion)).as_quat()
        for _ in range(40):
            arm.command(ArmCommand(goal, goal_q, 0.0))
        s1 = arm.state()
        angle = (Rotation.from_quat(s1.ee_quaternion) * Rotation.from_quat(goal_q).inv()).magnitude()
        print("FREE", *(s1.ee_position - goal), angle, flush=True)
        above = s1.ee_position.copy()
        above[2] = {table_z} + 0.03
        for _ in range(30):  # approach: 3 cm above the table top
            arm.command(ArmCommand(above, goal_q, 0.0))
        # targets 5 cm and 25 cm below the table top ask for far more than the bound; the middle one
        # 4 mm below where the TCP stopped in contact (the fingertips touch first), for 8 N
        contact_z = None
        for depth in (0.05, None, 0.25):
            target = s1.ee_position.copy()
            target[2] = {table_z} - depth if depth is not None else contact_z - 0.004
            for _ in range(60):
                sent = arm.command(ArmCommand(target, goal_q, 0.0))
            contact_z = arm.state().ee_position[2]
            print("PRESS", target[2], open("sim.log").read().rsplit("FORCE", 1)[1].split()[0], contact_z, flush=True)
        print("COUNTS", arm.reference_limited, arm.reflex_recoveries, flush=True)
        arm.home()
        arm.close()
        """, timeout=240)
    log = (tmp_path / "sim.log").read_text()
    assert "COUNTS" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:] + log[-2000:]
    free = [float(x) for x in out.stdout.split("FREE")[1].split()[:4]]
    print(f"free-space error: {np.round(np.array(free[:3]) * 1000, 2)} mm, {np.degrees(free[3]):.2f} deg")
    assert np.linalg.norm(free[:3]) < 0.003 and np.degrees(free[3]) < 1.5
    # contact force per pressing phase: each phase ends at the sim time printed after it
    forces = np.array([[float(v) for v in line.split()[1:4]] for line in log.splitlines() if line.startswith("FORCE")])
    presses = [[float(v) for v in line.split()[1:4]] for line in out.stdout.splitlines() if line.startswith("PRESS")]
    # franky's dynamics model and franky-sim's differ a little (the hand's gravity): the free-space
    # z error times the stiffness is the force that mismatch adds on top of the spring
    mismatch_n = 2000.0 * abs(free[2])
    assert len(presses) == 3
    for target_z, end, tcp_z in presses:
        settled = forces[(forces[:, 0] > end - 1.0) & (forces[:, 0] <= end), 1]  # the phase's last second
        # the spring stretches from the TCP (which stops above the table: the fingertips touch) to the target
        expected = min(max_force, 2000.0 * (tcp_z - target_z))
        depth = table_z - target_z
        print(f"target at {-depth * 1000:+.1f} mm from the table top, {(tcp_z - target_z) * 1000:.1f} mm below the TCP: "
              f"contact force over the last second "
              f"{settled.min():.2f}-{settled.max():.2f} N, at the end {settled[-1]:.2f} N (spring law {expected:.1f} N, "
              f"bound {max_force} N, model mismatch {mismatch_n:.2f} N)")
        assert len(settled) > 10
        assert settled.max() <= max_force + mismatch_n + 0.2, f"{depth}: {settled.max()} N over the bound"
        assert settled[-1] >= 0.75 * expected, f"{depth}: the arm does not press ({settled[-1]} N)"
    peak = forces[:, 2].max()
    print(f"peak contact force (impact transient included): {peak:.1f} N")
    assert peak < 60.0, "the impact exceeded the collision threshold the compliant mode sets"
    limited, reflexes = (int(v) for v in out.stdout.split("COUNTS")[1].split()[:2])
    assert limited > 0 and reflexes == 0
