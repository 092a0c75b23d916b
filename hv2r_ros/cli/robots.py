"""List the robot profiles, or validate one and print its summary.

A profile is validated in full (URDF found and parsed, joints and frames present, limits no
looser than the URDF's or the vendor's) before anything is printed; an invalid profile exits
with status 2 and an error naming the file and the field.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "robot", nargs="?", help="profile name (see `hv2r robots`) or path to a profile YAML"
    )
    parser.add_argument(
        "--robot-description",
        metavar="URDF",
        help="URDF file to use for a profile whose urdf.source is robot_description",
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from hv2r_ros.core.robot_profile import list_robot_profiles, load_robot_profile

    if args.robot is None:
        for name in list_robot_profiles():
            profile = load_robot_profile(name)
            print(
                f"{name:8s} {len(profile.joint_names):2d} joints  "
                f"end effectors: {', '.join(profile.end_effector_frames)}  "
                f"output: {profile.command_interface.type}"
            )
        return 0
    description = None
    if args.robot_description:
        with open(args.robot_description, encoding="utf-8") as handle:
            description = handle.read()
    profile = load_robot_profile(args.robot, robot_description=description)
    model = profile.kinematic_model()
    limits = profile.limits
    print(f"profile   {profile.file}")
    print(f"urdf      {profile.urdf_source}")
    print(f"base      {profile.base_frame}")
    print(f"output    {profile.command_interface.type} on {profile.command_interface.topic}")
    print(f"timeout   {profile.command_timeout_s * 1e3:.0f} ms   control period "
          f"{profile.control_period_s * 1e3:.1f} ms")
    print(f"{'joint':28s} {'min':>8s} {'max':>8s} {'vel':>7s} {'acc':>7s} {'home':>8s}")
    for i, name in enumerate(limits.names):
        print(
            f"{name:28s} {limits.position_min[i]:8.3f} {limits.position_max[i]:8.3f} "
            f"{limits.velocity_max[i]:7.3f} {limits.acceleration_max[i]:7.2f} "
            f"{profile.home[i]:8.3f}"
        )
    for frame in profile.end_effector_frames:
        pose = model.frame_pose(profile.home, model.frame_id(frame))
        print(f"{frame} at home: xyz = {np.array2string(pose.translation, precision=3)} m")
    box = profile.workspace
    print(f"workspace {np.array2string(box.box_min, precision=2)} .. "
          f"{np.array2string(box.box_max, precision=2)} m, tool speed "
          f"{box.linear_speed_max:.3f} m/s, {box.angular_speed_max:.2f} rad/s")
    return 0
