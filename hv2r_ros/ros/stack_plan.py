"""Which nodes make up the stack, with which parameters: one plan for `hv2r run` and the launch
files, so that both start the same node classes with the same parameter files.

Each node gets its parameters from, in this order (a later source wins, as with
``--params-file`` given several times and with launch_ros ``Node(parameters=[...])``):

1. ``config/stack.yaml``: every node's parameters (``/**/<node_name>:`` sections, so a
   namespace does not change them);
2. ``config/params/<robot>.yaml``: what differs per robot, when the robot has one;
3. values the plan derives (a dict): ``robot`` for the nodes that load the profile,
   ``models_dir`` and ``prompt_video`` from the arguments, ``action_space`` from the policy's
   metadata, each camera's ``camera_name`` from the profile's camera topic (the simulated
   robot's ``cameras``: the policy's);
4. the user's extra parameter files, in the order given.

Node executables (``setup.py`` NODE_EXECUTABLES) are registered in ``NODE_TYPES``; a node the
plan needs but this installation lacks (the simulated robot) is a ``StackError`` that says so
before anything starts. Adding such a node is one line here (and its console entry point in
setup.py). No rclpy here: the launch files import this module.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.urdf import package_share_dir

PACKAGE = "hv2r_ros"
#: Executable (= module under hv2r_ros.nodes = default node name) -> "module:Class".
NODE_TYPES = {
    "camera": "hv2r_ros.nodes.camera:CameraNode",
    "prompt": "hv2r_ros.nodes.prompt:PromptNode",
    "policy": "hv2r_ros.nodes.policy:PolicyNode",
    "safety_filter": "hv2r_ros.nodes.safety_filter:SafetyFilterNode",
    "command_output": "hv2r_ros.nodes.command_output:CommandOutputNode",
    "sim": "hv2r_ros.nodes.sim:SimNode",
}
SIM_EXECUTABLE = "sim"
_DESCRIPTIONS = {SIM_EXECUTABLE: "simulated robot"}
#: ``output`` argument -> the command interface types of robot profiles it drives; the
#: ``command_output`` node sends to the one its profile names.
OUTPUTS = {"ros2_control": ("joint_trajectory_controller", "forward_position_controller"),
           "unitree_arm_sdk": ("unitree_arm_sdk",)}
OUTPUT_EXECUTABLE = "command_output"
FASTDDS_PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE",   # Fast DDS 3 (Kilted)
                             "FASTRTPS_DEFAULT_PROFILES_FILE")  # Fast DDS 2 (Humble, Jazzy)
#: Distributions whose Fast DDS (2.x) reads only FASTRTPS_DEFAULT_PROFILES_FILE; Fast DDS 3
#: warns that it is deprecated, so it is set only there.
_FASTDDS_2_DISTROS = ("humble", "iron", "jazzy")
_IMAGE_SUFFIX = "/image_raw"
#: Arguments of launch/bringup.launch.py (and sim.launch.py, which sets sim): name, default,
#: description. The same names as `hv2r run`'s options.
LAUNCH_ARGUMENTS = (
    ("robot", "panda", "robot profile name (config/robots/<name>.yaml) or profile YAML path"),
    ("models", "", "folder with encoder.onnx and policy.onnx (required)"),
    ("prompt_video", "", "goal image or demo video for the prompt node (empty: the "
                         "parameter files')"),
    ("sim", "false", "true: the simulated robot node publishes cameras and joint_states"),
    ("namespace", "", "namespace of every node and topic (two robots side by side)"),
    ("output", "", "ros2_control | unitree_arm_sdk (empty: the robot profile's command "
                   "interface)"),
    ("params_file", "", "extra ROS 2 parameter file, applied after the stack's own"),
    ("use_fastdds_profile", "true", "select config/fastdds_shm.xml (16 MiB shared memory) "
                                    "unless FASTDDS_/FASTRTPS_DEFAULT_PROFILES_FILE is set"),
)


class StackError(ConfigError):
    """The stack cannot be planned: a missing argument, file or node."""


@dataclasses.dataclass(frozen=True)
class NodePlan:
    """One node of the stack.

    Attributes:
        executable: Console entry point and module under ``hv2r_ros.nodes``.
        name: Node name (``-r __node:=<name>``; the parameter files' section name).
        files: The stack file and the robot's parameter file.
        values: Parameters the plan derives; they override ``files``.
        extra_files: The user's parameter files; they override everything.
    """

    executable: str
    name: str
    files: tuple[str, ...]
    values: dict[str, Any]
    extra_files: tuple[str, ...] = ()

    @property
    def parameters(self) -> tuple[str | dict[str, Any], ...]:
        """Parameter files and the derived dict, in order (a later one wins)."""
        return (*self.files, *([self.values] if self.values else []), *self.extra_files)


@dataclasses.dataclass(frozen=True)
class StackPlan:
    """Every node of the stack for one robot, and the environment to run them in.

    Attributes:
        robot: The ``robot`` argument (profile name or YAML path).
        profile: The loaded ``RobotProfile``.
        namespace: Namespace of every node ("" for none).
        output: ``ros2_control`` or ``unitree_arm_sdk`` (``OUTPUTS``).
        action_space: What ``hv2r/action`` carries: ``cartesian`` or ``joint`` (policy metadata).
        cameras: Camera name -> image topic (relative to the namespace), policy order.
        nodes: The nodes, in data-path order.
        environment: Variables to set before any node starts (the Fast DDS profile).
    """

    robot: str
    profile: Any
    namespace: str
    output: str
    action_space: str
    cameras: dict[str, str]
    nodes: tuple[NodePlan, ...]
    environment: dict[str, str]

    def node(self, name: str) -> NodePlan:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def with_values(self, name: str, values: Mapping[str, Any]) -> StackPlan:
        """A copy where node ``name`` also derives ``values`` (the user's files still win)."""
        nodes = tuple(dataclasses.replace(n, values={**n.values, **values}) if n.name == name
                      else n for n in self.nodes)
        return dataclasses.replace(self, nodes=nodes)


def config_dir() -> Path:
    """``config/`` of the source checkout or the installed ``share/hv2r_ros``."""
    share = package_share_dir(PACKAGE)
    if share is None or not (share / "config" / "stack.yaml").is_file():
        raise StackError("config/stack.yaml not found: run from a source checkout or an "
                         "installed hv2r_ros (colcon build / pip install)")
    return share / "config"


def stack_file() -> Path:
    """The stack parameter file, ``config/stack.yaml``."""
    return config_dir() / "stack.yaml"


def robot_params_file(robot: str) -> Path | None:
    """``config/params/<robot>.yaml`` for a profile name that has one, else None."""
    path = config_dir() / "params" / f"{robot}.yaml"
    return path if os.sep not in robot and not robot.endswith(".yaml") and path.is_file() \
        else None


def fastdds_profile() -> Path:
    """The shipped Fast DDS profile (16 MiB shared-memory segment)."""
    return config_dir() / "fastdds_shm.xml"


def fastdds_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables that select the shipped Fast DDS profile; none when one is set already.

    ``FASTDDS_DEFAULT_PROFILES_FILE`` always (Fast DDS 3: Kilted, and the PyPI wheels), plus
    ``FASTRTPS_DEFAULT_PROFILES_FILE`` where ``ROS_DISTRO`` names a Fast DDS 2 distribution.
    """
    environ = os.environ if environ is None else environ
    if any(environ.get(name) for name in FASTDDS_PROFILE_VARIABLES):
        return {}
    names = FASTDDS_PROFILE_VARIABLES if environ.get("ROS_DISTRO") in _FASTDDS_2_DISTROS \
        else FASTDDS_PROFILE_VARIABLES[:1]
    path = str(fastdds_profile())
    return {name: path for name in names}


def require_node(executable: str) -> str:
    """``"module:Class"`` of ``executable``; StackError when this installation lacks it."""
    if executable not in NODE_TYPES:
        what = _DESCRIPTIONS.get(executable, executable)
        raise StackError(f"the {what} node ('{executable}') is not installed in this version "
                         f"of {PACKAGE}; installed nodes: {', '.join(NODE_TYPES)}",
                         field="nodes")
    return NODE_TYPES[executable]


def policy_action_space(models_dir: str) -> tuple[str, tuple[str, ...]]:
    """(``cartesian`` | ``joint``, camera order) from ``<models_dir>/policy.onnx``'s metadata."""
    from hv2r_ros.core.models.onnx_file import read_model_file

    if not models_dir:
        raise StackError("a model folder is required (encoder.onnx + policy.onnx): give "
                         "--models DIR (hv2r run) or models:=DIR (ros2 launch)", field="models")
    spec = read_model_file(Path(models_dir) / "policy.onnx", "policy").spec
    return ("joint" if spec.action_space == "joint_position" else "cartesian",
            tuple(spec.camera_order))


def _camera_topics(profile, camera_order: Sequence[str]) -> dict[str, str]:
    """Camera name -> image topic, by the policy node's rule (profile topic, else default)."""
    topics = {}
    for name in camera_order:
        camera = profile.cameras.get(name)
        topic = camera.topic if camera is not None and camera.topic \
            else f"{name}_camera{_IMAGE_SUFFIX}"
        if not topic.endswith(_IMAGE_SUFFIX):
            raise StackError(f"the camera node publishes <camera_name>{_IMAGE_SUFFIX}: name the "
                             f"topic so", file=str(profile.file), field=f"cameras.{name}.topic",
                             value=topic)
        topics[name] = topic
    return topics


def parse_bool(text: str, field: str) -> bool:
    """A launch argument's boolean (true/false, 1/0, yes/no, on/off)."""
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise StackError("not a boolean", field=field, value=text, choices=["true", "false"])


def plan_stack(robot: str, *, models: str, sim: bool = False, prompt_video: str = "",
               namespace: str = "", output: str = "", params_files: Sequence[str] = (),
               use_fastdds_profile: bool = True,
               environ: Mapping[str, str] | None = None) -> StackPlan:
    """The nodes and parameter sources of the stack (module docstring).

    Args:
        robot: Robot profile name (``hv2r robots``) or profile YAML path.
        models: Folder with ``encoder.onnx`` and ``policy.onnx``.
        sim: The simulated robot publishes cameras and joint_states (no camera nodes).
        prompt_video: Goal image or demo video for the prompt node ("" keeps the files').
        namespace: Namespace of every node ("" for none).
        output: ``ros2_control`` or ``unitree_arm_sdk``: must match the profile's command
            interface (``command_output`` drives the one the profile names); "" takes it.
        params_files: Extra parameter files, applied last.
        use_fastdds_profile: Select the shipped Fast DDS profile unless one is set.
        environ: Environment to inspect (default ``os.environ``).

    Raises:
        StackError: Missing models, prompt or parameter file, an output the profile does not
            use, or a node this installation lacks.
        RobotProfileError, ModelContractError: An invalid profile or policy file.
    """
    from hv2r_ros.core.robot_profile import load_robot_profile

    profile = load_robot_profile(robot)
    interface = profile.command_interface.type
    profile_output = next((name for name, types in OUTPUTS.items() if interface in types), "")
    if output and output not in OUTPUTS:
        raise StackError("unknown output", field="output", value=output, choices=list(OUTPUTS))
    if output and output != profile_output:
        raise StackError(f"output {output!r} does not drive this robot's {interface!r} "
                         f"(output {profile_output or 'none of this package'!r} does); leave "
                         "output unset, or use a profile with such a command interface",
                         file=str(profile.file), field="command_interface.type")
    output = profile_output or output
    executables = ["prompt", "policy", "safety_filter", OUTPUT_EXECUTABLE]
    if sim:
        executables.insert(0, SIM_EXECUTABLE)
    for executable in executables:
        require_node(executable)
    for path in params_files:
        if not Path(path).is_file():
            raise StackError("parameter file not found", file=str(path))
    if prompt_video and not Path(prompt_video).is_file():
        raise StackError("prompt video not found", file=prompt_video, field="prompt_video")
    action_space, camera_order = policy_action_space(models)
    cameras = _camera_topics(profile, camera_order)

    models_dir = str(Path(models).resolve())
    if os.sep in robot or robot.endswith(".yaml"):  # a profile file: nodes may run elsewhere
        robot = str(Path(robot).resolve())
    derived: dict[str, dict[str, Any]] = {
        "prompt": {"models_dir": models_dir},
        "policy": {"robot": robot, "models_dir": models_dir},
        "safety_filter": {"robot": robot, "action_space": action_space},
        OUTPUT_EXECUTABLE: {"robot": robot, "action_space": action_space},
        SIM_EXECUTABLE: {"robot": robot, "cameras": list(cameras)},
    }
    if prompt_video:
        derived["prompt"]["prompt_video"] = str(Path(prompt_video).resolve())
    base = [str(stack_file())]
    robot_file = robot_params_file(robot)
    if robot_file is not None:
        base.append(str(robot_file))
    extra = [str(Path(p).resolve()) for p in params_files]

    def node(executable: str, name: str, values: dict[str, Any]) -> NodePlan:
        return NodePlan(executable, name, tuple(base), values, tuple(extra))

    nodes = [] if sim else [
        node("camera", f"{name}_camera", {"camera_name": topic[:-len(_IMAGE_SUFFIX)]})
        for name, topic in cameras.items()]
    nodes += [node(exe, exe, derived[exe]) for exe in executables]
    environment = fastdds_environment(environ) if use_fastdds_profile else {}
    return StackPlan(robot, profile, namespace, output, action_space, cameras,
                     tuple(nodes), environment)
