"""URDF limit parsing on tiny inline URDFs, URDF sources, and the shipped urdf/ur5e.urdf."""

import math
from pathlib import Path

import numpy as np
import pinocchio as pin
import pytest

from hv2r_ros.core.errors import UrdfError
from hv2r_ros.core.urdf import (
    example_robot_data_dir,
    package_share_dir,
    parse_frame_names,
    parse_joint_limits,
    resolve_urdf,
)

REPO = Path(__file__).resolve().parents[1]
UR5E = REPO / "urdf" / "ur5e.urdf"


def robot(*joints: str) -> str:
    links = {"base", "a", "b", "c", "d", "e", "f"}
    body = "".join(f'<link name="{name}"/>' for name in sorted(links))
    return f'<robot name="tiny">{body}{"".join(joints)}</robot>'


def joint(name: str, kind: str, child: str, limit: str = "") -> str:
    return (f'<joint name="{name}" type="{kind}"><parent link="base"/><child link="{child}"/>'
            f'<axis xyz="0 0 1"/>{limit}</joint>')


def test_revolute_limits():
    xml = robot(joint("j", "revolute", "a",
                      '<limit lower="-1.5" upper="2.0" velocity="3.0" effort="40"/>'))
    assert list(parse_joint_limits(xml)) == ["j"]
    limit = parse_joint_limits(xml)["j"]
    assert (limit.type, limit.lower, limit.upper, limit.velocity, limit.effort) == (
        "revolute", -1.5, 2.0, 3.0, 40.0)


def test_continuous_joint_has_no_position_limit():
    # URDF ignores lower/upper on continuous joints, even when written.
    xml = robot(joint("c", "continuous", "a",
                      '<limit lower="-1" upper="1" velocity="2.0" effort="5"/>'))
    limit = parse_joint_limits(xml)["c"]
    assert limit.lower == -math.inf and limit.upper == math.inf
    assert limit.velocity == 2.0


def test_prismatic_limits_in_metres():
    xml = robot(joint("p", "prismatic", "a",
                      '<limit lower="0.0" upper="0.04" velocity="0.2" effort="100"/>'))
    limit = parse_joint_limits(xml)["p"]
    assert (limit.type, limit.lower, limit.upper, limit.velocity) == ("prismatic", 0.0, 0.04, 0.2)


def test_fixed_joint_is_listed_without_limits():
    limit = parse_joint_limits(robot(joint("f", "fixed", "a")))["f"]
    assert limit.type == "fixed"
    assert limit.lower == -math.inf and limit.upper == math.inf and limit.velocity == math.inf


def test_missing_limit_element_and_zero_velocity_mean_unbounded():
    xml = robot(
        joint("r", "revolute", "a"),
        joint("z", "revolute", "b", '<limit lower="-1" upper="1" velocity="0" effort="0"/>'),
    )
    limits = parse_joint_limits(xml)
    assert limits["r"].lower == -math.inf and limits["r"].velocity == math.inf
    assert limits["z"].velocity == math.inf and limits["z"].effort == math.inf
    assert (limits["z"].lower, limits["z"].upper) == (-1.0, 1.0)


def test_transmission_joints_are_not_joints():
    xml = robot(joint("j", "revolute", "a", '<limit lower="-1" upper="1" velocity="1"/>'))
    xml = xml.replace("</robot>", '<transmission name="t"><joint name="j"/>'
                      '<joint name="ghost"/></transmission></robot>')
    assert list(parse_joint_limits(xml)) == ["j"]


def test_document_order_is_kept():
    xml = robot(joint("second", "revolute", "b", '<limit lower="-1" upper="1" velocity="1"/>'),
                joint("first", "revolute", "a", '<limit lower="-1" upper="1" velocity="1"/>'))
    assert list(parse_joint_limits(xml)) == ["second", "first"]


@pytest.mark.parametrize("xml", ["<robot><joint", "<model/>",
                                 '<robot><joint name="x"/></robot>',
                                 robot(joint("j", "revolute", "a", '<limit lower="abc"/>'))])
def test_malformed_urdf_raises(xml):
    with pytest.raises(UrdfError):
        parse_joint_limits(xml)


def test_frame_names_are_links_and_joints():
    names = parse_frame_names(robot(joint("j", "fixed", "a")))
    assert {"base", "a", "j"} <= names


def test_example_robot_data_is_found_without_hardcoded_paths():
    robots = example_robot_data_dir()
    assert robots is not None and (robots / "panda_description" / "urdf" / "panda.urdf").is_file()


def test_resolve_example_robot_data(tmp_path):
    xml, source = resolve_urdf(
        {"source": "example-robot-data", "path": "panda_description/urdf/panda.urdf"},
        profile_file=tmp_path / "p.yaml")
    assert "panda_joint7" in parse_joint_limits(xml)
    assert source.startswith("example-robot-data: ") and source.endswith("panda.urdf")


def test_resolve_file_relative_to_profile_absolute_and_package_uri(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "r.urdf").write_text(robot(joint("j", "fixed", "a")))
    profile = tmp_path / "robot.yaml"
    xml, _ = resolve_urdf({"source": "file", "path": "sub/r.urdf"}, profile_file=profile)
    assert "j" in parse_joint_limits(xml)
    xml, _ = resolve_urdf({"source": "file", "path": str(tmp_path / "sub" / "r.urdf")},
                          profile_file=None)
    assert "j" in parse_joint_limits(xml)
    xml, source = resolve_urdf({"source": "file", "path": "package://hv2r_ros/urdf/ur5e.urdf"},
                               profile_file=profile)
    assert "elbow_joint" in parse_joint_limits(xml) and source.endswith("ur5e.urdf")
    assert package_share_dir("hv2r_ros") == REPO


def test_resolve_robot_description():
    xml = robot(joint("j", "fixed", "a"))
    assert resolve_urdf({"source": "robot_description"}, profile_file="p.yaml",
                        robot_description=xml) == (xml, "robot_description parameter")
    with pytest.raises(UrdfError, match="robot_description"):
        resolve_urdf({"source": "robot_description"}, profile_file="p.yaml")


def test_missing_file_names_path_and_profile(tmp_path):
    profile = tmp_path / "robot.yaml"
    with pytest.raises(UrdfError) as info:
        resolve_urdf({"source": "file", "path": "nope.urdf"}, profile_file=profile)
    message = str(info.value)
    assert str(profile) in message and str(tmp_path / "nope.urdf") in message
    assert "urdf.path" in message
    with pytest.raises(UrdfError, match="panda_description/urdf/nope.urdf"):
        resolve_urdf({"source": "example-robot-data", "path": "panda_description/urdf/nope.urdf"},
                     profile_file=profile)


@pytest.mark.parametrize("spec, text", [
    ({"source": "http", "path": "x"}, "valid choices: example-robot-data, file"),
    ({"source": "file"}, "needs a path"),
    ({"source": "file", "path": "package://no_such_pkg_hv2r/x.urdf"}, "no_such_pkg_hv2r"),
])
def test_bad_sources(spec, text):
    with pytest.raises(UrdfError, match=text):
        resolve_urdf(spec, profile_file="robot.yaml")


# --- urdf/ur5e.urdf -------------------------------------------------------------------------

D1, A2, A3, D4, D5, D6 = 0.1625, -0.425, -0.3922, 0.1333, 0.0997, 0.0996


def ur_dh(q: np.ndarray) -> np.ndarray:
    """Tool pose in UR's DH base frame (the controller's 'base'), from the published table."""
    a, d = [0, A2, A3, 0, 0, 0], [D1, 0, 0, D4, D5, D6]
    alpha = [math.pi / 2, 0, 0, math.pi / 2, -math.pi / 2, 0]
    pose = np.eye(4)
    for i in range(6):
        ct, st, ca, sa = math.cos(q[i]), math.sin(q[i]), math.cos(alpha[i]), math.sin(alpha[i])
        pose = pose @ np.array([[ct, -st * ca, st * sa, a[i] * ct],
                                [st, ct * ca, -ct * sa, a[i] * st],
                                [0, sa, ca, d[i]],
                                [0, 0, 0, 1]])
    return pose


@pytest.fixture(scope="module")
def ur5e():
    model = pin.buildModelFromXML(UR5E.read_text())
    return model, model.createData()


def frame_in(model, data, frame, base):
    return data.oMf[model.getFrameId(base)].inverse() * data.oMf[model.getFrameId(frame)]


def test_ur5e_zero_pose(ur5e):
    model, data = ur5e
    pin.framesForwardKinematics(model, data, np.zeros(6))
    np.testing.assert_allclose(frame_in(model, data, "tool0", "base").translation,
                               [A2 + A3, -(D4 + D6), D1 - D5], atol=1e-9)
    # base_link is REP-103 (X forward): the same point mirrored in X and Y.
    np.testing.assert_allclose(frame_in(model, data, "tool0", "base_link").translation,
                               [0.8172, 0.2329, 0.0628], atol=1e-9)


def test_ur5e_matches_dh_everywhere(ur5e):
    model, data = ur5e
    rng = np.random.default_rng(7)
    for q in rng.uniform(-math.pi, math.pi, size=(20, 6)):
        pin.framesForwardKinematics(model, data, q)
        pose = frame_in(model, data, "tool0", "base")
        expected = ur_dh(q)
        np.testing.assert_allclose(pose.translation, expected[:3, 3], atol=1e-9)
        np.testing.assert_allclose(pose.rotation, expected[:3, :3], atol=1e-9)


def test_ur5e_limits_and_inertials_match_ur_description(ur5e):
    limits = parse_joint_limits(UR5E.read_text())
    movable = {k: v for k, v in limits.items() if v.type == "revolute"}
    assert list(movable) == ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
                             "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"]
    for name, limit in movable.items():
        bound = math.pi if name == "elbow_joint" else 2 * math.pi
        assert (limit.lower, limit.upper) == pytest.approx((-bound, bound))
        assert limit.velocity == pytest.approx(3.14)
    model, _ = ur5e
    masses = [model.inertias[i].mass for i in range(1, model.njoints)]
    # UR's link masses (shoulder..wrist 3); the base is welded to the universe.
    assert masses == pytest.approx([3.761, 8.058, 2.846, 1.37, 1.3, 0.365])
    for i in range(1, model.njoints):
        assert np.all(np.linalg.eigvalsh(model.inertias[i].inertia) > 0)
