"""Closed-loop evaluation on held-out simulated episodes prompted by human demo videos.

Each episode samples an unseen layout (seeds from ``--seed``, far from the training seeds),
renders the human demonstration of it, turns the video into a task spec with the prompt
pipeline, and runs the policy closed loop in the simulator (``hv2r_ros.sim.rollout``). Rows:

  human prompt        the models, prompted by the human video of the episode's own layout
  goal-blind          --goal-blind-models (same architecture, no goal input), same prompt
  shuffled prompt     the models, prompted by the human video of ANOTHER layout
  robot-video prompt  the models, prompted by the last frame of the scripted expert's robot
                      episode of the layout (the upper bound of prompting)
  random-init encoder --random-encoder-models (a policy trained on a random encoder's features)
  viewpoint gap       the models, prompted by the human video filmed from the side camera

Success rates come with 95 % Wilson intervals. Results go to stdout and ``--out`` (JSON).
"""

from __future__ import annotations

import argparse

ROWS = ("human", "goal_blind", "shuffled", "robot_video", "random_encoder", "viewpoint_gap")
LABELS = {"human": "human prompt", "goal_blind": "goal-blind policy",
          "shuffled": "shuffled prompt (other layout's video)",
          "robot_video": "robot-video prompt (upper bound)",
          "random_encoder": "random-init encoder", "viewpoint_gap": "human prompt, side view"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", required=True, help="models folder (encoder + policy)")
    parser.add_argument("--goal-blind-models", help="models folder of the goal-blind baseline")
    parser.add_argument("--random-encoder-models",
                        help="models folder of the random-init encoder control")
    parser.add_argument("--robot", default="panda")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per row")
    parser.add_argument("--seed", type=int, default=900_000, help="first layout seed")
    parser.add_argument("--rows", default=",".join(ROWS),
                        help=f"comma-separated rows to run (default all: {','.join(ROWS)})")
    parser.add_argument("--max-duration-s", type=float, default=30.0)
    parser.add_argument("--out", help="JSON results file")


def _render_demo(layout, camera: str, workspace, seed: int, folder):
    """Render the human demonstration of ``layout`` from ``camera``; returns the MP4 path."""
    from hv2r_ros.sim.human_demo import render_human_demo
    from hv2r_ros.sim.scene import SceneConfig

    video = folder / f"demo_{seed}_{camera}.mp4"
    render_human_demo(layout, video, camera=camera, size=(224, 224), fps=10.0, seed=seed,
                      scene_config=SceneConfig.framing(workspace))
    return video


def _goal(video, encoder):
    """The goal embedding of a demo video's task spec (its last settled state)."""
    from hv2r_ros.core.prompt.build import build_task_spec

    spec, _ = build_task_spec(video, encoder)
    return spec.subgoal_embeddings[-1]


def run(args: argparse.Namespace) -> int:
    import json
    import tempfile
    import time
    from pathlib import Path

    from hv2r_ros.core.command_chain import CartesianCommandChain
    from hv2r_ros.core.errors import ConfigError
    from hv2r_ros.core.models.runtime import ModelPair
    from hv2r_ros.core.robot_profile import load_robot_profile
    from hv2r_ros.core.stats import wilson_interval
    from hv2r_ros.sim.expert import run_expert_episode
    from hv2r_ros.sim.rollout import RolloutConfig, run_policy_episode
    from hv2r_ros.sim.task import sample_layout
    from hv2r_ros.sim.world import SimConfig, SimWorld

    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        raise ConfigError("unknown row", field="--rows", value=unknown[0], choices=ROWS)
    needs = {"goal_blind": args.goal_blind_models, "random_encoder": args.random_encoder_models}
    for row, folder in needs.items():
        if row in rows and not folder:
            print(f"skipping row {row}: no --{row.replace('_', '-')}-models given")
            rows.remove(row)
    profile = load_robot_profile(args.robot)
    models = {"main": ModelPair.load(args.models)}
    if "goal_blind" in rows:
        models["goal_blind"] = ModelPair.load(args.goal_blind_models)
    if "random_encoder" in rows:
        models["random_encoder"] = ModelPair.load(args.random_encoder_models)
    chain = CartesianCommandChain(profile)
    config = RolloutConfig(max_duration_s=args.max_duration_s)
    layouts = [sample_layout(profile.workspace, args.seed + i) for i in range(args.episodes)]
    results: dict[str, list[dict]] = {row: [] for row in rows}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, SimWorld(profile, SimConfig(), layouts[0]) as world:
        folder = Path(tmp)
        for i, layout in enumerate(layouts):
            seed = args.seed + i
            demo = _render_demo(layout, "overhead", profile.workspace, seed, folder)
            goals = {key: _goal(demo, pair.encoder) for key, pair in models.items()}
            for row in rows:
                pair = models["main"]
                if row == "human":
                    goal = goals["main"]
                elif row in ("goal_blind", "random_encoder"):
                    pair, goal = models[row], goals[row]
                elif row == "shuffled":
                    other = next(o for o in (sample_layout(profile.workspace, seed + 10**6 + k)
                                             for k in range(100))
                                 if (o.target_object, o.target_pad)
                                 != (layout.target_object, layout.target_pad))
                    goal = _goal(_render_demo(other, "overhead", profile.workspace,
                                              seed + 10**6, folder), pair.encoder)
                elif row == "viewpoint_gap":
                    goal = _goal(_render_demo(layout, "side", profile.workspace, seed, folder),
                                 pair.encoder)
                else:  # robot_video: the expert's own last frame of this layout
                    run_expert_episode(world, layout, chain=chain)
                    goal = pair.encoder.embed([world.render("overhead", 224, 224)])[0]
                result = run_policy_episode(world, pair, goal, layout, chain=chain,
                                            config=config)
                results[row].append({"seed": seed, "success": result.success,
                                     "reason": result.reason,
                                     "distance_m": round(result.target_distance_m, 4),
                                     "duration_s": round(result.duration_s, 2),
                                     "refusals": result.refusals})
            done = {r: sum(x["success"] for x in results[r]) for r in rows}
            print(f"[{i + 1}/{len(layouts)}] " + "  ".join(f"{r} {done[r]}" for r in rows)
                  + f"  ({time.monotonic() - started:.0f} s)", flush=True)
    table = []
    print(f"\n{'prompt / model':42} {'success':>9} {'rate':>6}  95 % Wilson")
    for row in rows:
        wins, n = sum(x["success"] for x in results[row]), len(results[row])
        low, high = wilson_interval(wins, n)
        table.append({"row": row, "label": LABELS[row], "successes": wins, "episodes": n,
                      "rate": wins / n, "wilson95": [low, high],
                      "refusals": sum(x["refusals"] for x in results[row])})
        print(f"{LABELS[row]:42} {wins:>4}/{n:<4} {wins / n:6.1%}  [{low:.1%}, {high:.1%}]")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"table": table, "episodes": results,
                                              "args": {k: v for k, v in vars(args).items()
                                                       if not k.startswith("_")}},
                                             indent=1, default=str))
    return 0
