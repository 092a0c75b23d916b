"""The task goal from a prompt file: a goal image, or the last frame of a human demo video.

The last decodable frame of a demo is its settled end state, which is what the goal-conditioned
policy is asked to reach. This is the single-image path: one file, one goal embedding. The whole
video prompt (keyframes, subgoals, progress tracking, the on-disk cache) is ``core.prompt``,
which reads goal images with ``load_goal_frame`` and whose errors are ``GoalError``s.

``load_goal_frame`` decodes the file; ``GoalProvider`` embeds the frame with the encoder and
caches the result by content: the SHA-256 of the prompt file's bytes together with that of the
encoder file, so re-using a prompt (or swapping back to an earlier one) does not decode or embed
again, while a different encoder never reuses a stale embedding.
"""

from __future__ import annotations

import collections
import hashlib
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.status import Status

__all__ = [
    "GoalError", "GoalProvider", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "file_digest",
    "load_goal_frame",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov")
# Frames read from the end after seeking: seeking in long-GOP codecs lands a little early or
# late, and a few trailing frames may not decode; reading a short tail covers both.
_SEEK_TAIL = 30
_CHUNK = 1 << 20


class GoalError(ConfigError):
    """A prompt file is missing, empty, of an unsupported kind or cannot be decoded."""


class EmbeddingEncoder(Protocol):
    """What ``GoalProvider`` needs of ``hv2r_ros.core.models.runtime.Encoder``."""

    path: Path

    def embed(self, images) -> np.ndarray: ...


def file_digest(*paths: str | Path) -> str:
    """Hex SHA-256 over the bytes of ``paths`` in order (a missing path is skipped)."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        if not path.is_file():
            continue
        with path.open("rb") as stream:
            while block := stream.read(_CHUNK):
                digest.update(block)
    return digest.hexdigest()


def _check_file(path: str | Path) -> Path:
    if not str(path):
        raise GoalError("no prompt file given (an image or a video)", field="prompt_video")
    file = Path(path).expanduser()
    if not file.exists():
        raise GoalError("prompt file does not exist", file=str(file))
    if not file.is_file():
        raise GoalError("prompt path is not a file", file=str(file))
    if file.stat().st_size == 0:
        raise GoalError("prompt file is empty (0 bytes)", file=str(file))
    suffix = file.suffix.lower()
    if suffix not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
        raise GoalError("unsupported prompt file type", file=str(file), value=suffix,
                        choices=IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    return file


def _read_to_end(capture: cv2.VideoCapture) -> tuple[np.ndarray | None, int]:
    last, read = None, 0
    while True:
        ok, frame = capture.read()
        if not ok or frame is None:
            return last, read
        last, read = frame, read + 1


def _last_video_frame(file: Path) -> tuple[np.ndarray, str]:
    capture = cv2.VideoCapture(str(file))
    try:
        if not capture.isOpened():
            raise GoalError("cannot be opened as a video (corrupt, or a codec this OpenCV "
                            "build lacks)", file=str(file))
        count = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
        start = max(count - _SEEK_TAIL, 0)
        if start:
            capture.set(cv2.CAP_PROP_POS_FRAMES, start)
        bgr, read = _read_to_end(capture)
        if bgr is None and start:  # the seek failed: decode from the start instead
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            start = 0
            bgr, read = _read_to_end(capture)
    finally:
        capture.release()
    if bgr is None:
        raise GoalError("video has no decodable frames", file=str(file))
    return bgr, f"last frame (#{start + read - 1}) of {file.name}"


def load_goal_frame(path: str | Path) -> tuple[np.ndarray, str]:
    """Decode the goal frame of a prompt file.

    Args:
        path: An image (``IMAGE_SUFFIXES``) or a video (``VIDEO_SUFFIXES``); the suffix
            decides which.

    Returns:
        ``(rgb, description)``: rgb is a C-contiguous uint8 (H, W, 3) array (the image, or the
        video's last decodable frame); description says which frame of which file it is.

    Raises:
        GoalError: The path is missing, not a file, empty, of an unsupported type, cannot be
            decoded, or is a video without a decodable frame; the message names the file.
    """
    file = _check_file(path)
    if file.suffix.lower() in IMAGE_SUFFIXES:
        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise GoalError("cannot be decoded as an image (corrupt or not an image)",
                            file=str(file))
        description = f"image {file.name}"
    else:
        bgr, description = _last_video_frame(file)
    height, width = bgr.shape[:2]
    return (np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)),
            f"{description} ({width}x{height})")


class GoalProvider:
    """Prompt file -> goal embedding, cached by content hash.

    Args:
        encoder: The encoder (``runtime.Encoder``): ``embed`` of N uint8 RGB images gives
            float32 (N, D); ``path`` is its .onnx file.
        encoder_digest: Content hash identifying the encoder; default the SHA-256 of its .onnx
            file and the ``.onnx.data`` beside it.
        cache_size: Prompts kept (least recently used dropped first).

    Attributes:
        embed_calls: Number of times the encoder was run (cache hits do not count).
    """

    def __init__(self, encoder: EmbeddingEncoder, *, encoder_digest: str | None = None,
                 cache_size: int = 16) -> None:
        self.encoder = encoder
        path = Path(encoder.path)
        self.encoder_digest = encoder_digest or file_digest(
            path, path.with_name(path.name + ".data"))
        self.cache_size = max(int(cache_size), 1)
        self._cache: collections.OrderedDict[tuple[str, str],
                                             tuple[np.ndarray, np.ndarray, str]] = \
            collections.OrderedDict()
        self.embed_calls = 0
        self.last_description = ""

    def set_source(self, path: str | Path) -> tuple[np.ndarray | None, np.ndarray, Status]:
        """Load, embed and cache the goal of one prompt file.

        Returns:
            ``(embedding, frame, status)``: float32 (D,) and uint8 (H, W, 3) RGB with
            ``Status.OK``; or ``(None, frame, Status.HOLD_NON_FINITE)`` when the encoder's
            output is not finite (not cached). Returned arrays are read-only views of the
            cached ones.

        Raises:
            GoalError: As ``load_goal_frame``.
        """
        file = _check_file(path)
        key = (file_digest(file), self.encoder_digest)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self.last_description = hit[2]
            return hit[0], hit[1], Status.OK
        frame, description = load_goal_frame(file)
        self.embed_calls += 1
        embedding = np.asarray(self.encoder.embed([frame]), dtype=np.float32)
        if embedding.ndim != 2 or embedding.shape[0] != 1:
            raise ValueError(f"encoder returned shape {embedding.shape}, expected (1, D)")
        embedding = embedding[0].copy()
        if not np.all(np.isfinite(embedding)):
            return None, frame, Status.HOLD_NON_FINITE
        embedding.flags.writeable = False
        frame.flags.writeable = False
        self._cache[key] = (embedding, frame, description)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        self.last_description = description
        return embedding, frame, Status.OK
