"""Per-step latency of the model pair: ONNX runtime vs PyTorch eager, same weights and threads.

One control step = the encoder on one batch of 2 camera images (uint8, 224 x 224 RGB by
default) + one policy inference. ``hv2r bench-models`` builds the reference encoder and a
policy (random weights: latency does not depend on their values), exports them with
``hv2r export``'s exporter into a temporary folder, then times each backend in a sequential
loop, in 5 blocks per backend taken in turn so that drifts of machine load hit all alike:

- runtime: ``hv2r_ros.core.models.runtime.ModelPair`` (CPU provider): ``Encoder.embed`` on the
  uint8 images (preprocessing included) + ``Policy.infer`` (normalisation included);
- eager: the same PyTorch modules under ``torch.no_grad()`` in a sequential loop, with the
  equivalent torch preprocessing (/255, mean/std, NHWC -> contiguous NCHW, as torchvision /
  R3M pipelines feed it) and proprio normalisation;
- eager-cl: the same, the image tensor left channels-last (the NHWC permute's strides), which
  PyTorch's oneDNN convolutions run faster: the strongest simple eager baseline;
- eager-per-cam: the eager step with the encoder called once per camera (batch 1 each), the
  loop of stacks that run one backbone call per camera (ACT-style policies do).

All use ``--threads`` intra-op threads (default: all cores). Prints p50/p99 [ms] and the
eager/runtime ratios of the p50s. Figures depend on the machine: measured where it runs.
Needs torch (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="reference", help="encoder architecture")
    parser.add_argument("--policy-arch", default="mlp", help="policy architecture")
    parser.add_argument("--robot", default="panda", help="robot profile of the policy")
    parser.add_argument("--input-size", type=int, default=224, help="image side [px]")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per backend")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed steps before each block of timed steps")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="intra-op threads for both backends")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from hv2r_ros.core.models.runtime import CPU, ModelPair
    from hv2r_ros.core.robot_profile import load_robot_profile
    from hv2r_ros.learning.architectures import build_encoder, build_policy
    from hv2r_ros.learning.export import export_encoder, export_policy, policy_spec_for_robot

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder, arch = build_encoder(args.arch, args.input_size)
    enc_spec = arch.spec(encoder, args.input_size, "random (benchmark)")
    pol_spec = policy_spec_for_robot(load_robot_profile(args.robot),
                                     embedding_size=enc_spec.embedding_size, chunk_length=16)
    policy = build_policy(args.policy_arch, len(pol_spec.camera_order), pol_spec.embedding_size,
                          pol_spec.proprio_size, pol_spec.chunk_length, pol_spec.action_size)
    cams = len(pol_spec.camera_order)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (cams, args.input_size, args.input_size, 3), np.uint8)
    goal = rng.standard_normal(pol_spec.embedding_size).astype(np.float32)
    proprio = rng.standard_normal(pol_spec.proprio_size)
    with tempfile.TemporaryDirectory() as folder:
        export_encoder(encoder, enc_spec, os.path.join(folder, "encoder.onnx"))
        export_policy(policy, pol_spec, os.path.join(folder, "policy.onnx"))
        pair = ModelPair.load(folder, [CPU], intra_op_threads=args.threads)

    def runtime_step() -> np.ndarray:
        return pair.policy.infer(pair.encoder.embed(images), goal, proprio)

    gain = torch.tensor([(enc_spec.pixel_range[1] - enc_spec.pixel_range[0]) / 255.0 / s
                         for s in enc_spec.std]).view(1, 3, 1, 1)
    offset = torch.tensor([(enc_spec.pixel_range[0] - m) / s
                           for m, s in zip(enc_spec.mean, enc_spec.std)]).view(1, 3, 1, 1)
    p_mean = torch.tensor(pol_spec.proprio_mean)
    p_std = torch.tensor(pol_spec.proprio_std)
    a_mean = torch.tensor(pol_spec.action_mean, dtype=torch.float64)
    a_std = torch.tensor(pol_spec.action_std, dtype=torch.float64)

    def eager_step(channels_last: bool, per_camera: bool = False) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(images).permute(0, 3, 1, 2).float() * gain + offset
            if per_camera:
                emb = torch.cat([encoder(x[i:i + 1].contiguous()) for i in range(cams)])
            else:
                emb = encoder(x if channels_last else x.contiguous())
            prop = ((torch.from_numpy(proprio).float() - p_mean) / p_std)[None]
            actions = policy(emb[None], torch.from_numpy(goal)[None], prop)[0]
            return (actions.double() * a_std + a_mean).numpy()

    steps = {"runtime": runtime_step, "eager": lambda: eager_step(False),
             "eager-cl": lambda: eager_step(True),
             "eager-per-cam": lambda: eager_step(False, per_camera=True)}
    gap = max(float(np.max(np.abs(runtime_step() - step()))) for step in steps.values())
    results = _time(steps, args.steps, args.warmup)
    ratios = {name: results[name]["p50_ms"] / results["runtime"]["p50_ms"]
              for name in ("eager", "eager-cl", "eager-per-cam")}
    print(f"step = encoder x{cams} ({args.arch}, {args.input_size}x{args.input_size}, one "
          f"batch) + policy ({args.policy_arch}, H={pol_spec.chunk_length}, "
          f"A={pol_spec.action_size}); {args.threads} threads; {args.steps} steps; "
          f"runtime provider {pair.encoder.provider}")
    for name, figures in results.items():
        print(f"  {name:8s} p50 {figures['p50_ms']:7.2f} ms   p99 {figures['p99_ms']:7.2f} ms")
    print(f"  runtime is {ratios['eager']:.2f}x faster than eager (p50), "
          f"{ratios['eager-cl']:.2f}x than eager-cl, {ratios['eager-per-cam']:.2f}x than "
          f"eager-per-cam; max |runtime - eager| action difference {gap:.2e}")
    if args.json:
        summary = {**results, "eager_over_runtime_p50": ratios["eager"],
                   "eager_cl_over_runtime_p50": ratios["eager-cl"],
                   "eager_per_camera_over_runtime_p50": ratios["eager-per-cam"],
                   "threads": args.threads,
                   "arch": args.arch, "policy_arch": args.policy_arch}
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
        print(f"wrote {args.json}")
    return 0


def _time(steps: dict, count: int, warmup: int, rounds: int = 5
          ) -> dict[str, dict[str, float]]:
    """Time each step ``count`` times, in ``rounds`` blocks per backend taken in turn.

    Blocks rather than alternating single steps: each library's idle worker threads spin for
    a while after a call and would steal the cores from the other one's next step; rounds
    spread slow drifts of machine load over all backends. Each block starts with
    ``warmup`` untimed steps.
    """
    import numpy as np

    durations: dict[str, list[float]] = {name: [] for name in steps}
    clock = time.perf_counter
    per_round = [count // rounds + (1 if r < count % rounds else 0) for r in range(rounds)]
    for block in per_round:
        for name, step in steps.items():
            for _ in range(warmup):
                step()
            for _ in range(block):
                start = clock()
                step()
                durations[name].append(clock() - start)
    figures = {}
    for name, values in durations.items():
        p50, p99 = np.percentile(values, [50, 99]) * 1e3
        figures[name] = {"p50_ms": float(p50), "p99_ms": float(p99)}
    return figures
