"""The ChArUco board scene of :mod:`robot_rl.calibration.sim_board`, in PyBullet.

Same Panda (PyBullet's URDF), table, front and wrist cameras (:class:`~robot_rl.sim.pybullet.camera.PybulletCamera`,
the task scene's poses and fields of view) and the same board mounts: lying on the table for the
wrist camera (eye-in-hand) or carried by the hand in front of the front camera (eye-to-hand). The
board is a textured quad mesh (OBJ written to a temporary folder, texture from
:meth:`ChArucoBoard.image`) rendered by PyBullet's TinyRenderer with flat lighting.

The class offers the interface :func:`robot_rl.calibration.sim_board.render_views` uses
(``set_tcp_pose``, ``tcp_pose``, ``camera_pose``, ``camera``), so the same validation runs on
both engines: a second renderer and a second kinematic model, with their own ground truth.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from robot_rl.sim.kinematics import READY_Q_RAD

from .charuco import ChArucoBoard
from .sim_board import TABLE_BOARD_CENTRE_M

#: TCP <- board (centre of the print, x right, y up, z out of the print) of the hand mount: the print
#: faces TCP +x (the front camera at yaw 0), its "up" along TCP -z; 9 cm ahead and 5 cm behind the TCP.
HAND_BOARD_T_TCP = np.array([[0.0, 0.0, 1.0, 0.09], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, -0.0534], [0.0, 0.0, 0.0, 1.0]])
_TABLE_BOARD_ROT = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # as in sim_board


def _write_board_mesh(directory: Path, board: ChArucoBoard, pixels_per_square: int) -> tuple[Path, Path]:
    """An OBJ quad of the board's size (centred, z = 0, normal +z) with UVs, and its PNG texture."""
    import cv2

    png, obj = directory / "charuco.png", directory / "charuco.obj"
    cv2.imwrite(str(png), board.image(pixels_per_square=pixels_per_square))
    x, y = board.size_m[0] / 2, board.size_m[1] / 2
    # OBJ texture v runs up the image: the print's top-left corner (-x, +y) gets (0, 1)
    obj.write_text("\n".join([
        f"v {-x} {y} 0", f"v {x} {y} 0", f"v {x} {-y} 0", f"v {-x} {-y} 0",
        "vt 0 1", "vt 1 1", "vt 1 0", "vt 0 0", "vn 0 0 1",
        "f 1/1/1 3/3/1 2/2/1", "f 1/1/1 4/4/1 3/3/1", ""]))
    return obj, png


class _SupersampledCamera:
    """``hi``'s frames area-averaged down to ``lo``'s size; ``lo``'s intrinsics, name and pose."""

    def __init__(self, hi, lo) -> None:
        self.hi, self.lo, self.name = hi, lo, lo.name

    @property
    def intrinsics(self):
        return self.lo.intrinsics

    def pose(self):
        return self.lo.pose()

    def read(self):
        import dataclasses

        import cv2

        frame = self.hi.read()
        return dataclasses.replace(frame, rgb=cv2.resize(frame.rgb, (self.lo.width, self.lo.height), interpolation=cv2.INTER_AREA))

    def close(self) -> None:
        self.hi.close(), self.lo.close()


class PybulletBoardScene:
    """The PyBullet Panda scene with a ChArUco board, posed kinematically (see the module doc).

    Args:
        board: the board to draw.
        mount: ``"table"`` or ``"hand"``.
        pixels_per_square: texture resolution of the board.

    Raises:
        ValueError: unknown mount.
    """

    def __init__(self, board: ChArucoBoard, mount: str = "table", pixels_per_square: int = 64):
        import pybullet
        from scipy.spatial.transform import Rotation

        from robot_rl.interfaces import WorkspaceBox
        from robot_rl.sim.pybullet.arm import PybulletArm
        from robot_rl.sim.pybullet.scene import PandaPhysics, SceneConfig

        if mount not in ("table", "hand"):
            raise ValueError(f"mount must be 'table' or 'hand', got {mount!r}")
        self.board, self.mount = board, mount
        self.physics = PandaPhysics(SceneConfig())
        p = self.physics.client
        p.resetBasePositionAndOrientation(self.physics.cube, [2.0, 2.0, -1.0], [0, 0, 0, 1])  # out of the way
        self._tmp = tempfile.TemporaryDirectory(prefix="robot_rl_board_")
        obj, png = _write_board_mesh(Path(self._tmp.name), board, pixels_per_square)
        visual = p.createVisualShape(pybullet.GEOM_MESH, fileName=str(obj), rgbaColor=[1, 1, 1, 1])
        self.board_body = p.createMultiBody(baseMass=0.0, baseVisualShapeIndex=visual, basePosition=[0, 0, -1])
        p.changeVisualShape(self.board_body, -1, textureUniqueId=p.loadTexture(str(png)), rgbaColor=[1, 1, 1, 1])
        # the robot is not drawn (as the MuJoCo scene hides the arm): the wrist camera sees its fingers
        for link in range(-1, p.getNumJoints(self.physics.robot)):
            p.changeVisualShape(self.physics.robot, link, rgbaColor=[1, 1, 1, 0])
        # flat lighting: the texture as printed (the cameras pass these to getCameraImage)
        self.physics.light = {"lightAmbientCoeff": 0.9, "lightDiffuseCoeff": 0.1, "lightSpecularCoeff": 0.0}
        box = WorkspaceBox((0.2, -0.5, 0.0), (0.9, 0.5, 0.8))
        self.arm = PybulletArm(self.physics, box, np.array([0.5, 0.0, 0.3]))
        self._rot = Rotation
        if mount == "table":
            T = np.eye(4)
            T[:3, :3], T[:3, 3] = _TABLE_BOARD_ROT, np.add(TABLE_BOARD_CENTRE_M, (0, 0, 0.001))
            self._place_board(T)
        self.arm._set_arm_q(READY_Q_RAD)
        self._follow()

    def _place_board(self, T: np.ndarray) -> None:
        self.physics.client.resetBasePositionAndOrientation(self.board_body, T[:3, 3].tolist(),
                                                            self._rot.from_matrix(T[:3, :3]).as_quat().tolist())

    def _follow(self) -> None:
        if self.mount == "hand":
            self._place_board(self.tcp_pose() @ HAND_BOARD_T_TCP)

    def camera(self, name: str, height: int = 480, width: int = 640, supersample: int = 2):
        """Camera ``"front"`` or ``"wrist"`` of this scene: a :class:`~robot_rl.sim.pybullet.camera.PybulletCamera`
        rendered at ``supersample`` times the size and area-averaged down, as a real sensor
        integrates light over each pixel (TinyRenderer samples textures at one point per pixel:
        without it the board's edges alias, and corners are 4x less precise than in MuJoCo)."""
        from robot_rl.sim.pybullet.camera import PybulletCamera

        if supersample <= 1:
            return PybulletCamera(self.physics, name, height, width)
        return _SupersampledCamera(PybulletCamera(self.physics, name, height * supersample, width * supersample),
                                   PybulletCamera(self.physics, name, height, width))

    def tcp_pose(self) -> np.ndarray:
        """(4, 4) float64 base <- TCP, metres."""
        pos, rot = self.arm._tcp_pose()
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = rot, pos
        return T

    def camera_pose(self, name: str) -> np.ndarray:
        """(4, 4) float64 base <- camera optical frame (z forward, x right, y down), metres."""
        pos, rot = self.camera(name, 8, 8).pose()
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = rot, pos
        return T

    def board_pose(self) -> np.ndarray:
        """(4, 4) float64 base <- board (centre of the print; x right, y up, z out of the print), metres."""
        pos, quat = self.physics.client.getBasePositionAndOrientation(self.board_body)
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = self._rot.from_quat(quat).as_matrix(), pos
        return T

    def set_tcp_pose(self, target: np.ndarray, iterations: int = 300, tol_m: float = 5e-4, tol_rad: float = 1e-3,
                     restarts: int = 2) -> bool:
        """Move the arm kinematically so the TCP reaches ``target`` ((4, 4) base <- TCP, metres), by
        the arm's damped-least-squares IK from the ready posture (and up to ``restarts`` perturbed
        postures when that stalls); the hand-mounted board follows.
        (The IK's null-space pull limits its accuracy to ~0.1 mm; the pose reached, not the
        target, is what :meth:`tcp_pose` reports and the calibration uses.)

        Returns:
            True when position error < ``tol_m`` and rotation error < ``tol_rad``.
        """
        lo, hi = self.arm._q_low, self.arm._q_high
        rng = np.random.default_rng(0)
        ok = False
        # from the ready posture, then from a few perturbed ones (DLS from one start stalls at joint limits)
        for attempt in range(restarts + 1):
            q = READY_Q_RAD.copy() if attempt == 0 else np.clip(READY_Q_RAD + rng.normal(0.0, 0.5, 7), lo, hi)
            self.arm._set_arm_q(q)
            for _ in range(iterations):
                cur = self.tcp_pose()
                e_pos = np.linalg.norm(target[:3, 3] - cur[:3, 3])
                e_rot = np.linalg.norm(self._rot.from_matrix(target[:3, :3] @ cur[:3, :3].T).as_rotvec())
                if e_pos < tol_m and e_rot < tol_rad:
                    ok = True
                    break
                dq, _ = self.arm._ik_step(target[:3, 3], target[:3, :3])
                q = np.clip(q + dq, lo, hi)
                self.arm._set_arm_q(q)
            if ok:
                break
        self._follow()
        return ok

    def close(self) -> None:
        """Disconnect PyBullet and delete the board files. Idempotent."""
        self.physics.close()
        self._tmp.cleanup()
