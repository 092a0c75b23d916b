"""The stack's parameter files, the plan built from them, and the Fast DDS profile.

The file checks are plain Python against each node's ``ParamSpec`` table (node construction:
test_param_nodes.py; launch files: test_launch_files.py).
"""

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest
import ros_testing
from stack_files import CONFIG, SHM_SEGMENT_BYTES, sections, specs_of

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.robot_profile import list_robot_profiles, load_robot_profile
from hv2r_ros.ros.stack_plan import StackError, fastdds_environment, plan_stack

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
    from hv2r_ros.ros.fastdds import shared_memory_segment_bytes
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


# --- the plan -----------------------------------------------------------------------------

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
