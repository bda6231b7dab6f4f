#!/usr/bin/env bash
# Create .venv-franky-sim with franky-sim (a MuJoCo simulator that speaks libfranka's protocol),
# used by tests/test_franka.py to drive robot_rl's Franka backend through franky-control.
# It lives in its own venv because it pins its own mujoco and pinocchio.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv-franky-sim/bin/franky-sim ]; then
  "$PY" -m venv .venv-franky-sim
  .venv-franky-sim/bin/python -m pip install -q --upgrade pip
  .venv-franky-sim/bin/python -m pip install -q "franky-sim>=1.0"
fi
echo "setup: franky-sim in .venv-franky-sim"
