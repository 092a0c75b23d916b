"""The ``hv2r`` command as users run it: exit codes and what it prints."""

import json
import pathlib

import pytest

from hv2r_ros.cli import main

CONFIG = pathlib.Path(__file__).resolve().parents[1] / "config" / "robots"


def test_robots_lists_every_profile(capsys):
    assert main(["robots"]) == 0
    out = capsys.readouterr().out
    for name in ("panda", "ur5e", "xarm7", "so100", "g1"):
        assert name in out


def test_robots_shows_limits_and_end_effector(capsys):
    assert main(["robots", "panda"]) == 0
    out = capsys.readouterr().out
    assert "panda_joint7" in out and "panda_hand_tcp at home" in out


def test_robots_rejects_a_malformed_profile_naming_file_and_field(tmp_path, capsys):
    text = (CONFIG / "panda.yaml").read_text().replace("command_timeout_s: 0.1", "command_timeout_s: 0")
    bad = tmp_path / "bad_panda.yaml"
    bad.write_text(text)
    assert main(["robots", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "safety.command_timeout_s" in err


def test_bench_fuzz_reports_zero_violations(capsys, tmp_path):
    out_json = tmp_path / "fuzz.json"
    assert main(["bench", "fuzz", "--robots", "panda,g1", "--steps", "3000",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "PASS: zero violations" in out
    report = json.loads(out_json.read_text())
    assert report["g1"]["cartesian"]["violations"] == 0 and report["panda"]["joint"]["steps"] == 3000


def test_bench_prints_chain_throughput(capsys, tmp_path):
    out_json = tmp_path / "bench.json"
    assert main(["bench", "--robots", "so100", "--steps", "200", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "chain" in out and out_json.exists()


@pytest.mark.parametrize("robot", ["panda", "g1"])
def test_fault_demo_closed_loop_passes(robot, capsys):
    """The fault demo: faults injected, every limit held, the tool back at its start."""
    assert main(["fault-demo", "--robot", robot]) == 0
    out = capsys.readouterr().out
    assert "demo: PASS" in out
    assert "hold: e-stop latched" in out and "hold: non-finite value in command" in out
