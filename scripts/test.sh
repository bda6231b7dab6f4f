#!/usr/bin/env bash
# Set up .venv and run the whole test suite (real MuJoCo, real torch; no GPU needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-egl}
exec .venv/bin/python -m pytest -q -ra tests "$@"
