"""Line plots as PNG files, drawn with OpenCV (no plotting library in the runtime).

Used for training loss curves, prompt progress curves and the demo's progress curve.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["line_plot"]

_COLOURS = ((200, 60, 20), (20, 120, 220), (40, 160, 40), (150, 40, 160))  # BGR


def line_plot(path: str | Path, x: Sequence[float], series: dict[str, Sequence[float]], *,
              x_label: str = "", y_range: tuple[float, float] | None = None,
              marks: Sequence[tuple[float, str]] = (), size: tuple[int, int] = (640, 360)
              ) -> Path:
    """Write a PNG with one polyline per entry of ``series`` over ``x``.

    Args:
        path: Output PNG (its folder must exist).
        x: Abscissae (N,).
        series: Label -> values (N,) each; non-finite values are left out.
        x_label: Text under the axis.
        y_range: Fixed (low, high) of the vertical axis; default the finite values' range.
        marks: Vertical lines at (x, label), e.g. events.
        size: (width, height) [px].

    Raises:
        OSError: The file cannot be written.
    """
    import cv2

    width, height = size
    pad = 44
    image = np.full((height, width, 3), 255, np.uint8)
    xs = np.asarray(x, dtype=float)
    values = {k: np.asarray(v, dtype=float) for k, v in series.items()}
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()] + [np.zeros(0)])
    if y_range is not None:
        lo, hi = map(float, y_range)
    elif len(finite):
        lo, hi = float(finite.min()), float(finite.max())
    else:
        lo, hi = 0.0, 1.0
    hi = hi if hi > lo else lo + 1.0
    x0, x1 = (float(xs.min()), float(xs.max())) if len(xs) else (0.0, 1.0)
    x1 = x1 if x1 > x0 else x0 + 1.0

    def px(xv: float, yv: float) -> tuple[int, int]:
        return (int(pad + (xv - x0) / (x1 - x0) * (width - 2 * pad)),
                int(height - pad - (yv - lo) / (hi - lo) * (height - 2 * pad)))

    font = cv2.FONT_HERSHEY_SIMPLEX
    for xv, label in marks:
        top, bottom = px(xv, hi), px(xv, lo)
        cv2.line(image, top, bottom, (160, 160, 160), 1)
        cv2.putText(image, label, (top[0] + 3, top[1] + 14), font, 0.4, (90, 90, 90), 1)
    for i, (label, v) in enumerate(values.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        points = [px(a, b) for a, b in zip(xs, v) if np.isfinite(b)]
        if len(points) > 1:
            cv2.polylines(image, [np.array(points, np.int32)], False, colour, 2)
        cv2.putText(image, label, (pad + 170 * i, 25), font, 0.5, colour, 1)
    cv2.rectangle(image, (pad, pad), (width - pad, height - pad), (0, 0, 0), 1)
    cv2.putText(image, f"{hi:.3g}", (2, pad + 4), font, 0.4, (0, 0, 0), 1)
    cv2.putText(image, f"{lo:.3g}", (2, height - pad), font, 0.4, (0, 0, 0), 1)
    cv2.putText(image, f"{x_label} {x0:.3g} .. {x1:.3g}", (width // 2 - 80, height - 12), font,
                0.45, (0, 0, 0), 1)
    out = Path(path)
    if not cv2.imwrite(str(out), image):
        raise OSError(f"{out}: cannot write the plot (folder missing or read-only?)")
    return out
