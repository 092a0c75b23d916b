"""Frames of the demo video: the robot's overhead camera with the prompt's goal frame inset."""

from __future__ import annotations

import numpy as np

__all__ = ["compose_frame"]

SCALE = 2  # the 224 px camera frame is shown at 448 px


def compose_frame(frame_rgb: np.ndarray, goal_rgb: np.ndarray | None, caption: str) -> np.ndarray:
    """One video frame (RGB uint8): ``frame_rgb`` enlarged, the goal inset top right, a caption.

    Args:
        frame_rgb: (h, w, 3) uint8 camera frame.
        goal_rgb: (h', w', 3) uint8 goal frame of the prompt, or None (no inset).
        caption: Text drawn along the bottom edge.
    """
    import cv2

    h, w = frame_rgb.shape[:2]
    big = cv2.resize(frame_rgb, (w * SCALE, h * SCALE), interpolation=cv2.INTER_LINEAR)
    if goal_rgb is not None:
        side = big.shape[1] // 3
        inset = cv2.resize(goal_rgb, (side, side * goal_rgb.shape[0] // goal_rgb.shape[1]),
                           interpolation=cv2.INTER_AREA)
        ih, iw = inset.shape[:2]
        x0, y0 = big.shape[1] - iw - 8, 8
        big[y0 - 2:y0 + ih + 2, x0 - 2:x0 + iw + 2] = 255
        big[y0:y0 + ih, x0:x0 + iw] = inset
        cv2.putText(big, "goal (human demo)", (x0, y0 + ih + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 255, 255), 1, cv2.LINE_AA)
    if caption:
        cv2.rectangle(big, (0, big.shape[0] - 26), (big.shape[1], big.shape[0]), (0, 0, 0), -1)
        cv2.putText(big, caption, (8, big.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return big
