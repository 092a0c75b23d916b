"""Throughput of the IK and the safety filters per robot, the safety fuzz, and the whole graph.

``hv2r bench`` (or ``hv2r bench steps``) times, for each robot profile, one step of the joint
guard, the Cartesian filter, the IK and the whole chain (Cartesian filter + IK + joint guard)
while tracking a moving target, and prints p50/p99 latencies and steps per second.
``hv2r bench fuzz --steps N`` drives the joint guard and the Cartesian filter of every profile
with N adversarial steps each and prints the limit violations counted (zero is the only pass).
``hv2r bench graph --models DIR`` runs the whole stack on synthetic cameras and prints per-stage
latency, camera-to-command latency, control rate and jitter, CPU and memory against the latency
budget, with baselines (``hv2r_ros.cli.bench_graph``; docs/performance.md).
Figures depend on the machine: they are measured where the command runs.
"""

from __future__ import annotations

import argparse
import json
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hv2r_ros.cli.bench_graph import add_graph_arguments

    parser.add_argument("what", nargs="?", default="steps", choices=("steps", "fuzz", "graph"),
                        help="steps: per-step latency; fuzz: adversarial violation counts; "
                             "graph: the running stack against the latency budget")
    parser.add_argument("--robots", default="all",
                        help="comma-separated profile names, or 'all' (default)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per robot (default: 3000 for latency, 100000 for fuzz)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fuzz streams")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON "
                        "(graph: always, default out/bench_graph.json)")
    add_graph_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from hv2r_ros.core.robot_profile import list_robot_profiles

    if args.what == "graph":
        from hv2r_ros.cli.bench_graph import run_graph

        return run_graph(args)
    robots = list_robot_profiles() if args.robots == "all" else args.robots.split(",")
    if args.what == "fuzz":
        results, ok = _fuzz(robots, args.steps or 100_000, args.seed)
    else:
        results, ok = _latency(robots, args.steps or 3000), True
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
        print(f"wrote {args.json}")
    return 0 if ok else 1


def _timed(stages: dict, inputs: dict, rounds: int = 5) -> dict[str, dict[str, float]]:
    """Time each stage once per input, in ``rounds`` blocks per stage taken in turn.

    Interleaving the stages' blocks spreads slow drifts of machine load (a shared VM) over all
    of them instead of charging them to whichever stage ran at the time.
    """
    import numpy as np

    clock = time.perf_counter
    durations = {name: [] for name in stages}
    for r in range(rounds):
        for name, step in stages.items():
            items = inputs[name]
            block = items[r * len(items) // rounds:(r + 1) * len(items) // rounds]
            for item in block:
                start = clock()
                step(item)
                durations[name].append(clock() - start)
    figures = {}
    for name, values in durations.items():
        p50, p99 = np.percentile(values, [50, 99]) * 1e6
        figures[name] = {"p50_us": float(p50), "p99_us": float(p99),
                         "steps_per_s": float(1e6 / p50)}
    return figures


def _latency(robots: list[str], steps: int) -> dict:
    import numpy as np

    from hv2r_ros.core.command_chain import CartesianCommandChain
    from hv2r_ros.core.robot_profile import load_robot_profile
    from hv2r_ros.core.safety.cartesian import CartesianFilter
    from hv2r_ros.core.safety.joint_guard import JointGuard

    results = {}
    print(f"per-step latency, {steps} steps per stage, this machine ({_cpu()})")
    header = f"{'robot':7s} {'stage':16s} {'p50 us':>8s} {'p99 us':>8s} {'steps/s':>9s}"
    print(header)
    print("-" * len(header))
    for name in robots:
        profile = load_robot_profile(name)
        chain = CartesianCommandChain(profile)
        home = np.array(profile.home)
        # A target circling 5 cm around the home pose at 0.5 Hz: the IK works every step.
        start = chain.poses(home)
        phase = np.linspace(0.0, 2 * np.pi * 0.5 * steps * profile.control_period_s, steps)
        offsets = 0.05 * np.stack([np.cos(phase) - 1.0, np.sin(phase), 0 * phase], axis=1)
        targets = [start + np.hstack([o, np.zeros(4)]) for o in offsets]

        guard = JointGuard(profile.limits, profile.control_period_s)
        guard.reset(home)
        sweep = [home + 0.2 * np.sin(p) for p in phase]
        cart = CartesianFilter(profile.workspace, profile.end_effector_frames,
                               profile.control_period_s)
        cart.reset(start)

        q = {"ik": home.copy(), "chain": home.copy()}

        def ik_step(target):
            q["ik"], _ = chain.ik.step(q["ik"], target)

        def chain_step(target):
            q_cmd, _ = chain.step(target, q["chain"])
            q["chain"] = q_cmd

        chain.reset(home)
        rows = _timed(
            {"joint guard": lambda t: guard.step(t, t),
             "cartesian filter": lambda t: cart.step(t, start),
             "ik": ik_step,
             "chain": chain_step},
            {"joint guard": sweep, "cartesian filter": targets, "ik": targets, "chain": targets},
        )
        for stage, row in rows.items():
            print(f"{name:7s} {stage:16s} {row['p50_us']:8.1f} {row['p99_us']:8.1f} "
                  f"{row['steps_per_s']:9.0f}")
        results[name] = rows
    return results


def _fuzz(robots: list[str], steps: int, seed: int) -> tuple[dict, bool]:
    from hv2r_ros.core.robot_profile import load_robot_profile
    from hv2r_ros.core.safety.fuzz import run_adversarial, run_adversarial_cartesian

    results, ok = {}, True
    print(f"adversarial safety fuzz: {steps} steps per robot per filter, seed {seed}")
    header = (f"{'robot':7s} {'filter':9s} {'steps':>9s} {'holds':>8s} {'violations':>10s} "
              f"{'s':>6s}")
    print(header)
    print("-" * len(header))
    for name in robots:
        profile = load_robot_profile(name)
        start = time.perf_counter()
        joint = run_adversarial(profile.limits, profile.control_period_s, steps, seed)
        joint_s = time.perf_counter() - start
        start = time.perf_counter()
        cart = run_adversarial_cartesian(profile.workspace, len(profile.end_effector_frames),
                                         profile.control_period_s, steps, seed)
        cart_s = time.perf_counter() - start
        for label, report, seconds in (("joint", joint, joint_s), ("cartesian", cart, cart_s)):
            print(f"{name:7s} {label:9s} {report.steps:9d} {report.holds:8d} "
                  f"{report.violations:10d} {seconds:6.1f}")
            ok = ok and report.violations == 0
        results[name] = {"joint": _report_dict(joint), "cartesian": _report_dict(cart)}
    print("PASS: zero violations" if ok else "FAIL: limit violations found")
    return results, ok


def _report_dict(report) -> dict:
    import dataclasses

    values = dataclasses.asdict(report)
    values["statuses"] = {str(key): count for key, count in values.get("statuses", {}).items()}
    values["violations"] = report.violations
    return values


def _cpu() -> str:
    import os
    import platform

    return f"{platform.machine()}, {os.cpu_count()} CPUs"
