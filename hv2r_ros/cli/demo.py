"""The closed-loop demo: a human demo video prompts the simulated robot through the whole stack.

``hv2r demo`` (what ``make demo`` runs):

1. checks the model pair against the robot profile (``hv2r check``);
2. renders a human demonstration of a tabletop layout (a hand moves one cube onto one pad) to
   ``OUT/prompt_demo.mp4``;
3. starts the whole stack in this process on that layout: ``sim`` (the MuJoCo robot, cameras and
   ground truth), ``prompt`` (the video becomes the goal; progress is tracked), ``policy``
   (encoder x2 + policy, ONNX), ``safety_filter`` and ``command_output`` (IK, joint guard,
   joint trajectory commands), with the parameter files ``hv2r run`` and the launch files use;
4. prints a live line (time, task progress, cube-to-pad distance, grasp) until the task holds as
   done for ``--success-hold-s`` or ``--max-duration-s`` passes, then holds the robot and stops;
5. prints the outcome and a latency table measured from the message stamps, and writes
   ``OUT/demo_overhead.mp4`` (the overhead camera with the prompt's goal frame inset),
   ``OUT/progress.png`` (task progress and cube-to-pad distance over time) and
   ``OUT/demo_summary.json``.

Exit status: 0 when the episode ran (the outcome is printed and in the summary JSON; with
``--require-success`` a failed task exits 1), 2 on a configuration error or a node failure.
Everything runs in wall-clock time on this machine: figures are this machine's.
"""

from __future__ import annotations

import argparse

#: The layout seed of the demo (held out of every training set: those use seeds below 500 000).
DEMO_SEED = 900_003


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robot", default="panda", help="robot profile (default panda)")
    parser.add_argument("--models", default="", metavar="DIR",
                        help="model pair folder (default: the shipped models/reference)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED,
                        help=f"layout seed of the task (default {DEMO_SEED})")
    parser.add_argument("--out", default="out", metavar="DIR",
                        help="output folder (default out/)")
    parser.add_argument("--max-duration-s", type=float, default=60.0,
                        help="give up after this long [s] (default 60)")
    parser.add_argument("--success-hold-s", type=float, default=1.0,
                        help="the task must hold as done this long to end early [s]")
    parser.add_argument("--quiet", action="store_true", help="no live line (logs only)")
    parser.add_argument("--require-success", action="store_true",
                        help="exit 1 when the robot does not complete the task")


def default_models_dir():
    """``models/reference`` of the source checkout or the installed package share."""
    from hv2r_ros.core.urdf import package_share_dir

    share = package_share_dir("hv2r_ros")
    return None if share is None else share / "models" / "reference"


def run(args: argparse.Namespace) -> int:
    import json
    import signal
    import sys
    import tempfile
    import threading
    import time
    from pathlib import Path

    import yaml

    from hv2r_ros.core.errors import ConfigError
    from hv2r_ros.core.models.check import check_model_pair
    from hv2r_ros.core.robot_profile import load_robot_profile
    from hv2r_ros.ros.demo_monitor import DemoMonitor
    from hv2r_ros.ros.runner import build_stack, run_stack
    from hv2r_ros.sim.human_demo import render_human_demo
    from hv2r_ros.sim.scene import SceneConfig
    from hv2r_ros.sim.task import sample_layout

    started = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = Path(args.models) if args.models else default_models_dir()
    if models is None or not (models / "policy.onnx").is_file():
        raise ConfigError("no model pair found: pass --models DIR (a folder with encoder.onnx "
                          "and policy.onnx)", field="--models", value=str(models))
    profile = load_robot_profile(args.robot)
    report = check_model_pair(profile, models, steps=10)
    if not report.passed:
        print(report.format(), file=sys.stderr)
        raise ConfigError("the model pair does not pass the check", field="--models",
                          value=str(models))
    print(f"hv2r demo: {profile.name}, models {models} (check passed)", flush=True)

    layout = sample_layout(profile.workspace, args.seed)
    video = out / "prompt_demo.mp4"
    info = render_human_demo(layout, video, camera="overhead", size=(224, 224), fps=10.0,
                             seed=args.seed, scene_config=SceneConfig.framing(profile.workspace))
    task = f"{layout.target_object.replace('_', ' ')} -> {layout.target_pad.replace('_', ' ')}"
    print(f"human demo: {video} ({info.frame_count} frames; the hand moves the {task})",
          flush=True)

    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="hv2r-demo-") as tmp:
        params = Path(tmp) / "demo.yaml"
        params.write_text(yaml.safe_dump({"/**/sim": {"ros__parameters": {"seed": args.seed}}}))
        stack = build_stack(profile.name, models=str(models), sim=True,
                            prompt_video=str(video.resolve()), extra_params=[str(params)])
        monitor = DemoMonitor(profile.command_interface.topic, context=stack.context,
                              namespace=stack.plan.namespace or None)
        stack.add(monitor)
        outcome: dict = {}

        def watch() -> None:
            """Live line and the end condition, on a thread beside the executor."""
            while not stop.wait(0.5):
                t = monitor.elapsed_s()
                line = _live_line(monitor, t)
                if not args.quiet:
                    print("\r" + line.ljust(100), end="", flush=True)
                since = monitor.success_since_s()
                if since is not None and t - since >= args.success_hold_s:
                    outcome.update(success=True, time_s=since)
                    stop.set()
                elif t >= args.max_duration_s:
                    outcome.update(success=False, time_s=t)
                    stop.set()

        def on_signal(signum, frame) -> None:
            outcome.setdefault("interrupted", True)
            stop.set()
            signal.signal(signal.SIGINT, signal.default_int_handler)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        watcher = threading.Thread(target=watch, name="demo-watch", daemon=True)
        try:
            watcher.start()
            result = run_stack(stack, stop, None)
        finally:
            stop.set()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        watcher.join(timeout=2.0)
        if not args.quiet:
            print(flush=True)
    if result.error is not None:
        print(f"hv2r demo: error: a callback raised {type(result.error).__name__}: "
              f"{result.error}", file=sys.stderr)
        return 2
    summary = _summary(monitor, layout, outcome, result.held)
    summary["wall_s"] = time.monotonic() - started
    _print_summary(summary)
    files = _write_outputs(out, monitor, summary)
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=1))
    print("wrote " + ", ".join(str(f) for f in files + [out / "demo_summary.json"]))
    return 1 if args.require_success and not summary["success"] else 0


def _live_line(monitor, t: float) -> str:
    progress = monitor.progress[-1][1] if monitor.progress else float("nan")
    sample = monitor.truth
    if sample is None:
        return f"t {t:5.1f} s  waiting for the simulated robot..."
    truth = sample.truth
    grasp = truth.grasped or "nothing"
    state = "DONE" if truth.success else "working"
    return (f"t {t:5.1f} s  progress {progress:4.2f}  cube-to-pad {truth.target_distance_m:5.3f} m"
            f"  holding {grasp:<12} {state}  commands {len(monitor.command_times_s)}")


def _percentiles(values, scale: float = 1e3) -> tuple[float, float, int]:
    import numpy as np

    v = np.asarray(values, dtype=float)
    if not len(v):
        return float("nan"), float("nan"), 0
    return float(np.percentile(v, 50) * scale), float(np.percentile(v, 99) * scale), len(v)


def _summary(monitor, layout, outcome: dict, held: bool) -> dict:
    import numpy as np

    truth = monitor.truth.truth if monitor.truth is not None else None
    periods = np.diff(np.asarray(monitor.command_times_s))
    rows = []
    for key, label in (("encoder_latency", "encoder x2 (one batch), policy node"),
                       ("policy_latency", "policy network, policy node")):
        p50, p99 = (monitor.compute_ms.get(f"{key}_p{q}_ms", float("nan")) for q in (50, 99))
        rows.append({"stage": label, "p50_ms": p50, "p99_ms": p99, "n": None})
    for values, label in ((monitor.action_latency_s, "capture -> hv2r/action (policy out)"),
                          (monitor.safe_latency_s, "capture -> hv2r/action_safe (filtered)")):
        p50, p99, n = _percentiles(values)
        rows.append({"stage": label, "p50_ms": p50, "p99_ms": p99, "n": n})
    p50, p99, n = _percentiles(periods)
    rows.append({"stage": "joint command period (command_output)", "p50_ms": p50,
                 "p99_ms": p99, "n": n})
    return {
        "success": bool(outcome.get("success", False)),
        "interrupted": bool(outcome.get("interrupted", False)),
        "time_s": outcome.get("time_s"),
        "task": {"object": layout.target_object, "pad": layout.target_pad,
                 "seed": layout.seed},
        "final_distance_m": None if truth is None else truth.target_distance_m,
        "final_reason": None if truth is None else truth.reason,
        "final_progress": monitor.progress[-1][1] if monitor.progress else None,
        "held_at_stop": bool(held),
        "latency": rows,
    }


def _print_summary(summary: dict) -> None:
    import math

    if summary["success"]:
        print(f"SUCCESS: the {summary['task']['object']} is on the {summary['task']['pad']} "
              f"after {summary['time_s']:.1f} s")
    else:
        why = "interrupted" if summary["interrupted"] else summary["final_reason"]
        print(f"FAILURE: {why} (cube {summary['final_distance_m'] or float('nan'):.3f} m "
              f"from the pad centre)")
    print(f"\n{'stage (measured here, wall clock)':44} {'p50 ms':>8} {'p99 ms':>8} {'n':>6}")
    for row in summary["latency"]:
        n = "" if row["n"] is None else str(row["n"])
        fmt = lambda v: "   n/a" if v is None or math.isnan(v) else f"{v:8.2f}"  # noqa: E731
        print(f"{row['stage']:44} {fmt(row['p50_ms'])} {fmt(row['p99_ms'])} {n:>6}")
    print(f"robot held at the measured state on stop: {'yes' if summary['held_at_stop'] else 'NO'}")


def _write_outputs(out, monitor, summary: dict) -> list:
    from hv2r_ros.core.plots import line_plot
    from hv2r_ros.sim.demo_frames import compose_frame
    from hv2r_ros.sim.video_io import Mp4Writer

    files = []
    if monitor.frames:
        first = compose_frame(monitor.frames[0][1], monitor.goal_image, "")
        with Mp4Writer(out / "demo_overhead.mp4", (first.shape[1], first.shape[0]), 10.0) as w:
            progress = monitor.progress
            k = 0
            for t, frame in monitor.frames:
                while k + 1 < len(progress) and progress[k + 1][0] <= t:
                    k += 1
                p = f"  progress {progress[k][1]:.2f}" if progress and progress[k][0] <= t else ""
                w.write(compose_frame(frame, monitor.goal_image, f"t {t:4.1f} s{p}"))
        files.append(out / "demo_overhead.mp4")
    series, xs = {}, []
    if monitor.truth_log:
        xs = [t for t, *_ in monitor.truth_log]
        series["cube-to-pad distance [m]"] = [d for _, d, _, _ in monitor.truth_log]
        series["task progress"] = _resample(monitor.progress, xs)
    marks = [(summary["time_s"], "done")] if summary["success"] else []
    if xs:
        files.append(line_plot(out / "progress.png", xs, series, x_label="time [s]",
                               y_range=(0.0, max(1.0, max(series["cube-to-pad distance [m]"]))),
                               marks=marks))
    return files


def _resample(samples, xs) -> list[float]:
    import numpy as np

    if not samples:
        return [float("nan")] * len(xs)
    t, v = np.asarray(samples, dtype=float).T
    out = np.interp(xs, t, v)
    out[np.asarray(xs) < t[0]] = np.nan
    return out.tolist()
