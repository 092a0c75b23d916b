"""The hv2r_ros stack on the simulated robot: bringup.launch.py with sim:=true.

    ros2 launch hv2r_ros sim.launch.py robot:=panda models:=/path/to/models \\
        prompt_video:=/path/to/demo.mp4

The simulated robot node publishes the cameras and joint_states and follows the commands; the
other arguments are bringup.launch.py's (docs/running.md).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, ThisLaunchFileDir

from hv2r_ros.ros.stack_plan import LAUNCH_ARGUMENTS

FORWARDED = [(name, default, description) for name, default, description in LAUNCH_ARGUMENTS
             if name != "sim"]


def generate_launch_description():
    bringup = PythonLaunchDescriptionSource(
        PathJoinSubstitution([ThisLaunchFileDir(), "bringup.launch.py"]))
    arguments = [(name, LaunchConfiguration(name)) for name, _, _ in FORWARDED]
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in FORWARDED]
        + [IncludeLaunchDescription(bringup, launch_arguments=arguments + [("sim", "true")])])
