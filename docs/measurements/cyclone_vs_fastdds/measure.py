"""Cyclone (robot_rl's retired _dds backend) <-> stock rclpy (Fast DDS): count messages received, 2 processes.

usage: measure.py {dds_pub|dds_sub|rclpy_pub|rclpy_sub} TYPE N [SUBSCRIBER_SECONDS]; run.sh runs the pairs.
"""
import sys, time, os
role, typ, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
TYPES = {"Image": ("sensor_msgs/msg/Image", "sensor_msgs.msg"), "PoseStamped": ("geometry_msgs/msg/PoseStamped", "geometry_msgs.msg"),
 "JointState": ("sensor_msgs/msg/JointState", "sensor_msgs.msg"), "CameraInfo": ("sensor_msgs/msg/CameraInfo", "sensor_msgs.msg"),
 "Float64MultiArray": ("std_msgs/msg/Float64MultiArray", "std_msgs.msg")}
rtype, mod = TYPES[typ]
topic = "/m13/" + typ.lower()
if role.startswith("dds"):
    # needs robot_rl at commit 29bd897 or earlier (robot_rl/ros/_dds.py was retired afterwards)
    from robot_rl.ros.node import Node, make_message
    node = Node("m13_" + role, backend="dds")
    if role == "dds_pub":
        pub = node.create_publisher(rtype, topic)
        time.sleep(3)
        for i in range(n):
            if typ == "Image":
                import numpy as np
                m = make_message(rtype, height=4, width=4, encoding="rgb8", step=12, data=np.full(48, i % 256, np.uint8))
            else:
                m = make_message(rtype)
            pub.publish(m); node.spin(timeout_s=0.02)
        node.spin(timeout_s=2); print("published", n)
    else:
        got = []
        node.create_subscription(rtype, topic, lambda m: got.append(m))
        node.spin(timeout_s=float(sys.argv[4]))
        print("received", len(got), "of", n)
    node.shutdown()
else:
    import rclpy, importlib
    cls = getattr(importlib.import_module(mod), typ)
    rclpy.init()
    node = rclpy.create_node("m13_" + role)
    if role == "rclpy_pub":
        pub = node.create_publisher(cls, topic, 10)
        end = time.time() + 3
        while time.time() < end: rclpy.spin_once(node, timeout_sec=0.05)
        for i in range(n):
            m = cls()
            if typ == "Image":
                m.height, m.width, m.encoding, m.step, m.data = 4, 4, "rgb8", 12, bytes([i % 256]) * 48
            pub.publish(m); rclpy.spin_once(node, timeout_sec=0.02)
        end = time.time() + 2
        while time.time() < end: rclpy.spin_once(node, timeout_sec=0.05)
        print("published", n, "matched subs", pub.get_subscription_count())
    else:
        got = []
        sub = node.create_subscription(cls, topic, got.append, 10)
        end = time.time() + float(sys.argv[4])
        while time.time() < end: rclpy.spin_once(node, timeout_sec=0.05)
        print("received", len(got), "of", n, "matched pubs", sub.get_publisher_count())
    node.destroy_node(); rclpy.shutdown()
