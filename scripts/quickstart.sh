#!/usr/bin/env bash
# The main job, end to end: set up .venv, record 20 scripted demos, train SAC/RLPD on simulated
# Panda pick-and-lift from state (sparse reward), evaluate the final policy (success rate, mp4, learning curve).
# Extra arguments go to `robot-rl train` (e.g. --env robot_rl/PandaPickLiftPixels-v0).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-egl}
run_dir="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
.venv/bin/robot-rl train --run-dir "$run_dir" "$@"
.venv/bin/robot-rl eval --run-dir "$run_dir" --episodes 20
echo "TensorBoard: .venv/bin/tensorboard --logdir runs"
