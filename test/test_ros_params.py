"""Parameter tables on a real rclpy node (own context and domain), and the QoS profiles."""

import math
import os

import pytest
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSReliabilityPolicy

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.ros.params import ParameterError, ParamSpec, add_validator, declare, markdown_table
from hv2r_ros.ros.qos import (
    action_qos,
    command_qos,
    diagnostics_qos,
    latched_qos,
    sensor_qos,
)

pytestmark = pytest.mark.ros  # needs rclpy and the message packages

SPECS = (
    ParamSpec("rate_hz", "float", 30.0, "Inference rate [Hz]", min=1.0, max=100.0),
    ParamSpec("queue_depth", "int", 1, "Image queue depth [messages]", min=1, max=5),
    ParamSpec("robot", "str", "panda", "Robot profile name", read_only=True),
    ParamSpec("provider", "str", "cpu", "ONNX execution provider",
              choices=("tensorrt", "cuda", "cpu")),
    ParamSpec("enable_gripper", "bool", True, "Forward gripper commands"),
    ParamSpec("gains", "float[]", [1.0, 2.0], "Per-axis gains [-]"),
    ParamSpec("camera_names", "str[]", [], "Camera names, in the policy's order"),
)

_node_count = 0


@pytest.fixture(scope="module")
def context():
    saved = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")}
    os.environ["ROS_DOMAIN_ID"] = str(os.getpid() % 200 + 20)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        rclpy.shutdown(context=ctx)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def make_node(context):
    nodes = []

    def make(**overrides):
        global _node_count
        _node_count += 1
        node = Node(f"params_test_{_node_count}", context=context,
                    parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.destroy_node()


def test_defaults_and_descriptors(make_node):
    node = make_node()
    values = declare(node, SPECS)
    assert values == {"rate_hz": 30.0, "queue_depth": 1, "robot": "panda", "provider": "cpu",
                      "enable_gripper": True, "gains": [1.0, 2.0], "camera_names": []}
    rate = node.describe_parameter("rate_hz")
    assert rate.description == "Inference rate [Hz]" and not rate.read_only
    assert (rate.floating_point_range[0].from_value, rate.floating_point_range[0].to_value) \
        == (1.0, 100.0)
    depth = node.describe_parameter("queue_depth")
    assert (depth.integer_range[0].from_value, depth.integer_range[0].to_value) == (1, 5)
    assert node.describe_parameter("robot").read_only
    assert "tensorrt, cuda, cpu" in node.describe_parameter("provider").additional_constraints
    assert node.describe_parameter("camera_names").type == Parameter.Type.STRING_ARRAY.value


def test_overrides_win(make_node):
    node = make_node(rate_hz=15.0, provider="cuda", gains=[0.5, 0.5, 0.5],
                     camera_names=["wrist", "overhead"])
    values = declare(node, SPECS)
    assert values["rate_hz"] == 15.0 and values["provider"] == "cuda"
    assert values["gains"] == [0.5, 0.5, 0.5] and values["camera_names"] == ["wrist", "overhead"]


@pytest.mark.parametrize("overrides, match", [
    ({"rate_hz": 500.0}, "rate_hz"),
    ({"rate_hz": 15}, "write 1.0, not 1"),
    ({"queue_depth": 9}, "queue_depth"),
    ({"provider": "rocm"}, "provider.*one of tensorrt, cuda, cpu"),
    ({"gains": ["a"]}, "gains"),
])
def test_bad_overrides_raise_naming_the_parameter(make_node, overrides, match):
    with pytest.raises(ParameterError, match=match) as info:
        declare(make_node(**overrides), SPECS)
    assert isinstance(info.value, ConfigError) and next(iter(overrides)) in info.value.field


def test_runtime_sets_are_checked(make_node):
    node = make_node()
    declare(node, SPECS)
    add_validator(node, SPECS)

    def set_(name, value):
        return node.set_parameters([Parameter(name, value=value)])[0]

    assert set_("rate_hz", 50.0).successful and node.get_parameter("rate_hz").value == 50.0
    out_of_range = set_("rate_hz", 150.0)  # enforced by rclpy from the descriptor
    assert not out_of_range.successful and "out of range" in out_of_range.reason
    assert not set_("queue_depth", 0).successful
    read_only = set_("robot", "ur5e")  # enforced by rclpy from the descriptor
    assert not read_only.successful and "read-only" in read_only.reason
    wrong_type = set_("rate_hz", "fast")
    assert not wrong_type.successful and "type" in wrong_type.reason
    choice = set_("provider", "rocm")  # enforced by add_validator
    assert not choice.successful and "one of tensorrt, cuda, cpu" in choice.reason
    nan = set_("gains", [1.0, math.nan])
    assert not nan.successful and "finite" in nan.reason
    assert set_("provider", "cuda").successful
    assert set_("camera_names", ["wrist"]).successful
    assert node.get_parameter("robot").value == "panda"
    assert node.get_parameter("rate_hz").value == 50.0


def test_markdown_table():
    table = markdown_table(SPECS)
    lines = table.splitlines()
    assert lines[0] == "| name | type | default | description | range | read-only |"
    assert len(lines) == 2 + len(SPECS)
    assert "| `rate_hz` | `float` | `30.0` | Inference rate [Hz] | [1, 100] | no |" in lines
    assert "| `robot` | `str` | `'panda'` | Robot profile name |  | yes |" in lines
    assert "one of `tensorrt`, `cuda`, `cpu`" in table


@pytest.mark.parametrize("kwargs, match", [
    ({"type": "double"}, "type"),
    ({"default": 1}, "float"),
    ({"default": 500.0, "max": 100.0}, "range|\\[-inf, 100\\]"),
    ({"default": math.nan}, "finite"),
    ({"type": "str", "default": "x", "min": 0.0}, "min/max"),
    ({"type": "str", "default": "x", "choices": ("a", "b")}, "one of a, b"),
    ({"name": "has space"}, "name"),
])
def test_specs_validate_themselves(kwargs, match):
    spec = {"name": "p", "type": "float", "default": 1.0, "description": "d"} | kwargs
    with pytest.raises(ParameterError, match=match):
        ParamSpec(**spec)


def test_qos_profiles():
    sensor = sensor_qos(3)
    assert sensor.reliability == QoSReliabilityPolicy.BEST_EFFORT and sensor.depth == 3
    assert sensor.durability == QoSDurabilityPolicy.VOLATILE
    assert sensor.history == QoSHistoryPolicy.KEEP_LAST
    command = command_qos()
    assert command.reliability == QoSReliabilityPolicy.RELIABLE and command.depth == 1
    latched = latched_qos()
    assert latched.durability == QoSDurabilityPolicy.TRANSIENT_LOCAL and latched.depth == 1
    assert latched.reliability == QoSReliabilityPolicy.RELIABLE
    assert action_qos().reliability == QoSReliabilityPolicy.RELIABLE and action_qos().depth == 5
    assert diagnostics_qos().reliability == QoSReliabilityPolicy.RELIABLE
    for bad in (0, 6, 2.0, True):
        with pytest.raises(ConfigError, match="image_queue_depth"):
            sensor_qos(bad, field="image_queue_depth")
