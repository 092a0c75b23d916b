"""prompt: publishes the task goal embedded from a goal image or a demo video's last frame.

Subscriptions: none.
Publications (all reliable + transient local, depth 1: a node that starts later still gets them;
subscribe with ``hv2r_ros.ros.qos.latched_qos``):
    hv2r/task/goal_embedding (std_msgs/Float32MultiArray): the goal embedding, D float32 values
        (D = the encoder's ``hv2r.embedding_size``), one dimension labelled ``embedding``.
    hv2r/task/goal_image (sensor_msgs/Image, rgb8): the frame that was embedded.
    hv2r/task/status (std_msgs/String): ``READY <file>``, ``PROMPTING <file>`` while a new
        prompt is decoded and embedded (downstream should hold), or ``NO_GOAL: <reason>``.
Parameters (``PARAMS``): models_dir (read-only), providers (read-only), prompt_video.
    Setting ``prompt_video`` at run time re-prompts: the file is decoded and embedded inside the
    parameter callback, and a file that is missing, empty, undecodable or gives a non-finite
    embedding is rejected with the reason, leaving the previous goal published. Prompts are
    cached by content hash, so swapping back to an earlier one is immediate.
Construction raises (main exits non-zero) when the encoder does not load or a ``prompt_video``
given at start cannot be used; an empty ``prompt_video`` starts with ``NO_GOAL``.
"""

from __future__ import annotations

from pathlib import Path

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray, MultiArrayDimension, String

from hv2r_ros.core.goal import GoalError, GoalProvider
from hv2r_ros.core.models.contract import ModelContractError
from hv2r_ros.core.models.runtime import Encoder
from hv2r_ros.core.status import Status
from hv2r_ros.ros import qos
from hv2r_ros.ros.image import array_to_image
from hv2r_ros.ros.params import ParamSpec, add_validator, declare
from hv2r_ros.ros.spin import run_node

ENCODER_FILE = "encoder.onnx"

PARAMS = (
    ParamSpec("models_dir", "str", "", "Folder with encoder.onnx (the same encoder as the "
              "policy's; required)", read_only=True),
    ParamSpec("providers", "str[]", ["tensorrt", "cuda", "cpu"], "onnxruntime providers to "
              "try, in order", read_only=True),
    ParamSpec("prompt_video", "str", "", "Goal image (png/jpg) or demo video (mp4/avi/mkv/"
              "webm; its last frame is the goal); empty: no goal yet. Settable at run time"),
)


class PromptNode(Node):
    """Wiring of ``GoalProvider``: the encoder loads here, the goal is re-set by parameter."""

    def __init__(self, node_name: str = "prompt", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        try:
            self._wire()
        except Exception:
            self.destroy_node()  # nothing half-built stays registered with the context
            raise

    def _wire(self) -> None:
        p = declare(self, PARAMS)
        if not p["models_dir"]:
            raise ModelContractError("parameter models_dir is not set: a folder with "
                                     f"{ENCODER_FILE}", field="models_dir")
        path = Path(p["models_dir"]) / ENCODER_FILE
        if not path.is_file():
            raise ModelContractError(f"{ENCODER_FILE} not found", file=str(path))
        encoder = Encoder(path, p["providers"], batch_size=1)
        self.goals = GoalProvider(encoder)
        latched = qos.latched_qos()
        self.embedding_pub = self.create_publisher(Float32MultiArray,
                                                   "hv2r/task/goal_embedding", latched)
        self.image_pub = self.create_publisher(Image, "hv2r/task/goal_image", latched)
        self.status_pub = self.create_publisher(String, "hv2r/task/status", latched)
        self.status = ""
        self.source = ""
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
        self.status = text
        self.status_pub.publish(String(data=text))

    def _prompt(self, path: str) -> str | None:
        """Decode, embed and publish the goal of ``path``; the reason when it cannot."""
        previous = self.status
        self._publish_status(f"PROMPTING {path}")
        try:
            embedding, frame, status = self.goals.set_source(path)
        except GoalError as exc:
            problem = str(exc)
        else:
            problem = None if status is Status.OK else \
                f"{path}: goal embedding rejected ({status.value})"
        if problem:
            self.get_logger().error(f"prompt rejected: {problem}")
            self._publish_status(previous or f"NO_GOAL: {problem}")
            return problem
        stamp = self.get_clock().now().to_msg()
        msg = Float32MultiArray()
        msg.layout.dim = [MultiArrayDimension(label="embedding", size=embedding.size,
                                              stride=embedding.size)]
        msg.data = embedding.tolist()
        self.image_pub.publish(array_to_image(frame, "rgb8", stamp, "goal"))
        self.embedding_pub.publish(msg)
        self.source = path
        self._publish_status(f"READY {path}")
        self.get_logger().info(f"goal: {self.goals.last_description}")
        return None

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name == "prompt_video" and parameter.type_ == Parameter.Type.STRING:
                if not parameter.value:
                    return SetParametersResult(
                        successful=False, reason="prompt_video: an empty path would drop the "
                                                 "goal; set another image or video")
                problem = self._prompt(parameter.value)
                if problem:
                    return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)


def main(args: list[str] | None = None) -> None:
    """Run the node (single-threaded: it only publishes, from its parameter callback)."""
    run_node(PromptNode, args)


if __name__ == "__main__":
    main()
