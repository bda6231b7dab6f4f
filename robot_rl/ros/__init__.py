"""ROS 2 wire support: message types, QoS profiles and names for the Cyclone DDS backend."""
