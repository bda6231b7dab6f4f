"""``robot-rl``: the command line (``robot-rl train | train-bc | eval | record-demos | learner | actor | keys | envs | bringup | calibrate | sysid | view``).

Every subcommand's flags come from its config dataclass (``robot-rl train --help``).
robot_rl's own errors print as one line that says what to do, with exit status 2.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")


@dataclass
class EnvsConfig:
    """List robot_rl's gymnasium env IDs with their observation and action spaces."""


def _print_summary(title: str, summary: dict[str, Any]) -> None:
    width = max(len(k) for k in summary)
    print(f"\n{title}")
    for k, v in summary.items():
        v = f"{v:.3f}" if isinstance(v, float) else v
        print(f"  {k:<{width}}  {v}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``robot-rl`` console script; returns the exit status."""
    import tyro

    from robot_rl.bc import TrainBCConfig, train_bc
    from robot_rl.errors import RobotRLError
    from robot_rl.evaluate import EvalConfig, run_eval
    from robot_rl.record import RecordDemosConfig, record_demos
    from robot_rl.train import TrainConfig, train

    from robot_rl.actor import ActorConfig, run_actor
    from robot_rl.learner import LearnerConfig, run_learner
    from robot_rl.ros.bringup import BringupConfig, run_bringup
    from robot_rl.transport.keys import KeysConfig, create_keys
    from robot_rl.calibration.cli import HandEyeCliConfig, IntrinsicsCliConfig, run_hand_eye, run_intrinsics
    from robot_rl.calibration.collect import HandEyeSamplesCliConfig, run_hand_eye_samples
    from robot_rl.calibration.workspace import WorkspaceCliConfig, run_workspace
    from robot_rl.sim.sysid import SysIdConfig, run_sysid
    from robot_rl.rewards.train_classifier import TrainClassifierConfig, train_classifier
    from robot_rl.export import ExportPolicyConfig, export_policy
    from robot_rl.lerobot_dataset import ExportDatasetConfig, export_dataset
    from robot_rl.view import ViewConfig, run_view

    from typing import Annotated, Union

    CalibrateCommand = Union[Annotated[IntrinsicsCliConfig, tyro.conf.subcommand("intrinsics")],
                             Annotated[HandEyeCliConfig, tyro.conf.subcommand("hand-eye")],
                             Annotated[HandEyeSamplesCliConfig, tyro.conf.subcommand("hand-eye-samples")],
                             Annotated[WorkspaceCliConfig, tyro.conf.subcommand("workspace")]]

    cfg = tyro.extras.subcommand_cli_from_dict(
        {"train": TrainConfig, "train-bc": TrainBCConfig, "eval": EvalConfig, "record-demos": RecordDemosConfig,
         "learner": LearnerConfig, "actor": ActorConfig, "keys": KeysConfig, "envs": EnvsConfig, "bringup": BringupConfig,
         "calibrate": CalibrateCommand, "sysid": SysIdConfig,
         "export-dataset": ExportDatasetConfig,
         "train-reward-classifier": TrainClassifierConfig, "export-policy": ExportPolicyConfig,
         "view": ViewConfig},
        args=argv, prog="robot-rl",
    )
    try:
        if isinstance(cfg, TrainConfig):
            _print_summary("training finished", train(cfg))
        elif isinstance(cfg, TrainBCConfig):
            _print_summary("behaviour cloning finished", train_bc(cfg))
        elif isinstance(cfg, EvalConfig):
            _print_summary("evaluation", run_eval(cfg))
        elif isinstance(cfg, RecordDemosConfig):
            record_demos(cfg)
        elif isinstance(cfg, LearnerConfig):
            _print_summary("learner stopped", run_learner(cfg))
        elif isinstance(cfg, ActorConfig):
            _print_summary("actor stopped", run_actor(cfg))
        elif isinstance(cfg, KeysConfig):
            files = create_keys(cfg)
            print(f"wrote {len(files)} files to {cfg.out}:")
            for f in files:
                print(f"  {f}")
            print(f"learner: robot-rl learner --curve-keys {cfg.out} ...  (needs learner.key_secret, authorized_actors/)\n"
                  f"actors:  copy {cfg.out}/learner.key and {cfg.out}/<actor>.key_secret to each robot PC, then\n"
                  f"         robot-rl actor --curve-keys <that dir> --actor-id <actor> ...")
        elif isinstance(cfg, BringupConfig):
            return run_bringup(cfg)
        elif isinstance(cfg, IntrinsicsCliConfig):
            print(run_intrinsics(cfg))
        elif isinstance(cfg, HandEyeCliConfig):
            print(run_hand_eye(cfg))
        elif isinstance(cfg, HandEyeSamplesCliConfig):
            print(run_hand_eye_samples(cfg))
        elif isinstance(cfg, WorkspaceCliConfig):
            print(run_workspace(cfg))
        elif isinstance(cfg, TrainClassifierConfig):
            train_classifier(cfg)
        elif isinstance(cfg, SysIdConfig):
            run_sysid(cfg)
        elif isinstance(cfg, ExportDatasetConfig):
            _print_summary("dataset exported", export_dataset(cfg))
        elif isinstance(cfg, ExportPolicyConfig):
            _print_summary("policy exported", export_policy(cfg))
        elif isinstance(cfg, ViewConfig):
            _print_summary("view", run_view(cfg))
        elif isinstance(cfg, EnvsConfig):
            from robot_rl.envs import make_env, robot_rl_env_ids

            for env_id in robot_rl_env_ids():
                env = make_env(env_id)
                print(f"{env_id}\n  observation: {env.observation_space}\n  action:      {env.action_space}")
                env.close()
    except RobotRLError as e:
        print(f"robot-rl: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = {TrainConfig: " (continue with `robot-rl train --resume <run_dir>`)",
                RecordDemosConfig: " (add more with `robot-rl record-demos --append`)",
                ActorConfig: "; unacknowledged chunks stay in the actor's spool and are sent at its next start",
                LearnerConfig: " (continue with `robot-rl learner --resume <run_dir>`)",
                TrainBCConfig: f"; the best policy so far is in {getattr(cfg, 'out', '')}/policy "
                               "(evaluate it with `robot-rl eval --policy <dir>`)"}.get(type(cfg), "")
        print(f"robot-rl: interrupted; finished episodes and checkpoints are on disk{hint}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
