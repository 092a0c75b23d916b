"""Turn a demo video into a task spec and show what the robot will aim for.

``hv2r prompt VIDEO --models DIR`` samples the demo (a video file, a folder of frame images or a
goal image), embeds the frames with ``DIR/encoder.onnx``, finds the keyframes where the demo
settles and prints them: the subgoals in order with their times, the last one the goal. The
spec is cached by content hash (``--cache-dir``), so a second run is immediate. ``--sheet
PNG`` writes the keyframes side by side. ``--calibrate ROLLOUT...`` embeds videos of successful
robot rollouts (the progress camera's view; ``--failed`` for failures) and writes the progress
thresholds to ``--calibration-out`` for the prompt node's ``calibration_file`` (see
docs/prompt.md). Exit status 0 on success, 2 when the demo, a rollout or the model is unusable.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", metavar="VIDEO",
                        help="demo video (mp4/avi/mkv/webm/mov), folder of frames, or goal image")
    parser.add_argument("--models", required=True, metavar="DIR",
                        help="folder with encoder.onnx (the policy's encoder)")
    parser.add_argument("--rate-hz", type=float, default=10.0,
                        help="demo frames sampled per second of video [Hz] (default 10)")
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help="task spec cache (default $XDG_CACHE_HOME/hv2r/prompts)")
    parser.add_argument("--no-cache", action="store_true", help="build without the cache")
    parser.add_argument("--providers", default=None,
                        help="comma-separated execution providers to try in order "
                             "(default: tensorrt,cuda,cpu, those available)")
    parser.add_argument("--sheet", metavar="PNG", help="write a contact sheet of the keyframes")
    parser.add_argument("--plot", metavar="PNG",
                        help="write the demo's progress curve: 1 - d_t / d_0 toward the goal "
                             "(and toward each subgoal) over the demo, keyframes marked")
    calibration = parser.add_argument_group("progress calibration")
    calibration.add_argument("--calibrate", nargs="+", metavar="ROLLOUT", default=[],
                             help="videos of successful robot rollouts, ending at rest on "
                                  "the goal")
    calibration.add_argument("--failed", nargs="+", metavar="ROLLOUT", default=[],
                             help="videos of failed rollouts (optional; must not complete)")
    calibration.add_argument("--calibration-out", metavar="JSON",
                             help="where to write the thresholds (default VIDEO's name with "
                                  ".calibration.json)")
    calibration.add_argument("--hold-s", type=float, default=1.0,
                             help="progress must hold above a threshold this long [s]")
    calibration.add_argument("--smoothing-s", type=float, default=0.5,
                             help="time constant of the progress average [s]")


def demo_progress_curves(spec) -> dict:
    """``1 - d_t / d_0`` over the demo's samples toward each subgoal (label -> (N,) array),
    on the encoder's embeddings; the last is labelled ``goal``."""
    import numpy as np

    curves = {}
    for k, target in enumerate(spec.subgoal_embeddings):
        d = np.linalg.norm(spec.embeddings - target[None], axis=1)
        label = "goal" if k == len(spec.subgoal_embeddings) - 1 else f"subgoal {k + 1}"
        curves[label] = 1.0 - d / max(float(d[0]), 1e-9)
    return curves


def write_progress_plot(spec, path) -> Path:
    """The demo's own progress curves (PNG, ``demo_progress_curves``: the goal and up to three
    subgoals before it) over the demo's time, with the keyframes marked."""
    import numpy as np

    from hv2r_ros.core.plots import line_plot

    times = np.asarray(spec.sample_times_s, float)
    series = dict(list(demo_progress_curves(spec).items())[-4:])
    marks = [(float(t), f"k{k + 1}") for k, t in enumerate(spec.subgoal_times_s)]
    try:
        return line_plot(path, times, series, x_label="demo time [s]", marks=marks)
    except OSError as exc:
        raise OSError(f"{path}: cannot write the progress plot ({exc})") from exc


class ProgressLine:
    """A dependency-free progress line on a stream (stderr).

    On a terminal it redraws one line (at most ``redraw_s`` apart); elsewhere (a log file, CI)
    it writes a plain line at most every ``log_every_s``, so a short job writes nothing.
    """

    def __init__(self, label: str, stream=None, *, redraw_s: float = 0.1,
                 log_every_s: float = 10.0, clock=time.monotonic) -> None:
        self.label, self.stream, self.clock = label, stream or sys.stderr, clock
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = redraw_s if self.tty else log_every_s
        self.started_s = self.last_s = clock()
        self.drawn = False

    def update(self, done: int, total: int | None) -> None:
        """Report ``done`` of ``total`` (None: unknown) items."""
        now = self.clock()
        if now - self.last_s < self.every_s:
            return
        self.last_s = now
        elapsed = now - self.started_s
        if total:
            fraction = min(done / total, 1.0)
            bar = "#" * round(20 * fraction)
            text = f"{self.label} [{bar:<20}] {done}/{total} ({elapsed:.0f} s)"
        else:
            text = f"{self.label} {done} ({elapsed:.0f} s)"
        if self.tty:
            self.stream.write("\r" + text + "\033[K")
            self.drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the redrawn line."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def _print_spec(spec, report, encoder) -> None:
    import numpy as np

    where = f" ({report.cache_file})" if report.cache_file else ""
    how = "loaded from the cache" if report.cached else "built"
    print(f"demo: {spec.source}")
    print(f"  {spec.embeddings.shape[0]} frames sampled over {spec.duration_s:.2f} s; task spec "
          f"{how} in {report.seconds:.2f} s{where}")
    print(f"encoder: {encoder.path} ({encoder.spec.architecture}, D = "
          f"{encoder.spec.embedding_size}) on {encoder.provider}")
    print(f"keyframes: {spec.subgoal_count} subgoal(s) in order, the last is the goal"
          + ("" if spec.ends_settled else " (the demo ends in motion: goal = its last frame)"))
    print("     #   time [s]   frame   distance to goal")
    distances = np.linalg.norm(spec.subgoal_embeddings - spec.goal_embedding, axis=1)
    for k in range(spec.subgoal_count):
        mark = "   goal" if k == spec.subgoal_count - 1 else ""
        frame = spec.sample_frame_indices[spec.subgoal_indices[k]]
        print(f"  {k + 1:>4}   {spec.subgoal_times_s[k]:8.2f}   {frame:5d}   "
              f"{distances[k]:16.4g}{mark}")


def write_sheet(spec, path: str | Path) -> Path:
    """The subgoal frames side by side, each labelled with its number and time."""
    import cv2
    import numpy as np

    tiles, font = [], cv2.FONT_HERSHEY_SIMPLEX
    for k, frame in enumerate(spec.subgoal_frames):
        label = f"{k + 1}: {spec.subgoal_times_s[k]:.2f} s" + \
            (" (goal)" if k == spec.subgoal_count - 1 else "")
        text_w = cv2.getTextSize(label, font, 0.5, 1)[0][0]
        right = 4 + max(0, text_w + 8 - frame.shape[1] - 8)  # widen tiles narrower than labels
        tile = cv2.copyMakeBorder(np.ascontiguousarray(frame[..., ::-1]), 28, 4, 4, right,
                                  cv2.BORDER_CONSTANT, value=(255, 255, 255))
        cv2.putText(tile, label, (6, 20), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    path = Path(path)
    if not cv2.imwrite(str(path), cv2.hconcat(tiles)):
        raise OSError(f"{path}: cannot write the contact sheet (folder missing or read-only?)")
    return path


def _calibrate(args, spec, encoder, sampling) -> None:
    from hv2r_ros.core.prompt.build import embed_frames
    from hv2r_ros.core.prompt.calibration import Rollout, calibrate
    from hv2r_ros.core.prompt.video import open_frames

    def embed(path: str) -> Rollout:
        source = open_frames(path, sampling)
        line = ProgressLine(f"rollout {Path(path).name}")
        try:
            embeddings, times, _, _ = embed_frames(
                source, encoder, name=source.name,
                on_progress=lambda done: line.update(done, source.expected_count))
        finally:
            line.close()
        return Rollout(embeddings, times, source.name)

    successes = [embed(p) for p in args.calibrate]
    failures = [embed(p) for p in args.failed]
    result = calibrate(spec.subgoal_embeddings, successes, hold_s=args.hold_s,
                       smoothing_s=args.smoothing_s, failures=failures,
                       start_embedding=spec.start_embedding,
                       source=f"{len(successes)} robot rollout(s)"
                              + (f" and {len(failures)} failure(s)" if failures else ""),
                       encoder_digest=spec.encoder_digest, spec_digest=spec.source_digest)
    out = Path(args.calibration_out or Path(args.video).with_suffix(".calibration.json"))
    result.save(out)
    thresholds = ", ".join(f"{t:.3f}" for t in result.thresholds)
    print(f"calibration: thresholds per subgoal [{thresholds}] (spread "
          f"{', '.join(f'{s:.3f}' for s in result.spread)}), hold {result.hold_s:g} s, "
          f"smoothing {result.smoothing_s:g} s, from {result.source}: {out}")


def run(args: argparse.Namespace) -> int:
    from hv2r_ros.core.models.contract import ModelContractError
    from hv2r_ros.core.models.runtime import Encoder
    from hv2r_ros.core.prompt.build import build_task_spec
    from hv2r_ros.core.prompt.frames import SamplingConfig
    from hv2r_ros.core.prompt.spec import default_cache_dir

    path = Path(args.models) / "encoder.onnx"
    if not path.is_file():
        raise ModelContractError("encoder.onnx not found: --models is a folder with the "
                                 "encoder", file=str(path))
    providers = args.providers.split(",") if args.providers else None
    encoder = Encoder(path, providers, batch_size=16)
    sampling = SamplingConfig(rate_hz=args.rate_hz)
    cache_dir = None if args.no_cache else Path(args.cache_dir or default_cache_dir())
    line = ProgressLine("embedding demo frames")
    try:
        spec, report = build_task_spec(args.video, encoder, sampling=sampling,
                                       cache_dir=cache_dir, on_progress=line.update)
    finally:
        line.close()
    _print_spec(spec, report, encoder)
    if args.sheet:
        print(f"contact sheet: {write_sheet(spec, args.sheet)}")
    if args.plot:
        print(f"progress plot: {write_progress_plot(spec, args.plot)}")
    if args.calibrate:
        _calibrate(args, spec, encoder, sampling)
    elif args.failed:
        print("hv2r prompt: --failed needs --calibrate with successful rollouts",
              file=sys.stderr)
        return 2
    return 0
