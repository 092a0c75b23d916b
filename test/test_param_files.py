"""The stack's parameter files, the plan built from them, the launch files and the Fast DDS
profile; and "every config file constructs every node".

The file checks are plain Python against each node's ``ParamSpec`` table. The construction
test builds, for every robot, every node of its stack from config/stack.yaml and
config/params/<robot>.yaml (tiny ONNX pairs from ``onnx_fixtures``, generated camera videos)
in one rclpy context with a fresh domain id, and configures the lifecycle nodes. The launch
files run against a small stand-in of the ``launch`` / ``launch_ros`` API (those packages are
not on PyPI): they must declare the arguments and start the nodes of the same plan.
"""

import gc
import importlib.util
import os
import py_compile
import re
import subprocess
import sys
import textwrap
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import rclpy
import yaml
from onnx_fixtures import make_encoder, make_policy, policy_spec, write_pair
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

import ros_testing
from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.robot_profile import list_robot_profiles, load_robot_profile
from hv2r_ros.nodes import camera, command_output, policy, prompt, safety_filter
from hv2r_ros.ros.params import ParameterError
from hv2r_ros.ros.runner import build_stack, make_node, with_synthetic_inputs
from hv2r_ros.ros.stack_plan import (
    LAUNCH_ARGUMENTS, NODE_TYPES, StackError, fastdds_environment, plan_stack)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
ROBOTS = ("panda", "ur5e", "xarm7", "so100", "g1")
SHM_SEGMENT_BYTES = 16 * 1024 * 1024


def specs_of(section: str, robot: str = "panda"):
    """The ParamSpec table of the node a parameter-file section names."""
    if section.endswith("_camera"):
        return camera.PARAMS
    tables = {"prompt": prompt.PARAMS, "policy": policy.PARAMS,
              "safety_filter": safety_filter.PARAMS,
              "command_output": command_output.parameter_table(load_robot_profile(robot))}
    return tables[section]


def sections(path: Path) -> dict:
    """``node name -> parameters`` of a parameter file written with ``/**/<node>`` keys."""
    data = yaml.safe_load(path.read_text())
    out = {}
    for key, value in data.items():
        assert key.startswith("/**/"), f"{path.name}: {key!r}: use /**/<node> (any namespace)"
        assert set(value) == {"ros__parameters"}, f"{path.name}: {key}"
        out[key[4:]] = value["ros__parameters"]
    return out


def models_for(directory: Path, robot: str, action_space: str = "ee_delta") -> Path:
    """A tiny pair for ``robot``: its joints, cameras and end-effector frames."""
    profile = load_robot_profile(robot)
    joints = tuple(profile.joint_names)
    frames = profile.end_effector_frames if action_space != "joint_position" else ()
    gripper = profile.gripper is not None
    size = (len(joints) if action_space == "joint_position" else 6 * len(frames)) + gripper
    spec = policy_spec(action_space=action_space, joint_order=joints, robot=robot,
                       camera_order=tuple(profile.cameras), end_effector_frames=frames,
                       gripper=gripper, action_size=size, action_mean=(0.0,) * size,
                       action_std=(0.01,) * size, proprio_size=len(joints),
                       proprio_mean=(0.0,) * len(joints), proprio_std=(1.0,) * len(joints))
    return write_pair(directory / f"{robot}_{action_space}", make_encoder(), make_policy(spec))


# --- the files ----------------------------------------------------------------------------

def test_stack_file_sets_only_declared_parameters_with_valid_values():
    stack = sections(CONFIG / "stack.yaml")
    assert set(stack) == {"wrist_camera", "overhead_camera", "prompt", "policy",
                          "safety_filter", "command_output"}
    for name, values in stack.items():
        specs = {s.name: s for s in specs_of(name)}
        for key, value in values.items():
            assert key in specs, f"stack.yaml: {name}.{key} is not a parameter of the node"
            assert specs[key].check(value) is None, f"stack.yaml: {name}.{key} = {value!r}"
    # Parameters whose defaults follow the robot profile stay unset here.
    assert not {"command_timeout_s", "control_rate_hz", "max_state_age_s"} & set(
        stack["command_output"])
    assert "command_timeout_s" not in stack["safety_filter"]
    assert stack["safety_filter"]["enable_autostart"] is True


@pytest.mark.parametrize("robot", list_robot_profiles())
def test_every_robot_has_a_parameter_file_naming_it(robot):
    path = CONFIG / "params" / f"{robot}.yaml"
    assert path.is_file(), f"add config/params/{robot}.yaml"
    for name, values in sections(path).items():
        specs = {s.name: s for s in specs_of(name, robot)}
        for key, value in values.items():
            assert key in specs, f"{path.name}: {name}.{key} is not a parameter of the node"
            assert specs[key].check(value) is None, f"{path.name}: {name}.{key} = {value!r}"
        if "robot" in specs:
            assert values.get("robot", robot) == robot
    assert sections(path)["policy"]["robot"] == robot


def test_so100_forward_controller_joints_match_the_profile():
    joints = sections(CONFIG / "params" / "so100.yaml")["command_output"]["controller_joints"]
    assert joints == list(load_robot_profile("so100").joint_names)


def test_fastdds_profile_has_a_16_mib_shared_memory_segment_and_udp():
    root = ET.parse(CONFIG / "fastdds_shm.xml").getroot()

    def children(element, name):
        return [c for c in element.iter() if c.tag.split("}")[-1] == name]

    descriptors = {children(d, "transport_id")[0].text: d
                   for d in children(root, "transport_descriptor")}
    kinds = {key: children(d, "type")[0].text for key, d in descriptors.items()}
    assert sorted(kinds.values()) == ["SHM", "UDPv4"]
    shm = [d for key, d in descriptors.items() if kinds[key] == "SHM"][0]
    assert int(children(shm, "segment_size")[0].text) == SHM_SEGMENT_BYTES
    participant = children(root, "participant")[0]
    assert participant.get("is_default_profile") == "true"
    used = [e.text for e in children(participant, "transport_id")]
    assert sorted(used) == sorted(descriptors)
    assert [e.text for e in children(participant, "useBuiltinTransports")] == ["false"]


SEGMENT_PROBE = textwrap.dedent("""
    import rclpy
    from hv2r_ros.ros.runner import shared_memory_segment_bytes
    rclpy.init()
    node = rclpy.create_node("segment_probe")
    print("segment", shared_memory_segment_bytes())
""")


@pytest.mark.parametrize("profile", [True, False])
def test_fastdds_loads_the_profile(profile):
    """Fast DDS itself maps a 16 MiB segment with the profile (512 KiB without)."""
    env = dict(os.environ)
    ros_testing.use_fresh_domain(env)
    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        env.pop(name, None)
    if profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(CONFIG / "fastdds_shm.xml")
    result = subprocess.run([sys.executable, "-c", SEGMENT_PROBE], env=env, text=True,
                            capture_output=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "XMLPARSER" not in output, output
    segment = int(output.split("segment ")[1].split()[0])
    if profile:
        assert segment >= SHM_SEGMENT_BYTES
    else:
        assert segment < 1024 * 1024


def test_fastdds_environment_respects_a_profile_already_set():
    path = str(CONFIG / "fastdds_shm.xml")
    assert fastdds_environment({}) == {"FASTDDS_DEFAULT_PROFILES_FILE": path}
    assert fastdds_environment({"ROS_DISTRO": "humble"}) == {
        "FASTDDS_DEFAULT_PROFILES_FILE": path, "FASTRTPS_DEFAULT_PROFILES_FILE": path}
    assert fastdds_environment({"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"}) == {}
    assert fastdds_environment({"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}) == {}


# --- the plan -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    made = {robot: models_for(root, robot) for robot in ROBOTS}
    made["panda_joint"] = models_for(root, "panda", "joint_position")
    return made


def test_plan_orders_stack_file_robot_file_derived_values_then_extra_files(pairs, tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("/**/policy:\n  ros__parameters:\n    inference_rate_hz: 5.0\n")
    plan = plan_stack("panda", models=str(pairs["panda"]), namespace="left",
                      params_files=[str(extra)], environ={})
    assert [n.name for n in plan.nodes] == ["wrist_camera", "overhead_camera", "prompt",
                                           "policy", "safety_filter", "command_output"]
    assert [n.executable for n in plan.nodes][1:] == ["camera", "prompt", "policy",
                                                      "safety_filter", "command_output"]
    policy_node = plan.node("policy")
    assert policy_node.parameters == (
        str(CONFIG / "stack.yaml"), str(CONFIG / "params" / "panda.yaml"),
        {"robot": "panda", "models_dir": str(pairs["panda"].resolve())}, str(extra.resolve()))
    assert plan.node("wrist_camera").values == {"camera_name": "wrist_camera"}
    assert plan.action_space == "cartesian" and plan.output == "ros2_control"
    assert plan.node("safety_filter").values["action_space"] == "cartesian"
    assert plan.node("command_output").values["action_space"] == "cartesian"
    assert plan.namespace == "left"
    assert plan.environment == {"FASTDDS_DEFAULT_PROFILES_FILE": str(CONFIG / "fastdds_shm.xml")}
    joint = plan_stack("panda", models=str(pairs["panda_joint"]), environ={})
    assert joint.action_space == "joint"
    assert plan_stack("panda", models=str(pairs["panda"]), use_fastdds_profile=False,
                      environ={}).environment == {}


def test_plan_errors_name_what_is_missing(pairs, tmp_path, monkeypatch):
    import hv2r_ros.ros.stack_plan as stack_plan

    names = [n.name for n in plan_stack("panda", models=str(pairs["panda"]), sim=True).nodes]
    assert "sim" in names and not any(n.startswith("camera") for n in names)
    monkeypatch.delitem(stack_plan.NODE_TYPES, "sim")
    with pytest.raises(StackError, match=r"simulated robot node \('sim'\) is not installed"):
        plan_stack("panda", models=str(pairs["panda"]), sim=True)
    monkeypatch.undo()
    with pytest.raises(StackError, match="models:=DIR"):
        plan_stack("panda", models="")
    with pytest.raises(StackError, match="unknown output.*ros2_control, unitree_arm_sdk"):
        plan_stack("panda", models=str(pairs["panda"]), output="can_bus")
    with pytest.raises(StackError, match="parameter file not found"):
        plan_stack("panda", models=str(pairs["panda"]), params_files=[str(tmp_path / "x.yaml")])
    with pytest.raises(StackError, match="prompt video not found"):
        plan_stack("panda", models=str(pairs["panda"]), prompt_video=str(tmp_path / "no.mp4"))
    with pytest.raises(ConfigError, match="policy.onnx"):
        plan_stack("panda", models=str(tmp_path))
    with pytest.raises(StackError, match="g1.yaml: command_interface.type: output "
                                         "'ros2_control' does not drive this robot's "
                                         "'unitree_arm_sdk'"):
        plan_stack("g1", models=str(pairs["g1"]), output="ros2_control")
    with pytest.raises(StackError, match="'joint_trajectory_controller' \\(output "
                                         "'ros2_control' does\\)"):
        plan_stack("panda", models=str(pairs["panda"]), output="unitree_arm_sdk")
    assert plan_stack("g1", models=str(pairs["g1"])).output == "unitree_arm_sdk"


# --- every config file constructs every node ----------------------------------------------

@pytest.fixture
def context():
    ros_testing.use_fresh_domain()
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _check_node_values(robot, plan, nodes):
    """Each node's parameters are the files' values, the derived ones winning."""
    stack_file = sections(CONFIG / "stack.yaml")
    robot_file = sections(CONFIG / "params" / f"{robot}.yaml")
    for name, node in nodes.items():
        if name == "synthetic_robot":
            continue
        expected = {**stack_file.get(name, {}), **robot_file.get(name, {}),
                    **plan.node(name).values}
        for key, value in expected.items():
            got = node.get_parameter(key).value
            got = list(got) if isinstance(got, (list, tuple)) or hasattr(got, "tolist") else got
            assert got == value, f"{robot}: {name}.{key} = {got!r}, files say {value!r}"


UNITREE_SDK = importlib.util.find_spec("unitree_sdk2py") is not None


@pytest.mark.ros
@pytest.mark.parametrize("robot", ROBOTS)
def test_every_config_file_constructs_every_node(robot, pairs, context, tmp_path):
    """stack.yaml + params/<robot>.yaml build every node; the lifecycle ones configure."""
    cameras = [f"{c}_camera" for c in load_robot_profile(robot).cameras]
    if robot == "g1":
        # The G1 is commanded through Unitree's SDK (and followed by no synthetic robot):
        # every node is built by hand; command_output needs the optional SDK.
        plan = with_synthetic_inputs(plan_stack(robot, models=str(pairs[robot])), tmp_path,
                                     set_prompt=True)
        nodes = {}
        try:
            for node in plan.nodes:
                if node.executable == "command_output" and not UNITREE_SDK:
                    with pytest.raises(ConfigError, match="Unitree SDK"):
                        make_node(node, context=context, namespace="", directory=tmp_path)
                    continue
                nodes[node.name] = make_node(node, context=context, namespace="",
                                             directory=tmp_path)
            assert list(nodes)[:4] == cameras + ["prompt", "policy", "safety_filter"]
            _check_node_values(robot, plan, nodes)
            assert nodes["safety_filter"].trigger_configure() == \
                TransitionCallbackReturn.SUCCESS
        finally:
            for node in nodes.values():
                node.destroy_node()
        return
    stack = build_stack(robot, models=str(pairs[robot]), synthetic=True, context=context)
    try:
        assert list(stack.nodes) == cameras + ["prompt", "policy", "safety_filter",
                                               "command_output", "synthetic_robot"]
        _check_node_values(robot, stack.plan, stack.nodes)
        stack.configure()
        sf = stack.nodes["safety_filter"]
        assert sf.filter is not None and sf.filter.cartesian
        assert stack.nodes["command_output"].cartesian
        assert stack.nodes["prompt"].status.startswith("READY")
    finally:
        stack.shutdown()


@pytest.mark.ros
@pytest.mark.parametrize("text, error, match", [
    ("/**/policy:\n  ros__parameters:\n    inference_rate_hz: 1000.0\n", ParameterError,
     "policy.inference_rate_hz"),
    ("/**/command_output:\n  ros__parameters:\n    strategy: newest\n", ParameterError,
     "command_output.strategy.*receding_horizon"),
    ("/**/safety_filter:\n  ros__parameters:\n    max_action_age_s: 1\n", ParameterError,
     r"safety_filter.max_action_age_s.*write 1.0"),
    ("/**/policy:\n  ros__parameters:\n    inference_rate: 5.0\n", StackError,
     "not declared by node 'policy'.*inference_rate"),
])
def test_bad_overrides_in_a_parameter_file_are_rejected(text, error, match, pairs, context,
                                                        tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text(text)
    try:
        build_stack("panda", models=str(pairs["panda"]), synthetic=True, context=context,
                    extra_params=[str(extra)])
    except error as exc:
        assert re.search(match, str(exc)), str(exc)
    else:
        pytest.fail("the bad override was accepted")
    # Nothing half-built stays behind in the context (rclpy finalises a destroyed lifecycle
    # node when the object is collected).
    gc.collect()
    probe = rclpy.create_node("probe", context=context)
    try:
        assert probe.get_node_names() == ["probe"]
    finally:
        probe.destroy_node()


@pytest.mark.ros
def test_run_time_sets_out_of_range_or_read_only_are_rejected(pairs, context):
    stack = build_stack("panda", models=str(pairs["panda"]), synthetic=True, context=context)
    try:
        nodes = stack.nodes
        refused = [
            (nodes["policy"], Parameter("robot", value="ur5e")),                # read-only
            (nodes["policy"], Parameter("models_dir", value="/tmp")),           # read-only
            (nodes["wrist_camera"], Parameter("path", value="/tmp/x.mp4")),     # read-only
            (nodes["command_output"], Parameter("command_timeout_s", value=5.0)),  # > 1 s
            (nodes["safety_filter"], Parameter("authority_ramp_s", value=-1.0)),  # < 0
            (nodes["command_output"], Parameter("strategy", value="newest")),   # not a choice
        ]
        for node, parameter in refused:
            before = node.get_parameter(parameter.name).value
            assert not node.set_parameters([parameter])[0].successful, parameter.name
            assert node.get_parameter(parameter.name).value == before
        assert nodes["command_output"].set_parameters(
            [Parameter("command_timeout_s", value=0.05)])[0].successful
    finally:
        stack.shutdown()


# --- the launch files ---------------------------------------------------------------------

class _Entity:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Entity):
    def perform(self, context):
        return context.launch_configurations[self.args[0]]


def _fake_launch(monkeypatch):
    """A stand-in for the parts of launch / launch_ros the launch files use."""
    made = {}
    for name in ("launch", "launch.actions", "launch.substitutions",
                 "launch.launch_description_sources", "launch_ros", "launch_ros.actions"):
        made[name] = types.ModuleType(name)
        monkeypatch.setitem(sys.modules, name, made[name])
    made["launch"].LaunchDescription = type("LaunchDescription", (_Entity,), {})
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "SetEnvironmentVariable",
                 "IncludeLaunchDescription"):
        setattr(made["launch.actions"], name, type(name, (_Entity,), {}))
    made["launch.substitutions"].LaunchConfiguration = _LaunchConfiguration
    for name in ("PathJoinSubstitution", "ThisLaunchFileDir"):
        setattr(made["launch.substitutions"], name, type(name, (_Entity,), {}))
    made["launch.launch_description_sources"].PythonLaunchDescriptionSource = type(
        "PythonLaunchDescriptionSource", (_Entity,), {})
    made["launch_ros.actions"].Node = type("Node", (_Entity,), {})


def _load(path: Path, monkeypatch):
    # No __pycache__ in launch/: setup.py installs that folder as it is.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["bringup.launch.py", "sim.launch.py"])
def test_launch_files_compile(name, tmp_path):
    py_compile.compile(str(ROOT / "launch" / name), cfile=str(tmp_path / "x.pyc"), doraise=True)


def test_bringup_starts_the_runner_plan_with_the_same_parameter_files(pairs, tmp_path,
                                                                      monkeypatch):
    _fake_launch(monkeypatch)
    bringup = _load(ROOT / "launch" / "bringup.launch.py", monkeypatch)
    description = bringup.generate_launch_description()
    *declared, opaque = description.args[0]
    assert [(d.args[0], d.kwargs["default_value"]) for d in declared] == \
        [(name, default) for name, default, _ in LAUNCH_ARGUMENTS]
    assert {d.args[0] for d in declared} == {"robot", "sim", "prompt_video", "models",
                                             "namespace", "output", "params_file",
                                             "use_fastdds_profile"}
    extra = tmp_path / "extra.yaml"
    extra.write_text("/**/policy:\n  ros__parameters:\n    inference_rate_hz: 5.0\n")
    values = {name: default for name, default, _ in LAUNCH_ARGUMENTS}
    values.update(robot="so100", models=str(pairs["so100"]), namespace="right",
                  params_file=str(extra))
    context = types.SimpleNamespace(launch_configurations=values, environment={})
    actions = opaque.kwargs["function"](context)
    env = [a for a in actions if type(a).__name__ == "SetEnvironmentVariable"]
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    assert [e.args for e in env] == [("FASTDDS_DEFAULT_PROFILES_FILE",
                                      str(CONFIG / "fastdds_shm.xml"))]
    plan = plan_stack("so100", models=str(pairs["so100"]), namespace="right",
                      params_files=[str(extra)], environ={})
    assert [(n.kwargs["executable"], n.kwargs["name"], n.kwargs["namespace"],
             n.kwargs["parameters"], n.kwargs["package"]) for n in nodes] == \
        [(p.executable, p.name, "right", list(p.parameters), "hv2r_ros") for p in plan.nodes]
    assert nodes[-1].kwargs["parameters"][:2] == [str(CONFIG / "stack.yaml"),
                                                  str(CONFIG / "params" / "so100.yaml")]
    # A profile set by the user is kept; sim:=true without the sim node is refused by name.
    context.environment = {"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}
    assert not [a for a in opaque.kwargs["function"](context)
                if type(a).__name__ == "SetEnvironmentVariable"]
    values["sim"] = "true"
    if "sim" not in NODE_TYPES:
        with pytest.raises(StackError, match="simulated robot node"):
            opaque.kwargs["function"](context)
    values["sim"] = "maybe"
    with pytest.raises(StackError, match="sim: not a boolean"):
        opaque.kwargs["function"](context)


def test_sim_launch_includes_bringup_with_sim_true(monkeypatch):
    _fake_launch(monkeypatch)
    sim = _load(ROOT / "launch" / "sim.launch.py", monkeypatch)
    description = sim.generate_launch_description()
    *declared, include = description.args[0]
    names = [name for name, _, _ in LAUNCH_ARGUMENTS if name != "sim"]
    assert [d.args[0] for d in declared] == names
    source = include.args[0].args[0]
    assert source.args[0][1] == "bringup.launch.py"
    forwarded = dict(include.kwargs["launch_arguments"])
    assert forwarded.pop("sim") == "true"
    assert {k: v.args[0] for k, v in forwarded.items()} == {n: n for n in names}
