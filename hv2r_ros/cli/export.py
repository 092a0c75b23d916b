"""Export an encoder and/or a policy from PyTorch to a self-describing ONNX model pair.

``hv2r export --arch resnet18-r3m --weights model.pt --out models/r3m18`` writes
``models/r3m18/encoder.onnx`` (+ ``.onnx.data``); ``--policy-arch mlp --robot panda`` adds
``policy.onnx`` whose metadata (joint order, end-effector frames, cameras, rate) comes from the
robot profile. Weights are state dicts or checkpoints (R3M, torchvision, DINO prefixes are
stripped; see docs/export.md). Without weights, randomly initialised weights are exported only
with ``--random-init``, and the metadata says so. Every export ends with a parity check of
onnxruntime against PyTorch; a model that fails it is not kept. Needs torch (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ENCODER_FILE, POLICY_FILE = "encoder.onnx", "policy.onnx"
RANDOM_INIT = "random initialisation (no weights; not usable on a robot)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="output directory of the model pair (required)")
    enc = parser.add_argument_group("encoder")
    enc.add_argument("--arch", help="encoder architecture (resnet18-r3m, reference, ...; "
                     "`--list` shows all)")
    enc.add_argument("--weights", help="encoder state dict / checkpoint (.pt)")
    enc.add_argument("--input-size", type=int, help="square input side [px] (default: arch's)")
    enc.add_argument("--embedding-size", type=int,
                     help="D: adds a projection for ResNets; for --policy-arch alone, the D "
                     "of the encoder to pair with (default: read from OUT/encoder.onnx)")
    enc.add_argument("--pretrained-on", help="metadata text: data the weights were trained on")
    pol = parser.add_argument_group("policy")
    pol.add_argument("--policy-arch", help="policy architecture (mlp, transformer)")
    pol.add_argument("--policy-weights", help="policy state dict / checkpoint (.pt)")
    pol.add_argument("--robot", help="robot profile name or YAML (needed with --policy-arch)")
    pol.add_argument("--action-space", default="ee_delta",
                     choices=("ee_delta", "ee_absolute", "joint_position"))
    pol.add_argument("--gripper", action=argparse.BooleanOptionalAction, default=None,
                     help="action rows end with a gripper command (default: profile has one)")
    pol.add_argument("--cameras", help="comma-separated camera order (default: profile's)")
    pol.add_argument("--chunk-length", type=int, default=16, help="H, actions per inference")
    pol.add_argument("--control-rate-hz", type=float,
                     help="rate of the chunk's steps [Hz] (default: profile's control rate)")
    pol.add_argument("--stats", help="JSON with action_mean/std and proprio_mean/std "
                     "(required with --policy-weights; identity otherwise)")
    parser.add_argument("--random-init", action="store_true",
                        help="allow exporting without weights (random initialisation)")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--atol", type=float, default=1e-4, help="parity tolerance, absolute")
    parser.add_argument("--rtol", type=float, default=1e-4,
                        help="parity tolerance, relative to max |torch output|")
    parser.add_argument("--list", action="store_true", help="list the architectures and exit")


def run(args: argparse.Namespace) -> int:
    from hv2r_ros.core.errors import ConfigError
    from hv2r_ros.learning.architectures import ENCODERS, POLICIES

    if args.list:
        for title, registry in (("encoders", ENCODERS), ("policies", POLICIES)):
            print(f"{title}:")
            for name, arch in registry.items():
                print(f"  {name:16s} {arch.description}")
        return 0
    if not args.arch and not args.policy_arch:
        raise ConfigError("nothing to export: give --arch and/or --policy-arch",
                          field="--arch")
    if not args.out:
        raise ConfigError("give the output directory", field="--out")
    if args.arch:
        _require_weights(args.weights, args.random_init, "--weights")
    if args.policy_arch:  # every check before the first export: fail before writing anything
        _require_weights(args.policy_weights, args.random_init, "--policy-weights")
        if not args.robot:
            raise ConfigError("--policy-arch needs --robot (joint order, frames, rate)",
                              field="--robot")
        if args.policy_weights and not args.stats:
            raise ConfigError("a trained policy needs its normalisation statistics",
                              field="--stats")
    out = Path(args.out)
    embedding_size = args.embedding_size
    if args.arch:
        embedding_size = _export_encoder(args, out / ENCODER_FILE)
    if args.policy_arch:
        _export_policy(args, out / POLICY_FILE, embedding_size)
    return 0


def _require_weights(weights: str | None, random_init: bool, flag: str) -> None:
    from hv2r_ros.core.errors import ConfigError

    if weights is None and not random_init:
        raise ConfigError("no weights given: pass them, or --random-init to export random "
                          "weights on purpose", field=flag)


def _export_encoder(args: argparse.Namespace, path: Path) -> int:
    from hv2r_ros.learning.architectures import build_encoder
    from hv2r_ros.learning.architectures.weights import load_weights
    from hv2r_ros.learning.export import export_encoder

    model, arch = build_encoder(args.arch, args.input_size, args.embedding_size)
    pretrained_on = RANDOM_INIT
    if args.weights:
        report = load_weights(model, args.weights)
        print(f"{args.weights}: loaded {report.loaded} tensors (stripped "
              f"{', '.join(report.stripped_prefixes) or 'no prefix'}; ignored "
              f"{len(report.ignored)} head keys)")
        pretrained_on = args.pretrained_on or arch.pretrained_on or Path(args.weights).name
    spec = arch.spec(model, args.input_size or arch.input_size, pretrained_on)
    export_encoder(model, spec, path, opset=args.opset, atol=args.atol, rtol=args.rtol)
    return spec.embedding_size


def _export_policy(args: argparse.Namespace, path: Path, embedding_size: int | None) -> None:
    from hv2r_ros.core.errors import ConfigError
    from hv2r_ros.core.robot_profile import load_robot_profile
    from hv2r_ros.learning.architectures import build_policy
    from hv2r_ros.learning.architectures.weights import load_weights
    from hv2r_ros.learning.export import export_policy, policy_spec_for_robot

    if embedding_size is None:
        embedding_size = _paired_embedding_size(path.with_name(ENCODER_FILE))
    stats = None
    if args.stats:
        try:
            stats = json.loads(Path(args.stats).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read statistics ({exc})", file=args.stats) from exc
    spec = policy_spec_for_robot(
        load_robot_profile(args.robot), embedding_size=embedding_size,
        chunk_length=args.chunk_length, action_space=args.action_space, gripper=args.gripper,
        cameras=args.cameras.split(",") if args.cameras else None,
        control_rate_hz=args.control_rate_hz, stats=stats)
    model = build_policy(args.policy_arch, len(spec.camera_order), spec.embedding_size,
                         spec.proprio_size, spec.chunk_length, spec.action_size)
    if args.policy_weights:
        report = load_weights(model, args.policy_weights)
        print(f"{args.policy_weights}: loaded {report.loaded} tensors")
    export_policy(model, spec, path, opset=args.opset, atol=args.atol, rtol=args.rtol)


def _paired_embedding_size(encoder: Path) -> int:
    import onnx

    from hv2r_ros.core.errors import ConfigError
    from hv2r_ros.core.models.contract import encoder_spec_from_metadata

    if not encoder.is_file():
        raise ConfigError("no encoder to pair the policy with: export it in the same call "
                          "(--arch) or give --embedding-size", file=str(encoder))
    model = onnx.load(str(encoder), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    return encoder_spec_from_metadata(props, file=str(encoder)).embedding_size
