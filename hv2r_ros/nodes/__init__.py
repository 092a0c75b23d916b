"""One ROS 2 node per module, each thin over a core object."""
