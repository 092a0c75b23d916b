"""A listening node for the closed-loop demo: what the stack did, measured from its topics.

It subscribes (never publishes) to the simulated robot's ground truth, the prompt's progress,
status and goal image, the overhead camera, the policy's and the safety filter's action chunks,
the joint commands and the diagnostics, and keeps:

- the episode's outcome (success, cube-to-pad distance, grasped object) from ``sim/ground_truth``;
- the progress curve (receipt time, progress in [0, 1]) from ``hv2r/task/progress``;
- overhead frames at ``frame_rate_hz`` for the demo video, and the goal image;
- latencies from message stamps: capture (the action's ``header.stamp``) to the policy's
  publication and to the safety filter's (receipt here, same clock), and the joint-command
  periods (rate and jitter of the command output);
- the policy node's compute latencies (encoder, policy) from its diagnostics.

All times are the node clock's (system time, the clock the stamps use) in seconds.
"""

from __future__ import annotations

import threading

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, String
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

from hv2r_ros.ros import qos
from hv2r_ros.ros.image import image_to_array, to_rgb
from hv2r_ros.ros.stamps import to_seconds
from hv2r_ros.sim.task_messages import ground_truth_from_json

__all__ = ["DemoMonitor"]


class DemoMonitor(Node):
    """Records what the demo needs to report (module docstring).

    Args:
        command_topic: The profile's joint command topic (``command_interface.topic``).
        frame_rate_hz: Overhead frames kept per second for the video.
        node_kwargs: Passed to ``rclpy.node.Node`` (``context``, ``namespace``).
    """

    def __init__(self, command_topic: str, *, frame_rate_hz: float = 10.0,
                 **node_kwargs) -> None:
        super().__init__("hv2r_demo_monitor", **node_kwargs)
        self.lock = threading.Lock()
        self.frame_period_s = 1.0 / frame_rate_hz
        self.frames: list[tuple[float, np.ndarray]] = []
        self.goal_image: np.ndarray | None = None
        self.progress: list[tuple[float, float]] = []
        self.status: list[tuple[float, str]] = []
        self.truth = None  # the latest TruthSample
        self.truth_log: list[tuple[float, float, bool, str | None]] = []
        self.action_latency_s: list[float] = []
        self.safe_latency_s: list[float] = []
        self.command_times_s: list[float] = []
        self.compute_ms: dict[str, float] = {}
        self.start_s = self.now_s()
        sensor = qos.sensor_qos()
        self.create_subscription(Image, "overhead_camera/image_raw", self._on_frame, sensor)
        self.create_subscription(Image, "hv2r/task/goal_image", self._on_goal_image,
                                 qos.latched_qos())
        self.create_subscription(Float32, "hv2r/task/progress", self._on_progress, 10)
        self.create_subscription(String, "hv2r/task/status", self._on_status, qos.latched_qos())
        self.create_subscription(String, "sim/ground_truth", self._on_truth, qos.command_qos())
        self.create_subscription(MultiDOFJointTrajectory, "hv2r/action",
                                 lambda m: self._on_action(m, self.action_latency_s),
                                 qos.action_qos())
        self.create_subscription(MultiDOFJointTrajectory, "hv2r/action_safe",
                                 lambda m: self._on_action(m, self.safe_latency_s),
                                 qos.action_qos())
        self.create_subscription(JointTrajectory, command_topic, self._on_command,
                                 qos.command_qos())
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics,
                                 qos.diagnostics_qos())

    def now_s(self) -> float:
        """The node clock [s]."""
        return self.get_clock().now().nanoseconds * 1e-9

    def elapsed_s(self) -> float:
        """Seconds since the monitor started."""
        return self.now_s() - self.start_s

    def _on_frame(self, msg: Image) -> None:
        t = self.elapsed_s()
        if self.frames and t - self.frames[-1][0] < self.frame_period_s:
            return
        pixels, status = image_to_array(msg)
        if pixels is None:
            return
        rgb, status = to_rgb(pixels, msg.encoding)
        if rgb is not None:
            with self.lock:
                self.frames.append((t, np.array(rgb, copy=True)))

    def _on_goal_image(self, msg: Image) -> None:
        pixels, _ = image_to_array(msg)
        if pixels is not None:
            rgb, _ = to_rgb(pixels, msg.encoding)
            if rgb is not None:
                self.goal_image = np.array(rgb, copy=True)

    def _on_progress(self, msg: Float32) -> None:
        with self.lock:
            self.progress.append((self.elapsed_s(), float(msg.data)))

    def _on_status(self, msg: String) -> None:
        with self.lock:
            self.status.append((self.elapsed_s(), msg.data))

    def _on_truth(self, msg: String) -> None:
        try:
            sample = ground_truth_from_json(msg.data)
        except ValueError:
            return
        with self.lock:
            self.truth = sample
            self.truth_log.append((self.elapsed_s(), sample.truth.target_distance_m,
                                   sample.truth.success, sample.truth.grasped))

    def _on_action(self, msg, sink: list[float]) -> None:
        sink.append(self.now_s() - to_seconds(msg.header.stamp))

    def _on_command(self, msg: JointTrajectory) -> None:
        self.command_times_s.append(self.now_s())

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if not status.name.endswith(": inference"):
                continue
            for item in status.values:
                if item.key.endswith("_ms"):
                    try:
                        self.compute_ms[item.key] = float(item.value)
                    except ValueError:
                        pass

    def success_since_s(self) -> float | None:
        """Monitor time since which success has held continuously, or None."""
        with self.lock:
            since = None
            for t, _, success, _ in self.truth_log:
                since = (since if since is not None else t) if success else None
            return since
