"""`hv2r bench graph` on the tiny fixture pair: it runs the whole graph and writes the figures.

The bench runs as a subprocess (it selects a Fast DDS profile and a ROS domain for its own
process) on a joint-space pair whose actions lie around the Panda's home pose, with small
synthetic camera images. Checked: exit code 0; the JSON has every stage with calls and
ordered percentiles (and no IK for joint-space chunks), the command output near its configured
rate, a camera-to-command latency that follows the inference start, the process figures, the
judged targets, the stop with a hold, and the image-path baseline (the eager ones are skipped
with a reason: the fixture encoder has no PyTorch module). A missing pair is a clear error.
"""

import json
import math
import os
import subprocess
import sys

import pytest
from onnx_fixtures import make_encoder, make_policy, policy_spec, write_pair

import ros_testing
from hv2r_ros.cli import main as hv2r_main
from hv2r_ros.cli.bench_graph_probes import INFERENCE_STAGES, TICK_STAGES
from hv2r_ros.core.robot_profile import load_robot_profile

BENCH = [sys.executable, "-c", "import sys; from hv2r_ros.cli import main; sys.exit(main())",
         "bench", "graph"]


@pytest.fixture(scope="module")
def joint_pair(tmp_path_factory):
    profile = load_robot_profile("panda")
    n = len(profile.joint_names)
    spec = policy_spec(action_mean=tuple(map(float, profile.home)) + (0.5,),
                       action_std=(0.2,) * (n + 1))
    return write_pair(tmp_path_factory.mktemp("bench_pair"), make_encoder(), make_policy(spec))


@pytest.mark.ros
def test_graph_bench_measures_every_stage_and_writes_json(joint_pair, tmp_path):
    env = dict(os.environ)
    ros_testing.use_fresh_domain(env)
    out = tmp_path / "graph.json"
    done = subprocess.run(BENCH + ["--models", str(joint_pair), "--duration-s", "3",
                                   "--warmup-s", "0.5", "--image-size", "160x120",
                                   "--baseline-duration-s", "1", "--json", str(out)],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "camera-to-command" in done.stdout and f"wrote {out}" in done.stdout
    r = json.loads(out.read_text())

    c = r["config"]
    assert (c["image_size_px"], c["cameras"], c["chunk_length"], c["executors"]) == \
        ([160, 120], 2, 4, "per_node")
    for name in INFERENCE_STAGES + TICK_STAGES:
        stage = r["stages"][name]
        if name == "ik":  # joint-space chunks skip the IK, never the guard
            assert stage["count"] == 0
            continue
        assert stage["count"] > 0, name
        assert 0.0 <= stage["p50_ms"] <= stage["p99_ms"] <= stage["max_ms"], (name, stage)
    control = r["control"]
    assert control["configured_hz"] == pytest.approx(100.0)
    assert control["rate_hz"] >= 0.5 * control["configured_hz"], control
    first = r["camera_to_command"]["first_command"]
    assert first["count"] > 0
    assert first["p50_ms"] >= r["stages"]["capture_to_inference"]["p50_ms"]
    assert r["inference"]["rate_hz"] > 0.0
    assert r["process"]["peak_rss_bytes"] > 0 and r["process"]["cpu_percent"] > 0.0
    for figure in ("overhead", "camera_to_command", "control", "process"):
        assert isinstance(r[figure]["held"], bool), figure
    assert r["held_at_stop"] is True
    assert math.isfinite(r["machine"]["others_cpu_percent"])
    image_path = r["baselines"]["image_path"]
    assert image_path["ours"]["p50_ms"] > 0.0 and image_path["naive"]["p50_ms"] > 0.0
    assert "tiny-test" in r["baselines"]["eager"]["skipped"]


def test_missing_pair_is_a_clear_error(tmp_path, capsys):
    assert hv2r_main(["bench", "graph", "--models", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "encoder.onnx and policy.onnx missing" in err and str(tmp_path) in err
