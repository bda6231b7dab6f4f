#!/usr/bin/env bash
# Create .venv (if missing) and install robot_rl with its test extras into it.
# Works on a fresh Debian 12 / Ubuntu: installs the system packages it needs when run as root (or
# with sudo): python3-venv, EGL/Mesa for headless MuJoCo rendering, and the libraries two SDK
# wheels load at import (libusb-1.0 for pyrealsense2, hidapi for pyspacemouse).
#
# Environment:
#   ROBOT_RL_CONSTRAINTS=constraints.txt  install the known-good versions of that file (pip -c)
#   ROBOT_RL_UPGRADE=1                    upgrade an existing .venv to today's versions of every
#                                         dependency (what CI runs); a new .venv gets them anyway
set -euo pipefail
constraints=${ROBOT_RL_CONSTRAINTS:-}
[ -n "$constraints" ] && [ -f "$constraints" ] && constraints=$(realpath "$constraints")  # else: repo-relative
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# ldconfig lives in /sbin, which is not on a non-root user's PATH on Debian
LDCONFIG=$(command -v ldconfig || echo /sbin/ldconfig)
have_lib() { "$LDCONFIG" -p 2>/dev/null | grep -q "$1"; }
need_apt=()
"$PY" -c "import ensurepip, venv" 2>/dev/null || need_apt+=(python3-venv)
have_lib "libEGL.so.1" || need_apt+=(libegl1 libgl1-mesa-dri)
have_lib "libOpenGL.so.0" || need_apt+=(libopengl0)
have_lib "libusb-1.0.so.0" || need_apt+=(libusb-1.0-0)           # pyrealsense2
have_lib "libhidapi-hidraw.so.0" || need_apt+=(libhidapi-hidraw0) # pyspacemouse (easyhid)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "setup: missing system packages: ${need_apt[*]}; install them as root (apt-get install ${need_apt[*]}) or run this as root" >&2
      exit 1
    fi
    SUDO="sudo"
  fi
  echo "setup: installing system packages: ${need_apt[*]}"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
pip_args=(-e ".[test]")
if [ -n "$constraints" ]; then
  [ -f "$constraints" ] || { echo "setup: ROBOT_RL_CONSTRAINTS=$constraints: no such file" >&2; exit 1; }
  pip_args+=(-c "$constraints")
fi
if [ "${ROBOT_RL_UPGRADE:-0}" = 1 ]; then
  pip_args+=(--upgrade --upgrade-strategy eager)
fi
# torch/torchvision from PyPI together (never mix a local torch wheel with PyPI's torchvision).
.venv/bin/python -m pip install -q "${pip_args[@]}"
.venv/bin/python -c "import torch, torchvision, mujoco, robot_rl; print(f'setup: torch {torch.__version__}, mujoco {mujoco.__version__}, robot_rl {robot_rl.__version__}')"
