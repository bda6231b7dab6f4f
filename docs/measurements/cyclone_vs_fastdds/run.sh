#!/bin/bash
# Cross the retired Cyclone DDS backend with a plain rclpy node, 100 messages per case.
#   PY:    python of a venv with robot_rl at commit 29bd897 (the last with robot_rl/ros/_dds.py) and the Jazzy wheels
#   KPY:   python for the rclpy side (default PY: Jazzy; or a venv with ros-kilted-rclpy[fastrtps] and the message wheels)
#   ORDER: subfirst (the subscriber starts 1 s before the publisher) or pubfirst; TYPES: the message types to try
# Example: PY=$PWD/.venv/bin/python KPY=/tmp/kilted/bin/python ORDER=subfirst TYPES="Image JointState PoseStamped" bash run.sh
cd "$(dirname "$0")"
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-179} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST OMP_NUM_THREADS=1
export CYCLONEDDS_URI="$($PY -c 'from robot_rl.ros import qos; print(qos.localhost_config_xml())')"
KPY=${KPY:-$PY}
py() { case $1 in rclpy*) echo "$KPY";; *) echo "$PY";; esac; }
for typ in ${TYPES:-Image JointState CameraInfo Float64MultiArray PoseStamped}; do
  for pair in "dds_pub rclpy_sub" "rclpy_pub dds_sub"; do
    set -- $pair
    if [ "${ORDER:-subfirst}" = pubfirst ]; then
      $(py $1) measure.py $1 $typ 100 > pub.out 2>pub.err & P=$!; sleep 0.5
      $(py $2) measure.py $2 $typ 100 12 > sub.out 2>sub.err; wait $P
    else
      $(py $2) measure.py $2 $typ 100 12 > sub.out 2>sub.err & S=$!; sleep 1
      $(py $1) measure.py $1 $typ 100 > pub.out 2>pub.err; wait $S
    fi
    echo "${ORDER:-subfirst} $typ $1 -> $2: $(cat sub.out) | pub: $(cat pub.out) | 'invalid type object' lines: $(cat sub.err pub.err | grep -c 'invalid type')"
  done
done
rm -f pub.out pub.err sub.out sub.err
