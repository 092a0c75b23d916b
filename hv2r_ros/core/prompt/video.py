"""Video files as demo frames (OpenCV / FFmpeg), and ``open_frames`` for any demo path.

``VideoFrames`` reads mp4, avi, mkv, webm and mov; frame times are the container's presentation
times (variable-frame-rate phone videos keep their timing), else ``index / fps``. Problems are
``PromptError``s naming the file: a container that will not open is sniffed for the reason (an
AVI's codec this build cannot decode, an MP4 without its index because the recording was cut,
plain corruption); the header's resolution, duration and frame count are checked before
decoding; a stream that ends well short of its declared frame count is truncated, and that is
raised when iteration ends, before a consumer can finish with part of the demo.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import cv2

from hv2r_ros.core.goal import VIDEO_SUFFIXES, file_digest
from hv2r_ros.core.prompt.frames import (
    FolderFrames, PromptError, RateSampler, SampledFrame, SamplingConfig, check_demo_path,
    check_duration, check_pixels, fit_frame, single_frame_error,
)

__all__ = ["VideoFrames", "open_frames"]

# A header may count a frame or two more than decode (B-frame flush, an encoder's off-by-one);
# a video missing more than this share of its frames was cut short.
_TRUNCATION_SLACK = 0.02


def _mp4_top_boxes(file: Path) -> tuple[list[bytes], bool]:
    """Top-level box types of an MP4/MOV and whether the last box runs past the end."""
    types, size = [], file.stat().st_size
    with file.open("rb") as stream:
        position = 0
        while position + 8 <= size:
            stream.seek(position)
            header = stream.read(16)
            length, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if length == 1 and len(header) == 16:
                length = int.from_bytes(header[8:16], "big")
            elif length == 0:
                length = size - position
            if length < 8:
                return types, True
            types.append(kind)
            position += length
        return types, position > size


def _sniff(file: Path) -> str:
    """Why a file that OpenCV cannot open fails, guessed from its container bytes."""
    with file.open("rb") as stream:
        head = stream.read(4096)
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        # strf chunk of the video stream: 'strf', size, BITMAPINFOHEADER (biCompression at +16)
        at = head.find(b"strf")
        if at >= 0 and len(head) >= at + 28:
            codec = head[at + 24:at + 28].decode("latin-1")
            return (f"an AVI with video codec {codec!r}, which this OpenCV build (FFmpeg) "
                    "cannot open: an unsupported codec or a damaged file; re-encode it, e.g. "
                    "`ffmpeg -i IN -c:v mpeg4 OUT.mp4`")
    if head[4:8] == b"ftyp":
        boxes, cut = _mp4_top_boxes(file)
        if cut or b"moov" not in boxes:
            return ("an MP4/MOV cut short: no complete index ('moov' box), as when a recording "
                    "stops before the file is finalised; record it again, or try "
                    "`untrunc` with a good file from the same camera")
    return ("corrupt or truncated, or a codec this OpenCV build (FFmpeg) cannot decode; check "
            "it with `ffprobe FILE` and re-encode, e.g. `ffmpeg -i IN -c:v mpeg4 OUT.mp4`")


class VideoFrames:
    """Frames of a video file (``VIDEO_SUFFIXES``) through OpenCV.

    Args:
        path: The video.
        config: Sampling.

    Attributes:
        name: The file, for messages.
        expected_count: Sampled frames expected from the header's duration (progress bars).

    Raises:
        PromptError: Missing, empty, unopenable, too large, too long or one frame (from the
            header; a truncated stream is found while iterating).
    """

    def __init__(self, path: str | Path, config: SamplingConfig = SamplingConfig()) -> None:
        self.file = check_demo_path(path)
        self.name = str(self.file)
        self.config = config
        capture = cv2.VideoCapture(self.name)
        try:
            if not capture.isOpened():
                raise PromptError(f"cannot be opened as a video: {_sniff(self.file)}",
                                  file=self.name)
            width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            fps = capture.get(cv2.CAP_PROP_FPS)
            self.declared_frames = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
        finally:
            capture.release()
        check_pixels(width, height, config, self.name)
        self.fps_hz = fps if math.isfinite(fps) and 0 < fps < 1000 else None
        duration_s = self.declared_frames / self.fps_hz if self.fps_hz else 0.0
        check_duration(duration_s, config, self.name)
        if self.declared_frames == 1:
            raise single_frame_error(self.name)
        self.expected_count = max(1, math.ceil(duration_s * config.rate_hz)) \
            if duration_s else None

    def digest(self) -> str:
        """SHA-256 of the file's bytes."""
        return file_digest(self.file)

    def __iter__(self) -> Iterator[SampledFrame]:
        capture = cv2.VideoCapture(self.name)
        sampler = RateSampler(self.config.rate_hz)
        decoded, first_ms, last_s = 0, None, -math.inf
        try:
            while capture.grab():
                # Presentation time where the container has one (variable frame rate); where it
                # has none, or one not after the previous frame's, one frame period later.
                ms = capture.get(cv2.CAP_PROP_POS_MSEC)
                if first_ms is None:
                    first_ms = ms if math.isfinite(ms) else 0.0
                time_s = (ms - first_ms) / 1e3 if math.isfinite(ms) else math.nan
                if not time_s > last_s:
                    if decoded == 0:
                        time_s = 0.0
                    elif self.fps_hz:
                        time_s = last_s + 1.0 / self.fps_hz
                    else:
                        raise PromptError(f"frame {decoded} has no usable timestamp and the "
                                          "video declares no frame rate; re-encode it with one",
                                          file=self.name)
                check_duration(time_s, self.config, self.name)
                last_s = time_s
                if sampler.take(time_s):
                    ok, bgr = capture.retrieve()
                    if not ok or bgr is None:
                        raise PromptError(f"frame {decoded} cannot be decoded (corrupt "
                                          "stream)", file=self.name)
                    check_pixels(bgr.shape[1], bgr.shape[0], self.config, self.name)
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    yield SampledFrame(decoded, time_s, fit_frame(rgb, self.config.max_side_px))
                decoded += 1
        finally:
            capture.release()
        self._check_end(decoded)

    def _check_end(self, decoded: int) -> None:
        if decoded == 0:
            raise PromptError("video has no decodable frames (an empty recording, or a codec "
                              "this OpenCV build cannot decode)", file=self.name)
        if decoded == 1:
            raise single_frame_error(self.name)
        declared = self.declared_frames
        if declared and decoded < declared - max(2, _TRUNCATION_SLACK * declared):
            raise PromptError(f"truncated: decoded {decoded} of the {declared} frames its "
                              "header declares (the file was cut short or is damaged)",
                              file=self.name)


def open_frames(path: str | Path, config: SamplingConfig = SamplingConfig()):
    """The frame source of a video file or an image folder.

    Raises:
        PromptError: The path is missing or empty, of an unsupported type, or unusable as
            ``VideoFrames`` / ``FolderFrames`` say.
    """
    file = check_demo_path(path)
    if file.is_dir():
        return FolderFrames(file, config)
    if file.suffix.lower() not in VIDEO_SUFFIXES:
        raise PromptError("not a demo video or image folder", file=str(file),
                          value=file.suffix, choices=VIDEO_SUFFIXES)
    return VideoFrames(file, config)
