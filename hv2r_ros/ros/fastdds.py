"""Fast DDS transport facts the stack reports: the shared-memory segment a process mapped.

The shipped profile (config/fastdds_shm.xml, set through FASTDDS_DEFAULT_PROFILES_FILE) gives a
16 MiB segment; Fast DDS's default is 0.5 MiB, smaller than one 640x480 RGB image.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shared_memory_segment_bytes"]


def shared_memory_segment_bytes(pid: int | None = None) -> int | None:
    """Size of the largest Fast DDS shared-memory segment process ``pid`` (default: this one)
    has mapped [bytes]: about 16 MiB with config/fastdds_shm.xml, 0.5 MiB without. None when
    it maps none (another transport or RMW) or there is no /proc (not Linux)."""
    sizes = []
    try:
        with open(f"/proc/{pid or os.getpid()}/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "/dev/shm/fastdds_" in line}
    except OSError:
        return None
    for path in paths:
        if not Path(path).name.startswith("fastdds_port"):  # discovery mailboxes, not data
            try:
                sizes.append(os.stat(path).st_size)
            except OSError:
                pass
    return max(sizes, default=None)
