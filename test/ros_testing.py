"""Helpers shared by the rclpy node tests (imported as ``from ros_testing import ...``).

Each test gets its own ROS domain: ``next_domain_id`` hands out ids 100-199 from one counter per
test process, offset by the pid, so the tests of one run never share a domain and concurrent runs
on one machine rarely do.
"""

import itertools
import os
import time
from pathlib import Path

_domains = itertools.count()


def next_domain_id() -> int:
    """A ROS_DOMAIN_ID in 100-199 not yet used by this test process (100 per process)."""
    return 100 + (os.getpid() + next(_domains)) % 100


def use_fresh_domain(env=None) -> int:
    """Set a fresh ROS_DOMAIN_ID and LOCALHOST discovery in ``env`` (default: os.environ)."""
    env = os.environ if env is None else env
    domain = next_domain_id()
    env["ROS_DOMAIN_ID"] = str(domain)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return domain


def wait_for(predicate, timeout_s, what="condition", poll_s=0.002):
    """Poll ``predicate`` until true; AssertionError naming ``what`` after ``timeout_s`` [s]."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def processes_mentioning(marker: str) -> list[int]:
    """Pids of the processes whose command line contains ``marker`` (nothing left behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found
