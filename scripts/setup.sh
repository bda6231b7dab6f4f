#!/usr/bin/env bash
# Create .venv (if missing) and install robot_rl with its test extras into it (these include the
# ros extra: ROS 2 Jazzy's rclpy and message packages from PyPI, on CPython 3.11 / Linux x86_64).
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
# LeRobotDataset export/import (robot_rl.lerobot_dataset): LeRobot's dataset library. lerobot 0.4.4 (the
# newest for Python 3.11) pins torch<2.11 and huggingface-hub<0.36 for its policies, not its datasets
# module, so it goes in without deps, and only the dataset module's own deps are added, constrained to
# the versions just installed so that nothing robot_rl needs is downgraded.
lerobot_pins=$(mktemp)
.venv/bin/python -m pip freeze --exclude-editable | grep -v '^lerobot==' > "$lerobot_pins"
.venv/bin/python -m pip install -q --no-deps "lerobot==0.4.4"
.venv/bin/python -m pip install -q -c "$lerobot_pins" ${constraints:+-c "$constraints"} \
  "datasets>=4" "pandas>=2" "av>=15" "accelerate>=1.10" "jsonlines>=4" "deepdiff>=7" "termcolor>=2.4"
rm -f "$lerobot_pins"
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python -c "from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION; print(f'setup: LeRobotDataset {CODEBASE_VERSION} (lerobot 0.4.4, no deps)')"
# ROS 2 (the test extra includes .[ros]): the Jazzy wheels exist for CPython 3.11 on Linux x86_64 only
if .venv/bin/python -c "import rclpy, sensor_msgs.msg" 2>/dev/null; then
  .venv/bin/python -c "from importlib.metadata import version; print(f'setup: rclpy {version(\"ros-rclpy\")} (ROS 2 Jazzy wheels, Fast DDS)')" 2>/dev/null || echo "setup: rclpy from a ROS 2 install"
else
  echo "setup: WARNING: rclpy is not importable, so the ROS 2 nodes and their tests cannot run. ROS 2 Jazzy's PyPI wheels" \
       "are built for CPython 3.11 on Linux x86_64 only (this venv: $(.venv/bin/python -V 2>&1), $(uname -m)): recreate" \
       ".venv with PYTHON=python3.11 bash scripts/setup.sh, or source a ROS 2 Jazzy install." >&2
fi
