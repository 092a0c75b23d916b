"""Run the whole stack in one process, for machines without `ros2 launch`.

``hv2r run --robot panda --models DIR`` starts the same nodes with the same parameter files
(config/stack.yaml, config/params/<robot>.yaml, then --params-file) as
``ros2 launch hv2r_ros bringup.launch.py``, one executor thread per node. ``--synthetic`` feeds
the graph generated camera videos and a robot that follows its commands (no hardware);
``--sim`` starts the simulated robot node instead. Ctrl-C (or the end of --duration-s) holds the
robot (its last command equals the measured state), stops publishing and exits 0; a second
Ctrl-C aborts. docs/running.md has the details.
"""

from __future__ import annotations

import argparse

OUTPUTS = ("ros2_control", "unitree_arm_sdk")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robot", required=True,
                        help="profile name (see `hv2r robots`) or path to a profile YAML")
    parser.add_argument("--models", required=True, metavar="DIR",
                        help="folder with encoder.onnx and policy.onnx")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--sim", action="store_true",
                        help="cameras and joint_states from the simulated robot node")
    source.add_argument("--synthetic", action="store_true",
                        help="generated camera videos and goal image, and a robot that follows "
                             "the commands (no hardware)")
    parser.add_argument("--prompt-video", default="", metavar="PATH",
                        help="goal image or demo video (default: the parameter files'; with "
                             "--synthetic a generated goal image)")
    parser.add_argument("--namespace", default="", metavar="NS",
                        help="namespace of every node and topic (two robots side by side)")
    parser.add_argument("--output", choices=OUTPUTS, default="",
                        help="command output; must match the robot profile's command interface "
                             "(default: the profile's)")
    parser.add_argument("--params-file", action="append", default=[], metavar="FILE",
                        dest="params_files",
                        help="extra ROS 2 parameter file, applied last (repeatable)")
    parser.add_argument("--duration-s", type=float, default=None, metavar="S",
                        help="stop (hold, then exit) after S seconds")
    parser.add_argument("--no-fastdds-profile", action="store_true",
                        help="do not select config/fastdds_shm.xml (it is never selected when "
                             "FASTDDS_DEFAULT_PROFILES_FILE or FASTRTPS_DEFAULT_PROFILES_FILE "
                             "is set)")


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from hv2r_ros.ros.fastdds import shared_memory_segment_bytes
    from hv2r_ros.ros.runner import build_stack, run_stack

    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack = build_stack(args.robot, models=args.models, sim=args.sim,
                            synthetic=args.synthetic, prompt_video=args.prompt_video,
                            namespace=args.namespace, output=args.output,
                            extra_params=args.params_files,
                            use_fastdds_profile=not args.no_fastdds_profile)
        plan = stack.plan
        segment = shared_memory_segment_bytes()
        print(f"hv2r run: {plan.profile.name}, {plan.action_space} actions -> {plan.output}; "
              f"nodes: {', '.join(stack.nodes)}"
              + (f"; namespace /{plan.namespace.strip('/')}" if plan.namespace else "")
              + ("" if segment is None else
                 f"; Fast DDS shared memory segment {segment / 2**20:.1f} MiB")
              + ". Ctrl-C holds the robot and stops.", flush=True)
        result = run_stack(stack, stop, args.duration_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if result.error is not None:
        print(f"hv2r run: error: a callback raised {type(result.error).__name__}: "
              f"{result.error}", flush=True)
        return 1
    if not result.held:
        print("hv2r run: error: the hold did not complete (see the log above)", flush=True)
        return 1
    print("hv2r run: held at the measured state, stopped.", flush=True)
    return 0
