#!/usr/bin/env bash
# Create .venv (if missing) and install robot_rl with its test extras into it.
# Works on a fresh Debian 12 / Ubuntu: installs the few system packages it needs when run as
# root (or with sudo): python3-venv, EGL/Mesa for headless MuJoCo rendering, ffmpeg libs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
need_apt=()
"$PY" -c "import ensurepip, venv" 2>/dev/null || need_apt+=(python3-venv)
ldconfig -p 2>/dev/null | grep -q "libEGL.so.1" || need_apt+=(libegl1 libgl1-mesa-dri)
ldconfig -p 2>/dev/null | grep -q "libOpenGL.so.0" || need_apt+=(libopengl0)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing system packages: ${need_apt[*]}"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch/torchvision from PyPI together (never mix a local torch wheel with PyPI's torchvision).
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -c "import torch, torchvision, mujoco, robot_rl; print(f'setup: torch {torch.__version__}, mujoco {mujoco.__version__}, robot_rl {robot_rl.__version__}')"
