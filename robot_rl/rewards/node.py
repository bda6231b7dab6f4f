"""ROS 2 reward node: scores the latest camera frames with a reward model and publishes the reward.

Lets the reward model (a VLM on a GPU box, say) run on another machine than the actor. The node
subscribes the colour image topic of every camera the model reads
(``/camera/<name>/color/image_raw``, realsense2_camera's layout), keeps the newest frame of each,
and at ``rate_hz`` — when at least one camera has a frame it has not scored yet and every camera
has one younger than ``max_age_s`` — computes one reward for the set (all cameras in one batch,
see :meth:`RewardModel.rewards`) and publishes:

* ``/reward`` (``std_msgs/Float64``): the model's reward;
* ``/reward/success`` (``std_msgs/Bool``): the model's success verdict (e.g. the VLM threshold).

Run::

    python -m robot_rl.rewards.node --ros-args -p model_config:='{"kind": "vlm", "goal_prompts": [...], ...}'
    python -m robot_rl.rewards.node --ros-args -p model_config_file:=run/reward.json

``model_config`` is what :meth:`RewardModel.config` returns (a training run saves it with its
checkpoint). The model loads in ``on_configure``, so a missing weights file leaves the node
unconfigured with the error logged, and the process exits with code 1.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from robot_rl.errors import ConfigError
from robot_rl.rewards.base import RewardModel
from robot_rl.rewards.selection import load_reward_model
from robot_rl.ros.convert import camera_topics, image_to_array
from robot_rl.ros.node import QOS_PRESETS, LifecycleNode, QoSProfile, parse_ros_args, run_node

class RewardNode(LifecycleNode):
    """Publishes a reward model's reward and success for the newest frames of its cameras.

    Args:
        argv: command line (``--ros-args -p model_config:='{...}'``).
        model: an already built model (in-process use); ``model_config`` is then ignored.
        **kwargs: passed to :class:`~robot_rl.ros.node.Node` (``parameter_overrides``, ``backend``...).

    Raises:
        ConfigError: invalid parameters (rate <= 0, neither model_config nor model_config_file).
    """

    def __init__(self, argv: Sequence[str] = (), model: RewardModel | None = None, **kwargs: Any) -> None:
        # `-p model_config:='{"kind": ...}'` parses as a YAML map on the command line; the parameter is its JSON text.
        given = parse_ros_args(argv).parameters
        if isinstance(given.get("model_config"), dict):
            kwargs["parameter_overrides"] = {"model_config": json.dumps(given["model_config"]),
                                             **(kwargs.get("parameter_overrides") or {})}
        super().__init__("reward", argv=argv, **kwargs)
        d = self.declare_parameter
        self.model_config = d("model_config", "", "reward model settings as JSON (RewardModel.config(): kind, ...)")
        self.model_config_file = d("model_config_file", "", "JSON or YAML file with the reward model settings (alternative to model_config)")
        self.rate_hz = d("rate_hz", 10.0, "how often the newest frames are scored (at most; only new frames are scored)", units="Hz")
        self.max_age_s = d("max_age_s", 1.0, "frames older than this (receive time) are not scored", units="s")
        self.reward_topic = d("reward_topic", "/reward", "std_msgs/Float64 reward topic")
        self.success_topic = d("success_topic", "/reward/success", "std_msgs/Bool success topic")
        self.image_qos = d("image_qos", "sensor", "image subscription QoS: 'sensor' (best effort, matches any camera) or "
                           "'default' (reliable)", choices=("sensor", "default"))
        self.publish_qos_depth = d("publish_qos_depth", 10, "KEEP_LAST depth of the reliable reward publishers", units="messages")
        if not self.rate_hz > 0:
            raise ConfigError(f"rate_hz must be positive, got {self.rate_hz} Hz.")
        if model is None and not (self.model_config or self.model_config_file):
            raise ConfigError("the reward node needs -p model_config:='<json>' (a RewardModel.config() dict) "
                              "or -p model_config_file:=<path.json|yaml>.")
        self.model = model
        qos = QoSProfile(self.publish_qos_depth, True)
        self.reward_pub = self.create_publisher("std_msgs/msg/Float64", self.reward_topic, qos)
        self.success_pub = self.create_publisher("std_msgs/msg/Bool", self.success_topic, qos)
        self.latest: dict[str, tuple[np.ndarray, float]] = {}
        self._scored: dict[str, float] = {}
        self._subs: list[Any] = []
        self.published = 0
        self.last_latency_s = 0.0

    def _config(self) -> dict[str, Any]:
        if self.model_config:
            try:
                cfg = json.loads(self.model_config)
            except json.JSONDecodeError as e:
                raise ConfigError(f"model_config is not valid JSON ({e}); quote it: -p model_config:='{{\"kind\": \"vlm\", ...}}'.") from None
        else:
            path = Path(self.model_config_file).expanduser()
            if not path.is_file():
                raise ConfigError(f"model_config_file {path} does not exist.")
            cfg = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
            if isinstance(cfg, dict) and cfg.get("path") and not Path(cfg["path"]).is_absolute():
                cfg["path"] = str(path.parent / cfg["path"])  # a run's reward.json names its reward_model/ relatively
        if not isinstance(cfg, dict):
            raise ConfigError(f"the reward model config must be a mapping with a 'kind', got {type(cfg).__name__}.")
        return cfg

    def on_configure(self) -> None:
        """Build the model (loads weights) and subscribe its cameras' image topics."""
        if self.model is None:
            self.model = load_reward_model(self._config())
        qos = QOS_PRESETS[self.image_qos]
        for cam in self.model.cameras:
            topic = camera_topics(cam)["image"]
            self._subs.append(self.create_subscription("sensor_msgs/msg/Image", topic, lambda msg, c=cam: self._on_image(c, msg), qos))
        self.get_logger().info(f"{self.model.kind} reward for cameras {list(self.model.cameras)} -> {self.reward_topic}, {self.success_topic}")

    def on_activate(self) -> None:
        """Start scoring at ``rate_hz``."""
        self.start_work_timer(1.0 / self.rate_hz, self._tick)

    def on_deactivate(self) -> None:
        """Stop scoring (frames keep arriving)."""
        self.stop_work_timer()

    def on_cleanup(self) -> None:
        """Drop subscriptions and frames."""
        for sub in self._subs:
            sub.destroy()
        self._subs, self.latest, self._scored = [], {}, {}

    def _on_image(self, camera: str, msg: Any) -> None:
        try:
            self.latest[camera] = (image_to_array(msg), time.monotonic())
        except ConfigError as e:
            self.get_logger().warning(f"camera {camera}: {e}")

    def _tick(self) -> None:
        model = self.model
        now = time.monotonic()
        if model is None or any(c not in self.latest for c in model.cameras):
            return
        if all(self._scored.get(c) == self.latest[c][1] for c in model.cameras):
            return  # nothing new
        if any(now - self.latest[c][1] > self.max_age_s for c in model.cameras):
            return
        batch = {c: self.latest[c][0][None] for c in model.cameras}
        start = time.perf_counter()
        rewards = model.rewards(batch)
        success = model.is_success(rewards)
        self.last_latency_s = time.perf_counter() - start
        for c in model.cameras:
            self._scored[c] = self.latest[c][1]
        self.reward_pub.publish(self.msg("std_msgs/msg/Float64", data=float(rewards[0])))
        self.success_pub.publish(self.msg("std_msgs/msg/Bool", data=bool(success[0])))
        self.published += 1


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``robot_rl_reward_node``: run the reward node until SIGINT/SIGTERM.
    Returns 0, or 1 if the model could not be built (e.g. its weights are missing)."""
    return run_node(lambda args: RewardNode(args), argv)


if __name__ == "__main__":
    sys.exit(main())
