"""The Franka backend (drivers/franka.py) through franky-control, against franky-sim.

franky-sim (PyPI) is a MuJoCo simulator that speaks libfranka's network protocol; it binds
0.0.0.0 and libfranka's ports are fixed, so simulator and client run together inside a private
network namespace (``unshare -n``, loopback only). It lives in ``.venv-franky-sim`` (made by
``scripts/setup_franky_sim.sh``, which CI runs) because it pins its own mujoco.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

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


pytestmark = pytest.mark.skipif(not _can_unshare(), reason="needs `unshare -n` (root or user namespaces)")


def test_missing_robot_is_a_clear_error_within_seconds():
    t0 = time.monotonic()
    with pytest.raises(DeviceUnavailableError, match="no Franka control interface"):
        from robot_rl.drivers.franka import FrankaArm, FrankaConfig

        FrankaArm(FrankaConfig(host="127.0.0.1", realtime=False, connect_timeout_s=2.0))
    assert time.monotonic() - t0 < 5


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


@pytest.mark.skipif(not FRANKY_SIM.exists(), reason=f"franky-sim not found at {FRANKY_SIM}: bash scripts/setup_franky_sim.sh")
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
