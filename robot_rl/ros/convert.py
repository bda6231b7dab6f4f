"""Topic names and conversions between robot_rl's interfaces and ROS 2 messages.

One place defines which topic carries what, so the real nodes, the sim node and
:class:`robot_rl.ros.env.RosRobotEnv` agree (the sim node publishes exactly the real nodes'
topics). Names follow the ecosystem's defaults (``../shared/DESIGN.md``, ROS 2 section):

==========================================  ==============================  =====================================
topic                                       type                            from
==========================================  ==============================  =====================================
``/camera/<cam>/color/image_raw``           sensor_msgs/Image (rgb8)        camera node (realsense2_camera names)
``/camera/<cam>/color/camera_info``         sensor_msgs/CameraInfo          camera node
``/camera/<cam>/aligned_depth_to_color/``   sensor_msgs/Image (16UC1, mm)   camera node (RealSense, optional)
``image_raw``
``/joint_states``                           sensor_msgs/JointState          arm node; last joint ``gripper`` is
                                                                            the opening in [0, 1]
``/arm/ee_pose``                            geometry_msgs/PoseStamped       arm node, TCP in ``base_link``
``/arm/ee_twist``                           geometry_msgs/TwistStamped      arm node, TCP velocity, base frame
``/arm/wrench``                             geometry_msgs/WrenchStamped     arm node, external wrench at the TCP, TCP frame
``/arm/delta_twist_cmds``                   geometry_msgs/TwistStamped      command (MoveIt Servo's name)
``/arm/equilibrium_pose``                   geometry_msgs/PoseStamped       command (franka_ros2's name)
``/arm/gripper_cmd``                        std_msgs/Float64                command: opening in [0, 1]
``/spacenav/twist``                         geometry_msgs/Twist             teleop node (spacenav's names)
``/spacenav/joy``                           sensor_msgs/Joy                 teleop node
``/task/state``                             std_msgs/Float64MultiArray      sim node (privileged, named segments)
``/sim/reset``, ``/sim/reset_done``         std_msgs/Int64MultiArray        reset request / reply (sim):
                                                                            ``[request_id, seed]``
==========================================  ==============================  =====================================

All stamps are wall-clock (``time.time()``) seconds; frames follow REP 105 (``base_link``) and
REP 103 (optical frames ``<cam>_color_optical_frame``: z forward, x right, y down).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from robot_rl.interfaces import tool_yaw_rad
from robot_rl.errors import ConfigError, WireError
from robot_rl.interfaces import ArmCommand, ArmState, CameraIntrinsics, Frame, TeleopCommand
from robot_rl.ros.messages import TYPESTORE
from robot_rl.ros.node import header, stamp_to_seconds

T = TYPESTORE.types

#: Default base frame of poses and twists (REP 105).
BASE_FRAME = "base_link"
#: Name of the extra JointState entry that carries the gripper opening in [0, 1].
GRIPPER_JOINT = "gripper"

JOINT_STATES = "/joint_states"
EE_POSE = "/arm/ee_pose"
EE_TWIST = "/arm/ee_twist"
WRENCH = "/arm/wrench"
#: frame_id of ``/arm/wrench``: the tool centre point, as a wrist force/torque sensor reports its
#: wrench (franka_ros's ``K_F_ext_hat_K`` likewise); the calibration tools use the same name.
TOOL_FRAME = "panda_hand_tcp"
TWIST_CMD = "/arm/delta_twist_cmds"
POSE_CMD = "/arm/equilibrium_pose"
GRIPPER_CMD = "/arm/gripper_cmd"
SPACENAV_TWIST = "/spacenav/twist"
SPACENAV_JOY = "/spacenav/joy"
TASK_STATE = "/task/state"
RESET_REQUEST = "/sim/reset"
RESET_DONE = "/sim/reset_done"
#: Message type of :data:`RESET_REQUEST` and :data:`RESET_DONE`: ``data = [request_id, seed]``.
RESET_TYPE = "std_msgs/msg/Int64MultiArray"


def reset_msg(request_id: int, seed: int) -> Any:
    """``std_msgs/Int64MultiArray`` ``[request_id, seed]`` for ``/sim/reset`` and ``/sim/reset_done``.

    A client repeats a request (same ``request_id``) until answered; the sim resets once per
    ``request_id`` and answers every repeat, so two episodes with the same ``seed`` are two resets.
    """
    return T["std_msgs/msg/Int64MultiArray"](layout=T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0),
                                             data=np.array([int(request_id), int(seed)], np.int64))


def reset_from_msg(msg: Any) -> tuple[int, int]:
    """``(request_id, seed)`` of a :func:`reset_msg`.

    Raises:
        WireError: the message does not hold exactly two integers.
    """
    data = np.asarray(msg.data)
    if data.shape != (2,):
        raise WireError(f"a {RESET_REQUEST} / {RESET_DONE} message holds [request_id, seed], got {data.tolist()!r}.")
    return int(data[0]), int(data[1])


def camera_topics(camera: str) -> dict[str, str]:
    """Topic names of one camera: ``image``, ``info``, ``depth`` (realsense2_camera's layout)."""
    if not camera or not camera.replace("_", "").isalnum():
        raise ConfigError(f"camera name {camera!r} must be letters, digits and '_' (it becomes part of topic names).")
    return {
        "image": f"/camera/{camera}/color/image_raw",
        "info": f"/camera/{camera}/color/camera_info",
        "depth": f"/camera/{camera}/aligned_depth_to_color/image_raw",
    }


def optical_frame(camera: str) -> str:
    """REP 103 optical frame of a camera's colour stream: ``<cam>_color_optical_frame``."""
    return f"{camera}_color_optical_frame"


# --------------------------------------------------------------------------- images

_ENCODINGS = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "mono8": (np.uint8, 1), "rgba8": (np.uint8, 4),
              "bgra8": (np.uint8, 4), "16UC1": (np.uint16, 1), "mono16": (np.uint16, 1), "32FC1": (np.float32, 1)}


def image_msg(array: np.ndarray, stamp_s: float, frame_id: str, encoding: str | None = None) -> Any:
    """``sensor_msgs/Image`` from an ``(H, W, 3) uint8`` RGB or ``(H, W) uint16`` depth (mm) array.

    Raises:
        ConfigError: an unsupported dtype or shape.
    """
    a = np.ascontiguousarray(array)
    if encoding is None:
        if a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3:
            encoding = "rgb8"
        elif a.dtype == np.uint16 and a.ndim == 2:
            encoding = "16UC1"
        elif a.dtype == np.uint8 and a.ndim == 2:
            encoding = "mono8"
        else:
            raise ConfigError(f"cannot publish an image of shape {a.shape} and dtype {a.dtype}; use (H, W, 3) uint8 RGB or (H, W) uint16 depth.")
    h, w = a.shape[:2]
    return T["sensor_msgs/msg/Image"](
        header=header(stamp_s, frame_id), height=h, width=w, encoding=encoding, is_bigendian=0,
        step=w * a.itemsize * (a.shape[2] if a.ndim == 3 else 1), data=a.reshape(-1).view(np.uint8),
    )


def image_to_array(msg: Any) -> np.ndarray:
    """``(H, W, 3) uint8`` RGB (``rgb8``/``bgr8``/``rgba8``/``bgra8``/``mono8`` converted) or ``(H, W)`` for 16-bit and float depth.

    Raises:
        ConfigError: unsupported encoding, big-endian data, or a data length that does not match.
    """
    if msg.encoding not in _ENCODINGS:
        raise ConfigError(f"image encoding {msg.encoding!r} is not supported; publish one of {sorted(_ENCODINGS)}.")
    if msg.is_bigendian and _ENCODINGS[msg.encoding][0] != np.uint8:
        raise ConfigError("big-endian multi-byte images are not supported.")
    dtype, channels = _ENCODINGS[msg.encoding]
    row = msg.width * channels * np.dtype(dtype).itemsize
    data = np.asarray(msg.data, dtype=np.uint8)
    if msg.step < row or data.size != msg.step * msg.height:
        raise ConfigError(f"image data has {data.size} bytes; {msg.height} rows of step {msg.step} (>= {row}) were announced.")
    rows = data.reshape(msg.height, msg.step)[:, :row]
    img = np.ascontiguousarray(rows).view(dtype).reshape(msg.height, msg.width, channels)
    if msg.encoding in ("16UC1", "mono16", "32FC1"):
        return img[:, :, 0]
    if msg.encoding == "mono8":
        return np.repeat(img, 3, axis=2)
    if msg.encoding.startswith("bgr"):
        img = img[:, :, 2::-1]
    return np.ascontiguousarray(img[:, :, :3])


def camera_info_msg(intrinsics: CameraIntrinsics, stamp_s: float, frame_id: str) -> Any:
    """``sensor_msgs/CameraInfo`` (``plumb_bob``, identity R, P = [K | 0]) from intrinsics."""
    K = np.asarray(intrinsics.K, dtype=np.float64).reshape(3, 3)
    P = np.zeros((3, 4))
    P[:, :3] = K
    return T["sensor_msgs/msg/CameraInfo"](
        header=header(stamp_s, frame_id), height=intrinsics.height, width=intrinsics.width,
        distortion_model="plumb_bob", d=np.asarray(intrinsics.D, dtype=np.float64).ravel(), k=K.ravel(),
        r=np.eye(3).ravel(), p=P.ravel(), binning_x=0, binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def intrinsics_from_camera_info(msg: Any) -> CameraIntrinsics:
    """:class:`CameraIntrinsics` from a ``sensor_msgs/CameraInfo``."""
    return CameraIntrinsics(width=int(msg.width), height=int(msg.height), K=np.asarray(msg.k, dtype=np.float64).reshape(3, 3),
                            D=np.asarray(msg.d, dtype=np.float64).copy())


def frame_from_msgs(image: Any, depth: Any | None = None) -> Frame:
    """A :class:`Frame` from an Image (and optional aligned depth Image); stamp from the header."""
    return Frame(rgb=image_to_array(image), stamp=stamp_to_seconds(image.header.stamp),
                 depth=None if depth is None else image_to_array(depth))


# --------------------------------------------------------------------------- arm


def _vec3(v: np.ndarray) -> Any:
    return T["geometry_msgs/msg/Vector3"](x=float(v[0]), y=float(v[1]), z=float(v[2]))


def _twist(v: np.ndarray) -> Any:
    return T["geometry_msgs/msg/Twist"](linear=_vec3(v[:3]), angular=_vec3(v[3:6]))


def _pose(position: np.ndarray, quat_xyzw: np.ndarray) -> Any:
    return T["geometry_msgs/msg/Pose"](
        position=T["geometry_msgs/msg/Point"](x=float(position[0]), y=float(position[1]), z=float(position[2])),
        orientation=T["geometry_msgs/msg/Quaternion"](x=float(quat_xyzw[0]), y=float(quat_xyzw[1]), z=float(quat_xyzw[2]), w=float(quat_xyzw[3])),
    )


def twist_to_array(twist: Any) -> np.ndarray:
    """(6,) float64 ``[vx, vy, vz, wx, wy, wz]`` from a ``geometry_msgs/Twist``."""
    return np.array([twist.linear.x, twist.linear.y, twist.linear.z, twist.angular.x, twist.angular.y, twist.angular.z])


def pose_to_arrays(pose: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(position (3,) m, quaternion (4,) xyzw)`` from a ``geometry_msgs/Pose``."""
    p, q = pose.position, pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])


def arm_state_msgs(state: ArmState, joint_names: list[str], stamp_s: float, base_frame: str = BASE_FRAME,
                   tool_frame: str = TOOL_FRAME) -> dict[str, Any]:
    """The arm node's state messages: ``joint_states``, ``ee_pose``, ``ee_twist``, ``wrench``.

    ``joint_states`` lists ``joint_names`` (positions rad, velocities rad/s) and then the
    :data:`GRIPPER_JOINT` entry whose position is the opening in [0, 1]. All share ``stamp_s``.
    Poses and twists are in ``base_frame``; the wrench (force N, torque N·m about the TCP) is in
    ``tool_frame``, the TCP frame (:meth:`ArmState.wrench_in_tool_frame`), as a wrist F/T sensor
    publishes it.

    Raises:
        ConfigError: ``joint_names`` does not match the number of joints.
    """
    q, dq = np.asarray(state.q, np.float64), np.asarray(state.dq, np.float64)
    if len(joint_names) != q.size:
        raise ConfigError(f"{len(joint_names)} joint names for {q.size} joints.")
    h = header(stamp_s, base_frame)
    tool_wrench = state.wrench_in_tool_frame()
    return {
        "joint_states": T["sensor_msgs/msg/JointState"](
            header=h, name=[*joint_names, GRIPPER_JOINT], position=np.append(q, state.gripper),
            velocity=np.append(dq, 0.0), effort=np.zeros(0)),
        "ee_pose": T["geometry_msgs/msg/PoseStamped"](header=h, pose=_pose(state.ee_position, state.ee_quaternion)),
        "ee_twist": T["geometry_msgs/msg/TwistStamped"](header=h, twist=_twist(state.ee_velocity)),
        "wrench": T["geometry_msgs/msg/WrenchStamped"](header=header(stamp_s, tool_frame), wrench=T["geometry_msgs/msg/Wrench"](
            force=_vec3(tool_wrench[:3]), torque=_vec3(tool_wrench[3:]))),
    }


def arm_state_from_msgs(joint_states: Any, ee_pose: Any, ee_twist: Any | None = None, wrench: Any | None = None) -> ArmState:
    """:class:`ArmState` from the arm node's messages (missing twist or wrench read as zeros).

    The stamp is the joint state's. A wrench whose ``frame_id`` is the pose's frame is taken as
    it is; any other frame_id is read as the TCP frame (what :func:`arm_state_msgs` publishes) and
    rotated into the base frame with the pose's orientation (``ArmState.wrench`` is base-frame).
    Raises ConfigError if the joint state lacks the gripper entry.
    """
    names = list(joint_states.name)
    if not names or names[-1] != GRIPPER_JOINT:
        raise ConfigError(f"JointState has no trailing '{GRIPPER_JOINT}' entry (names {names}); is it from a robot_rl arm node?")
    position, quat = pose_to_arrays(ee_pose.pose)
    twist = twist_to_array(ee_twist.twist) if ee_twist is not None else np.zeros(6)
    w = np.zeros(6) if wrench is None else np.array([wrench.wrench.force.x, wrench.wrench.force.y, wrench.wrench.force.z,
                                                    wrench.wrench.torque.x, wrench.wrench.torque.y, wrench.wrench.torque.z])
    if wrench is not None and wrench.header.frame_id != ee_pose.header.frame_id:  # tool frame -> base frame
        rot = Rotation.from_quat(quat).as_matrix()
        w = np.concatenate([rot @ w[:3], rot @ w[3:]])
    pos = np.asarray(joint_states.position, np.float64)
    vel = np.asarray(joint_states.velocity, np.float64)
    return ArmState(q=pos[:-1].copy(), dq=vel[:-1].copy() if vel.size == pos.size else np.zeros(pos.size - 1),
                    ee_position=position, ee_quaternion=quat, ee_velocity=twist, wrench=w, gripper=float(pos[-1]),
                    stamp=stamp_to_seconds(joint_states.header.stamp))


def pose_command_msg(cmd: ArmCommand, stamp_s: float, base_frame: str = BASE_FRAME) -> Any:
    """``geometry_msgs/PoseStamped`` target of an :class:`ArmCommand` (its position and orientation quaternion)."""
    return T["geometry_msgs/msg/PoseStamped"](header=header(stamp_s, base_frame),
                                               pose=_pose(cmd.ee_target_position, cmd.ee_target_quaternion))


def twist_command_msg(twist: np.ndarray, stamp_s: float, base_frame: str = BASE_FRAME) -> Any:
    """``geometry_msgs/TwistStamped`` of a (6,) EE twist, m/s and rad/s, base frame."""
    return T["geometry_msgs/msg/TwistStamped"](header=header(stamp_s, base_frame), twist=_twist(np.asarray(twist, np.float64)))


def gripper_command_msg(opening: float) -> Any:
    """``std_msgs/Float64`` gripper command: opening in [0, 1] (0 closed)."""
    return T["std_msgs/msg/Float64"](data=float(opening))


def yaw_from_pose_msg(msg: Any) -> float:
    """Tool yaw (rad) of a pose target's orientation (tool pointing down)."""
    return tool_yaw_rad(pose_to_arrays(msg.pose)[1])


# --------------------------------------------------------------------------- teleop

#: ``/spacenav/joy`` button order: spacenav's left and right buttons, then robot_rl's.
JOY_BUTTONS = ("gripper_close", "gripper_open", "engaged", "success", "failure", "reset")


def teleop_msgs(cmd: TeleopCommand, stamp_s: float, max_linear_m_s: float = 1.0, max_angular_rad_s: float = 1.0) -> dict[str, Any]:
    """``/spacenav/twist`` and ``/spacenav/joy`` of a teleop reading.

    ``twist`` is the EE twist (m/s, rad/s). ``joy.axes`` are the twist normalised by
    ``max_linear_m_s`` / ``max_angular_rad_s`` to [-1, 1] (as spacenav's joy), then the gripper
    opening (``-1`` when the command leaves the gripper unchanged); ``joy.buttons`` follow
    :data:`JOY_BUTTONS`.
    """
    tw = np.asarray(cmd.twist, np.float64)
    axes = np.concatenate([np.clip(tw[:3] / max_linear_m_s, -1, 1), np.clip(tw[3:] / max_angular_rad_s, -1, 1),
                           [-1.0 if cmd.gripper is None else float(cmd.gripper)]]).astype(np.float32)
    buttons = np.array([cmd.gripper is not None and cmd.gripper < 0.5, cmd.gripper is not None and cmd.gripper >= 0.5,
                        cmd.engaged, cmd.success, cmd.failure, cmd.reset], dtype=np.int32)
    return {"twist": _twist(tw), "joy": T["sensor_msgs/msg/Joy"](header=header(stamp_s, BASE_FRAME), axes=axes, buttons=buttons)}


def teleop_from_msgs(twist: Any | None, joy: Any | None) -> TeleopCommand:
    """:class:`TeleopCommand` from the teleop node's messages (None: nothing received yet)."""
    tw = np.zeros(6) if twist is None else twist_to_array(twist)
    if joy is None or len(joy.buttons) < len(JOY_BUTTONS):
        return TeleopCommand(twist=tw)
    b = [bool(x) for x in joy.buttons[: len(JOY_BUTTONS)]]
    gripper = float(joy.axes[6]) if len(joy.axes) > 6 and joy.axes[6] >= 0 else None
    return TeleopCommand(twist=tw, gripper=gripper, engaged=b[2], success=b[3], failure=b[4], reset=b[5])


# --------------------------------------------------------------------------- task state


def task_state_msg(stamp_s: float, success: bool, observation: dict[str, np.ndarray], reward_terms: dict[str, float]) -> Any:
    """``std_msgs/Float64MultiArray`` of the sim's privileged task state, as named segments.

    ``layout.dim`` lists segments ``(label, size)`` in order: ``stamp`` (1, seconds), ``success``
    (1), each observation entry ``obs/<name>``, each reward term ``reward/<name>``; ``data`` is
    their concatenation. (``Float64MultiArray`` has no header, hence the stamp segment.)
    """
    dims, data = [("stamp", [stamp_s]), ("success", [float(success)])], []
    dims += [(f"obs/{k}", np.ravel(v)) for k, v in observation.items()]
    dims += [(f"reward/{k}", [v]) for k, v in reward_terms.items()]
    layout_dims = []
    for label, values in dims:
        data.extend(float(x) for x in values)
        layout_dims.append(T["std_msgs/msg/MultiArrayDimension"](label=label, size=len(values), stride=len(values)))
    return T["std_msgs/msg/Float64MultiArray"](layout=T["std_msgs/msg/MultiArrayLayout"](dim=layout_dims, data_offset=0),
                                               data=np.asarray(data, np.float64))


def task_state_from_msg(msg: Any) -> tuple[float, bool, dict[str, np.ndarray], dict[str, float]]:
    """``(stamp_s, success, observation, reward_terms)`` from :func:`task_state_msg`'s message.

    Raises:
        ConfigError: the segments do not add up to the data length.
    """
    data = np.asarray(msg.data, np.float64)
    sizes = [int(d.size) for d in msg.layout.dim]
    if sum(sizes) != data.size:
        raise ConfigError(f"task state segments sum to {sum(sizes)} values, data has {data.size}.")
    stamp, success, obs, terms, i = 0.0, False, {}, {}, 0
    for d, n in zip(msg.layout.dim, sizes):
        seg = data[i:i + n]
        i += n
        if d.label == "stamp":
            stamp = float(seg[0])
        elif d.label == "success":
            success = bool(seg[0] > 0.5)
        elif d.label.startswith("obs/"):
            obs[d.label[4:]] = seg.astype(np.float32)
        elif d.label.startswith("reward/"):
            terms[d.label[7:]] = float(seg[0])
    return stamp, success, obs, terms
