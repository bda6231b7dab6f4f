"""A ChArUco board in the MuJoCo Panda scene, for validating calibration against ground truth.

:func:`build_board_scene` compiles the task scene's Panda (with its wrist camera), table, light
and front camera (same :class:`~robot_rl.sim.mujoco.scene.SceneConfig` poses and fields of view)
plus a textured ChArUco board, either lying on the table (seen by the wrist camera: eye-in-hand)
or mounted on the hand (seen by the static front camera: eye-to-hand). The tasks are untouched.

The sim arm's ``ArmCommand`` only moves position + yaw with the tool pointing down, which cannot
give the tilted poses hand-eye calibration needs; :meth:`BoardScene.set_tcp_pose` therefore
solves the arm's inverse kinematics (damped least squares on the TCP site Jacobian) and sets the
joint positions directly (kinematic posing, no dynamics) — as a real arm would move to each pose
and stop before the image is taken.

Ground truth: :meth:`BoardScene.camera_pose` (base <- camera optical frame, from MuJoCo) and
:meth:`BoardScene.tcp_pose` (base <- TCP, the frame ``Arm.state()`` reports).
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import warnings

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from robot_rl.sim.kinematics import READY_Q_RAD, pinhole_intrinsics
from robot_rl.sim.mujoco.camera import MujocoCamera
from robot_rl.sim.mujoco.scene import (ARM_JOINTS, FRONT_CAMERA, TCP_SITE, SceneConfig, _build_panda_spec,
                                       _look_at_quat)

from .charuco import ChArucoBoard

BOARD_BODY = "charuco_board"
_BOARD_THICKNESS_M = 0.003

#: Board on the table for the wrist camera: centre (m, base frame), board x along base -y, y along base -x.
TABLE_BOARD_CENTRE_M = (0.5, 0.0, 0.0)
#: Board on the hand for the front camera: centre in the hand frame (m); its printed side faces hand +x.
HAND_BOARD_CENTRE_M = (0.09, 0.0, 0.05)


def _add_board(spec: mujoco.MjSpec, parent: mujoco.MjsBody, board: ChArucoBoard, pos, quat,
               pixels_per_square: int) -> None:
    """A thin box mesh whose front face (+z of the board body, the printed side) carries the board texture."""
    img = board.image(pixels_per_square=pixels_per_square)
    h, w = img.shape
    tex = spec.add_texture(name="charuco", type=mujoco.mjtTexture.mjTEXTURE_2D, width=w, height=h, nchannel=3)
    tex.data = np.repeat(img[:, :, None], 3, axis=2).tobytes()
    mat = spec.add_material(name="charuco", emission=0.6, specular=0.0, shininess=0.0, reflectance=0.0)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "charuco"
    bw, bh = board.size_m
    # Body frame: origin at the board centre, x right, y up (as seen from the printed side), z
    # out of the print. Vertices 0-3: printed face; texture u right, v down the image.
    x, y, t = bw / 2, bh / 2, _BOARD_THICKNESS_M
    verts = np.array([[-x, y, 0], [x, y, 0], [x, -y, 0], [-x, -y, 0],
                      [-x, y, -t], [x, y, -t], [x, -y, -t], [-x, -y, -t]], dtype=np.float64)
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]] * 2, dtype=np.float64)
    faces = [0, 2, 1, 0, 3, 2, 4, 5, 6, 4, 6, 7, 0, 1, 5, 0, 5, 4, 1, 2, 6, 1, 6, 5, 2, 3, 7, 2, 7, 6, 3, 0, 4, 3, 4, 7]
    mesh = spec.add_mesh(name="charuco_board")
    mesh.uservert = verts.ravel().tolist()
    mesh.usertexcoord = uv.ravel().tolist()
    mesh.userface = faces
    body = parent.add_body(name=BOARD_BODY, pos=list(pos), quat=list(quat))
    body.add_geom(name=BOARD_BODY, type=mujoco.mjtGeom.mjGEOM_MESH, meshname="charuco_board", material="charuco",
                  contype=0, conaffinity=0, mass=0.01, group=0)


class BoardScene:
    """The Panda, table, cameras and a ChArUco board; posed kinematically.

    Provides ``model``, ``data`` and ``renderer(height, width)``, so
    :class:`~robot_rl.sim.mujoco.camera.MujocoCamera` renders it like the task scene.

    Args:
        board: the board to draw.
        mount: ``"table"`` (board on the table, for the wrist camera) or ``"hand"`` (board on the
            hand facing the front camera).
        config: scene geometry (cameras, time step); the task scene's defaults if None.
        pixels_per_square: texture resolution of the board.
    """

    def __init__(self, board: ChArucoBoard, mount: str = "table", config: SceneConfig | None = None,
                 pixels_per_square: int = 64):
        if mount not in ("table", "hand"):
            raise ValueError(f"mount must be 'table' or 'hand', got {mount!r}")
        self.config = cfg = config if config is not None else SceneConfig()
        self.board, self.mount = board, mount
        spec = _build_panda_spec(cfg)
        spec.visual.global_.offwidth = spec.visual.global_.offheight = 1280
        spec.visual.quality.shadowsize = 0
        spec.visual.headlight.ambient = [0.3, 0.3, 0.3]
        spec.visual.headlight.diffuse = [0.4, 0.4, 0.4]
        world = spec.worldbody
        world.add_light(name="top", pos=[0.5, 0.0, 1.5], dir=[0.0, 0.0, -1.0], castshadow=False, diffuse=[0.5] * 3)
        world.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.65, 0.6, 0.025], pos=[0.35, 0.0, -0.025],
                       rgba=[0.55, 0.42, 0.3, 1.0], contype=0, conaffinity=0)
        front_pos = np.array(cfg.front_camera_position_m)
        world.add_camera(name=FRONT_CAMERA, pos=front_pos, fovy=cfg.front_camera_fovy_deg,
                         quat=_look_at_quat(front_pos, np.array(cfg.front_camera_lookat_m)))
        if mount == "table":
            # printed side up (+z), board x (right in the print) along base -y, up in the print along base +x
            rot = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
            quat = Rotation.from_matrix(rot).as_quat(scalar_first=True)  # MuJoCo quaternions are wxyz
            _add_board(spec, world, board, np.add(TABLE_BOARD_CENTRE_M, (0, 0, 0.001)), quat, pixels_per_square)
        else:
            # printed side facing hand +x (the front camera at yaw 0), print "up" along hand -z (up in the world)
            rot = np.stack([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]], axis=1)
            quat = Rotation.from_matrix(rot).as_quat(scalar_first=True)  # MuJoCo quaternions are wxyz
            _add_board(spec, spec.body("panda_hand"), board, HAND_BOARD_CENTRE_M, quat, pixels_per_square)
        spec.option.timestep = cfg.sim_dt_s
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*texture coordinate.*")
            self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.arm_qpos_adr = np.array([m.jnt_qposadr[m.joint(j).id] for j in ARM_JOINTS])
        self.arm_dof_adr = np.array([m.jnt_dofadr[m.joint(j).id] for j in ARM_JOINTS])
        self.tcp_site_id = m.site(TCP_SITE).id
        self.data.qpos[self.arm_qpos_adr] = READY_Q_RAD
        mujoco.mj_forward(m, self.data)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}

    def renderer(self, height: int, width: int) -> mujoco.Renderer:
        """A shared offscreen renderer of ``height`` x ``width`` pixels (shadows, reflections off)."""
        key = (height, width)
        if key not in self._renderers:
            r = mujoco.Renderer(self.model, height=height, width=width)
            r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            r.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
            self._renderers[key] = r
        return self._renderers[key]

    def camera(self, name: str, height: int = 480, width: int = 640) -> MujocoCamera:
        """A :class:`MujocoCamera` (``"front"`` or ``"wrist"``) of this scene; K from :func:`pinhole_intrinsics`."""
        return MujocoCamera(self, name, height=height, width=width)  # type: ignore[arg-type]

    def tcp_pose(self) -> np.ndarray:
        """(4, 4) float64 base <- TCP (the EE frame ``Arm.state()`` reports), metres."""
        T = np.eye(4)
        T[:3, :3] = self.data.site_xmat[self.tcp_site_id].reshape(3, 3)
        T[:3, 3] = self.data.site_xpos[self.tcp_site_id]
        return T

    def camera_pose(self, name: str) -> np.ndarray:
        """(4, 4) float64 base <- camera optical frame (z forward, x right, y down), metres."""
        cid = self.model.camera(name).id
        T = np.eye(4)
        T[:3, :3] = self.data.cam_xmat[cid].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        T[:3, 3] = self.data.cam_xpos[cid]
        return T

    def board_pose(self) -> np.ndarray:
        """(4, 4) float64 base <- board body (centre of the print; x right, y up, z out of the print), metres."""
        bid = self.model.body(BOARD_BODY).id
        T = np.eye(4)
        T[:3, :3] = self.data.xmat[bid].reshape(3, 3)
        T[:3, 3] = self.data.xpos[bid]
        return T

    def set_tcp_pose(self, target: np.ndarray, iterations: int = 200, tol_m: float = 1e-5) -> bool:
        """Move the arm kinematically so the TCP reaches ``target``.

        Damped-least-squares IK (Wampler 1986; Buss 2004, "Introduction to Inverse Kinematics
        with Jacobian Transpose, Pseudoinverse and Damped Least Squares methods") on the TCP
        site, starting from the ready posture, joints clipped to their limits.

        Args:
            target: (4, 4) base <- TCP, metres.

        Returns:
            True when position error < ``tol_m`` and rotation error < 1e-4 rad.
        """
        m, d = self.model, self.data
        d.qpos[self.arm_qpos_adr] = READY_Q_RAD
        lo, hi = m.jnt_range[[m.joint(j).id for j in ARM_JOINTS]].T
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        ok = False
        for _ in range(iterations):
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            cur = self.tcp_pose()
            e_pos = target[:3, 3] - cur[:3, 3]
            err_rot = Rotation.from_matrix(target[:3, :3] @ cur[:3, :3].T).as_rotvec()  # base frame
            if np.linalg.norm(e_pos) < tol_m and np.linalg.norm(err_rot) < 1e-4:
                ok = True
                break
            mujoco.mj_jacSite(m, d, jacp, jacr, self.tcp_site_id)
            J = np.vstack([jacp, jacr])[:, self.arm_dof_adr]
            e = np.concatenate([e_pos, err_rot])
            dq = J.T @ np.linalg.solve(J @ J.T + 1e-4 * np.eye(6), e)
            q = d.qpos[self.arm_qpos_adr] + dq
            d.qpos[self.arm_qpos_adr] = np.clip(q, lo, hi)
        mujoco.mj_forward(m, d)
        return ok

    def close(self) -> None:
        """Free the renderers (GL contexts). Idempotent."""
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()


__all__ = ["BoardScene", "BOARD_BODY", "pinhole_intrinsics"]


def render_views(scene: BoardScene, camera_name: str, sensor_poses: list[np.ndarray], tcp_T_sensor: np.ndarray,
                 height: int = 480, width: int = 640, pixel_noise_std: float = 0.0,
                 seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Pose the arm for each sensor pose and render one camera: the data a calibration records.

    Args:
        scene: the scene (:class:`BoardScene`, or PyBullet's
            :class:`~robot_rl.calibration.sim_board_pybullet.PybulletBoardScene`).
        camera_name: ``"wrist"`` or ``"front"``.
        sensor_poses: (4, 4) base <- sensor poses (camera for eye-in-hand, board for eye-to-hand),
            e.g. from :func:`~robot_rl.calibration.hand_eye.sample_look_at_poses`.
        tcp_T_sensor: (4, 4) nominal TCP <- sensor mount, to turn them into TCP poses.
        pixel_noise_std: standard deviation of Gaussian noise added to every pixel, grey levels.
        seed: noise seed.

    Returns:
        ``(images, tcp_poses)``: (H, W, 3) uint8 RGB frames and (4, 4) base <- TCP poses the arm
        reached, for the poses whose IK converged (unreachable ones are skipped).
    """
    from robot_rl.sim.mujoco.scene import ARM_VISUAL_GROUP

    if isinstance(scene, BoardScene):
        cam = MujocoCamera(scene, camera_name, height=height, width=width,  # type: ignore[arg-type]
                           hidden_geom_groups=(ARM_VISUAL_GROUP,))
    else:  # another engine's board scene (e.g. sim_board_pybullet.PybulletBoardScene)
        cam = scene.camera(camera_name, height, width)
    inv = np.linalg.inv(tcp_T_sensor)
    rng = np.random.default_rng(seed)
    images, tcps = [], []
    for pose in sensor_poses:
        if not scene.set_tcp_pose(pose @ inv):
            continue
        rgb = cam.read().rgb
        if pixel_noise_std > 0:
            rgb = np.clip(rgb + rng.normal(0.0, pixel_noise_std, rgb.shape), 0, 255).astype(np.uint8)
        images.append(rgb)
        tcps.append(scene.tcp_pose())
    return images, tcps
