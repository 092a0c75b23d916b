"""The ``hv2r`` command: one entry point, one subcommand per task.

Subcommand modules hold only their argument definitions at module level and import their heavy
dependencies inside ``run``, so ``hv2r --help`` stays fast and a missing optional dependency of one
subcommand never breaks another.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hv2r_ros.core.errors import Hv2rError

# name -> (module, one-line help). Each module defines add_arguments(parser) and run(args) -> int.
SUBCOMMANDS = {
    "robots": ("hv2r_ros.cli.robots", "list the robot profiles, or validate and show one"),
    "bench": ("hv2r_ros.cli.bench", "IK and safety-filter throughput, and the safety fuzz"),
    "demo": ("hv2r_ros.cli.demo", "closed-loop demo: a human demo video prompts the simulated "
             "robot through the whole stack"),
    "fault-demo": ("hv2r_ros.cli.fault_demo", "safety and IK stages in closed loop with "
                   "injected faults (kinematic robot)"),
    "export": ("hv2r_ros.cli.export", "export an encoder / policy to ONNX with a parity check"),
    "bench-models": ("hv2r_ros.cli.bench_models", "ONNX runtime vs PyTorch eager latency"),
    "check": ("hv2r_ros.cli.check", "validate an ONNX model pair against a robot profile"),
    "prompt": ("hv2r_ros.cli.prompt", "demo video -> task spec: keyframes, goal, calibration"),
    "prompt-eval": ("hv2r_ros.cli.prompt_eval", "score the prompt stage on rendered demos"),
    "sim": ("hv2r_ros.cli.sim", "simulated tabletop: record datasets, human demo videos, bench"),
    "train": ("hv2r_ros.cli.train", "train the reference encoder and policy (torch extra)"),
    "eval": ("hv2r_ros.cli.eval", "closed-loop success rates on held-out human-video prompts"),
    "run": ("hv2r_ros.cli.run", "run the whole stack in one process (no ros2 launch needed)"),
    "soak": ("hv2r_ros.cli.soak", "sim episodes with random faults, the nodes as processes"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hv2r",
        description="hv2r_ros: human demo video to robot, with a safety filter and IK.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hv2r``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except Hv2rError as exc:
        print(f"hv2r {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
