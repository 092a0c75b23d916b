"""prompt: turns a demo video into the task (goal, subgoals) and tracks the robot's progress on it.

Subscriptions (progress callback group, beside the parameter callbacks: spin with a
MultiThreadedExecutor):
    overhead_camera/image_raw (sensor_msgs/Image, sensor QoS depth 1, any colour encoding of
        ``hv2r_ros.ros.image``): the latest frame is embedded at ``progress_rate_hz`` and
        tracked against the current subgoal, timed by its ``header.stamp``.
Publications:
    hv2r/task/goal_embedding (std_msgs/Float32MultiArray, reliable + transient local): D float32
        values, one dimension labelled ``embedding``: the final goal (``goal_mode`` final) or
        the current subgoal (``goal_mode`` subgoal: re-published on each advancement).
    hv2r/task/goal_image (sensor_msgs/Image, rgb8, latched): the frame of that embedding
        (longer side at most 320 px).
    hv2r/task/status (std_msgs/String, latched): ``READY <file>``, ``PROMPTING <file>`` while a
        new prompt is built (downstream should hold), ``SUBGOAL <k>/<K> <file>`` on each
        advancement, ``COMPLETE <file>``, or ``NO_GOAL: <reason>``.
    hv2r/task/progress (std_msgs/Float32, reliable depth 10): task progress in [0, 1],
        ``(subgoal + progress toward it) / K``, 1 once complete; only while progress is
        tracked (a calibration, see docs/prompt.md).
Parameters (``PARAMS``): models_dir, providers, prompt_video, sample_rate_hz [Hz], cache_dir,
    calibration_file, progress_rate_hz [Hz], completion_hold_s [s], progress_smoothing_s [s],
    goal_mode. Setting ``prompt_video`` at run time re-prompts (also to restart tracking): the
    demo is built inside the parameter callback, and one that is missing, empty, truncated,
    undecodable or gives a non-finite embedding is rejected with the reason, leaving the
    previous prompt in place. Task specs are cached by content hash, so re-using a prompt is
    immediate.
Construction raises (main exits non-zero) when the encoder or the calibration file does not
load or a ``prompt_video`` given at start cannot be used; an empty one starts with ``NO_GOAL``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, Float32MultiArray, MultiArrayDimension, String

from hv2r_ros.core.goal import GoalError
from hv2r_ros.core.models.contract import ModelContractError
from hv2r_ros.core.models.runtime import Encoder
from hv2r_ros.core.prompt.frames import SamplingConfig
from hv2r_ros.core.prompt.session import PromptSession, SessionConfig
from hv2r_ros.core.prompt.spec import default_cache_dir
from hv2r_ros.ros import qos
from hv2r_ros.ros.image import array_to_image, image_to_array, to_rgb
from hv2r_ros.ros.params import ParamSpec, add_validator, declare
from hv2r_ros.ros.spin import run_node, wire_or_destroy
from hv2r_ros.ros.stamps import to_seconds

ENCODER_FILE = "encoder.onnx"

PARAMS = (
    ParamSpec("models_dir", "str", "", "Folder with encoder.onnx (the same encoder as the "
              "policy's; required)", read_only=True),
    ParamSpec("providers", "str[]", ["tensorrt", "cuda", "cpu"], "onnxruntime providers to "
              "try, in order", read_only=True),
    ParamSpec("prompt_video", "str", "", "Demo video (mp4/avi/mkv/webm/mov), folder of frame "
              "images, or goal image (png/jpg); empty: no goal yet. Settable at run time"),
    ParamSpec("sample_rate_hz", "float", 10.0, "Demo frames embedded per second of video [Hz]",
              min=0.5, max=60.0, read_only=True),
    ParamSpec("cache_dir", "str", "", "Folder of cached task specs; empty: "
              "$XDG_CACHE_HOME/hv2r/prompts (~/.cache/hv2r/prompts)", read_only=True),
    ParamSpec("calibration_file", "str", "", "Progress thresholds calibrated on robot "
              "rollouts (`hv2r prompt --calibrate`); empty: calibrated on the demo itself",
              read_only=True),
    ParamSpec("progress_rate_hz", "float", 5.0, "Camera frames embedded per second for "
              "progress [Hz]", min=0.1, max=30.0, read_only=True),
    ParamSpec("completion_hold_s", "float", 1.0, "Progress must hold above its threshold this "
              "long to advance or complete [s] (demo self-calibration; a calibration file "
              "carries its own)", min=0.0, max=30.0, read_only=True),
    ParamSpec("progress_smoothing_s", "float", 0.5, "Time constant of the progress average "
              "[s] (demo self-calibration; a calibration file carries its own)", min=0.0,
              max=10.0, read_only=True),
    ParamSpec("goal_mode", "str", "final", "What goal_embedding carries: the final goal, or "
              "the current subgoal", read_only=True, choices=("final", "subgoal")),
)


class PromptNode(Node):
    """Wiring of ``PromptSession``: the encoder loads here, the prompt is set by parameter."""

    def __init__(self, node_name: str = "prompt", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        wire_or_destroy(self, self._wire)

    def _wire(self) -> None:
        p = self.params = declare(self, PARAMS)
        if not p["models_dir"]:
            raise ModelContractError("parameter models_dir is not set: a folder with "
                                     f"{ENCODER_FILE}", field="models_dir")
        path = Path(p["models_dir"]) / ENCODER_FILE
        if not path.is_file():
            raise ModelContractError(f"{ENCODER_FILE} not found", file=str(path))
        encoder = Encoder(path, p["providers"], batch_size=1)
        self.session = PromptSession(encoder, SessionConfig(
            sampling=SamplingConfig(rate_hz=p["sample_rate_hz"]),
            cache_dir=Path(p["cache_dir"]) if p["cache_dir"] else default_cache_dir(),
            calibration_file=p["calibration_file"], hold_s=p["completion_hold_s"],
            smoothing_s=p["progress_smoothing_s"]))
        latched = qos.latched_qos()
        self.embedding_pub = self.create_publisher(Float32MultiArray,
                                                   "hv2r/task/goal_embedding", latched)
        self.image_pub = self.create_publisher(Image, "hv2r/task/goal_image", latched)
        self.status_pub = self.create_publisher(String, "hv2r/task/status", latched)
        self.progress_pub = self.create_publisher(Float32, "hv2r/task/progress", 10)
        self.status, self.source = "", ""
        self._publish_lock = threading.Lock()
        self._latest, self._tracked = None, None
        progress = MutuallyExclusiveCallbackGroup()
        self.create_subscription(Image, "overhead_camera/image_raw", self._on_image,
                                 qos.sensor_qos(1), callback_group=progress)
        self.create_timer(1.0 / p["progress_rate_hz"], self._track, callback_group=progress)
        self.get_logger().info(f"encoder {path} on {encoder.provider}, D = "
                               f"{encoder.spec.embedding_size}")
        if p["prompt_video"]:
            problem = self._prompt(p["prompt_video"])
            if problem:
                raise GoalError(problem, field="prompt_video")
        else:
            self._publish_status("NO_GOAL: parameter prompt_video is not set")
        # rclpy runs the last-added callback first: types and choices are checked before any
        # decoding starts.
        self.add_on_set_parameters_callback(self._on_set_parameters)
        add_validator(self, PARAMS)

    def _publish_status(self, text: str) -> None:
        with self._publish_lock:
            self.status = text
            self.status_pub.publish(String(data=text))

    def _publish_goal(self, subgoal: int) -> None:
        spec = self.session.spec
        embedding, frame = spec.subgoal_embeddings[subgoal], spec.subgoal_frames[subgoal]
        msg = Float32MultiArray()
        msg.layout.dim = [MultiArrayDimension(label="embedding", size=embedding.size,
                                              stride=embedding.size)]
        msg.data = embedding.tolist()
        stamp = self.get_clock().now().to_msg()
        self.image_pub.publish(array_to_image(frame, "rgb8", stamp, "goal"))
        self.embedding_pub.publish(msg)

    def _prompt(self, path: str) -> str | None:
        """Build the task of ``path`` and publish its goal; the reason when it cannot."""
        previous = self.status
        self._publish_status(f"PROMPTING {path}")
        try:
            spec = self.session.load(path)
        except GoalError as exc:  # PromptError included
            self.get_logger().error(f"prompt rejected: {exc}")
            self._publish_status(previous or f"NO_GOAL: {exc}")
            return str(exc)
        self.source = path
        self._publish_goal(spec.subgoal_count - 1 if self.params["goal_mode"] == "final" else 0)
        self._publish_status(f"READY {path}")
        report = self.session.report
        times = ", ".join(f"{t:.2f}" for t in spec.subgoal_times_s)
        self.get_logger().info(
            f"task from {path}: {spec.subgoal_count} subgoal(s) at [{times}] s "
            f"({'cache' if report.cached else 'built'} in {report.seconds:.2f} s); "
            f"{self.session.calibration_note}")
        return None

    def _on_image(self, msg: Image) -> None:
        pixels, status = image_to_array(msg)
        if pixels is not None:
            pixels, status = to_rgb(pixels, msg.encoding)
        if pixels is None:
            self.get_logger().warning(f"overhead image dropped ({msg.encoding!r}): "
                                      f"{status.value}", throttle_duration_sec=1.0)
            return
        self._latest = (pixels, to_seconds(msg.header.stamp))

    def _track(self) -> None:
        latest = self._latest
        if latest is None or latest is self._tracked:
            return
        self._tracked = latest
        state = self.session.observe(*latest)
        if state is None or not state.accepted:
            return
        self.progress_pub.publish(Float32(data=float(state.task_progress)))
        if not state.advanced:
            return
        if state.complete:
            self._publish_status(f"COMPLETE {self.source}")
            return
        if self.params["goal_mode"] == "subgoal":
            self._publish_goal(state.subgoal)
        self._publish_status(f"SUBGOAL {state.subgoal + 1}/{state.subgoal_count} {self.source}")

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name == "prompt_video" and parameter.type_ == Parameter.Type.STRING:
                if not parameter.value:
                    return SetParametersResult(
                        successful=False, reason="prompt_video: an empty path would drop the "
                                                 "goal; set another video or image")
                problem = self._prompt(parameter.value)
                if problem:
                    return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)


def main(args: list[str] | None = None) -> None:
    """Run the node on a MultiThreadedExecutor (progress tracking beside re-prompting)."""
    run_node(PromptNode, args, executor_factory=MultiThreadedExecutor)


if __name__ == "__main__":
    main()
