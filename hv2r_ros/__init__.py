"""hv2r_ros: drive a robot arm or humanoid from a human demonstration video, safely."""

__version__ = "0.1.0"
