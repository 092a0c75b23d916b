"""``check_model_pair`` / ``hv2r check``: a model pair against a robot profile."""

from __future__ import annotations

import pytest
from onnx_fixtures import PANDA_JOINTS, make_encoder, make_policy, policy_spec, write_pair

from hv2r_ros.cli import main
from hv2r_ros.core.models.check import check_model_pair
from hv2r_ros.core.robot_profile import load_robot_profile

STEPS = 3  # latency figures are not under test here; keep the runs short


@pytest.fixture(scope="module")
def panda():
    return load_robot_profile("panda")


def failed(report):
    return {r.name: r.detail for r in report.failures()}


def test_valid_pair_passes(tmp_path, panda):
    report = check_model_pair(panda, write_pair(tmp_path), steps=STEPS)
    assert report.passed, report.format()
    names = [r.name for r in report.results]
    assert names == ["encoder", "policy", "embedding size", "cameras", "joint order",
                     "action size", "proprio size", "control rate", "probe", "latency"]
    assert report.provider == "CPUExecutionProvider / CPUExecutionProvider"
    assert report.latency_ms["p99"] >= report.latency_ms["p50"] > 0
    assert report.format().splitlines()[-1] == "RESULT: PASS (10 checks)"


def test_cli_valid_pair_exits_zero(tmp_path, capsys):
    assert main(["check", "--robot", "panda", "--models", str(write_pair(tmp_path)),
                 "--steps", str(STEPS), "--providers", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "RESULT: PASS" in out and "CPUExecutionProvider" in out


def test_cli_malformed_pair_exits_nonzero(tmp_path, capsys):
    directory = write_pair(tmp_path)
    (directory / "encoder.onnx.data").unlink()
    assert main(["check", "--robot", "panda", "--models", str(directory),
                 "--steps", str(STEPS)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  encoder" in out and "encoder.onnx.data missing" in out
    assert "RESULT: FAIL" in out


def test_cli_unknown_robot_exits_two(tmp_path, capsys):
    assert main(["check", "--robot", "no_such_robot", "--models", str(tmp_path)]) == 2
    assert "no_such_robot" in capsys.readouterr().err


def test_action_size_of_six_for_panda_joints(tmp_path, panda):
    spec = policy_spec(joint_order=PANDA_JOINTS[:6], gripper=False)
    report = check_model_pair(panda, write_pair(tmp_path, policy=make_policy(spec)),
                              steps=STEPS)
    problems = failed(report)
    assert set(problems) == {"joint order", "action size"}
    assert problems["action size"].startswith("policy.onnx: hv2r.action_size is 6")
    assert "needs 7 (7 joints)" in problems["action size"]
    assert "6 joints, profile panda has 7" in problems["joint order"]


def test_swapped_joint_order_names_first_mismatch(tmp_path, panda):
    joints = list(PANDA_JOINTS)
    joints[2], joints[3] = joints[3], joints[2]
    report = check_model_pair(
        panda, write_pair(tmp_path, policy=make_policy(policy_spec(joint_order=joints))),
        steps=STEPS)
    assert set(failed(report)) == {"joint order"}
    assert ("hv2r.joint_order[2] is 'panda_joint4', the profile's joint 2 is 'panda_joint3'"
            in failed(report)["joint order"])


def test_nan_output_on_probe(tmp_path, panda):
    report = check_model_pair(panda, write_pair(tmp_path, policy=make_policy(nan_output=True)),
                              steps=STEPS)
    assert set(failed(report)) == {"probe"}
    assert "policy.onnx: non-finite actions" in failed(report)["probe"]
    assert report.latency_ms is None


def test_nan_weights_fail_the_load(tmp_path, panda):
    report = check_model_pair(panda, write_pair(tmp_path, encoder=make_encoder(nan_weight=True)),
                              steps=STEPS)
    assert "proj.weight" in failed(report)["encoder"]
    assert not report.passed and "probe" not in [r.name for r in report.results]
    # The policy is still checked against the robot when the encoder fails.
    assert [r.name for r in report.results if r.passed][:1] == ["policy"]


@pytest.mark.parametrize("changes, check, needle", [
    (dict(control_rate_hz=200.0), "control rate", "faster than panda's control loop (100 Hz)"),
    (dict(camera_order=("wrist", "left")), "cameras", "['left'], not cameras of panda"),
    (dict(camera_order=()), "cameras", "hv2r.camera_order is empty"),
    (dict(proprio_size=8, proprio_mean=(0.0,) * 8, proprio_std=(1.0,) * 8), "proprio size",
     "hv2r.proprio_size is 8, expected 7"),
])
def test_policy_metadata_against_panda(tmp_path, panda, changes, check, needle):
    policy = make_policy(policy_spec(**changes))
    report = check_model_pair(panda, write_pair(tmp_path, policy=policy), steps=STEPS)
    assert set(failed(report)) == {check}, report.format()
    assert needle in failed(report)[check]


def test_end_effector_actions(tmp_path, panda):
    good = policy_spec(action_space="ee_delta", end_effector_frames=("panda_hand_tcp",),
                       action_size=7, action_mean=(0.0,) * 7, action_std=(0.01,) * 7)
    report = check_model_pair(panda, write_pair(tmp_path / "good", policy=make_policy(good)),
                              steps=STEPS)
    assert report.passed, report.format()
    bad = policy_spec(action_space="ee_delta", end_effector_frames=("tool0",), action_size=7,
                      action_mean=(0.0,) * 7, action_std=(0.01,) * 7)
    report = check_model_pair(panda, write_pair(tmp_path / "bad", policy=make_policy(bad)),
                              steps=STEPS)
    assert set(failed(report)) == {"action size"}
    assert "['tool0'] not end effectors of panda" in failed(report)["action size"]


def test_gripper_command_for_robot_without_gripper(tmp_path):
    ur5e = load_robot_profile("ur5e")
    spec = policy_spec(joint_order=ur5e.joint_names, robot="ur5e")  # gripper=True
    report = check_model_pair(ur5e, write_pair(tmp_path, policy=make_policy(spec)), steps=STEPS)
    assert set(failed(report)) == {"action size"}
    assert "commands a gripper, profile ur5e has none" in failed(report)["action size"]
