"""Pure-Python core: math, safety logic and model handling.

Nothing under this package imports rclpy or a ROS message package; ``test/test_layering.py``
enforces it by importing every module here with those packages blocked.
"""
