"""Pieces of the demo's outputs: plots and video frames."""

import numpy as np
import pytest

from hv2r_ros.core.plots import line_plot
from hv2r_ros.sim.demo_frames import SCALE, compose_frame


def test_line_plot_writes_a_png_of_the_requested_size(tmp_path):
    import cv2

    xs = np.linspace(0, 10, 50)
    path = line_plot(tmp_path / "p.png", xs, {"a": np.sin(xs), "b": [np.nan] * 50},
                     x_label="time [s]", marks=[(5.0, "done")], size=(500, 300))
    image = cv2.imread(str(path))
    assert image.shape == (300, 500, 3)
    assert (image != 255).any(axis=2).mean() > 0.01  # something was drawn


def test_line_plot_names_the_file_it_cannot_write(tmp_path):
    with pytest.raises(OSError, match="missing"):
        line_plot(tmp_path / "absent" / "p.png", [0, 1], {"a": [0, 1]})


def test_frame_shows_the_camera_enlarged_and_the_goal_inset_top_right():
    frame = np.zeros((60, 80, 3), np.uint8)
    goal = np.full((30, 30, 3), (0, 200, 0), np.uint8)
    out = compose_frame(frame, goal, "t 1.0 s")
    assert out.shape == (60 * SCALE, 80 * SCALE, 3)
    side = out.shape[1] // 3
    inset = out[8 + 2:8 + side - 2, out.shape[1] - 8 - side + 2:out.shape[1] - 10]
    assert (inset == (0, 200, 0)).all(axis=2).mean() > 0.9
    assert out[:50, :50].max() == 0  # the rest is the camera frame
    assert out[-20:].max() == 255  # the caption
    assert compose_frame(frame, None, "").max() == 0
