"""The operator's live view: what the actor sees and does, streamed to Rerun (https://rerun.io).

Why Rerun: it is the visualiser robot-learning tools already use (LeRobot logs to it), it ships a
native and a web viewer, runs offline, reads MCAP bags natively, and its data can be read back
with its own Python API (``rerun.chunk.RrdReader``), which the tests do. Install it with
``pip install -e .[view]``; it is imported only when a view is asked for.

What is logged (entity paths; time lines ``step`` = the actor's step ID, ``episode``):

* ``/camera/<name>``: every camera image the actor acted on (every ``every_frames``-th step);
* ``/world/ee``: the end-effector position (m, base frame) as a point coloured by who acted
  (orange: human, blue: policy); the 3-D view shows the last ``TRAIL_STEPS`` steps, so the
  points draw the trajectory. ``/world/action``: the commanded translation as an arrow at the EE
  (with the camera frames: every ``every_frames``-th step).
  Only for envs whose state starts with robot_rl's proprioception (``state_layout`` with
  ``ee_position``); generic gymnasium envs skip the 3-D part.
* ``/step/action/policy`` or ``/step/action/human``: the executed action (A,) in [-1, 1], one
  series per entry, under the name of who acted;
* ``/step/reward``, ``/step/intervention`` (0/1), ``/step/is_success`` (the reward model's verdict
  with a reward model), ``/step/success_prob`` (only when the env's ``info`` has
  ``success_probability``), ``/step/q`` (mean over the critic ensemble of Q(s, a) for the executed
  action; only where a critic is in the process, see :func:`critic_q_value`);
* ``/episode/return``, ``/episode/success``, ``/episode/intervention_rate`` at each episode end,
  and ``/log`` text events (take-overs, episode summaries).

Live viewing connects to a viewer the user starts (``rerun``, or ``rerun --serve-web --bind
127.0.0.1`` for a browser) at ``--view-target`` (default :data:`DEFAULT_VIEWER_URL`); a target
ending in ``.rrd`` writes a file instead. If no viewer listens, Rerun drops the data with a warning:
the control loop never waits for it.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import tyro

from robot_rl.errors import ConfigError

#: A Rerun viewer's default gRPC address on this machine (``rerun`` listens there).
DEFAULT_VIEWER_URL = "rerun+http://127.0.0.1:9876/proxy"
#: Colour of steps where a human (teleop) acted, RGB.
HUMAN_RGB = (255, 140, 0)
#: Colour of steps where the policy acted, RGB.
POLICY_RGB = (30, 144, 255)
#: Steps of EE trajectory the 3-D view shows behind the time cursor.
TRAIL_STEPS = 400
#: Arrow length (m) drawn for a full-scale (1.0) translation action.
ACTION_ARROW_M = 0.05


def import_rerun() -> Any:
    """The ``rerun`` module.

    Raises:
        ConfigError: rerun-sdk is not installed.
    """
    try:
        import rerun as rr
        import rerun.blueprint
    except ImportError as e:
        raise ConfigError(f"the view needs the Rerun SDK, which is not installed ({e}); install it with "
                          "`pip install -e .[view]` (or `pip install rerun-sdk`), or run without --view") from e
    return rr


def blueprint(cameras: Sequence[str]) -> Any:
    """The default layout: cameras stacked on the left, the EE trajectory in the middle, the
    step and episode time series and the event log on the right."""
    import rerun.blueprint as rrb

    trail = rrb.VisibleTimeRange("step", start=rrb.TimeRangeBoundary.cursor_relative(seq=-TRAIL_STEPS),
                                 end=rrb.TimeRangeBoundary.cursor_relative())
    left = [rrb.Spatial2DView(origin=f"/camera/{c}", name=c) for c in cameras]
    right = rrb.Vertical(rrb.TimeSeriesView(origin="/step", name="action / reward / Q / intervention"),
                         rrb.TimeSeriesView(origin="/episode", name="episodes"),
                         rrb.TextLogView(origin="/log", name="events"))
    views = ([rrb.Vertical(*left)] if left else []) + [
        rrb.Spatial3DView(origin="/world", name="EE trajectory", time_ranges=trail), right]
    return rrb.Blueprint(rrb.Horizontal(*views), rrb.TimePanel(timeline="step", expanded=False), collapse_panels=True)


def ee_position_slice(env: Any = None, env_id: str | None = None) -> slice | None:
    """Where the EE position (3,) (m, base frame) sits in the state vector, or None.

    Live: from a robot_rl env's ``state_layout`` (:class:`robot_rl.env.RobotEnv`). Recorded data:
    every ``robot_rl/`` env ID starts its state with :data:`robot_rl.env.PROPRIO_LAYOUT`.
    """
    layout = getattr(getattr(env, "unwrapped", None), "state_layout", None) if env is not None else None
    if layout is None:
        return slice(0, 3) if env_id and env_id.startswith("robot_rl/") else None
    offset = 0
    for name, size in layout:
        if name == "ee_position":
            return slice(offset, offset + size)
        offset += size
    return None


def critic_q_value(agent: Any) -> Callable[[np.ndarray, dict[str, np.ndarray], np.ndarray], float]:
    """Q(s, a) of a learner's agent (mean over its critic ensemble), for :attr:`ActorLoop.q_value
    <robot_rl.actor.ActorLoop>` where the learner runs in the same process (``robot-rl train``).

    The returned function takes the state (S,) float32, images camera -> (H, W, 3) uint8 and the
    executed action (A,) float32 in [-1, 1], and returns a float. It uses no RNG and does not
    train; a separate actor process has no critic and logs no Q.
    """
    import torch

    from robot_rl.batch import Obs

    def q_value(state: np.ndarray, images: dict[str, np.ndarray], action: np.ndarray) -> float:
        with torch.no_grad():
            obs = Obs(torch.as_tensor(state)[None], {k: torch.as_tensor(v)[None] for k, v in images.items()})
            feats = agent.features(obs.to(agent.device))
            a = torch.as_tensor(action, dtype=torch.float32, device=agent.device)[None]
            return float(agent.critic(torch.cat([feats, a], 1)).mean())

    return q_value


def _disconnect(rec: Any) -> None:
    rec.flush()
    rec.disconnect()


class LiveView:
    """Logs steps and episodes of one actor (or evaluation) to a Rerun viewer or an .rrd file.

    Args:
        target: a viewer's gRPC URL (``rerun+http://HOST:PORT/proxy``) or a path ending in ``.rrd``.
        cameras: camera names (for the layout).
        every_frames: log camera images every N-th step only (images cost most of the logging time).
        ee_slice: where the EE position (3,) sits in the state vector (:func:`ee_position_slice`);
            None: no 3-D view.
        recording_id: Rerun's recording ID (default: a fresh UUID).

    Raises:
        ConfigError: rerun-sdk is missing, ``every_frames`` < 1, or the target is neither.
    """

    def __init__(self, target: str | Path, cameras: Sequence[str] = (), every_frames: int = 1,
                 ee_slice: slice | None = None, recording_id: str | None = None) -> None:
        if every_frames < 1:
            raise ConfigError(f"--view-every-frames must be >= 1 (1 logs every camera frame), got {every_frames}")
        check_view_target(target)
        rr = self.rr = import_rerun()
        self.every_frames, self.ee_slice = every_frames, ee_slice
        self.rec = rr.RecordingStream("robot_rl", recording_id=recording_id or str(uuid.uuid4()))
        bp = blueprint(list(cameras))
        if str(target).endswith(".rrd"):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            self.rec.save(str(target), default_blueprint=bp)
        else:
            self.rec.connect_grpc(str(target), default_blueprint=bp)
        self._finalizer = weakref.finalize(self, _disconnect, self.rec)
        log = self.rec.log
        log("/world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
        log("/step/action/policy", rr.SeriesLines(colors=POLICY_RGB), static=True)
        log("/step/action/human", rr.SeriesPoints(colors=HUMAN_RGB, marker_sizes=2.0), static=True)
        log("/step/reward", rr.SeriesLines(colors=(0, 170, 0), names="reward"), static=True)
        log("/step/intervention", rr.SeriesPoints(colors=HUMAN_RGB, names="intervention", marker_sizes=2.0), static=True)
        log("/step/q", rr.SeriesLines(colors=(0, 0, 0), names="Q(s, a)"), static=True)
        log("/step/success_prob", rr.SeriesLines(colors=(170, 0, 170), names="P(success)"), static=True)
        self._was_human = False
        # colours built once: converting them is most of the cost of a Points3D / Arrows3D per step
        self._ee_style = {who: rr.Points3D.from_fields(colors=[rgb], radii=0.004)
                          for who, rgb in ((True, HUMAN_RGB), (False, POLICY_RGB))}
        self._arrow_style = {who: rr.Arrows3D.from_fields(colors=[rgb]) for who, rgb in ((True, HUMAN_RGB), (False, POLICY_RGB))}

    def log_step(self, step: int, images: dict[str, np.ndarray], action: np.ndarray, intervention: bool,
                 reward: float, state: np.ndarray | None = None, is_success: bool | None = None,
                 success_prob: float | None = None, q_value: float | None = None, episode: int | None = None) -> None:
        """Log one step at time ``step``.

        Args:
            step: the actor's step ID (the ``step`` time line).
            images: camera -> (H, W, 3) uint8, what the actor acted on.
            action: (A,) float32 executed action in [-1, 1]; ``intervention``: a human executed it.
            reward: the step's reward.
            state: (S,) float32 state vector (the EE position is read from it with ``ee_slice``).
            is_success / success_prob / q_value: logged when not None.
            episode: the episode number (its own time line).
        """
        rr, rec = self.rr, self.rec
        rec.set_time("step", sequence=step)
        if episode is not None:
            rec.set_time("episode", sequence=episode)
        frame = step % self.every_frames == 0
        if frame:
            for name, image in images.items():
                rec.log(f"/camera/{name}", rr.Image(image))
        human = bool(intervention)
        action = np.asarray(action, np.float32)
        if state is not None and self.ee_slice is not None:
            ee = np.asarray(state[self.ee_slice], np.float32)[None]
            rec.log("/world/ee", rr.Points3D(ee), self._ee_style[human])
            if frame:  # the action arrow is a picture, like the camera frames
                rec.log("/world/action", rr.Arrows3D(origins=ee, vectors=action[None, :3] * ACTION_ARROW_M),
                        self._arrow_style[human])
        rec.log("/step/action/human" if human else "/step/action/policy", rr.Scalars(action))
        rec.log("/step/reward", rr.Scalars(float(reward)))
        rec.log("/step/intervention", rr.Scalars(float(intervention)))
        if is_success is not None:
            rec.log("/step/is_success", rr.Scalars(float(is_success)))
        if success_prob is not None:
            rec.log("/step/success_prob", rr.Scalars(float(success_prob)))
        if q_value is not None:
            rec.log("/step/q", rr.Scalars(float(q_value)))
        if human and not self._was_human:
            rec.log("/log", rr.TextLog(f"step {step}: human took over", level="WARN"))
        self._was_human = human

    def log_episode(self, step: int, episode: int, ret: float, success: bool, intervention_rate: float) -> None:
        """Log an episode's return, success (0/1) and intervention rate (fraction of its steps) at
        its last ``step``, and flush (a viewer or file has every finished episode)."""
        rr, rec = self.rr, self.rec
        rec.set_time("step", sequence=step)
        rec.set_time("episode", sequence=episode)
        rec.log("/episode/return", rr.Scalars(float(ret)))
        rec.log("/episode/success", rr.Scalars(float(success)))
        rec.log("/episode/intervention_rate", rr.Scalars(float(intervention_rate)))
        rec.log("/log", rr.TextLog(f"episode {episode}: return {ret:.3f}, success {bool(success)}, "
                                   f"intervention rate {intervention_rate:.2f}", level="INFO"))
        self._was_human = False
        rec.flush()

    def close(self) -> None:
        """Flush and disconnect (an .rrd file gets its footer); idempotent."""
        self._finalizer()


def check_view_target(target: str | Path) -> None:
    """Raises ConfigError unless ``target`` is a Rerun gRPC URL or a path ending in ``.rrd``."""
    t = str(target)
    if not (t.endswith(".rrd") or t.startswith(("rerun://", "rerun+http://", "rerun+https://"))):
        raise ConfigError(f"--view-target {t!r} is neither a Rerun viewer URL (e.g. {DEFAULT_VIEWER_URL}, where "
                          "`rerun` listens) nor a file path ending in .rrd")


def view_from_settings(settings: Any, env: Any, cameras: Sequence[str]) -> LiveView | None:
    """The view asked for by ``--view`` / ``--view-target`` / ``--view-every-frames`` (fields of
    :class:`~robot_rl.actor.ActorSettings` and :class:`~robot_rl.evaluate.EvalConfig`), or None."""
    if not getattr(settings, "view", False):
        return None
    return LiveView(settings.view_target, cameras, settings.view_every_frames, ee_position_slice(env))


# ========================================================================= robot-rl view
@dataclass
class ViewConfig:
    """Show recorded data in Rerun: a run directory, episode files, or an MCAP bag."""

    target: Annotated[Path, tyro.conf.Positional]
    """a run directory (`robot-rl train` / `learner`: its replay log, episodes.csv, evals.csv), a
    directory of episode_*.npz files or one such file (`robot-rl record-demos`), or an MCAP bag (.mcap)."""
    out: Path | None = None
    """write the recording to this .rrd file (default: a temporary file when serving or opening a viewer)."""
    serve: bool = False
    """serve the web viewer on 127.0.0.1:--web-port (open http://127.0.0.1:<web-port> in a browser);
    without --serve and --out, a native viewer opens (needs a display)."""
    web_port: int = 9090
    """HTTP port of the web viewer with --serve."""
    grpc_port: int | None = None
    """gRPC port of the viewer's data server with --serve (default: 9876, or a free one when that is taken)."""
    every_frames: int = 1
    """log camera images of every N-th step only."""


def _run_viewer(args: list[str]) -> int:
    """Run the ``rerun`` viewer until it exits; Ctrl-C or SIGTERM to this process stop it and all its
    processes (no viewer is left holding its ports). Returns its exit status.

    Raises:
        ConfigError: the viewer failed (a port already in use, a bad file), with its exit status.
    """
    import os
    import signal
    import threading

    # its own process group: the venv's `rerun` is a wrapper around the viewer binary, and the whole
    # group is stopped (terminating the wrapper alone leaves the binary holding its ports)
    proc = subprocess.Popen(args, start_new_session=True)
    stopped = False

    def stop(*_: Any) -> None:
        nonlocal stopped
        stopped = True
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    previous = signal.signal(signal.SIGTERM, stop) if threading.current_thread() is threading.main_thread() else None
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        stop()
        rc = proc.wait(10)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if rc not in (0, -signal.SIGTERM, -signal.SIGINT) and not stopped:
        raise ConfigError(f"the rerun viewer exited with status {rc} (see its messages above: a port in use? "
                          "choose another with --web-port / --grpc-port)")
    return rc


def _rerun_cli() -> str:
    exe = Path(sys.executable).parent / "rerun"
    found = str(exe) if exe.is_file() else shutil.which("rerun")
    if found is None:
        raise ConfigError("the `rerun` command is not on PATH; install it with `pip install -e .[view]`")
    return found


def _is_run_dir(p: Path) -> bool:
    return p.is_dir() and (p / "config.json").is_file() and (p / "replay").is_dir()


def log_episode_arrays(view: LiveView, step0: int, episode: int, states: np.ndarray | None,
                       images: dict[str, np.ndarray], actions: np.ndarray, rewards: np.ndarray,
                       intervention: np.ndarray, success: np.ndarray | None = None) -> int:
    """Log one recorded episode (T steps) as the live view would; returns the next step index.

    Args:
        states: (T(+1), S) float32 or None; images: camera -> (T(+1), H, W, 3) uint8 (the
            observation each action was taken in is row t). actions: (T, A) float32 in [-1, 1].
        rewards: (T,) float32; intervention: (T,) bool; success: (T,) bool or None.
    """
    T = len(actions)
    for t in range(T):
        view.log_step(step0 + t, {k: v[t] for k, v in images.items()}, actions[t], bool(intervention[t]),
                      float(rewards[t]), None if states is None else states[t],
                      None if success is None else bool(success[t]), episode=episode)
    ret, succ = float(np.sum(rewards)), bool(np.any(success)) if success is not None else False
    view.log_episode(step0 + T - 1, episode, ret, succ, float(np.mean(intervention)) if T else 0.0)
    return step0 + T


def _log_episode_files(view_factory: Callable[[list[str], slice | None], LiveView], files: list[Path]) -> LiveView:
    from robot_rl.demos import load_episode

    view, step = None, 0
    for i, f in enumerate(files):
        ep = load_episode(f)
        obs = ep.observations
        states = obs.get("state") if isinstance(obs, dict) else np.asarray(obs)
        images = dict(obs.get("images", {})) if isinstance(obs, dict) else {}
        if view is None:
            view = view_factory(list(images), ee_position_slice(env_id=ep.meta.get("env_id") or ep.meta.get("env")))
        low, high = ep.meta.get("action_low"), ep.meta.get("action_high")
        actions = np.asarray(ep.actions, np.float32)
        if low is not None and high is not None:  # env units -> [-1, 1], as the actor logs them
            low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
            actions = 2.0 * (actions - low) / np.maximum(high - low, 1e-12) - 1.0
        step = log_episode_arrays(view, step, i, None if states is None else np.asarray(states), images, actions,
                                  ep.rewards, ep.intervention, ep.success)
    return view


def _log_run(view_factory: Callable[[list[str], slice | None], LiveView], run_dir: Path) -> LiveView:
    """Replay a run's replay log (every step the learner received) into a view, with episodes.csv."""
    from robot_rl.transport.records import read_log
    from robot_rl.transport.wire import decode

    config = json.loads((run_dir / "config.json").read_text())
    ee = ee_position_slice(env_id=config.get("env"))
    view: LiveView | None = None
    log = read_log(run_dir / "replay")  # read only: a learner may still be appending
    try:
        for frames in log:
            msg = decode(frames)
            if msg.kind != "transitions":
                continue
            a, meta = msg.arrays, msg.meta
            images = {k.split("/", 1)[1]: v for k, v in a.items() if k.startswith("images/")}
            if view is None:
                view = view_factory(sorted(images), ee)
            skip = 1 if meta.get("first") else 0  # a first chunk holds the reset observation in row 0
            step_ids, episode = np.asarray(a["step_id"]), int(meta["episode"])
            for t in range(len(a["action"])):
                # the observation the action was taken in: row t of a first chunk, else the
                # previous step's next observation (row t - 1); the chunk's row 0 is unknown then
                row = t if skip else t - 1
                imgs = {k: v[row] for k, v in images.items()} if row >= 0 else {}
                state = np.asarray(a["state"][row]) if row >= 0 and len(a["state"]) else None
                view.log_step(int(step_ids[t]), imgs, a["action"][t], bool(a["intervention"][t]), float(a["reward"][t]),
                              state, episode=episode)
            stats = meta.get("episode_stats")
            if stats:
                view.log_episode(int(step_ids[-1]), episode, float(stats.get("return", 0.0)),
                                 bool(stats.get("success", False)), float(stats.get("intervention_rate", 0.0)))
    finally:
        log.close()
    if view is None:
        raise ConfigError(f"run {run_dir} has no steps in its replay log yet")
    evals = run_dir / "evals.csv"
    if evals.is_file():
        with open(evals) as f:
            for row in csv.DictReader(f):
                view.rec.set_time("step", sequence=int(row["env_steps"]))
                view.rec.log("/episode/eval_success_rate", view.rr.Scalars(float(row["success_rate"])))
    return view


def run_view(cfg: ViewConfig) -> dict[str, Any]:
    """``robot-rl view``: log the target into an .rrd file and/or show it in a viewer.

    Returns:
        ``target``, its ``kind`` (run, episodes, mcap) and ``rrd`` (the written file, if any).

    Raises:
        ConfigError: the target is none of a run directory, episode file(s) or an MCAP bag; rerun
            is missing; ``--out`` does not end in .rrd.
    """
    target = Path(cfg.target)
    if cfg.out is not None and cfg.out.suffix != ".rrd":
        raise ConfigError(f"--out {cfg.out} must end in .rrd (Rerun's recording format)")
    if cfg.every_frames < 1:
        raise ConfigError(f"--every-frames must be >= 1, got {cfg.every_frames}")
    if target.is_file() and target.suffix == ".mcap":
        kind = "mcap"
    elif _is_run_dir(target):
        kind = "run"
    elif (target.is_file() and target.suffix == ".npz") or (target.is_dir() and any(target.glob("episode_*.npz"))):
        kind = "episodes"
    else:
        raise ConfigError(f"cannot view {target}: `robot-rl view` takes a run directory (config.json and replay/, "
                          "from `robot-rl train` or `learner`), a directory of episode_*.npz files or one such file "
                          "(`robot-rl record-demos`), or an MCAP bag (.mcap)")
    import_rerun()
    rrd: Path | None = cfg.out
    if rrd is None:
        import tempfile

        rrd = Path(tempfile.mkdtemp(prefix="robot_rl_view_")) / f"{target.stem or 'view'}.rrd"
    if kind == "mcap":
        subprocess.run([_rerun_cli(), "mcap", "convert", str(target), "-o", str(rrd)], check=True)
    else:
        def factory(cameras: list[str], ee: slice | None) -> LiveView:
            return LiveView(rrd, cameras, cfg.every_frames, ee, recording_id=f"view-{target.name}")

        files = [target] if target.is_file() else None
        if kind == "run":
            view = _log_run(factory, target)
        else:
            from robot_rl.demos import episode_files

            view = _log_episode_files(factory, files or episode_files(target))
        view.close()
    if cfg.serve:
        print(f"serving the web viewer on http://127.0.0.1:{cfg.web_port} (Ctrl-C stops)", flush=True)
        _run_viewer([_rerun_cli(), "--serve-web", "--bind", "127.0.0.1", "--web-viewer-port", str(cfg.web_port),
                     "--port", "auto" if cfg.grpc_port is None else str(cfg.grpc_port), str(rrd)])
    elif cfg.out is None:
        _run_viewer([_rerun_cli(), str(rrd)])
    return {"target": str(target), "kind": kind, "rrd": str(rrd) if cfg.out is not None else None}
