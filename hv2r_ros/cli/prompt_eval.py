"""Score the prompt stage on held-out rendered human demos, against negative controls.

``hv2r prompt-eval --models DIR --videos N --seed S`` renders N human demonstrations in the
simulated tabletop (layout and motion seed S + i, from the robot's overhead view), builds each
task spec with ``DIR/encoder.onnx`` and scores it against the renderer's ground truth: keyframe
F1 (subgoal times against the grasped / released / end keyframes, within ``--tolerance-s``) and
the Spearman correlation of goal progress with the true progress (cube displacement toward the
pad; and, reported, elapsed action time). The same is scored for the negative controls:
shuffled frames, another task's prompt and a random-weight encoder (``--control-models DIR``,
or one exported here with torch). Prints a table and writes JSON (``--out``). Seeds start at
900000: training datasets (``hv2r sim record``) use seeds base * 100000 + i, so seeds from
900000 stay clear of the base seeds 0 to 8.

Exit status 0 when every control scores clearly worse than the demo's own prompt on keyframe
F1 and on progress correlation (95 % interval of the paired difference above ``--margin``),
1 when one does not, 2 on unusable input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

FIRST_HELD_OUT_SEED = 900_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", required=True, metavar="DIR",
                        help="folder with encoder.onnx, the encoder under test")
    parser.add_argument("--videos", type=int, default=20, help="held-out demos (default 20)")
    parser.add_argument("--seed", type=int, default=FIRST_HELD_OUT_SEED,
                        help=f"first seed, >= {FIRST_HELD_OUT_SEED} (default)")
    parser.add_argument("--out", metavar="JSON", help="write the per-video scores and summary")
    parser.add_argument("--control-models", metavar="DIR",
                        help="folder with the random-weight encoder.onnx of the control "
                             "(default: export one of the same architecture with torch)")
    for flag, kind, default, text in (
            ("--robot", str, "panda", "profile whose workspace the camera frames"),
            ("--size", int, 224, "square video side [px]"),
            ("--fps", float, 10.0, "video frame rate [Hz]"),
            ("--rate-hz", float, 10.0, "prompt sampling rate [Hz]")):
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default {default})")
    parser.add_argument("--tolerance-s", type=float, default=0.5,
                        help="keyframe match tolerance [s] (default 0.5: the longest grasp or "
                             "place rest, 0.45 s, plus under one sample)")
    parser.add_argument("--margin", type=float, default=0.1,
                        help="difference a control must lose by, at 95 %% confidence "
                             "(default 0.1)")
    parser.add_argument("--work-dir", metavar="DIR",
                        help="keep the rendered videos here (default: a temporary folder)")
    parser.add_argument("--providers", default=None, help="execution providers, in order")


def _check(args: argparse.Namespace) -> None:
    from hv2r_ros.core.errors import ConfigError

    if args.videos < 2:
        raise ConfigError("needs at least 2 videos (the other-task control borrows another "
                          "video's prompt)", field="--videos", value=args.videos)
    if args.seed < FIRST_HELD_OUT_SEED:
        raise ConfigError(f"held-out seeds start at {FIRST_HELD_OUT_SEED}; lower ones are "
                          "training layouts", field="--seed", value=args.seed)
    for name in ("size", "fps", "rate_hz"):
        if not getattr(args, name) > 0:
            raise ConfigError("must be > 0", field="--" + name.replace("_", "-"),
                              value=getattr(args, name))
    if not (args.tolerance_s >= 0 and args.margin >= 0):
        raise ConfigError("must be >= 0", field="--tolerance-s, --margin",
                          value=(args.tolerance_s, args.margin))


def _encoder(folder: str | Path, providers, flag: str):
    from hv2r_ros.core.models.contract import ModelContractError
    from hv2r_ros.core.models.runtime import Encoder

    path = Path(folder) / "encoder.onnx"
    if not path.is_file():
        raise ModelContractError(f"encoder.onnx not found ({flag} is a folder with the "
                                 "encoder)", file=str(path))
    return Encoder(path, providers, batch_size=16)


def export_random_encoder(spec, seed: int, folder: Path) -> Path:
    """Export a random-weight encoder of ``spec``'s architecture and sizes to ``folder``."""
    from hv2r_ros.core.errors import ConfigError

    try:
        import torch
    except ImportError:
        raise ConfigError("the random-weight control needs torch to export an encoder "
                          "(requirements-dev.txt), or give one: `hv2r export --arch ARCH "
                          "--random-init --out DIR`", field="--control-models") from None
    from hv2r_ros.cli.export import RANDOM_INIT
    from hv2r_ros.learning.architectures import ENCODERS, build_encoder
    from hv2r_ros.learning.export import export_encoder

    if spec.architecture not in ENCODERS or spec.input_size[0] != spec.input_size[1]:
        raise ConfigError("cannot export a random twin of this encoder: give one",
                          field="--control-models", value=spec.architecture,
                          choices=sorted(ENCODERS))
    torch.manual_seed(seed)
    model, arch = build_encoder(spec.architecture, spec.input_size[0], spec.embedding_size)
    path = folder / "encoder.onnx"
    export_encoder(model, arch.spec(model, spec.input_size[0], RANDOM_INIT), path,
                   verbose=False)
    return folder


def _format_table(summary: dict) -> str:
    from hv2r_ros.core.prompt.benchmark import CONTROLS, DEMO

    def ci(d):
        return f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"

    lines = ["| condition | keyframe F1 | recall grasped / released / end | Spearman, cube "
             "progress | Spearman, time | demo − control: F1 [95 % CI] | Spearman [95 % CI] "
             "| clearly worse |", "|" + " --- |" * 8]
    for name in (DEMO, *CONTROLS):
        row = summary["conditions"][name]
        recall = " / ".join(f"{v:.2f}" for v in row["recall_by_label"].values())
        cells = [name, f"{row['f1']:.2f} ± {row['f1_sd']:.2f}", recall,
                 f"{row['spearman_progress']:+.2f} ± {row['spearman_progress_sd']:.2f}",
                 f"{row['spearman_time']:+.2f} ± {row['spearman_time_sd']:.2f}"]
        if name == DEMO:
            cells += ["", "", ""]
        else:
            c = summary["comparisons"][name]
            worse = [label for metric, label in (("f1", "F1"), ("spearman_progress",
                                                            "Spearman"))
                     if c[metric]["clearly_worse"]]
            cells += [ci(c["f1"]), ci(c["spearman_progress"]),
                      "yes" if len(worse) == 2 else "only " + worse[0] if worse else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _finite(value):
    """NaN -> None, so the report is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _describe(encoder) -> dict:
    from hv2r_ros.core.prompt.build import encoder_digest

    return {"path": str(encoder.path), "architecture": encoder.spec.architecture,
            "pretrained_on": encoder.spec.pretrained_on, "digest": encoder_digest(encoder)}


def _score_record(score) -> dict:
    import dataclasses

    record = {k: v for k, v in dataclasses.asdict(score).items() if k != "keyframes"}
    return {**record, "f1": score.f1, "precision": score.keyframes.precision,
            "recall": score.keyframes.recall}


def _render_and_build(args, encoder, control, work: Path) -> list[tuple]:
    """Per held-out seed: (seed, HumanDemoInfo, task spec, random-encoder spec, DemoTruth)."""
    import numpy as np

    from hv2r_ros.core.prompt.benchmark import demo_truth
    from hv2r_ros.core.prompt.build import build_task_spec
    from hv2r_ros.core.prompt.frames import SamplingConfig
    from hv2r_ros.core.robot_profile import load_robot_profile
    from hv2r_ros.sim.human_demo import render_human_demo
    from hv2r_ros.sim.scene import SceneConfig
    from hv2r_ros.sim.task import sample_layout

    workspace = load_robot_profile(args.robot).workspace
    sampling, demos = SamplingConfig(rate_hz=args.rate_hz), []
    for i in range(args.videos):
        seed = args.seed + i
        video = work / f"demo_{seed}.mp4"
        # The robot's overhead framing, so the demo is seen as the robot will see its work.
        info = render_human_demo(sample_layout(workspace, seed), video,
                                 size=(args.size, args.size), fps=args.fps, seed=seed,
                                 scene_config=SceneConfig.framing(workspace))
        spec, _ = build_task_spec(video, encoder, sampling=sampling)
        twin, _ = build_task_spec(video, control, sampling=sampling)
        truth = demo_truth(info.keyframes, info.phases, info.object_poses[:, :2], info.fps,
                           spec.sample_frame_indices)
        demos.append((seed, info, spec, twin, truth))
        print(f"  video {i + 1}/{args.videos} (seed {seed}): subgoals at "
              f"{np.round(spec.subgoal_times_s, 2).tolist()} s, true keyframes at "
              f"{truth.keyframe_times_s.tolist()} s", file=sys.stderr)
    return demos


def _print_summary(args, encoder, summary: dict, wall_s: float) -> None:
    print(f"prompt evaluation: {args.videos} held-out demos (seeds {args.seed}.."
          f"{args.seed + args.videos - 1}, {args.size} px, {args.fps:g} fps, {args.robot}'s "
          f"overhead view), encoder {encoder.spec.architecture} "
          f"({encoder.spec.pretrained_on}); keyframe tolerance {args.tolerance_s:g} s, "
          f"margin {args.margin:g}; {wall_s:.0f} s")
    print(_format_table(summary))
    errors = summary["conditions"]["demo"]["median_error_s"]
    print("demo: nearest subgoal minus true keyframe, median over the videos: "
          + ", ".join(f"{label} {error:+.2f} s" for label, error in errors.items()))
    failed = [f"{name} ({', '.join(m for m, d in c.items() if not d['clearly_worse'])})"
              for name, c in summary["comparisons"].items()
              if not all(d["clearly_worse"] for d in c.values())]
    print("PASS: every control scores clearly worse" if summary["passed"] else
          "FAIL: not clearly worse: " + "; ".join(failed))


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import tempfile

    import numpy as np

    from hv2r_ros.core.errors import ConfigError
    from hv2r_ros.core.prompt.benchmark import Prompt, evaluate_demo, summarize
    from hv2r_ros.core.prompt.keyframes import KeyframeConfig

    _check(args)
    started = time.perf_counter()
    providers = args.providers.split(",") if args.providers else None
    encoder = _encoder(args.models, providers, "--models")
    with tempfile.TemporaryDirectory(prefix="hv2r-prompt-eval-") as temp:
        work = Path(args.work_dir or temp)
        work.mkdir(parents=True, exist_ok=True)
        if args.control_models:
            control = _encoder(args.control_models, providers, "--control-models")
        else:
            (work / "random_encoder").mkdir(exist_ok=True)
            control = _encoder(export_random_encoder(encoder.spec, args.seed,
                                                     work / "random_encoder"), providers,
                               "--control-models")
        described = {"encoder": _describe(encoder), "control_encoder": {
            **_describe(control), "exported_with_seed": None if args.control_models
            else args.seed}}
        if described["encoder"]["digest"] == described["control_encoder"]["digest"]:
            raise ConfigError("the random-weight control is the encoder under test",
                              field="--control-models", value=args.control_models)
        demos = _render_and_build(args, encoder, control, work)
    rng = np.random.default_rng(args.seed)
    per_video, records = [], []
    for i, (seed, info, spec, twin, truth) in enumerate(demos):
        other = demos[(i + 1) % len(demos)][2]  # the next layout's demo: another task
        scores = evaluate_demo(spec.embeddings, spec.sample_times_s, Prompt.from_spec(spec),
                               truth, other_prompt=Prompt.from_spec(other),
                               random_embeddings=twin.embeddings,
                               random_prompt=Prompt.from_spec(twin), rng=rng,
                               tolerance_s=args.tolerance_s, config=KeyframeConfig())
        per_video.append(scores)
        records.append({"seed": seed, "target_object": info.target_object,
                        "target_pad": info.target_pad, "samples": len(spec.sample_times_s),
                        "true_keyframes_s": truth.keyframe_times_s.tolist(),
                        "scores": {name: _score_record(s) for name, s in scores.items()}})
    summary = summarize(per_video, args.margin)
    wall_s = time.perf_counter() - started
    _print_summary(args, encoder, summary, wall_s)
    if args.out:
        settings = {k: v for k, v in vars(args).items() if not k.startswith("_")}
        report = {"format": "hv2r.prompt_eval/1", "settings": settings, **described,
                  "keyframes": dataclasses.asdict(KeyframeConfig()), "wall_s": wall_s,
                  **summary, "videos": records}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(_finite(report), indent=1, default=str) + "\n")
        print(f"scores: {args.out}")
    return 0 if summary["passed"] else 1
