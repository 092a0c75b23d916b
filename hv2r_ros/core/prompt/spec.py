"""The task spec a demo becomes, and its on-disk cache keyed by content hash.

A ``TaskSpec`` holds what the stack conditions on and tracks: the goal and subgoal embeddings
(encoder space), the subgoal frames (for people: contact sheet, goal image), their times, the
whole sampled embedding trajectory of the demo (for calibration and plots) and the digests that
say which demo bytes and which encoder produced it.

The cache stores one ``.npz`` per spec (arrays plus a JSON header, no pickles) named by
``cache_key``: the SHA-256 over the demo's content digest, the encoder's digest and the
sampling / keyframe settings, so re-using a prompt skips decoding and embedding, while another
encoder or other settings never reuse a stale spec. Writes are atomic (temporary file, then
rename); an unreadable or mismatching cache file counts as a miss and is rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "TaskSpec", "cache_key", "default_cache_dir", "load_cached", "store"]

FORMAT = "hv2r.task_spec/1"
logger = logging.getLogger("hv2r.prompt")

_ARRAYS = {  # name -> (dtype, dimensions)
    "subgoal_embeddings": (np.float32, 2), "subgoal_frames": (np.uint8, 4),
    "subgoal_times_s": (np.float64, 1), "subgoal_indices": (np.int64, 1),
    "start_embedding": (np.float32, 1), "embeddings": (np.float32, 2),
    "sample_times_s": (np.float64, 1), "sample_frame_indices": (np.int64, 1),
}


@dataclasses.dataclass(frozen=True, eq=False)
class TaskSpec:
    """A demo as a task: K subgoals in order, the last one the goal.

    Attributes:
        subgoal_embeddings: (K, D) float32, K >= 1; the last row is the goal.
        subgoal_frames: (K, h, w, 3) uint8 RGB, the representative frame of each subgoal.
        subgoal_times_s: (K,) when the demo settled into each subgoal [s from its start].
        subgoal_indices: (K,) which sample (row of ``embeddings``) represents each subgoal.
        start_embedding: (D,) float32, the demo's initial state.
        embeddings: (N, D) float32, every sampled frame's embedding.
        sample_times_s: (N,) the samples' times [s].
        sample_frame_indices: (N,) the samples' frame numbers in the source.
        source: The demo's name (file or folder path, or a recording's name).
        source_digest: SHA-256 of the demo's content.
        encoder_digest: SHA-256 identifying the encoder.
        ends_settled: False when the demo ends in motion (its goal is then its last frame).
        settings: Sampling and keyframe settings it was built with.
    """

    subgoal_embeddings: np.ndarray
    subgoal_frames: np.ndarray
    subgoal_times_s: np.ndarray
    subgoal_indices: np.ndarray
    start_embedding: np.ndarray
    embeddings: np.ndarray
    sample_times_s: np.ndarray
    sample_frame_indices: np.ndarray
    source: str
    source_digest: str
    encoder_digest: str
    ends_settled: bool = True
    settings: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, (dtype, ndim) in _ARRAYS.items():
            value = np.array(getattr(self, name), dtype=dtype)  # a private, read-only copy
            if value.ndim != ndim:
                raise ValueError(f"TaskSpec.{name} must have {ndim} dimensions, got "
                                 f"{value.shape}")
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        k, d = self.subgoal_embeddings.shape
        n = self.embeddings.shape[0]
        if k < 1 or self.subgoal_frames.shape[0] != k or self.subgoal_times_s.shape != (k,) \
                or self.subgoal_indices.shape != (k,) or self.start_embedding.shape != (d,) \
                or self.embeddings.shape[1] != d or self.sample_times_s.shape != (n,) \
                or self.sample_frame_indices.shape != (n,) or self.subgoal_frames.shape[3] != 3:
            raise ValueError("TaskSpec arrays disagree in size: "
                             + ", ".join(f"{name} {getattr(self, name).shape}" for name in _ARRAYS))
        if not (np.all(np.isfinite(self.subgoal_embeddings)) and
                np.all(np.isfinite(self.embeddings))):
            raise ValueError("TaskSpec embeddings must be finite")

    @property
    def goal_embedding(self) -> np.ndarray:
        """(D,) float32, the final settled state."""
        return self.subgoal_embeddings[-1]

    @property
    def goal_frame(self) -> np.ndarray:
        """(h, w, 3) uint8 RGB, the goal's representative frame."""
        return self.subgoal_frames[-1]

    @property
    def subgoal_count(self) -> int:
        """K."""
        return int(self.subgoal_embeddings.shape[0])

    @property
    def duration_s(self) -> float:
        """Time of the last sample [s]."""
        return float(self.sample_times_s[-1])

    def to_bytes(self) -> bytes:
        """The spec as ``.npz`` bytes (arrays and a JSON header; no pickled objects)."""
        header = {"format": FORMAT, "source": self.source, "source_digest": self.source_digest,
                  "encoder_digest": self.encoder_digest, "ends_settled": self.ends_settled,
                  "settings": self.settings}
        buffer = io.BytesIO()
        np.savez(buffer, header=np.array(json.dumps(header)),
                 **{name: getattr(self, name) for name in _ARRAYS})
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TaskSpec:
        """Inverse of ``to_bytes``.

        Raises:
            ValueError: Not a task spec of this format, or arrays that disagree.
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                header = json.loads(str(archive["header"]))
                arrays = {name: archive[name] for name in _ARRAYS}
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"not a readable task spec ({exc})") from exc
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT}")
        return cls(**arrays, source=header["source"], source_digest=header["source_digest"],
                   encoder_digest=header["encoder_digest"],
                   ends_settled=bool(header["ends_settled"]), settings=header["settings"])


def cache_key(source_digest: str, encoder_digest: str, settings: dict[str, Any]) -> str:
    """SHA-256 naming a spec in the cache: demo content, encoder and settings."""
    text = json.dumps([FORMAT, source_digest, encoder_digest, settings], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/hv2r/prompts``, by default ``~/.cache/hv2r/prompts``."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "hv2r" / "prompts"


def load_cached(cache_dir: str | Path, key: str) -> TaskSpec | None:
    """The cached spec under ``key``, or None on a miss (absent, unreadable, or recorded
    under another key: a copied or damaged file is rebuilt, never trusted)."""
    path = Path(cache_dir) / f"{key}.npz"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("prompt cache %s unreadable (%s): rebuilding", path, exc)
        return None
    try:
        spec = TaskSpec.from_bytes(data)
    except (ValueError, TypeError, KeyError) as exc:
        logger.warning("prompt cache %s is damaged (%s): rebuilding", path, exc)
        return None
    if cache_key(spec.source_digest, spec.encoder_digest, spec.settings) != key:
        logger.warning("prompt cache %s does not match its key: rebuilding", path)
        return None
    return spec


def store(cache_dir: str | Path, key: str, spec: TaskSpec) -> Path:
    """Write ``spec`` under ``key`` atomically; returns the file."""
    directory = Path(cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.npz"
    partial = directory / f".{key}.{os.getpid()}.partial"
    partial.write_bytes(spec.to_bytes())
    os.replace(partial, path)
    return path
