"""Synthetic inputs for running the whole stack without cameras or a robot (`hv2r run
--synthetic`): generated camera videos and goal image, and a robot that follows the commands.

``write_media`` writes one short looping video per camera (a textured background whose
brightness swings over the loop, with a moving square, different per camera; 160 x 120 unless
a size is given: ``hv2r bench graph`` plays 640 x 480) and a goal image; the camera nodes play
them as ``source: file`` and the prompt node embeds the goal.
``SyntheticRobot`` closes the loop: it subscribes to the robot's controller topic
(``JointTrajectory`` for a joint trajectory controller, ``Float64MultiArray`` for a forward
position controller), follows the commanded positions with the first-order lag of a stiff
position controller (``hv2r_ros.sim.kinematic.KinematicRobot``) and publishes ``joint_states``
at the control rate, starting at the profile's home pose. It has no dynamics, cameras or
contacts: it exercises the graph, not a task. ``python -m hv2r_ros.ros.synthetic ROBOT
[--ros-args ...]`` runs it alone, as its own process (``hv2r bench graph`` does: a robot is
never inside the stack's process).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.ros import qos
from hv2r_ros.ros.joints import float64_array
from hv2r_ros.sim.kinematic import KinematicRobot

if TYPE_CHECKING:
    from hv2r_ros.ros.stack_plan import StackPlan

VIDEO_SIZE_PX = (160, 120)   # (width, height): small, the encoders resize anyway
VIDEO_FPS_HZ = 30.0
VIDEO_FRAMES = 60            # 2 s, looped by the camera node
TRACKING_TIME_CONSTANT_S = 0.02


@dataclasses.dataclass(frozen=True)
class SyntheticMedia:
    """Files written by ``write_media``: camera name -> video, and the goal image."""

    videos: dict[str, str]
    goal_image: str


def _frame(index: int, seed: int, background: np.ndarray) -> np.ndarray:
    """One BGR frame: ``background``, its brightness swinging over the loop, with a square
    moving along a circle. The brightness changes what an encoder sees as a whole (a square
    moving inside the image barely moves a pooled embedding), so the policy's input changes."""
    height, width = background.shape[:2]
    angle = 2.0 * np.pi * index / VIDEO_FRAMES + seed
    frame = np.clip(background * (1.0 + 0.6 * np.sin(angle)), 0, 255).astype(np.uint8)
    cx = int(width / 2 + 0.3 * width * np.cos(angle))
    cy = int(height / 2 + 0.3 * height * np.sin(angle))
    half = max(2, round(12 * width / VIDEO_SIZE_PX[0]))
    colour = tuple(int(c) for c in np.random.default_rng(seed).integers(64, 256, 3))
    cv2.rectangle(frame, (cx - half, cy - half), (cx + half, cy + half), colour, thickness=-1)
    return frame


def write_media(directory: str | Path, cameras: Sequence[str],
                size_px: tuple[int, int] = VIDEO_SIZE_PX) -> SyntheticMedia:
    """Write ``<camera>.mp4`` per camera and ``goal.png`` into ``directory``.

    Args:
        directory: Where to write (created).
        cameras: Camera names, one video each.
        size_px: (width, height) of the videos [px].

    Raises:
        ConfigError: OpenCV cannot write an mp4 here (no video encoder).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    width, height = size_px
    videos = {}
    for seed, camera in enumerate(cameras):
        background = np.random.default_rng(100 + seed).integers(
            32, 160, (height, width, 3)).astype(np.float64)
        path = directory / f"{camera}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS_HZ,
                                 (width, height))
        if not writer.isOpened():
            raise ConfigError("OpenCV cannot write mp4 video (no mp4v encoder in this build)",
                              file=str(path))
        for index in range(VIDEO_FRAMES):
            writer.write(_frame(index, seed, background))
        writer.release()
        videos[camera] = str(path)
    goal = directory / "goal.png"
    background = np.full((height, width, 3), 96.0)
    cv2.imwrite(str(goal), _frame(VIDEO_FRAMES // 4, len(cameras), background))
    return SyntheticMedia(videos, str(goal))


class SyntheticRobot(Node):
    """A position-controlled robot that follows the stack's commands; publishes joint_states.

    Args:
        profile: The robot profile (joints, limits, home pose, command interface, rate).
        time_constant_s: Tracking lag of the joints [s].
        **kwargs: ``rclpy.node.Node`` keyword arguments (context, namespace).

    Raises:
        ConfigError: The profile's command interface is not a ros2_control controller.
    """

    def __init__(self, profile, *, time_constant_s: float = TRACKING_TIME_CONSTANT_S,
                 **kwargs) -> None:
        super().__init__("synthetic_robot", **kwargs)
        self.names = list(profile.joint_names)
        self.index = {name: i for i, name in enumerate(self.names)}
        limits = profile.limits
        self.robot = KinematicRobot(profile.home, limits.position_min, limits.position_max,
                                    time_constant_s=time_constant_s)
        self.target = np.array(profile.home, dtype=np.float64)
        self.period_s = profile.control_period_s
        interface = profile.command_interface
        if interface.type == "joint_trajectory_controller":
            self.create_subscription(JointTrajectory, interface.topic, self._on_trajectory,
                                     qos.command_qos())
        elif interface.type == "forward_position_controller":
            self.create_subscription(Float64MultiArray, interface.topic, self._on_forward,
                                     qos.command_qos())
        else:
            raise ConfigError("the synthetic robot follows ros2_control controller commands "
                              "only", file=str(profile.file), field="command_interface.type",
                              value=interface.type,
                              choices=["joint_trajectory_controller",
                                       "forward_position_controller"])
        self.publisher = self.create_publisher(JointState, "joint_states", qos.sensor_qos())
        self.msg = JointState(name=self.names)
        self.timer = self.create_timer(self.period_s, self._tick)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if msg.points and len(msg.points[-1].positions) == len(msg.joint_names):
            for name, value in zip(msg.joint_names, msg.points[-1].positions):
                if name in self.index and np.isfinite(value):
                    self.target[self.index[name]] = value

    def _on_forward(self, msg: Float64MultiArray) -> None:
        values = np.asarray(msg.data, dtype=np.float64)
        if values.shape == self.target.shape and np.isfinite(values).all():
            self.target[:] = values

    def _tick(self) -> None:
        q = self.robot.command(self.target, self.period_s)
        self.msg.header.stamp = self.get_clock().now().to_msg()
        self.msg.position = float64_array(q)
        self.publisher.publish(self.msg)


def main(args: list[str] | None = None) -> None:
    """``python -m hv2r_ros.ros.synthetic ROBOT [--ros-args ...]``: the synthetic robot alone."""
    import sys

    from hv2r_ros.core.robot_profile import load_robot_profile
    from hv2r_ros.ros.spin import run_node

    argv = sys.argv[1:] if args is None else list(args)
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: python -m hv2r_ros.ros.synthetic ROBOT [--ros-args ...]")
    profile = load_robot_profile(argv[0])
    run_node(lambda: SyntheticRobot(profile), ["synthetic_robot", *argv[1:]],
             name="synthetic_robot")


if __name__ == "__main__":
    main()


def with_synthetic_inputs(plan: StackPlan, directory: Path, *, set_prompt: bool,
                          size_px: tuple[int, int] | None = None) -> StackPlan:
    """``plan`` with its cameras playing generated videos written to ``directory`` (and the
    prompt a generated goal image when ``set_prompt``); ``size_px`` (width, height) of the
    videos, None for the default (``synthetic.VIDEO_SIZE_PX``)."""
    media = write_media(directory, list(plan.cameras), size_px or VIDEO_SIZE_PX)
    for camera, path in media.videos.items():
        plan = plan.with_values(f"{camera}_camera", {"source": "file", "path": path})
    if set_prompt:
        plan = plan.with_values("prompt", {"prompt_video": media.goal_image})
    return plan
