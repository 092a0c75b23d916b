"""Train the reference models on a recorded dataset (needs the torch extra; CPU is enough).

  hv2r train encoder --data DIR --out MODELS   time-contrastive pretraining on the human demo
                                               videos (and robot camera streams), exported to
                                               MODELS/encoder.onnx with its parity check
  hv2r train policy --data DIR --out MODELS    behaviour cloning on the robot episodes, embedded
                                               by MODELS/encoder.onnx, exported to
                                               MODELS/policy.onnx (--goal-blind: the baseline)

Both are seeded, print progress, save a checkpoint (``*.pt``) and a loss history (JSON + PNG)
beside the model. ``--resume`` continues the encoder from its checkpoint.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="train_command", metavar="MODEL")
    sub.required = True
    enc = sub.add_parser("encoder", help="time-contrastive encoder pretraining")
    pol = sub.add_parser("policy", help="behaviour cloning of the goal-conditioned policy")
    for p in (enc, pol):
        p.add_argument("--data", action="append", required=True,
                       help="dataset folder from `hv2r sim record` (repeatable)")
        p.add_argument("--out", required=True, help="models folder to write")
        p.add_argument("--robot", default="panda", help="robot profile (default panda)")
        p.add_argument("--seed", type=int, default=0)
    enc.add_argument("--arch", default="reference-small", help="encoder architecture")
    enc.add_argument("--input-size", type=int, help="square input side [px] (arch default)")
    enc.add_argument("--embedding-size", type=int, help="D (arch default)")
    enc.add_argument("--steps", type=int, default=1500, help="optimiser steps (default 1500)")
    enc.add_argument("--batch-videos", type=int, default=16, help="videos per step")
    enc.add_argument("--human-only", action="store_true",
                     help="pretrain on the human videos alone (no robot camera streams)")
    enc.add_argument("--random-init", action="store_true",
                     help="skip training: export the random initialisation (a control)")
    enc.add_argument("--resume", action="store_true", help="continue from OUT/encoder.pt")
    pol.add_argument("--encoder", help="encoder.onnx to embed with (default OUT/encoder.onnx)")
    pol.add_argument("--policy-arch", default="mlp", help="policy architecture (default mlp)")
    pol.add_argument("--chunk-length", type=int, help="H (default: the dataset's)")
    pol.add_argument("--epochs", type=int, default=60)
    pol.add_argument("--goal-source", default="both", choices=("robot", "human", "both"),
                     help="goal frames: the robot episode's last frame, the human video's, "
                     "or both (default)")
    pol.add_argument("--goal-blind", action="store_true",
                     help="the baseline: same architecture, goal input withheld")


def _plot(path, history, key_x, keys) -> None:
    """A loss plot (PNG) of ``history`` records: ``keys`` over ``key_x``."""
    from hv2r_ros.core.plots import line_plot

    line_plot(path, [h[key_x] for h in history], {k: [h[k] for h in history] for k in keys},
              x_label=key_x)


def _encoder(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from hv2r_ros.core.robot_profile import load_robot_profile
    from hv2r_ros.learning.architectures import build_encoder
    from hv2r_ros.learning.export import export_encoder
    from hv2r_ros.learning.pretrain import PretrainConfig, pretrain_encoder
    from hv2r_ros.learning.training_data import pretraining_videos

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    model, arch = build_encoder(args.arch, args.input_size, args.embedding_size)
    size = args.input_size or arch.input_size
    checkpoint = out / "encoder.pt"
    if args.resume and checkpoint.is_file():
        model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
        print(f"resumed from {checkpoint}")
    if args.random_init:
        pretrained_on = "nothing (random initialisation, a control)"
    else:
        pretrained_on = ("human demo videos" if args.human_only
                         else "human demo videos + robot camera streams") + \
            f" ({', '.join(args.data)}), time-contrastive"
    spec = arch.spec(model, size, pretrained_on)
    if not args.random_init:
        profile = load_robot_profile(args.robot)
        videos = pretraining_videos(args.data, spec, profile,
                                    robot_cameras=() if args.human_only else ("overhead", "wrist"))
        print(f"{len(videos)} videos, {sum(len(v) for v in videos)} frames at {size} px")
        config = PretrainConfig(steps=args.steps, videos_per_batch=args.batch_videos,
                                seed=args.seed)
        history = pretrain_encoder(model, spec, videos, config)
        torch.save(model.state_dict(), checkpoint)
        (out / "encoder_history.json").write_text(json.dumps(history, indent=1))
        _plot(out / "encoder_loss.png", history, "step", ["loss", "accuracy"])
    result = export_encoder(model, spec, out / "encoder.onnx")
    print(f"wrote {out / 'encoder.onnx'} (parity max abs error {result.max_abs_error:.2e})")
    return 0


def _policy(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from hv2r_ros.core.models.runtime import Encoder
    from hv2r_ros.core.robot_profile import load_robot_profile
    from hv2r_ros.learning.architectures import build_policy
    from hv2r_ros.learning.behaviour_cloning import BCConfig, GoalBlind, train_policy
    from hv2r_ros.learning.dataset import read_manifest
    from hv2r_ros.learning.export import export_policy, policy_spec_for_robot
    from hv2r_ros.learning.training_data import bc_samples

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    profile = load_robot_profile(args.robot)
    encoder = Encoder(args.encoder or out / "encoder.onnx", batch_size=32)
    manifest = read_manifest(args.data[0])
    rate_hz = float(manifest["config"]["record_rate_hz"])
    data = bc_samples(args.data, encoder, profile, goal_source=args.goal_source)
    horizon = args.chunk_length or data.actions.shape[1]
    data.actions = data.actions[:, :horizon]
    print(f"{len(data.actions)} samples from {len(set(data.episode.tolist()))} episodes, "
          f"chunk {horizon} x {data.actions.shape[2]} at {rate_hz:g} Hz")
    torch.manual_seed(args.seed)
    cams, dim, proprio = data.camera_embeddings.shape[1], encoder.spec.embedding_size, \
        data.proprio.shape[1]
    model = build_policy(args.policy_arch, cams, dim, proprio, horizon, data.actions.shape[2])
    if args.goal_blind:
        model = GoalBlind(model)
    stats, history = train_policy(model, data, BCConfig(epochs=args.epochs, seed=args.seed))
    name = "policy"
    torch.save(model.state_dict(), out / f"{name}.pt")
    (out / f"{name}_history.json").write_text(json.dumps(history, indent=1))
    _plot(out / f"{name}_loss.png", history, "epoch", ["train_loss", "validation_loss"])
    spec = policy_spec_for_robot(profile, embedding_size=dim, chunk_length=horizon,
                                 control_rate_hz=rate_hz, stats=stats)
    result = export_policy(model, spec, out / f"{name}.onnx")
    print(f"wrote {out / (name + '.onnx')} (parity max abs error {result.max_abs_error:.2e})")
    return 0


def run(args: argparse.Namespace) -> int:
    return _encoder(args) if args.train_command == "encoder" else _policy(args)
