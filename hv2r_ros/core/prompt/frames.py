"""Demo frames for the prompt, sampled at a fixed rate, and what makes a demo unusable.

Sources share one interface (``build.FrameSource``): ``name``, ``expected_count`` (for progress
bars), ``digest()`` (content hash for the cache) and iteration, yielding ``SampledFrame``s:
the first frame at or after each tick ``k / rate_hz`` of the demo's own clock, RGB uint8,
downscaled so that the longer side is at most ``max_side_px``. Here: ``FolderFrames`` (a folder
of png/jpg/bmp images in natural name order at ``SamplingConfig.folder_fps_hz``) and
``RecordedFrames`` (frames and capture stamps recorded from a camera topic); ``video`` has the
video files and ``open_frames``.

Every way a demo can be unusable raises ``PromptError`` naming the file (or folder, or
recording) and the problem, and the fix where there is one: a wrong path, an empty file, no
frames, a single frame (not a demonstration: use it as a goal image), a resolution above
``max_pixels``, a demo longer than ``max_duration_s``, an undecodable image or one whose size
differs from the rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import cv2
import numpy as np

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.goal import IMAGE_SUFFIXES, GoalError, file_digest

__all__ = [
    "FolderFrames", "PromptError", "RateSampler", "RecordedFrames", "SampledFrame",
    "SamplingConfig", "check_demo_path", "check_duration", "check_pixels", "fit_frame",
    "single_frame_error",
]

_EPS_S = 1e-6


class PromptError(GoalError):
    """A demo (video, image folder, recording) cannot be used as a prompt.

    A ``GoalError``, so callers that handle the single-goal-image errors handle these too.
    """


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How demo frames are sampled.

    Attributes:
        rate_hz: Sampled frames per second of demo time [Hz].
        max_side_px: Frames whose longer side exceeds this are downscaled to it (aspect kept)
            [px]; the encoder resizes to its own input anyway.
        max_pixels: Frames with more pixels are refused before decoding (default 8K UHD).
        max_duration_s: Longer demos are refused [s].
        folder_fps_hz: Frame rate of an image folder (one image per frame) [Hz].
    """

    rate_hz: float = 10.0
    max_side_px: int = 640
    max_pixels: int = 7680 * 4320
    max_duration_s: float = 600.0
    folder_fps_hz: float = 30.0

    def __post_init__(self) -> None:
        for name in ("rate_hz", "max_side_px", "max_pixels", "max_duration_s", "folder_fps_hz"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ConfigError("must be a finite number > 0", field=f"sampling.{name}",
                                  value=value)


class SampledFrame(NamedTuple):
    """One sampled demo frame.

    Attributes:
        index: Frame number in the source (0-based, counting every decoded frame).
        time_s: Demo time of the frame, 0 at the first frame [s].
        rgb: uint8 (H, W, 3), C-contiguous.
    """

    index: int
    time_s: float
    rgb: np.ndarray


class RateSampler:
    """Takes the first frame at or after each tick ``k / rate_hz``; a tick without a frame is
    skipped (a source slower than the rate gives every frame)."""

    def __init__(self, rate_hz: float) -> None:
        self.period_s = 1.0 / rate_hz
        self.next_s = 0.0

    def take(self, time_s: float) -> bool:
        if time_s + _EPS_S < self.next_s:
            return False
        self.next_s = (math.floor((time_s + _EPS_S) / self.period_s) + 1) * self.period_s
        return True


def fit_frame(rgb: np.ndarray, max_side_px: int) -> np.ndarray:
    """``rgb`` downscaled (INTER_AREA, aspect kept) so its longer side is <= ``max_side_px``."""
    height, width = rgb.shape[:2]
    scale = max_side_px / max(height, width)
    if scale >= 1.0:
        return np.ascontiguousarray(rgb)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def check_pixels(width: int, height: int, config: SamplingConfig, where: str) -> None:
    """Refuse a frame size above ``config.max_pixels``, naming ``where``."""
    if width * height > config.max_pixels:
        raise PromptError(f"resolution {width}x{height} ({width * height / 1e6:.1f} MP) is above "
                          f"the limit of {config.max_pixels / 1e6:.1f} MP "
                          "(sampling.max_pixels); downscale it first, e.g. "
                          "`ffmpeg -i IN -vf scale=1280:-2 OUT.mp4`", file=where)


def check_duration(time_s: float, config: SamplingConfig, where: str) -> None:
    """Refuse a demo time beyond ``config.max_duration_s``, naming ``where``."""
    if time_s > config.max_duration_s:
        raise PromptError(f"demo is longer than {config.max_duration_s:g} s "
                          "(sampling.max_duration_s); trim it to the task", file=where)


def single_frame_error(where: str) -> PromptError:
    return PromptError("has a single frame: a demo needs the motion, not only its end; give a "
                       "longer video, or a png/jpg to use the frame as the goal image", file=where)


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower()
            for part in re.split(r"(\d+)", path.name)]


class FolderFrames:
    """A folder of images, one per frame, in natural name order (frame_2 before frame_10).

    Files with other suffixes are ignored. Every image must decode and have the first one's
    size. Times are ``i / config.folder_fps_hz``.
    """

    def __init__(self, path: str | Path, config: SamplingConfig = SamplingConfig()) -> None:
        folder = Path(path).expanduser()
        self.name = str(folder)
        self.config = config
        self.files = sorted((p for p in folder.iterdir()
                             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                            key=_natural_key)
        if not self.files:
            raise PromptError(f"folder has no images ({', '.join(IMAGE_SUFFIXES)})",
                              file=self.name)
        if len(self.files) == 1:
            raise single_frame_error(self.name)
        duration_s = (len(self.files) - 1) / config.folder_fps_hz
        check_duration(duration_s, config, self.name)
        self.expected_count = min(len(self.files),
                                  math.floor(duration_s * config.rate_hz + _EPS_S) + 1)

    def digest(self) -> str:
        """SHA-256 over each image's name and bytes, in order."""
        digest = hashlib.sha256()
        for file in self.files:
            digest.update(file.name.encode() + b"\0" + bytes.fromhex(file_digest(file)))
        return digest.hexdigest()

    def __iter__(self) -> Iterator[SampledFrame]:
        sampler, size = RateSampler(self.config.rate_hz), None
        for index, file in enumerate(self.files):
            time_s = index / self.config.folder_fps_hz
            if not sampler.take(time_s):
                continue
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is None:
                raise PromptError("cannot be decoded as an image (corrupt or empty)",
                                  file=str(file))
            check_pixels(bgr.shape[1], bgr.shape[0], self.config, str(file))
            if size is None:
                size = bgr.shape[:2]
            elif bgr.shape[:2] != size:
                raise PromptError(f"is {bgr.shape[1]}x{bgr.shape[0]}, the folder's first image "
                                  f"{size[1]}x{size[0]}: frames of one demo share one size",
                                  file=str(file))
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield SampledFrame(index, time_s, fit_frame(rgb, self.config.max_side_px))


class RecordedFrames:
    """Frames recorded from a camera topic: RGB uint8 (H, W, 3) arrays with capture stamps.

    Args:
        frames: The images, all of one size.
        times_s: Their capture times [s], finite and strictly increasing (any epoch).
        config: Sampling.
        name: What to call the recording in messages.
    """

    def __init__(self, frames: Sequence[np.ndarray], times_s: Sequence[float],
                 config: SamplingConfig = SamplingConfig(), name: str = "camera recording"):
        self.name, self.config = name, config
        if len(frames) != len(times_s):
            raise PromptError(f"{len(frames)} frames but {len(times_s)} stamps", file=name)
        if len(frames) == 0:
            raise PromptError("recording has no frames", file=name)
        if len(frames) == 1:
            raise single_frame_error(name)
        times = np.asarray(times_s, np.float64)
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
            raise PromptError("frame stamps must be finite and strictly increasing",
                              file=name, field="times_s")
        shape = np.shape(frames[0])
        for i, frame in enumerate(frames):
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 \
                    or frame.shape != shape:
                raise PromptError(f"frame {i} is {frame.dtype} {list(frame.shape)}; frames must "
                                  f"be uint8 RGB of one size ({list(shape)})", file=name)
        check_pixels(shape[1], shape[0], config, name)
        self.frames, self.times_s = frames, times - times[0]
        check_duration(float(self.times_s[-1]), config, name)
        self.expected_count = None

    def digest(self) -> str:
        """SHA-256 over the frames' pixels and the stamps."""
        digest = hashlib.sha256(self.times_s.tobytes())
        for frame in self.frames:
            digest.update(np.ascontiguousarray(frame).tobytes())
        return digest.hexdigest()

    def __iter__(self) -> Iterator[SampledFrame]:
        sampler = RateSampler(self.config.rate_hz)
        for index, (frame, time_s) in enumerate(zip(self.frames, self.times_s)):
            if sampler.take(float(time_s)):
                yield SampledFrame(index, float(time_s),
                                   fit_frame(np.asarray(frame), self.config.max_side_px))


def check_demo_path(path: str | Path) -> Path:
    """``path`` as a Path after checking that it is given, exists and is not an empty file."""
    if not str(path):
        raise PromptError("no demo given (a video, or a folder of images)",
                          field="prompt_video")
    file = Path(path).expanduser()
    if not file.exists():
        raise PromptError("does not exist", file=str(file))
    if file.is_file() and file.stat().st_size == 0:
        raise PromptError("file is empty (0 bytes)", file=str(file))
    return file
