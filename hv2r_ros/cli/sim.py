"""The simulated tabletop: record datasets, render human demos, and measure the simulator.

  hv2r sim record --episodes N --seed S --out DIR   robot episodes (MCAP) + human videos (MP4)
  hv2r sim demo-video --seed S --out FILE.mp4      one human demonstration
  hv2r sim bench [--episodes N]                    expert success rate, step and render rates
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sim_command", metavar="ACTION")
    sub.required = True
    record = sub.add_parser("record", help="record robot episodes and human demo videos")
    record.add_argument("--robot", default="panda", help="robot profile (default panda)")
    record.add_argument("--episodes", type=int, default=10, help="episodes (default 10)")
    record.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    record.add_argument("--out", required=True, help="output folder")
    record.add_argument("--rate-hz", type=float, default=10.0,
                        help="observation rate of the robot episodes [Hz] (default 10)")
    record.add_argument("--chunk-length", type=int, default=10,
                        help="expert targets recorded per observation (default 10)")
    record.add_argument("--image-size", type=int, default=224, help="square image side [px]")
    record.add_argument("--no-human", action="store_true", help="robot episodes only")
    record.add_argument("--resume", action="store_true",
                        help="keep the complete episodes already in OUT, record the rest")
    record.add_argument("--human-camera", default="overhead",
                        help="viewpoint of the human videos (overhead, side, front)")
    record.add_argument("--noise-m", type=float, default=0.0,
                        help="std of smooth offsets added to the expert's commanded tool "
                             "position [m], 0 to 0.1 (labels stay the clean plan; default 0)")
    video = sub.add_parser("demo-video", help="render one human demonstration to MP4")
    video.add_argument("--robot", default="panda", help="robot profile whose workspace is used")
    video.add_argument("--seed", type=int, default=0, help="layout and motion seed")
    video.add_argument("--camera", default="overhead", help="overhead, side or front")
    video.add_argument("--size", type=int, default=224, help="square frame side [px]")
    video.add_argument("--fps", type=float, default=10.0, help="frame rate [Hz]")
    video.add_argument("--out", required=True, help="output .mp4 (ground truth beside it)")
    bench = sub.add_parser("bench", help="expert success rate, step and render rates")
    bench.add_argument("--robot", default="panda", help="robot profile (default panda)")
    bench.add_argument("--episodes", type=int, default=20, help="expert episodes (default 20)")
    bench.add_argument("--seed", type=int, default=1000, help="base seed (default 1000)")


def _record(args: argparse.Namespace) -> int:
    from hv2r_ros.core.robot_profile import load_robot_profile
    from hv2r_ros.sim.record import RecordConfig, record_dataset

    config = RecordConfig(episodes=args.episodes, seed=args.seed, record_rate_hz=args.rate_hz,
                          chunk_length=args.chunk_length, image_size=args.image_size,
                          human_videos=not args.no_human, human_camera=args.human_camera,
                          noise_m=args.noise_m)
    manifest = record_dataset(load_robot_profile(args.robot), args.out, config,
                              resume=args.resume)
    print(f"{len(manifest['episodes'])} episodes in {args.out} ({manifest['wall_s']:.0f} s), "
          f"expert success {manifest['expert_success_rate']:.1%}")
    return 0


def _demo_video(args: argparse.Namespace) -> int:
    from hv2r_ros.core.robot_profile import load_robot_profile
    from hv2r_ros.sim.human_demo import render_human_demo
    from hv2r_ros.sim.scene import SceneConfig
    from hv2r_ros.sim.task import sample_layout

    workspace = load_robot_profile(args.robot).workspace
    layout = sample_layout(workspace, args.seed)
    info = render_human_demo(layout, args.out, camera=args.camera, size=(args.size, args.size),
                             fps=args.fps, seed=args.seed,
                             scene_config=SceneConfig.framing(workspace))
    print(f"{args.out}: {info.frame_count} frames, the hand moves {info.target_object} to "
          f"{info.target_pad}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from hv2r_ros.core.command_chain import CartesianCommandChain
    from hv2r_ros.core.robot_profile import load_robot_profile
    from hv2r_ros.core.stats import wilson_interval
    from hv2r_ros.sim.expert import run_expert_episode
    from hv2r_ros.sim.task import sample_layout
    from hv2r_ros.sim.world import SimConfig, SimWorld

    profile = load_robot_profile(args.robot)
    chain = CartesianCommandChain(profile)
    layouts = [sample_layout(profile.workspace, args.seed + i) for i in range(args.episodes)]
    successes, steps, wall = 0, 0, 0.0
    with SimWorld(profile, SimConfig(), layouts[0]) as world:
        for i, layout in enumerate(layouts):
            tic = time.perf_counter()
            result = run_expert_episode(world, layout, chain=chain)
            wall += time.perf_counter() - tic
            successes += result.success
            steps += result.steps
            print(f"  seed {args.seed + i}: {'ok' if result.success else result.reason:>12}  "
                  f"{result.duration_s:5.1f} s simulated, {result.attempts} plan(s)")
        world.step(None)
        render = []
        for _ in range(50):
            tic = time.perf_counter()
            world.render("wrist", 224, 224)
            world.render("overhead", 224, 224)
            render.append(time.perf_counter() - tic)
        vga = []
        for _ in range(20):
            tic = time.perf_counter()
            world.render("overhead", 640, 480)
            vga.append(time.perf_counter() - tic)
        step = []
        for _ in range(500):
            tic = time.perf_counter()
            world.step(None)
            step.append(time.perf_counter() - tic)
    low, high = wilson_interval(successes, args.episodes)
    print(f"expert ({profile.name}): {successes}/{args.episodes} succeeded "
          f"({successes / args.episodes:.0%}, 95 % Wilson {low:.0%}-{high:.0%}); "
          f"{steps / wall:.0f} control steps/s with IK (wall)")
    print(f"world step p50 {np.median(step) * 1e3:.2f} ms; two 224x224 renders p50 "
          f"{np.median(render) * 1e3:.1f} ms; one 640x480 render p50 {np.median(vga) * 1e3:.1f} ms")
    return 0


def run(args: argparse.Namespace) -> int:
    return {"record": _record, "demo-video": _demo_video, "bench": _bench}[args.sim_command](args)
