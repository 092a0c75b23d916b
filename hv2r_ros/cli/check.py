"""Validate an ONNX model pair against a robot profile before anything moves.

``hv2r check --robot panda --models DIR`` loads ``DIR/encoder.onnx`` and ``DIR/policy.onnx``
and prints one PASS/FAIL line per check: files and metadata, tensor names/shapes/dtypes,
embedding sizes, cameras, joint order, action and proprio sizes, control rate, finite actions
on a probe observation, and the per-step latency (p50/p99) on the execution provider in use.
Exit status 0 only when every check passes; 1 when one fails; 2 when the robot profile itself
is invalid. docs/model_contract.md describes the contract.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robot", required=True,
                        help="profile name (see `hv2r robots`) or path to a profile YAML")
    parser.add_argument("--models", required=True, metavar="DIR",
                        help="folder with encoder.onnx and policy.onnx (+ .onnx.data files)")
    parser.add_argument("--providers", default=None,
                        help="comma-separated execution providers to try in order, e.g. "
                             "'cuda,cpu' (default: tensorrt,cuda,cpu, those available)")
    parser.add_argument("--steps", type=int, default=50,
                        help="timed steps for the latency figures (default 50)")
    parser.add_argument("--robot-description", metavar="URDF",
                        help="URDF file for a profile whose urdf.source is robot_description")


def run(args: argparse.Namespace) -> int:
    from hv2r_ros.core.models.check import check_model_pair
    from hv2r_ros.core.robot_profile import load_robot_profile

    description = None
    if args.robot_description:
        with open(args.robot_description, encoding="utf-8") as handle:
            description = handle.read()
    profile = load_robot_profile(args.robot, robot_description=description)
    providers = args.providers.split(",") if args.providers else None
    report = check_model_pair(profile, args.models, providers, steps=args.steps)
    print(report.format())
    return 0 if report.passed else 1
