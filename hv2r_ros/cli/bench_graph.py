"""``hv2r bench graph``: the whole graph, timed stage by stage, against the latency budget.

Runs the stack of ``hv2r run --synthetic`` (camera nodes playing generated videos, prompt,
policy, safety filter, command output, a robot that follows the commands) for a fixed time in
this process and prints, per stage, p50 and p99 latency (``bench_graph_probes`` defines them),
the camera-to-command latency (capture stamp to the publication of the first command that
follows the chunk computed from that capture), the command output's achieved rate and period
error, the inference rate, the CPU share and peak RSS of the processes, and the image
transport latency; then the baselines of ``bench_graph_baselines`` and their ratios. Each
figure is judged against the issue's targets (docs/performance.md) and everything is written
as JSON (``--json``).

Options change one thing at a time: image size, camera count and chunk length (the last two
with a generated random-weight policy, which needs torch), robots served (namespaces in this
process, a full stack each), executor arrangement, inference trigger, cameras in separate
processes, and the Fast DDS profile (the shipped 16 MiB shared-memory segment or Fast DDS's
default, which matters only between processes). ``--sweep`` runs the cost-growth table, each row
in a fresh process, and prints it as Markdown. Figures depend on the machine: measured where it
runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hv2r_ros.cli.bench_graph_figures import figures
from hv2r_ros.core.errors import ConfigError

FIRST_CHUNK_TIMEOUT_S = 60.0
DEFAULT_JSON = "out/bench_graph.json"


def add_graph_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hv2r bench graph`` (added to ``hv2r bench``'s parser)."""
    g = parser.add_argument_group("graph (hv2r bench graph)")
    g.add_argument("--robot", default="panda", help="robot profile (default panda)")
    g.add_argument("--models", metavar="DIR", default=None,
                   help="folder with encoder.onnx and policy.onnx (default: the shipped "
                        "models/reference)")
    g.add_argument("--duration-s", type=float, default=20.0, help="measured time [s]")
    g.add_argument("--warmup-s", type=float, default=3.0,
                   help="time after the first command that follows a chunk, not measured [s]")
    g.add_argument("--image-size", default="640x480", metavar="WxH",
                   help="synthetic camera image size [px] (default 640x480)")
    g.add_argument("--cameras", type=int, default=None, metavar="N",
                   help="cameras 1-4 (a random-weight policy with N cameras; needs torch)")
    g.add_argument("--chunk-length", type=int, default=None, metavar="H",
                   help="chunk length (a random-weight policy with H steps; needs torch)")
    g.add_argument("--namespaces", type=int, default=1, metavar="N",
                   help="robots served by this process: N full stacks in namespaces")
    g.add_argument("--executors", choices=("per_node", "shared"), default="per_node",
                   help="one executor per node (default), or one for all")
    g.add_argument("--inference-trigger", choices=("frames", "timer"), default="frames",
                   help="the policy node's inference_trigger")
    g.add_argument("--camera-processes", action="store_true",
                   help="run the camera nodes as separate processes (images cross processes)")
    g.add_argument("--processes", action="store_true",
                   help="every node in its own process, as ros2 launch starts them, but the "
                        "command output (probed here); the policy's figures come from its "
                        "diagnostics")
    g.add_argument("--robot-in-process", action="store_true",
                   help="run the synthetic robot in the stack's process (default: its own "
                        "process, as a robot's driver is)")
    g.add_argument("--fastdds", choices=("shm", "default"), default="shm",
                   help="shm: the shipped profile (config/fastdds_shm.xml, 16 MiB shared "
                        "memory); default: Fast DDS's own (512 KiB segment)")
    g.add_argument("--no-baselines", action="store_true", help="skip the baselines")
    g.add_argument("--baseline-duration-s", type=float, default=10.0,
                   help="time of the sequential-loop baseline [s]")
    g.add_argument("--sweep", action="store_true",
                   help="the cost-growth table: one fresh process per row")


def default_models_dir() -> Path:
    """The shipped pair, ``models/reference`` of the checkout or the installed share."""
    from hv2r_ros.ros.stack_plan import config_dir

    return config_dir().parent / "models" / "reference"


def resolve_models(models: str | None) -> Path:
    """The model folder to bench; ConfigError naming what is missing."""
    directory = Path(models) if models else default_models_dir()
    missing = [n for n in ("encoder.onnx", "policy.onnx") if not (directory / n).is_file()]
    if missing:
        pairs = sorted(str(p.parent) for p in directory.glob("*/policy.onnx")) \
            if directory.is_dir() else []
        hint = f"; pairs found below it: {', '.join(pairs)}" if pairs else ""
        raise ConfigError(f"no model pair here ({' and '.join(missing)} missing): give "
                          f"--models DIR, a folder with encoder.onnx and policy.onnx{hint}",
                          file=str(directory))
    return directory


def _image_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError("not WIDTHxHEIGHT", field="--image-size", value=text) from None
    if not (16 <= width <= 4096 and 16 <= height <= 4096):
        raise ConfigError("sides must be 16-4096 px", field="--image-size", value=text)
    return width, height


def _set_environment(fastdds: str) -> None:
    """Discovery on this machine, a domain of our own, the Fast DDS profile (before rclpy)."""
    from hv2r_ros.ros.stack_plan import FASTDDS_PROFILE_VARIABLES, fastdds_environment

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(200 + random.randrange(30)))
    if fastdds == "shm":
        os.environ.update(fastdds_environment())
    else:
        for name in FASTDDS_PROFILE_VARIABLES:
            os.environ.pop(name, None)


def run_graph(args: argparse.Namespace) -> int:
    """``hv2r bench graph``: one measured run, or ``--sweep``."""
    from hv2r_ros.cli.bench_graph_report import print_report, run_sweep

    if args.sweep:
        return run_sweep(args)
    result = measure(args)
    print_report(result)
    path = Path(args.json or DEFAULT_JSON)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(result), indent=2, default=_json_default))
    print(f"wrote {path}")
    return 0


def _json_default(value):
    return str(value)


def _finite(value):
    """``value`` with every NaN or infinity replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def measure(args: argparse.Namespace) -> dict:
    """Build, run and measure the graph (module docstring); the figures as a dict."""
    size = _image_size(args.image_size)
    models = resolve_models(args.models)
    if not 1 <= args.namespaces <= 16 or (args.cameras is not None
                                          and not 1 <= args.cameras <= 4):
        raise ConfigError("namespaces must be 1-16 and cameras 1-4", field="--namespaces")
    with tempfile.TemporaryDirectory(prefix="hv2r-bench-") as tmp:
        tmp = Path(tmp)
        if args.cameras or args.chunk_length:
            models = _variant_pair(models, tmp / "variant", args.cameras, args.chunk_length)
        params = tmp / "bench.yaml"
        params.write_text(f"/**/policy:\n  ros__parameters:\n    inference_trigger: "
                          f"{args.inference_trigger}\n")
        result = _run_stacks(args, models, size, params)
        if args.cameras or args.chunk_length:
            result["config"]["variant_of"] = str(resolve_models(args.models))
        if not args.no_baselines:
            result["baselines"] = _baselines(args, models, size, result)
    return result


def _variant_pair(models: Path, out: Path, cameras: int | None, chunk_length: int | None) -> Path:
    """``bench_graph_baselines.variant_pair`` in a child process: torch (needed to export) never
    enters the measured process, whose peak RSS is a figure."""
    code = ("import sys; from pathlib import Path; from hv2r_ros.cli.bench_graph_baselines "
            "import variant_pair as v; v(Path(sys.argv[1]), Path(sys.argv[2]), "
            "cameras=int(sys.argv[3]) or None, chunk_length=int(sys.argv[4]) or None)")
    done = subprocess.run([sys.executable, "-c", code, str(models), str(out),
                           str(cameras or 0), str(chunk_length or 0)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"could not write a policy with {cameras or 'the'} cameras and chunk "
                          f"length {chunk_length or 'unchanged'} (needs torch, "
                          f"requirements-dev.txt): {done.stderr.strip()[-400:]}",
                          field="--cameras/--chunk-length")
    return out


def _run_stacks(args, models: Path, size: tuple[int, int], params: Path) -> dict:
    _set_environment(args.fastdds)
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions

    from hv2r_ros.cli.bench_graph_probes import DiagnosticsProbe, GraphProbe
    from hv2r_ros.core.timing import ProcessMeter
    from hv2r_ros.ros.fastdds import shared_memory_segment_bytes
    from hv2r_ros.ros.runner import build_stack

    context = Context()
    rclpy.init(args=[], context=context, signal_handler_options=SignalHandlerOptions.NO)
    stacks, probes = [], []
    try:
        for i in range(args.namespaces):
            stacks.append(build_stack(
                args.robot, models=str(models), synthetic=True, context=context,
                namespace=f"robot{i}" if args.namespaces > 1 else "",
                extra_params=[str(params)], executors=args.executors,
                separate=_separate(args), synthetic_size_px=size))
        diagnostics = DiagnosticsProbe(context=context, namespace=stacks[0].plan.namespace)
        stacks[0].add(diagnostics)
        for stack in stacks:
            stack.start()
            probes.append(GraphProbe(stack))
            probes[-1].attach()
        deadline = time.monotonic() + FIRST_CHUNK_TIMEOUT_S
        while not all(p.has_followed_a_chunk() for p in probes):
            if time.monotonic() > deadline or not all(s.running for s in stacks):
                raise ConfigError(_no_chunk_reason(stacks, probes), field="--models",
                                  value=str(models))
            time.sleep(0.05)
        time.sleep(args.warmup_s)
        meters = {"stack": ProcessMeter(), **{
            f"{s.plan.namespace + '/' if s.plan.namespace else ''}{name}": ProcessMeter(p.pid)
            for s in stacks for name, p in s.processes.items()}}
        for probe in probes:
            probe.mark()
        machine = [ProcessMeter.machine_busy_s()]
        first = {name: m.read() for name, m in meters.items()}
        time.sleep(args.duration_s)
        last = {name: m.read() for name, m in meters.items()}
        machine.append(ProcessMeter.machine_busy_s())
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
        windows = [p.window() for p in probes]
        commands = [p.commands_since_mark() for p in probes]
        chunks = [p.chunks_since_mark() for p in probes]
        segment = shared_memory_segment_bytes()
        period_s = stacks[0].output_node.period_s
        policy = stacks[0].nodes.get("policy")
        policy_diagnostics = diagnostics.find("policy")
        if args.processes:  # the hold needs the safety filter in this process
            for stack in stacks:
                stack.stop_processes()
            held = None
            for stack in stacks:
                stack.stop()
        else:
            held = all(s.stop() for s in stacks)
    finally:
        for stack in stacks:
            stack.shutdown()
        rclpy.try_shutdown(context=context)
    result = figures(args, models, size, windows, commands, chunks, period_s, policy, first,
                     last, segment, held, policy_diagnostics)
    ours = sum(last[n].cpu_s - first[n].cpu_s for n in first)
    wall = last["stack"].wall_s - first["stack"].wall_s
    result["machine"] = {"load_average_1min": load,
                         "others_cpu_percent": 100.0 * (machine[1] - machine[0] - ours) / wall,
                         "cpus": os.cpu_count()}
    return result


def _separate(args) -> tuple[str, ...]:
    """The executables run as child processes."""
    names = ("camera", "prompt", "policy", "safety_filter") if args.processes else (
        ("camera",) if args.camera_processes else ())
    return names + (() if args.robot_in_process else ("synthetic_robot",))


def _no_chunk_reason(stacks, probes) -> str:
    dead = [s for s in stacks if not s.running]
    if dead:
        return (f"the graph stopped before any chunk reached the command output ("
                f"{dead[0].error or 'a camera process exited'})")
    policy = stacks[0].nodes.get("policy")
    holds = f"policy holds {policy.runner.holds}, last reason {policy.runner.reason or 'none'!r}" \
        if policy is not None else "the policy runs in its own process (its log says why)"
    return f"no chunk reached the command output within {FIRST_CHUNK_TIMEOUT_S:g} s; {holds}"



def _baselines(args, models: Path, size: tuple[int, int], result: dict) -> dict:
    import numpy as np

    from hv2r_ros.cli import bench_graph_baselines as b
    from hv2r_ros.core.models.preprocess import Preprocessor
    from hv2r_ros.core.models.runtime import ModelPair
    from hv2r_ros.core.robot_profile import load_robot_profile
    from hv2r_ros.ros.image import array_to_image

    pair = ModelPair.load(models, ["cpu"])
    cams = len(pair.policy.spec.camera_order)
    images = b.synthetic_images(cams, size)
    msgs = [array_to_image(image, "rgb8", time.time(), "camera") for image in images]
    out: dict = {"image_path": b.image_path_baseline(pair, msgs, 200)}
    encoder, policy, note = b.eager_models(pair)
    if encoder is None:
        out["eager"] = {"skipped": note}
        return out
    eager = b.EagerStep(pair, encoder, policy)
    batch = Preprocessor(pair.encoder.spec, cams)(images).copy()
    goal = np.zeros(pair.policy.spec.embedding_size, np.float32)
    q = np.asarray(load_robot_profile(args.robot).home)
    out["models"] = {**b.model_baseline(pair, eager, batch, goal, q, 60), "weights": note}
    rate = 15.0
    seq = b.sequential_loop(pair, eager, load_robot_profile(args.robot), images,
                            args.baseline_duration_s, rate)
    graph_err = result["control"]["error_p99_ms"]
    graph_c2c = result["camera_to_command"]["first_command"]["p50_ms"]
    out["sequential_loop"] = {
        **seq, "inference_rate_hz": rate,
        "period_error_p99_over_graph": seq["control"]["error_p99_ms"] / graph_err
        if graph_err > 0 else math.inf,
        "camera_to_command_p50_over_graph":
            seq["camera_to_command_first"]["p50_ms"] / graph_c2c if graph_c2c > 0 else math.inf}
    return out
