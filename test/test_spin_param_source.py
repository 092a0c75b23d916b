"""A parameter error names the --params-file that sets the parameter (run_node's fatal line)."""

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.ros.spin import _parameter_source, params_files


def test_the_last_parameter_file_that_sets_the_parameter_is_named(tmp_path):
    stack = tmp_path / "stack.yaml"
    stack.write_text("/**:\n  ros__parameters:\n    command_timeout_s: 0.1\n    rate_hz: 100\n")
    robot = tmp_path / "robot.yaml"
    robot.write_text("ns:\n  command_output:\n    ros__parameters:\n      command_timeout_s: 5.0\n")
    other = tmp_path / "other.yaml"
    other.write_text("policy:\n  ros__parameters:\n    models_dir: x\n")
    args = ["--ros-args", "--params-file", str(stack), "--params-file", str(robot),
            "--params-file", str(other), "-p", "x:=1"]
    assert params_files(args) == [str(stack), str(robot), str(other)]
    error = ConfigError("out of range", field="command_timeout_s", value=5.0)
    assert _parameter_source(error, args) == f" (set in {robot})"
    assert _parameter_source(ConfigError("bad", field="rate_hz"), args) == f" (set in {stack})"
    unset = _parameter_source(ConfigError("bad", field="jitter_s"), args)
    assert str(stack) in unset and "none of the parameter files" in unset


def test_errors_that_name_a_file_or_no_field_are_left_alone(tmp_path):
    stack = tmp_path / "stack.yaml"
    stack.write_text("/**:\n  ros__parameters:\n    robot: panda\n")
    args = ["--ros-args", "--params-file", str(stack)]
    assert _parameter_source(ConfigError("bad", file="panda.yaml", field="robot"), args) == ""
    assert _parameter_source(ConfigError("bad"), args) == ""
    assert _parameter_source(ConfigError("bad", field="robot"), ["--ros-args"]) == ""
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [")
    assert "none of" in _parameter_source(ConfigError("bad", field="robot"),
                                          ["--params-file", str(broken)])
