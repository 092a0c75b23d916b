"""The figures of one graph bench run and the targets they are judged against.

``figures`` turns the per-window stage samples, the command and chunk stamps and the process
meters of ``hv2r bench graph`` into its result dictionary (per-stage p50/p99, the stack's
overhead per control step, camera-to-command, control rate and period error, CPU and RSS, each
with its target where the project set one).
"""

from __future__ import annotations

import math
import os
import platform

# Targets on the 2-core CPU (README, docs/performance.md).
OVERHEAD_TARGET_MS = 3.0
CAMERA_TO_COMMAND_SLACK_MS = 5.0
PERIOD_ERROR_TARGET_MS = 2.0
PEAK_RSS_TARGET_BYTES = 1.5 * 2**30


def _merge(windows, name):
    from hv2r_ros.core.timing import Samples

    merged = Samples(name)
    for window in windows:
        for value in window[name].values:
            merged.add(value)
    return merged


def figures(args, models, size, windows, commands, chunks, period_s, policy, first, last,
            segment, held, policy_diagnostics) -> dict:
    """The JSON figures of one run, with each target judged (None: not measurable in this
    arrangement)."""
    from hv2r_ros.cli.bench_graph_probes import INFERENCE_STAGES, TICK_STAGES, TRANSPORT
    from hv2r_ros.core.models.onnx_file import read_model_file
    from hv2r_ros.core.timing import ProcessMeter, period_figures

    spec = read_model_file(models / "policy.onnx", "policy").spec
    enc = read_model_file(models / "encoder.onnx", "encoder").spec
    cams = len(spec.camera_order)
    duration = args.duration_s
    stages = {name: _merge(windows, name).summary_ms()
              for name in (*INFERENCE_STAGES, *TICK_STAGES, *TRANSPORT)}
    p50 = {name: stages[name]["p50_ms"] for name in stages}
    chunk_stages = ("preprocessing", "chunk_targets", "chunk_publish", "safety", "chunk_receipt")
    complete = policy is not None  # the policy and safety stages are probed in this process
    chunk_path = cams * p50["image_conversion"] + sum(_zero_nan(p50[n]) for n in chunk_stages)
    tick = p50["control_tick"]
    ratio = (sum(chunks) / duration) / (1.0 / period_s) / len(windows)
    overhead = {"chunk_path_p50_ms": chunk_path if complete else math.nan,
                "control_tick_p50_ms": tick,
                "step_with_chunk_p50_ms": chunk_path + tick if complete else math.nan,
                "amortised_p50_ms": tick + chunk_path * ratio if complete else math.nan,
                "target_ms": OVERHEAD_TARGET_MS,
                "held": chunk_path + tick <= OVERHEAD_TARGET_MS if complete else None}
    if complete:
        models_ms = p50["encoder"] + p50["policy"]
    else:  # the policy node's own figures: its encoder time includes the preprocessing
        models_ms = sum(float(policy_diagnostics.get(f"{k}_latency_p50_ms", "nan"))
                        for k in ("encoder", "policy"))
    first_latency = _merge(windows, "first").summary_ms()
    budget = models_ms + CAMERA_TO_COMMAND_SLACK_MS
    controls = [period_figures(times, period_s) for times in commands]
    worst = max(controls, key=lambda c: _zero_nan(c["error_p99_ms"]))
    processes = {name: {"cpu_percent": ProcessMeter.cpu_percent(first[name], last[name]),
                        "peak_rss_bytes": last[name].peak_rss_bytes} for name in first}
    # The synthetic robot stands in for the robot's driver: not the stack's cost.
    stack = [v for name, v in processes.items() if not name.endswith("synthetic_robot")]
    cpu = sum(v["cpu_percent"] for v in stack)
    rss = sum(v["peak_rss_bytes"] for v in stack)
    providers = [policy.runner.encoder.provider, policy.runner.policy.provider] \
        if complete else []
    return {
        "config": {
            "robot": args.robot, "models": str(models), "encoder": enc.architecture,
            "encoder_input_px": list(enc.input_size), "action_space": spec.action_space,
            "chunk_length": spec.chunk_length, "cameras": cams, "image_size_px": list(size),
            "namespaces": args.namespaces, "executors": args.executors,
            "inference_trigger": args.inference_trigger, "processes": bool(args.processes),
            "camera_processes": bool(args.camera_processes or args.processes),
            "fastdds": args.fastdds, "robot_in_process": bool(args.robot_in_process),
            "shared_memory_segment_bytes": segment, "duration_s": duration,
            "warmup_s": args.warmup_s, "cpus": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(), "providers": providers},
        "stages": stages,
        "policy_diagnostics": policy_diagnostics,
        "overhead": overhead,
        "camera_to_command": {"first_command": first_latency,
                              "command_age": _merge(windows, "age").summary_ms(),
                              "models_p50_ms": models_ms, "target_ms": budget,
                              "held": first_latency["p50_ms"] <= budget},
        "control": {**worst, "configured_hz": 1.0 / period_s,
                    "rates_hz": [c["rate_hz"] for c in controls],
                    "target_error_p99_ms": PERIOD_ERROR_TARGET_MS,
                    "held": worst["error_p99_ms"] <= PERIOD_ERROR_TARGET_MS},
        "inference": {"rate_hz": sum(chunks) / duration / len(windows),
                      "chunks": sum(chunks),
                      "frames_per_camera_hz": stages["image_conversion"]["count"] / duration
                      / cams / len(windows) if complete else math.nan},
        "process": {"cpu_percent": cpu, "cpu_percent_of_machine": cpu / (os.cpu_count() or 1),
                    "peak_rss_bytes": rss, "processes": processes,
                    "target_rss_bytes": PEAK_RSS_TARGET_BYTES,
                    "held": rss <= PEAK_RSS_TARGET_BYTES},
        "held_at_stop": held,
    }


def _zero_nan(value: float) -> float:
    return 0.0 if math.isnan(value) else value
