"""Third-party envs as a new user brings them (tests/third_party_envs.py), through the real CLI.

Each run is a subprocess: the EGL crash is a segfault (exit status 139) that would take pytest
down with it, and import order, the thing under test, is only fresh in a new interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from robot_rl.evaluate import write_video

TESTS = Path(__file__).resolve().parent
TINY_TRAIN = ["--num-demos", "0", "--total-env-steps", "40", "--random-steps", "20", "--eval-every-steps", "0",
              "--eval-episodes", "1", "--agent.batch-size", "8", "--agent.hidden-dims", "16", "16", "--device", "cpu",
              "--no-progress"]


def robot_rl_cli(*args: str, timeout_s: float = 300.0) -> subprocess.CompletedProcess:
    """``python -m robot_rl.cli *args`` with tests/ importable and EGL rendering, as a user runs it."""
    env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "robot_rl.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout_s)


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit status {proc.returncode} (-11 or 139: segfault)\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


def test_train_and_eval_with_egl_renderer_made_in_env_constructor(tmp_path):
    """The env opens an EGL context before the first Adam imports torch._dynamo -> triton; without
    robot_rl.torch_setup.preload_torch in make_env this segfaulted (exit 139) in both commands."""
    run = tmp_path / "run"
    assert_ok(robot_rl_cli("train", "--env", "third_party_envs:EglRendererEnv-v0", *TINY_TRAIN, "--run-dir", str(run)))
    assert (run / "checkpoints" / "step_000000040" / "agent.pt").is_file()
    assert (run / "eval" / "final_episode.mp4").stat().st_size > 0
    assert_ok(robot_rl_cli("eval", "--run-dir", str(run), "--episodes", "1", "--device", "cpu"))
    assert (run / "eval" / "results.json").is_file()


def test_train_writes_a_tiled_video_for_an_env_rendering_a_list_of_frames(tmp_path):
    run = tmp_path / "run"
    assert_ok(robot_rl_cli("train", "--env", "third_party_envs:MultiCameraEnv-v0", *TINY_TRAIN, "--run-dir", str(run)))
    import imageio.v3 as iio

    from third_party_envs import EPISODE_STEPS, FRAME_SIZE

    video = iio.imread(run / "eval" / "final_episode.mp4")
    assert video.shape == (EPISODE_STEPS + 1, FRAME_SIZE[0], 2 * FRAME_SIZE[1], 3)  # two cameras side by side


def test_write_video_tiles_camera_lists_and_converts_formats(tmp_path):
    import imageio.v3 as iio

    tall, short = np.full((48, 64, 3), 200, np.uint8), np.full((30, 20, 3), 100, np.uint8)
    path = write_video([[tall, short]] * 3, tmp_path / "tiled.mp4")
    video = iio.imread(path)
    assert path == tmp_path / "tiled.mp4" and video.shape == (3, 48, 84, 3)
    assert video[0, 40:, 70:].max() < 20  # black padding below the shorter camera (H.264 blurs edges a little)
    # float in [0, 1], grey and odd sizes (padded to even: H.264 needs them, ffmpeg wrote 0 bytes otherwise)
    for frame in (np.full((47, 63, 3), 0.5, np.float32), np.full((47, 63), 128, np.uint8)):
        video = iio.imread(write_video([frame] * 3, tmp_path / "converted.mp4"))
        assert video.shape == (3, 48, 64, 3) and abs(int(video[0, 20, 30, 0]) - 128) < 8


@pytest.mark.parametrize("frames", [[np.zeros((1, 1, 64, 3), np.uint8)], [np.full((8, 8, 3), 3.0)], [{"front": 1}],
                                    [None, None], [[]]])
def test_write_video_skips_what_is_not_an_image_with_a_warning(tmp_path, frames):
    with pytest.warns(UserWarning, match="no video written"):
        assert write_video(frames, tmp_path / "v.mp4") is None


def test_write_video_falls_back_to_gif_when_mp4_fails(tmp_path, monkeypatch):
    import imageio.v2 as imageio

    real = imageio.mimwrite

    def no_ffmpeg(path, *args, **kwargs):
        if str(path).endswith(".mp4"):
            raise RuntimeError("no ffmpeg")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(imageio, "mimwrite", no_ffmpeg)
    frames = [np.full((8, 8, 3), 40 * i, np.uint8) for i in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = write_video(frames, tmp_path / "v.mp4", fps=10.0)
    from PIL import Image

    gif = Image.open(path)
    assert path.suffix == ".gif" and gif.n_frames == 4 and gif.info["duration"] == 100  # ms per frame at 10 fps
