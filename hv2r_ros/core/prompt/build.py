"""Demo -> task spec: sample frames, embed them in batches, find keyframes, cache the result.

``build_task_spec`` looks the demo up in the cache first (key: demo content digest, encoder
digest, settings; see ``spec``); on a miss it streams the sampled frames through the encoder
``batch_size`` at a time, keeping only a JPEG thumbnail of each frame (a long demo never holds
all its frames in memory), finds the keyframes and stores the spec. A goal image (png/jpg) is a
one-subgoal spec. Nothing is cached unless the whole demo decoded and embedded cleanly.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Iterable, Protocol

import cv2
import numpy as np

from hv2r_ros.core.goal import IMAGE_SUFFIXES, file_digest, load_goal_frame
from hv2r_ros.core.prompt import spec as cache
from hv2r_ros.core.prompt.frames import (
    PromptError, SampledFrame, SamplingConfig, check_demo_path,
)
from hv2r_ros.core.prompt.keyframes import KeyframeConfig, find_keyframes
from hv2r_ros.core.prompt.spec import TaskSpec
from hv2r_ros.core.prompt.video import open_frames

__all__ = ["BuildReport", "build_task_spec", "encoder_digest", "embed_frames"]

THUMBNAIL_SIDE_PX = 320
_JPEG_QUALITY = 90


class FrameSource(Protocol):
    """What ``video.VideoFrames``, ``frames.FolderFrames`` and ``RecordedFrames`` provide."""

    name: str
    expected_count: int | None

    def digest(self) -> str: ...

    def __iter__(self) -> Iterable[SampledFrame]: ...


class EmbeddingEncoder(Protocol):
    """``runtime.Encoder``: N uint8 RGB images -> float32 (N, D); ``path`` its .onnx file."""

    path: Path

    def embed(self, images) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """How a spec was obtained.

    Attributes:
        cached: Loaded from the cache (nothing decoded or embedded).
        seconds: Wall time of the whole call [s].
        cache_file: The cache file read or written, or None without a cache.
    """

    cached: bool
    seconds: float
    cache_file: Path | None


def encoder_digest(encoder: EmbeddingEncoder) -> str:
    """SHA-256 of the encoder's .onnx file and the ``.onnx.data`` beside it."""
    path = Path(encoder.path)
    return file_digest(path, path.with_name(path.name + ".data"))


def _thumbnail(rgb: np.ndarray, size: tuple[int, int] | None) -> tuple[bytes, tuple[int, int]]:
    if size is None:
        height, width = rgb.shape[:2]
        scale = min(1.0, THUMBNAIL_SIDE_PX / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) \
        if (rgb.shape[1], rgb.shape[0]) != size else rgb
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding of a thumbnail failed")
    return jpeg.tobytes(), size


def _decode_thumbnail(jpeg: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _checked_embed(encoder: EmbeddingEncoder, images: list[np.ndarray], first: int,
                   name: str) -> np.ndarray:
    out = np.asarray(encoder.embed(images), np.float32)
    if out.ndim != 2 or out.shape[0] != len(images):
        raise ValueError(f"encoder returned shape {out.shape} for {len(images)} images")
    bad = np.flatnonzero(~np.all(np.isfinite(out), axis=1))
    if bad.size:
        raise PromptError(f"the encoder's embedding of sample {first + int(bad[0])} is not "
                          "finite (a broken model: check it with `hv2r check`)", file=name)
    return out


def embed_frames(source: Iterable[SampledFrame], encoder: EmbeddingEncoder, *,
                 name: str = "demo", batch_size: int = 16,
                 on_progress: Callable[[int], None] | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[bytes]]:
    """Embed every sampled frame, ``batch_size`` images per encoder call.

    Returns:
        ``(embeddings (N, D) float32, times_s (N,), frame_indices (N,), thumbnails)``:
        thumbnails are JPEG bytes of each frame, longer side at most ``THUMBNAIL_SIDE_PX``.

    Raises:
        PromptError: From the source, or a non-finite embedding.
    """
    batch: list[np.ndarray] = []
    parts, times, indices, thumbs, size = [], [], [], [], None
    for frame in source:
        batch.append(frame.rgb)
        times.append(frame.time_s)
        indices.append(frame.index)
        jpeg, size = _thumbnail(frame.rgb, size)
        thumbs.append(jpeg)
        if len(batch) == batch_size:
            parts.append(_checked_embed(encoder, batch, len(times) - len(batch), name))
            batch = []
            if on_progress is not None:
                on_progress(len(times))
    if batch:
        parts.append(_checked_embed(encoder, batch, len(times) - len(batch), name))
        if on_progress is not None:
            on_progress(len(times))
    embeddings = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    return embeddings, np.array(times, np.float64), np.array(indices, np.int64), thumbs


def _image_spec(file: Path, encoder: EmbeddingEncoder, digest: str,
                settings: dict) -> TaskSpec:
    rgb, _ = load_goal_frame(file)
    embedding = _checked_embed(encoder, [rgb], 0, str(file))
    frame = _decode_thumbnail(_thumbnail(rgb, None)[0])
    return TaskSpec(subgoal_embeddings=embedding, subgoal_frames=frame[None],
                    subgoal_times_s=[0.0], subgoal_indices=[0], start_embedding=embedding[0],
                    embeddings=embedding, sample_times_s=[0.0], sample_frame_indices=[0],
                    source=str(file), source_digest=digest,
                    encoder_digest=settings["encoder_digest"], settings=settings["build"])


def _demo_spec(source: FrameSource, encoder: EmbeddingEncoder, digest: str, settings: dict,
               sampling: SamplingConfig, keyframes: KeyframeConfig, batch_size: int,
               on_progress: Callable[[int, int | None], None] | None) -> TaskSpec:
    progress = None if on_progress is None else \
        (lambda done: on_progress(done, source.expected_count))
    embeddings, times, indices, thumbs = embed_frames(
        source, encoder, name=source.name, batch_size=batch_size, on_progress=progress)
    if len(times) < 2:
        raise PromptError(f"only {len(times)} frame sampled at {sampling.rate_hz:g} Hz; raise "
                          "the sampling rate (sampling.rate_hz) or give a longer demo",
                          file=source.name)
    found = find_keyframes(embeddings, times, keyframes)
    start = embeddings[found.start_run[0]:found.start_run[1] + 1].mean(axis=0) \
        if found.start_run is not None else embeddings[0]
    frames = np.stack([_decode_thumbnail(thumbs[i]) for i in found.indices])
    return TaskSpec(subgoal_embeddings=found.embeddings, subgoal_frames=frames,
                    subgoal_times_s=found.times_s, subgoal_indices=found.indices,
                    start_embedding=start, embeddings=embeddings, sample_times_s=times,
                    sample_frame_indices=indices, source=source.name, source_digest=digest,
                    encoder_digest=settings["encoder_digest"],
                    ends_settled=found.ends_settled, settings=settings["build"])


def build_task_spec(source: str | Path | FrameSource, encoder: EmbeddingEncoder, *,
                    sampling: SamplingConfig = SamplingConfig(),
                    keyframes: KeyframeConfig = KeyframeConfig(),
                    cache_dir: str | Path | None = None, encoder_hash: str | None = None,
                    batch_size: int = 16,
                    on_progress: Callable[[int, int | None], None] | None = None,
                    ) -> tuple[TaskSpec, BuildReport]:
    """The task spec of a demo, from the cache when it has been built before.

    Args:
        source: A video file, an image folder, a goal image (png/jpg: a one-subgoal spec), or
            a ``frames.RecordedFrames``.
        encoder: The encoder (``runtime.Encoder``).
        sampling, keyframes: Settings; part of the cache key.
        cache_dir: Folder of cached specs; None: no cache.
        encoder_hash: Digest identifying the encoder (default ``encoder_digest(encoder)``).
        batch_size: Images per encoder call.
        on_progress: Called after each batch with (samples done, samples expected or None).

    Raises:
        PromptError: The demo is unusable (see ``frames``) or embeds to non-finite values;
            the message names the file and the problem.
    """
    started = time.perf_counter()
    digest_of_encoder = encoder_hash or encoder_digest(encoder)
    build = {"sampling": dataclasses.asdict(sampling),
             "keyframes": dataclasses.asdict(keyframes), "thumbnail_side_px": THUMBNAIL_SIDE_PX}
    settings = {"encoder_digest": digest_of_encoder, "build": build}
    image = None
    if isinstance(source, (str, Path)):
        path = check_demo_path(source)
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            image, source_digest = path, file_digest(path)
        else:
            source = open_frames(path, sampling)
    if image is None:
        source_digest = source.digest()
    key = cache.cache_key(source_digest, digest_of_encoder, build)
    if cache_dir is not None:
        hit = cache.load_cached(cache_dir, key)
        if hit is not None:
            return hit, BuildReport(True, time.perf_counter() - started,
                                    Path(cache_dir) / f"{key}.npz")
    if image is not None:
        spec = _image_spec(image, encoder, source_digest, settings)
    else:
        spec = _demo_spec(source, encoder, source_digest, settings, sampling, keyframes,
                          batch_size, on_progress)
    written = cache.store(cache_dir, key, spec) if cache_dir is not None else None
    return spec, BuildReport(False, time.perf_counter() - started, written)
