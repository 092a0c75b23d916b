"""The report of ``hv2r bench graph``: the printed figures, and the ``--sweep`` table.

``print_report`` prints one run's figures (``bench_graph.measure``) with each target judged;
``run_sweep`` runs every ``SWEEP`` row in a fresh process (``hv2r bench graph`` with one option
changed) and prints the rows as the Markdown table of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

from hv2r_ros.cli.bench_graph import _finite, _json_default
from hv2r_ros.cli.bench_graph_figures import CAMERA_TO_COMMAND_SLACK_MS

_RUN = [sys.executable, "-c", "import sys; from hv2r_ros.cli import main; sys.exit(main())"]


def _held(flag: bool) -> str:
    return "held" if flag else "NOT held"


def print_report(r: dict) -> None:
    """The human-readable report of ``measure``'s figures."""
    c = r["config"]
    segment = c["shared_memory_segment_bytes"]
    print(f"hv2r bench graph: {c['robot']}, models {c['models']} (encoder {c['encoder']} "
          f"{c['encoder_input_px'][1]}x{c['encoder_input_px'][0]}, {c['action_space']} policy "
          f"H={c['chunk_length']}, {c['cameras']} cameras), synthetic cameras "
          f"{c['image_size_px'][0]}x{c['image_size_px'][1]} at 30 Hz"
          f"{' in separate processes' if c['camera_processes'] else ''}"
          f"{'; every node but the command output in its own process' if c['processes'] else ''}"
          f", {c['namespaces']} "
          f"robot(s), executors {c['executors']}, inference on {c['inference_trigger']}, Fast "
          f"DDS {c['fastdds']}"
          + ("" if segment is None else f" ({segment / 2**20:.1f} MiB segment)")
          + f"; synthetic robot {'in' if c['robot_in_process'] else 'in its own'} process"
          + f"; {c['duration_s']:g} s measured after {c['warmup_s']:g} s warm-up; "
          f"{c['machine']}, {c['cpus']} CPUs"
          + (f", providers {', '.join(c['providers'])}" if c["providers"] else ""))
    print(f"{'stage':21s} {'calls':>7s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name, s in r["stages"].items():
        print(f"{name:21s} {s['count']:7d} {_num(s['p50_ms'], '8.3f')} "
              f"{_num(s['p99_ms'], '8.3f')}")
    o, l, k = r["overhead"], r["camera_to_command"], r["control"]
    if o["held"] is None:
        latencies = ", ".join(f"{key} {value}" for key, value in r["policy_diagnostics"].items()
                              if "latency" in key)
        print(f"stack overhead: control tick p50 {o['control_tick_p50_ms']:.2f} ms; the chunk "
              f"path runs in other processes (policy diagnostics: {latencies})")
    else:
        print(f"stack overhead (all but the two model calls), p50: chunk path "
              f"{o['chunk_path_p50_ms']:.2f} ms + control tick {o['control_tick_p50_ms']:.2f} ms"
              f" = {o['step_with_chunk_p50_ms']:.2f} ms on a step that carries a chunk "
              f"(amortised {o['amortised_p50_ms']:.2f} ms/step); target <= {o['target_ms']:g} "
              f"ms: {_held(o['held'])}")
    f = l["first_command"]
    print(f"camera-to-command (capture -> first command of its chunk): p50 {f['p50_ms']:.1f} "
          f"ms, p99 {f['p99_ms']:.1f} ms; target p50 <= models {l['models_p50_ms']:.1f} + "
          f"{CAMERA_TO_COMMAND_SLACK_MS:g} = {l['target_ms']:.1f} ms: {_held(l['held'])} "
          f"(age of the chunk followed, p50 {l['command_age']['p50_ms']:.1f} ms)")
    print(f"command output: {k['rate_hz']:.1f} Hz of {k['configured_hz']:g} Hz, period error "
          f"p50 {k['error_p50_ms']:.2f} / p99 {k['error_p99_ms']:.2f} / max "
          f"{k['error_max_ms']:.2f} ms; target p99 <= {k['target_error_p99_ms']:g} ms: "
          f"{_held(k['held'])}")
    i, p = r["inference"], r["process"]
    print(f"inference: {i['rate_hz']:.1f} chunks/s per robot reach the command output; camera "
          f"frames at the policy {i['frames_per_camera_hz']:.1f} Hz per camera")
    each = ", ".join(f"{name} {v['cpu_percent']:.0f} % / {v['peak_rss_bytes'] / 2**20:.0f} MiB"
                     for name, v in p["processes"].items())
    print(f"stack processes: CPU {p['cpu_percent']:.0f} % of one core "
          f"({p['cpu_percent_of_machine']:.0f} % of the machine), peak RSS "
          f"{p['peak_rss_bytes'] / 2**20:.0f} MiB; target <= "
          f"{p['target_rss_bytes'] / 2**20:.0f} MiB: {_held(p['held'])} ({each})")
    t, q = r["stages"]["image_transport"], r["stages"]["image_queue"]
    a = r["stages"]["capture_to_safe_chunk"]
    print(f"image transport (DDS write -> receipt) p50 {t['p50_ms']:.2f} / p99 "
          f"{t['p99_ms']:.2f} ms; receipt -> callback p50 {q['p50_ms']:.2f} / p99 "
          f"{q['p99_ms']:.2f} ms; capture -> safe chunk at the command output p50 "
          f"{a['p50_ms']:.1f} / p99 {a['p99_ms']:.1f} ms")
    m = r["machine"]
    print(f"machine: load average {m['load_average_1min']:.2f} on {m['cpus']} CPUs; other "
          f"processes used {m['others_cpu_percent']:.0f} % of one core during the run")
    b = r.get("baselines")
    if not b:
        return
    ip = b["image_path"]
    print(f"baseline image path (messages -> encoder input, {c['cameras']} cameras): ours p50 "
          f"{ip['ours']['p50_ms']:.2f} ms, naive {ip['naive']['p50_ms']:.2f} ms: "
          f"{ip['naive_over_ours_p50']:.2f}x")
    if "models" not in b:
        print(f"baseline eager: skipped ({b['eager']['skipped']})")
        return
    m, s = b["models"], b["sequential_loop"]
    print(f"baseline model calls (encoder x{c['cameras']} + policy): ONNX Runtime p50 "
          f"{m['runtime']['p50_ms']:.2f} ms, PyTorch eager {m['eager']['p50_ms']:.2f} ms "
          f"({m['eager']['threads']} thread(s), the faster setting): "
          f"{m['eager_over_runtime_p50']:.2f}x ({m['weights']}; max action difference "
          f"{m['max_action_difference']:.1e})")
    sc = s["control"]
    print(f"baseline sequential loop (naive images + eager models inline at "
          f"{s['inference_rate_hz']:g} Hz, control at {k['configured_hz']:g} Hz): "
          f"{sc['rate_hz']:.1f} Hz, period error p99 {sc['error_p99_ms']:.2f} ms "
          f"({s['period_error_p99_over_graph']:.1f}x the graph's), camera-to-command p50 "
          f"{s['camera_to_command_first']['p50_ms']:.1f} ms "
          f"({s['camera_to_command_p50_over_graph']:.2f}x)")


#: The cost-growth sweep: (row label, extra arguments); the first row also runs the baselines.
SWEEP = (
    ("default", []),
    ("executors shared", ["--executors", "shared"]),
    ("inference on timer", ["--inference-trigger", "timer"]),
    ("cameras in processes, shm", ["--camera-processes", "--fastdds", "shm"]),
    ("cameras in processes, default DDS", ["--camera-processes", "--fastdds", "default"]),
    ("every node in its own process, shm", ["--processes", "--fastdds", "shm"]),
    ("every node in its own process, default DDS", ["--processes", "--fastdds", "default"]),
    ("image 224x224", ["--image-size", "224x224"]),
    ("image 320x240", ["--image-size", "320x240"]),
    ("chunk 5", ["--chunk-length", "5"]),
    ("chunk 20", ["--chunk-length", "20"]),
    ("chunk 40", ["--chunk-length", "40"]),
    ("cameras 1", ["--cameras", "1"]),
    ("cameras 3", ["--cameras", "3"]),
    ("cameras 4", ["--cameras", "4"]),
    ("robots 2", ["--namespaces", "2"]),
    ("robots 3", ["--namespaces", "3"]),
    ("robots 4", ["--namespaces", "4"]),
)


def run_sweep(args: argparse.Namespace) -> int:
    """Every ``SWEEP`` row in a fresh process; the Markdown table and the rows' JSON."""
    base = ["bench", "graph", "--robot", args.robot, "--duration-s", f"{args.duration_s:g}",
            "--warmup-s", f"{args.warmup_s:g}"]
    if args.models:
        base += ["--models", args.models]
    rows, failed = [], 0
    with tempfile.TemporaryDirectory(prefix="hv2r-sweep-") as tmp:
        for i, (label, extra) in enumerate(SWEEP):
            path = Path(tmp) / f"row{i}.json"
            command = _RUN + base + extra + ["--json", str(path)] + (
                [] if i == 0 else ["--no-baselines"])
            print(f"[{i + 1}/{len(SWEEP)}] {label}: hv2r {' '.join(base + extra)}", flush=True)
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0 or not path.is_file():
                failed += 1
                print(f"  failed ({done.returncode}): {done.stderr.strip()[-500:]}", flush=True)
                continue
            if i == 0:
                print(done.stdout, flush=True)
            rows.append((label, json.loads(path.read_text())))
    print(sweep_table(rows))
    out = Path(args.json or "out/bench_graph_sweep.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_finite({label: row for label, row in rows}), indent=2,
                              default=_json_default))
    print(f"wrote {out}")
    return 1 if failed else 0


def _num(value, spec: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) \
        else format(value, spec)


def sweep_table(rows) -> str:
    """The sweep's rows as a Markdown table."""
    head = ("| run | encoder p50 | policy p50 | overhead p50 (chunk + tick) | camera-to-command "
            "p50 / p99 | command rate, period error p99 | inference | CPU | peak RSS | "
            "others' CPU |")
    lines = [head, "|" + " --- |" * 10]
    for label, r in rows:
        s, o, k = r["stages"], r["overhead"], r["control"]
        f, p = r["camera_to_command"]["first_command"], r["process"]
        lines.append(
            f"| {label} | {_num(s['encoder']['p50_ms'], '.1f')} ms | "
            f"{_num(s['policy']['p50_ms'], '.2f')} ms | "
            f"{_num(o['step_with_chunk_p50_ms'], '.2f')} ms "
            f"({_num(o['chunk_path_p50_ms'], '.2f')} + {_num(o['control_tick_p50_ms'], '.2f')})"
            f" | {_num(f['p50_ms'], '.1f')} / {_num(f['p99_ms'], '.1f')} ms | "
            f"{_num(k['rate_hz'], '.1f')} Hz, {_num(k['error_p99_ms'], '.2f')} ms | "
            f"{_num(r['inference']['rate_hz'], '.1f')} Hz | "
            f"{_num(p['cpu_percent'], '.0f')} % | {p['peak_rss_bytes'] / 2**20:.0f} MiB | "
            f"{_num(r['machine']['others_cpu_percent'], '.0f')} % |")
    return "\n".join(lines)
