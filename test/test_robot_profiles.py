"""Every shipped robot profile is valid and safe; malformed profiles fail with clear errors."""

import copy
import math
from pathlib import Path

import numpy as np
import pinocchio as pin
import pytest
import yaml

from hv2r_ros.core.errors import (
    ConfigError,
    FrameNotFoundError,
    LimitsError,
    RobotProfileError,
    UrdfError,
)
from hv2r_ros.core.kinematics import _exist_joint
from hv2r_ros.core.robot_profile import list_robot_profiles, load_robot_profile, profile_dir
from hv2r_ros.core.urdf import parse_joint_limits

ROBOTS = ["g1", "panda", "so100", "ur5e", "xarm7"]


@pytest.fixture(scope="module", params=ROBOTS)
def profile(request):
    return load_robot_profile(request.param)


def test_shipped_profiles_are_listed():
    assert list_robot_profiles() == ROBOTS
    assert profile_dir() == Path(__file__).resolve().parents[1] / "config" / "robots"


def test_joints_and_frames_exist_in_the_urdf(profile):
    full = pin.buildModelFromXML(profile.urdf_xml)
    for joint in list(profile.joint_names) + list(profile.locked_joints):
        assert _exist_joint(full, joint), joint
    frames = [profile.base_frame, *profile.end_effector_frames]
    frames += [cam.frame for cam in profile.cameras.values() if cam.frame]
    for frame in frames:
        assert full.existFrame(frame), frame
    if profile.gripper is not None:
        assert _exist_joint(full, profile.gripper.joint)
        assert profile.gripper.joint not in profile.joint_names


def test_limits_no_looser_than_urdf_and_vendor(profile):
    urdf = parse_joint_limits(profile.urdf_xml)
    lim, vendor = profile.limits, profile.vendor_limits
    margin = profile.raw["limits"]["position_margin_rad"]
    assert margin > 0
    for i, joint in enumerate(profile.joint_names):
        assert lim.position_min[i] >= urdf[joint].lower + margin - 1e-12
        assert lim.position_max[i] <= urdf[joint].upper - margin + 1e-12
        assert 0 < lim.velocity_max[i] <= urdf[joint].velocity
    assert vendor is not None and vendor.source
    for attr in ("velocity_max", "acceleration_max", "jerk_max"):
        bound = getattr(vendor, attr)
        if bound is not None:
            assert np.all(getattr(lim, attr) <= bound), attr
    if vendor.position_min is not None:
        assert np.all(lim.position_min >= vendor.position_min + margin - 1e-12)
        assert np.all(lim.position_max <= vendor.position_max - margin + 1e-12)
    # Operational speeds are reduced defaults, well below the vendor maximum.
    if vendor.velocity_max is not None:
        assert np.all(lim.velocity_max <= 0.6 * vendor.velocity_max)


def test_safety_defaults(profile):
    assert profile.command_timeout_s == 0.1
    assert profile.observation_max_age_s == 0.1
    assert (profile.singularity_slowdown_condition, profile.singularity_halt_condition) == (17, 30)
    assert profile.workspace.linear_speed_max <= 0.25
    assert profile.workspace.frame == profile.base_frame
    assert 0 < profile.control_period_s <= 0.02


def test_home_is_inside_limits_workspace_and_away_from_singularities(profile):
    home = profile.home
    assert home.shape == (len(profile.joint_names),)
    assert np.all(profile.limits.position_min <= home)
    assert np.all(home <= profile.limits.position_max)
    km = profile.kinematic_model()
    pin.computeJointJacobians(km.model, km.data, home)
    for frame in profile.end_effector_frames:
        fid = km.frame_id(frame)
        position = km.frame_pose(home, fid).translation
        assert np.all(profile.workspace.box_min <= position), (frame, position)
        assert np.all(position <= profile.workspace.box_max), (frame, position)
        jac = pin.getFrameJacobian(km.model, km.data, fid, pin.LOCAL_WORLD_ALIGNED)
        # A 5-DoF arm cannot span 6-D twists: judge it on its translational Jacobian.
        jac = jac if km.model.nv >= 6 else jac[:3]
        singular = np.linalg.svd(jac, compute_uv=False)
        assert singular[0] / singular[-1] < profile.singularity_slowdown_condition, frame


def test_kinematic_model_is_the_profile_joint_vector(profile):
    km = profile.kinematic_model()
    assert km.model.nq == km.model.nv == len(profile.joint_names)
    assert km.joint_names == profile.joint_names
    assert profile.kinematic_model() is km
    np.testing.assert_array_equal(km.model.lowerPositionLimit, profile.limits.position_min)
    np.testing.assert_array_equal(km.model.velocityLimit, profile.limits.velocity_max)


def test_robot_specifics():
    g1 = load_robot_profile("g1")
    assert len(g1.joint_names) == 17 and g1.base_frame == "pelvis"
    assert g1.end_effector_frames == ("left_rubber_hand", "right_rubber_hand")
    assert not any("hip" in j or "knee" in j or "ankle" in j for j in g1.joint_names)
    assert g1.command_interface.type == "unitree_arm_sdk"
    assert g1.command_interface.topic == "rt/arm_sdk"
    so100 = load_robot_profile("so100")
    assert len(so100.joint_names) == 5 and so100.gripper.joint == "gripper"
    assert so100.command_interface.type == "forward_position_controller"
    panda = load_robot_profile("panda")
    np.testing.assert_allclose(panda.vendor_limits.acceleration_max,
                               [15, 7.5, 10, 12.5, 15, 20, 20])
    np.testing.assert_allclose(panda.vendor_limits.jerk_max,
                               [7500, 3750, 5000, 6250, 7500, 10000, 10000])
    assert panda.limits.position_min[0] == pytest.approx(-2.8973 + 0.05)
    assert panda.command_interface.topic == "panda_arm_controller/joint_trajectory"
    ur5e = load_robot_profile(profile_dir() / "ur5e.yaml")
    assert ur5e.command_interface.topic == "scaled_joint_trajectory_controller/joint_trajectory"


# --- malformed profiles ---------------------------------------------------------------------

PANDA = yaml.safe_load((profile_dir() / "panda.yaml").read_text())


def setpath(doc, path, value):
    *parents, last = path
    for key in parents:
        doc = doc[key]
    doc[last] = value


def delpath(doc, path):
    *parents, last = path
    for key in parents:
        doc = doc[key]
    del doc[last]


def rename(doc, section, old, new):
    doc[section][new] = doc[section].pop(old)


SAFE_POSITION = {"min": [-2.8, -1.7, -2.8, -3.0, -2.8, 0.0, -2.8],
                 "max": [2.8, 1.7, 2.8, -0.1, 2.8, 3.7, 2.8]}


def qmin_ge_qmax(doc):
    doc["limits"]["position_rad"] = copy.deepcopy(SAFE_POSITION)
    doc["limits"]["position_rad"]["min"][2] = 1.0
    doc["limits"]["position_rad"]["max"][2] = 0.5


def position_in_degrees(doc):
    doc["limits"]["position_rad"] = copy.deepcopy(SAFE_POSITION)
    doc["limits"]["position_rad"]["max"][0] = 160.0


MUTATIONS = {
    "unknown joint": (lambda d: setpath(d, ["joints", 2], "panda_joint33"), UrdfError, "joints[2]"),
    "duplicate joint": (lambda d: setpath(d, ["joints", 1], "panda_joint1"), RobotProfileError,
                        "joints[1]"),
    # Joints 1 and 3 share every limit: only the order is wrong.
    "joint order": (lambda d: d.update(joints=[d["joints"][2], d["joints"][1], d["joints"][0],
                                               *d["joints"][3:]]), UrdfError, "kinematic-tree"),
    "q_min >= q_max": (qmin_ge_qmax, LimitsError, "limits.position_rad.min[2]"),
    "position looser than URDF": (lambda d: (qmin_ge_qmax(d), setpath(
        d, ["limits", "position_rad", "min"], [-3.0] + SAFE_POSITION["min"][1:])),
        LimitsError, "limits.position_rad.min[0]"),
    "position in degrees": (position_in_degrees, LimitsError, "limits.position_rad.max[0]"),
    "NaN limit": (lambda d: setpath(d, ["limits", "velocity_rad_s", 3], math.nan),
                  RobotProfileError, "limits.velocity_rad_s[3]"),
    "inf limit": (lambda d: setpath(d, ["limits", "acceleration_rad_s2", 0], math.inf),
                  RobotProfileError, "limits.acceleration_rad_s2[0]"),
    "velocity in degrees": (lambda d: setpath(d, ["limits", "velocity_rad_s"], [
        v * 57.29578 for v in d["limits"]["velocity_rad_s"]]), LimitsError,
        "limits.velocity_rad_s[0]"),
    "degree key": (lambda d: rename(d, "limits", "velocity_rad_s", "velocity_deg_s"),
                   RobotProfileError, "limits.velocity_deg_s"),
    "velocity looser than URDF": (lambda d: setpath(d, ["limits", "velocity_rad_s", 0], 2.5),
                                  LimitsError, "limits.velocity_rad_s[0]"),
    "acceleration looser than vendor": (
        lambda d: setpath(d, ["limits", "acceleration_rad_s2", 1], 8.0), LimitsError,
        "limits.acceleration_rad_s2[1]"),
    "vendor jerk but none set": (lambda d: delpath(d, ["limits", "jerk_rad_s3"]), LimitsError,
                                 "limits.jerk_rad_s3"),
    "zero velocity": (lambda d: setpath(d, ["limits", "velocity_rad_s", 6], 0.0), LimitsError,
                      "limits.velocity_rad_s[6]"),
    "missing timeout": (lambda d: delpath(d, ["safety", "command_timeout_s"]), RobotProfileError,
                        "safety.command_timeout_s"),
    "timeout 0": (lambda d: setpath(d, ["safety", "command_timeout_s"], 0), LimitsError,
                  "safety.command_timeout_s"),
    "timeout null": (lambda d: setpath(d, ["safety", "command_timeout_s"], None), LimitsError,
                     "safety.command_timeout_s"),
    "timeout inf": (lambda d: setpath(d, ["safety", "command_timeout_s"], math.inf), LimitsError,
                    "safety.command_timeout_s"),
    "timeout 5 s": (lambda d: setpath(d, ["safety", "command_timeout_s"], 5.0), LimitsError,
                    "safety.command_timeout_s"),
    "observation age negative": (lambda d: setpath(d, ["safety", "observation_max_age_s"], -0.1),
                                 LimitsError, "safety.observation_max_age_s"),
    "singularity thresholds": (lambda d: setpath(d, ["safety", "singularity_halt_condition"], 10),
                               LimitsError, "safety.singularity_slowdown_condition"),
    "unknown top-level key": (lambda d: d.update(limts={}), RobotProfileError, "limts"),
    "unknown nested key": (lambda d: setpath(d, ["workspace", "tool_speed"], 0.1),
                           RobotProfileError, "workspace.tool_speed"),
    "wrong list length": (lambda d: setpath(d, ["limits", "acceleration_rad_s2"], [1.0] * 6),
                          RobotProfileError, "limits.acceleration_rad_s2"),
    "missing URDF file": (lambda d: setpath(d, ["urdf"], {"source": "file", "path": "gone.urdf"}),
                          UrdfError, "urdf.path"),
    "unknown frame": (lambda d: setpath(d, ["end_effectors", 0, "frame"], "panda_hnd"),
                      FrameNotFoundError, "end_effectors[0].frame"),
    "unknown base frame": (lambda d: setpath(d, ["base_frame"], "world"), FrameNotFoundError,
                           "base_frame"),
    "home outside limits": (lambda d: setpath(d, ["home_rad", 3], 0.0), LimitsError, "home_rad[3]"),
    "workspace min >= max": (lambda d: setpath(d, ["workspace", "min_m", 2], 0.9), LimitsError,
                             "workspace.min_m"),
    "bad command interface": (lambda d: setpath(d, ["command_interface", "type"], "jtc"),
                              RobotProfileError, "command_interface.type"),
    "commanded joint locked": (lambda d: setpath(d, ["locked_joints", "panda_joint2"], 0.0),
                               RobotProfileError, "locked_joints.panda_joint2"),
    "margin too large": (lambda d: setpath(d, ["limits", "position_margin_rad"], 2.0), LimitsError,
                         "limits.position_margin_rad"),
    "string number": (lambda d: setpath(d, ["control", "rate_hz"], "100"), RobotProfileError,
                      "control.rate_hz"),
}


@pytest.mark.parametrize("case", list(MUTATIONS))
def test_malformed_profile_names_file_and_field(case, tmp_path):
    mutate, error, field = MUTATIONS[case]
    doc = copy.deepcopy(PANDA)
    mutate(doc)
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(error) as info:
        load_robot_profile(path)
    message = str(info.value)
    assert str(path) in message, message
    assert field in message, message
    assert info.value.file == str(path)


def test_degree_messages_say_degrees(tmp_path):
    for case in ("velocity in degrees", "position in degrees", "degree key"):
        doc = copy.deepcopy(PANDA)
        MUTATIONS[case][0](doc)
        path = tmp_path / "robot.yaml"
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(ConfigError, match="radians"):
            load_robot_profile(path)


def test_unknown_joint_lists_choices_and_looser_says_which(tmp_path):
    doc = copy.deepcopy(PANDA)
    doc["joints"][2] = "panda_joint33"
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(UrdfError, match="valid choices: panda_joint1, panda_joint2"):
        load_robot_profile(path)
    for key, index, value, which, degrees in (("velocity_rad_s", 0, 2.5, "URDF", False),
                                              ("acceleration_rad_s2", 1, 8.0, "vendor", False),
                                              ("acceleration_rad_s2", 1, 430.0, "vendor", True)):
        doc = copy.deepcopy(PANDA)
        doc["limits"][key][index] = value
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(LimitsError, match=f"looser than the {which} limit") as info:
            load_robot_profile(path)
        assert ("looks like degrees" in str(info.value)) == degrees, str(info.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "robot.yaml"
    path.write_text("name: panda\nlimits:\n  velocity_rad_s: [1.0, 2.0\n  jerk: 3\n")
    with pytest.raises(RobotProfileError) as info:
        load_robot_profile(path)
    assert str(path) in str(info.value) and "line 4" in str(info.value)


def test_unknown_profile_name_lists_choices():
    with pytest.raises(RobotProfileError, match="valid choices: g1, panda, so100, ur5e, xarm7"):
        load_robot_profile("pandaa")


def test_urdf_from_robot_description_and_relative_file(tmp_path):
    doc = copy.deepcopy(load_robot_profile("ur5e").raw)
    xml = (Path(__file__).resolve().parents[1] / "urdf" / "ur5e.urdf").read_text()
    doc["urdf"] = {"source": "robot_description"}
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(UrdfError, match="robot_description"):
        load_robot_profile(path)
    loaded = load_robot_profile(path, robot_description=xml)
    assert loaded.urdf_source == "robot_description parameter"
    (tmp_path / "urdf").mkdir()
    (tmp_path / "urdf" / "mine.urdf").write_text(xml)
    doc["urdf"] = {"source": "file", "path": "urdf/mine.urdf"}
    path.write_text(yaml.safe_dump(doc))
    assert load_robot_profile(path).urdf_source.endswith("mine.urdf")
