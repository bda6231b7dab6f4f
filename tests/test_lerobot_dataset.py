"""LeRobotDataset (v3) export and import through LeRobot's own library (robot_rl.lerobot_dataset).

Real LeRobot (``lerobot.datasets.lerobot_dataset.LeRobotDataset``) and real scripted MuJoCo demos of
pick-and-lift, state and 64 x 64 pixels: export -> LeRobot's loader -> import gives back identical
episodes, and a training run from the imported demos is the run from the originals.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
pytest.importorskip("lerobot", reason="LeRobot is installed by scripts/setup.sh (pip install --no-deps lerobot==0.4.4 ...)")

from robot_rl.demos import load_episodes  # noqa: E402
from robot_rl.envs import make_env  # noqa: E402
from robot_rl.errors import ConfigError  # noqa: E402
from robot_rl.layout import ActionScaler, ObsLayout  # noqa: E402
from robot_rl.lerobot_dataset import SIDECAR_JSON, export_lerobot, load_episodes_any  # noqa: E402
from robot_rl.record import RecordDemosConfig, record_demos  # noqa: E402

STATE_ENV = "robot_rl/PandaPickLift-v0"
PIXEL_ENV = "robot_rl/PandaPickLiftPixels-v0"
PIXEL_KWARGS = {"image_size": "64"}


def _env_layout(env_id: str, **kwargs) -> tuple[ObsLayout, ActionScaler]:
    from robot_rl.envs import parse_env_kwargs

    env = make_env(env_id, **parse_env_kwargs(kwargs))
    try:
        return ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space)
    finally:
        env.close()


def _leaves(tree, path=()):
    if isinstance(tree, dict):
        return [leaf for k in sorted(tree) for leaf in _leaves(tree[k], (*path, k))]
    return [(path, np.asarray(tree))]


def assert_identical(a, b) -> None:
    """Every array of two episode lists equal, with equal dtypes and shapes."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        lx, ly = _leaves(x.observations), _leaves(y.observations)
        assert [p for p, _ in lx] == [p for p, _ in ly]
        for (p, u), (_, v) in zip(lx, ly):
            assert u.dtype == v.dtype and u.shape == v.shape and np.array_equal(u, v), p
        for k in ("actions", "rewards", "terminated", "truncated", "intervention", "success"):
            u, v = getattr(x, k), getattr(y, k)
            assert u.dtype == v.dtype and np.array_equal(u, v), k
        assert x.meta == y.meta


@pytest.fixture(scope="module")
def demo_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("demos")
    record_demos(RecordDemosConfig(env=STATE_ENV, num_episodes=3, out=root / "state", seed=3), progress=False)
    record_demos(RecordDemosConfig(env=PIXEL_ENV, env_kwargs=dict(PIXEL_KWARGS), num_episodes=3, out=root / "pixels",
                                   seed=5), progress=False)
    return {"state": root / "state", "pixels": root / "pixels"}


@pytest.fixture(scope="module")
def exported(demo_dirs, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lerobot")
    return {k: export_lerobot(v, root / k) for k, v in demo_dirs.items()}


@pytest.mark.parametrize("kind", ["state", "pixels"])
def test_export_loads_with_lerobot_and_imports_back_identical(kind, demo_dirs, exported):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    episodes = load_episodes(demo_dirs[kind])
    ds = LeRobotDataset("local/test", root=exported[kind])  # the format's own loader
    assert ds.meta.info["codebase_version"].startswith("v3")
    assert ds.num_episodes == 3 and ds.num_frames == sum(len(e) for e in episodes)
    ends = np.cumsum([len(e) for e in episodes])
    assert list(ds.meta.episodes["dataset_to_index"]) == ends.tolist()
    assert list(ds.meta.episodes["dataset_from_index"]) == [0, *ends[:-1].tolist()]
    layout = ObsLayout.from_space(make_env(STATE_ENV if kind == "state" else PIXEL_ENV,
                                           **({} if kind == "state" else {"image_size": 64})).observation_space)
    assert ds.features["observation.state"]["shape"] == (layout.state_dim,)
    assert ds.features["action"]["shape"] == (episodes[0].actions.shape[1],)
    cams = sorted(k.split(".")[-1] for k in ds.features if k.startswith("observation.images."))
    assert cams == sorted(layout.image_shapes)
    # a frame as LeRobot's training code sees it: images float CHW in [0, 1], the action in env units
    first_of_second = int(ends[0])
    item = ds[first_of_second]
    assert int(item["episode_index"]) == 1 and int(item["frame_index"]) == 0
    np.testing.assert_array_equal(item["action"].numpy(), episodes[1].actions[0])
    state, images = layout.split(episodes[1].observations)
    np.testing.assert_array_equal(item["observation.state"].numpy(), state[0])
    for cam, frames in images.items():
        got = (item[f"observation.images.{cam}"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
        np.testing.assert_array_equal(got, frames[0])
    assert bool(item["next.done"]) == bool(episodes[1].terminated[0])

    assert_identical(episodes, load_episodes_any(exported[kind]))
    # with the env's layout given (as --demos passes it), the same episodes and no complaint
    env_layout = _env_layout(STATE_ENV) if kind == "state" else _env_layout(PIXEL_ENV, **PIXEL_KWARGS)
    assert_identical(episodes, load_episodes_any(exported[kind], *env_layout, env_id="x"))


def test_lerobot_recorded_dataset_imports_with_the_env_layout(demo_dirs, exported, tmp_path):
    """Without robot_rl's sidecar (a dataset LeRobot recorded) the env's layout splits the state; s_T repeats s_{T-1}."""
    import shutil

    root = tmp_path / "foreign"
    shutil.copytree(exported["pixels"], root)
    (root / "meta" / SIDECAR_JSON).unlink()
    with pytest.raises(ConfigError, match="--env"):
        load_episodes_any(root)
    got = load_episodes_any(root, *_env_layout(PIXEL_ENV, **PIXEL_KWARGS), env_id=PIXEL_ENV)
    for x, y in zip(load_episodes(demo_dirs["pixels"]), got):
        for (p, u), (_, v) in zip(_leaves(x.observations), _leaves(y.observations)):
            np.testing.assert_array_equal(u[:-1], v[:-1].astype(u.dtype))
            np.testing.assert_array_equal(v[-1], v[-2])
        np.testing.assert_array_equal(x.actions, y.actions)
        np.testing.assert_array_equal(x.terminated, y.terminated)
        np.testing.assert_array_equal(x.intervention, y.intervention)


def test_missing_cameras_and_other_spaces_are_clear_errors(exported, tmp_path):
    pixel_layout, scaler = _env_layout(PIXEL_ENV, **PIXEL_KWARGS)
    with pytest.raises(ConfigError, match=r"camera 'front' is missing.*\n.*dataset:.*\n.*env:"):
        load_episodes_any(exported["state"], pixel_layout, scaler, env_id=PIXEL_ENV)
    with pytest.raises(ConfigError, match="camera 'front' is \\[64, 64, 3\\], the env's \\[128, 128, 3\\]"):
        load_episodes_any(exported["pixels"], *_env_layout(PIXEL_ENV), env_id=PIXEL_ENV)
    state_layout, _ = _env_layout(STATE_ENV)
    narrow = ActionScaler(scaler.low[:2], scaler.high[:2])
    with pytest.raises(ConfigError, match="action has 4 dimensions, the env's action space 2"):
        load_episodes_any(exported["state"], state_layout, narrow, env_id=STATE_ENV)
    tight = ActionScaler(scaler.low * 0.01, scaler.high * 0.01)
    with pytest.raises(ConfigError, match="leave .* action bounds"):
        load_episodes_any(exported["state"], state_layout, tight, env_id=STATE_ENV)
    with pytest.raises(ConfigError, match="observation.state has"):
        load_episodes_any(exported["pixels"], state_layout, scaler, env_id=STATE_ENV)
    info = json.loads((exported["state"] / "meta" / "info.json").read_text())
    old = tmp_path / "v21"
    (old / "meta").mkdir(parents=True)
    (old / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(ConfigError, match="v2.1.*convert_dataset_v21_to_v30"):
        load_episodes_any(old)
    with pytest.raises(ConfigError, match="exists"):
        export_lerobot(tmp_path, exported["state"])


def test_training_from_imported_demos_is_the_run_from_the_originals(demo_dirs, exported, tmp_path):
    """Same seed, ``--demos`` the episode files vs. ``--demos`` the LeRobotDataset directory: identical
    evals.csv (every column but wall_s) for RLPD, identical weights for behaviour cloning."""
    from robot_rl.agent import SACConfig
    from robot_rl.bc import TrainBCConfig, train_bc
    from robot_rl.policies.policy import Policy
    from robot_rl.train import TrainConfig, train

    evals, policies = [], []
    for name, demos in (("orig", demo_dirs["state"]), ("lerobot", exported["state"])):
        cfg = TrainConfig(env=STATE_ENV, demos=demos, total_env_steps=60, eval_every_steps=30, eval_episodes=1,
                          checkpoint_every_steps=60, run_dir=tmp_path / name, progress=False, final_video=False, seed=1,
                          torch_threads=1, agent=SACConfig(batch_size=16, utd_ratio=1, num_critics=2, hidden_dims=(32, 32)))
        train(cfg)
        with open(tmp_path / name / "evals.csv") as f:
            evals.append([{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(f)])
        train_bc(TrainBCConfig(env=STATE_ENV, demos=demos, out=tmp_path / f"bc_{name}", max_steps=100, batch_size=16,
                               eval_every_steps=50, val_fraction=0.34, eval_episodes=0, torch_threads=1, progress=False,
                               agent=SACConfig(hidden_dims=(32, 32))))
        policies.append(Policy.load(tmp_path / f"bc_{name}" / "policy").params())
    assert evals[0] == evals[1] and len(evals[0]) >= 2
    assert policies[0].keys() == policies[1].keys()
    assert all(torch.equal(policies[0][k], policies[1][k]) for k in policies[0])


def test_missing_lerobot_is_one_clear_error(demo_dirs, exported, tmp_path, monkeypatch):
    """Without LeRobot (its modules unimportable), export and import say how to install it, and
    `robot-rl export-dataset` exits 2 without writing the dataset directory."""
    import sys

    from robot_rl.cli import main
    from robot_rl.lerobot_dataset import LEROBOT_INSTALL

    for name in [m for m in sys.modules if m == "lerobot" or m.startswith("lerobot.")] + ["lerobot"]:
        monkeypatch.setitem(sys.modules, name, None)  # `import lerobot...` raises ImportError
    with pytest.raises(ConfigError, match="needs LeRobot's dataset library") as err:
        export_lerobot(demo_dirs["state"], tmp_path / "out")
    assert LEROBOT_INSTALL in str(err.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="needs LeRobot's dataset library"):
        load_episodes_any(exported["state"])
    assert main(["export-dataset", str(demo_dirs["state"]), str(tmp_path / "cli_out")]) == 2
    assert not (tmp_path / "cli_out").exists()


@pytest.mark.timeout(120)
def test_export_dataset_of_a_training_run(tmp_path):
    """`robot-rl export-dataset <run dir>`: the run's complete episodes (episodes.csv), rebuilt from its
    replay log, load with LeRobot's own loader with their lengths, returns and intervention flags."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from robot_rl.cli import main

    run = tmp_path / "run"
    assert main(["train", "--env", STATE_ENV, "--total-env-steps", "130", "--random-steps", "130", "--num-demos", "0",
                 "--teleop", "scripted", "--eval-every-steps", "0", "--checkpoint-every-steps", "0", "--no-progress",
                 "--no-final-video", "--torch-threads", "1", "--agent.batch-size", "16", "--agent.hidden-dims", "16", "16",
                 "--run-dir", str(run)]) == 0
    with open(run / "episodes.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 2  # finished episodes; the last, cut by --total-env-steps, is not one of them
    out = tmp_path / "lerobot"
    assert main(["export-dataset", str(run), str(out)]) == 0
    ds = LeRobotDataset("local/run", root=out)
    lengths = np.diff([0, *ds.meta.episodes["dataset_to_index"]]).tolist()
    assert ds.num_episodes == len(rows)
    assert lengths == [int(r["length"]) for r in rows]
    assert ds.num_frames == sum(lengths) < 130
    rewards = np.array([float(ds[i]["next.reward"]) for i in range(ds.num_frames)])
    intervention = np.array([bool(ds[i]["complementary_info.intervention"]) for i in range(ds.num_frames)])
    ends = np.cumsum(lengths)
    for (a, b), row in zip(zip([0, *ends[:-1]], ends), rows):
        assert rewards[a:b].sum() == pytest.approx(float(row["return"]), abs=1e-4)
        assert intervention[a:b].mean() == pytest.approx(float(row["intervention_rate"]), abs=1e-6)
    assert intervention.any()  # the scripted corrector took over: the flags are not all zero
    assert {ds[i]["task"] for i in (0, ds.num_frames - 1)} == {STATE_ENV}
    # and back: the episodes robot_rl reads from the export are the ones it exported
    back = load_episodes_any(out)
    assert [len(e) for e in back] == lengths
    np.testing.assert_allclose(np.concatenate([e.rewards for e in back]), rewards, rtol=1e-6)
