"""``hv2r prompt``: the task spec printed, cached, drawn and calibrated; errors and the progress
line. Demo videos are a few dozen 32x24 frames of held and blended colours; the encoder is the
tiny ONNX fixture (its embedding is linear in the mean colour)."""

import io
import json

import cv2
import numpy as np
import pytest

from hv2r_ros.cli import main
from hv2r_ros.cli.prompt import ProgressLine
from hv2r_ros.core.prompt.progress import ProgressCalibration
from onnx_fixtures import make_encoder, save

COLOURS = [(20, 20, 20), (220, 30, 30), (220, 220, 30), (30, 200, 220)]


def write_demo(path, colours=COLOURS, hold=15, blend=8, fps=10.0, gap=0):
    """Each colour held ``hold`` frames, blended over ``blend``; settle times returned [s]."""
    frames, settles = [], []
    for k, colour in enumerate(colours):
        if k:
            previous = colours[k - 1]
            frames += [tuple(int(a + (b - a) * i / (blend + 1)) for a, b in zip(previous, colour))
                       for i in range(1, blend + 1)]
            settles.append(len(frames) / fps)
        frames += [colour] * hold
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (32, 24))
    for rgb in frames:
        writer.write(np.full((24, 32, 3), [min(255, c + gap) for c in rgb[::-1]], np.uint8))
    writer.release()
    return path, settles


@pytest.fixture
def models(tmp_path):
    (tmp_path / "models").mkdir()
    save(make_encoder(), tmp_path / "models" / "encoder.onnx")
    return str(tmp_path / "models")


def keyframe_rows(out):
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "time [s]" in line) + 1
    return [line.split() for line in lines[start:] if line.startswith("  ")]


def test_prints_keyframes_and_reuses_the_cache(tmp_path, models, capsys):
    video, settles = write_demo(tmp_path / "demo.avi")
    args = ["prompt", str(video), "--models", models, "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "task spec built" in out and "3 subgoal(s)" in out
    rows = keyframe_rows(out)
    assert [float(r[1]) for r in rows] == pytest.approx(settles, abs=0.11)
    assert rows[-1][-1] == "goal" and float(rows[-1][3]) == 0.0
    assert main(args) == 0
    again = capsys.readouterr().out
    assert "loaded from the cache" in again and keyframe_rows(again) == rows


def test_contact_sheet_has_one_tile_per_keyframe(tmp_path, models, capsys):
    video, settles = write_demo(tmp_path / "demo.avi")
    sheet = tmp_path / "sheet.png"
    assert main(["prompt", str(video), "--models", models, "--no-cache",
                 "--sheet", str(sheet)]) == 0
    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[0] == 24 + 32
    # each tile shows its keyframe's colour in the middle of its frame area
    centres = [image[28 + 12, x] for x in range(0, image.shape[1], 4)]
    for colour in COLOURS[1:]:
        assert any(np.abs(c.astype(int) - colour[::-1]).max() < 12 for c in centres), colour


def test_progress_plot_rises_to_one_at_the_end_of_the_demo(tmp_path, models, capsys):
    """The plotted goal curve starts at 0, stays low before the demo reaches its last settled
    state and is near 1 from the goal keyframe on; the PNG is written where asked."""
    from hv2r_ros.cli.prompt import demo_progress_curves, write_progress_plot
    from hv2r_ros.core.prompt.build import build_task_spec
    from hv2r_ros.core.models.runtime import Encoder

    video, _ = write_demo(tmp_path / "demo.avi")
    plot = tmp_path / "progress.png"
    assert main(["prompt", str(video), "--models", models, "--no-cache",
                 "--plot", str(plot)]) == 0
    assert cv2.imread(str(plot)) is not None and "progress plot" in capsys.readouterr().out
    spec, _ = build_task_spec(video, Encoder(f"{models}/encoder.onnx"))
    curves = demo_progress_curves(spec)
    assert list(curves)[-1] == "goal" and len(curves) == len(spec.subgoal_embeddings)
    goal, last = curves["goal"], int(spec.subgoal_indices[-1])
    assert goal[0] == pytest.approx(0.0) and goal[last] == pytest.approx(1.0)
    assert goal[:int(spec.subgoal_indices[0])].max() < 0.5
    with pytest.raises(OSError, match="progress plot"):
        write_progress_plot(spec, tmp_path / "absent" / "p.png")


def test_calibration_writes_thresholds_for_the_node(tmp_path, models, capsys):
    video, _ = write_demo(tmp_path / "demo.avi")
    rollouts = [str(write_demo(tmp_path / f"robot{i}.avi", hold=15 + 3 * i, gap=8 + 2 * i)[0])
                for i in range(3)]
    out_file = tmp_path / "cal.json"
    assert main(["prompt", str(video), "--models", models, "--no-cache", "--calibrate",
                 *rollouts, "--calibration-out", str(out_file), "--hold-s", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "3 robot rollout(s)" in out and str(out_file) in out
    calibration = ProgressCalibration.load(out_file)
    assert len(calibration.thresholds) == 3 and calibration.hold_s == 0.5
    assert calibration.spec_digest and calibration.encoder_digest
    assert json.loads(out_file.read_text())["format"] == "hv2r.progress_calibration/1"


@pytest.mark.parametrize("case, words", [
    ("missing", "does not exist"), ("truncated", "truncated"), ("rate", "sampling.rate_hz"),
    ("encoder", "encoder.onnx not found"), ("failed-only", "--failed needs --calibrate")])
def test_errors_exit_2_naming_the_problem(tmp_path, models, capsys, case, words):
    video, _ = write_demo(tmp_path / "demo.avi", hold=30)
    args = ["prompt", str(video), "--models", models, "--no-cache"]
    if case == "missing":
        args[1] = str(tmp_path / "nothing.mp4")
    elif case == "truncated":
        video.write_bytes(video.read_bytes()[:len(video.read_bytes()) // 2])
    elif case == "rate":
        args += ["--rate-hz", "0"]
    elif case == "encoder":
        args[3] = str(tmp_path)
    else:
        args += ["--failed", str(video)]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert words in captured.err, captured.err
    if case in ("missing", "truncated"):
        assert args[1] in captured.err


class FakeTerminal(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_line_redraws_on_a_terminal_and_logs_rarely_elsewhere():
    now = [0.0]
    tty = FakeTerminal(True)
    line = ProgressLine("embedding", tty, clock=lambda: now[0])
    for done in range(1, 11):
        now[0] += 0.2
        line.update(done * 10, 100)
    line.close()
    text = tty.getvalue()
    assert text.count("\r") == 10 and "100/100" in text and text.endswith("\n")
    assert "[" + "#" * 20 + "]" in text

    log = FakeTerminal(False)
    line = ProgressLine("embedding", log, clock=lambda: now[0], log_every_s=10.0)
    now[0] += 3.0
    line.update(5, None)
    assert log.getvalue() == "", "a short job writes nothing to a log"
    now[0] += 8.0
    line.update(50, None)
    line.close()
    assert log.getvalue() == "embedding 50 (11 s)\n"
