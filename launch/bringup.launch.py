"""Bring up the hv2r_ros stack for one robot: cameras, prompt, policy, safety filter, output.

    ros2 launch hv2r_ros bringup.launch.py robot:=panda models:=/path/to/models \\
        prompt_video:=/path/to/demo.mp4 [sim:=true] [namespace:=left] [output:=ros2_control] \\
        [params_file:=my_cameras.yaml] [use_fastdds_profile:=false]

The nodes and their parameter files (config/stack.yaml, config/params/<robot>.yaml, the derived
values, then params_file) come from ``hv2r_ros.ros.stack_plan.plan_stack``: the same plan
`hv2r run` runs in one process. ``ros2 launch hv2r_ros bringup.launch.py --show-args`` lists
the arguments; docs/running.md explains them.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from hv2r_ros.ros.stack_plan import LAUNCH_ARGUMENTS, PACKAGE, parse_bool, plan_stack


def launch_stack(context, *args, **kwargs):
    """The stack's actions for the launch arguments' values (runs when the launch starts)."""
    def value(name):
        return LaunchConfiguration(name).perform(context)

    extra = value("params_file")
    plan = plan_stack(value("robot"), models=value("models"),
                      sim=parse_bool(value("sim"), "sim"), prompt_video=value("prompt_video"),
                      namespace=value("namespace"), output=value("output"),
                      params_files=[extra] if extra else [],
                      use_fastdds_profile=parse_bool(value("use_fastdds_profile"),
                                                     "use_fastdds_profile"),
                      environ=context.environment)
    actions = [SetEnvironmentVariable(name, path) for name, path in plan.environment.items()]
    actions += [Node(package=PACKAGE, executable=node.executable, name=node.name,
                     namespace=plan.namespace, parameters=list(node.parameters),
                     output="screen")
                for node in plan.nodes]
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in LAUNCH_ARGUMENTS]
        + [OpaqueFunction(function=launch_stack)])
