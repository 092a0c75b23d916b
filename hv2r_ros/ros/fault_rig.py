"""The stack's nodes as separate processes, as on a robot: the rig of the reliability tests and
of ``hv2r soak`` (``hv2r_ros.ros.stack_monitor`` records what reaches the robot).

``ProcessStack`` starts each node with ``python -m <module> --ros-args ...`` in its own process
group (so a signal reaches the node and nothing else), with the stack's parameter files
(``config/stack.yaml``, ``config/params/<robot>.yaml``) and the node's own values written to a
last file, in one ROS domain with LOCALHOST discovery and the shipped Fast DDS profile, and
``ROS_HOME`` inside the rig's folder (logs, the e-stop latch). Each process logs to
``<folder>/<name>.log``. ``close`` ends every process (SIGINT, then SIGKILL after a grace
period) and reports any process left.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from hv2r_ros.ros.stack_plan import fastdds_environment, robot_params_file, stack_file

__all__ = ["NodeProcess", "ProcessStack", "wait_for"]

NODE_MODULES = {"fault_relay": "hv2r_ros.ros.fault_relay"}
_PROCESS_KEYS = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE",
                 "FASTDDS_DEFAULT_PROFILES_FILE")
STOP_GRACE_S = 5.0


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str = "condition",
             poll_s: float = 0.005) -> Any:
    """Poll ``predicate`` until truthy (returned); TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(poll_s)
    return value


@dataclasses.dataclass
class NodeProcess:
    """One node process: what started it, and its ``Popen``."""

    name: str
    command: list[str]
    log_path: Path
    popen: subprocess.Popen | None = None
    starts: int = 0

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        """The process's output so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class ProcessStack:
    """Node processes of one rig (module docstring).

    Args:
        folder: Logs, parameter files and ``ROS_HOME`` go here.
        domain_id: ``ROS_DOMAIN_ID`` of every process (and of a ``Monitor`` built after).
        robot: Robot profile name (selects ``config/params/<robot>.yaml``).
        stack_params: Pass the stack's parameter files to every node.
    """

    def __init__(self, folder: Path, domain_id: int, robot: str = "panda", *,
                 stack_params: bool = True) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
            self.env.pop(name, None)
        self.env.update(fastdds_environment({}), ROS_DOMAIN_ID=str(domain_id),
                        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1",
                        ROS_HOME=str(self.folder / "ros_home"))
        self.domain_id = domain_id
        files = [stack_file(), robot_params_file(robot)] if stack_params else []
        self.param_files = [str(f) for f in files if f is not None]
        self.nodes: dict[str, NodeProcess] = {}
        self._saved_env: dict[str, str | None] = {}

    def use_in_this_process(self) -> None:
        """Set this process's ROS environment to the rig's (before building a ``Monitor``);
        ``close`` puts the previous values back."""
        for key in _PROCESS_KEYS:
            self._saved_env.setdefault(key, os.environ.get(key))
            if key in self.env:
                os.environ[key] = self.env[key]
            else:
                os.environ.pop(key, None)

    def add(self, name: str, executable: str, params: dict | None = None,
            remaps: dict | None = None, *, extra_files: tuple[str, ...] = (),
            node_name: str = "", start: bool = True) -> NodeProcess:
        """Define process ``name`` running ``executable`` (a module under hv2r_ros.nodes, or
        ``fault_relay``) as node ``node_name`` (default ``name``), and start it."""
        module = NODE_MODULES.get(executable, f"hv2r_ros.nodes.{executable}")
        command = [sys.executable, "-m", module, "--ros-args", "-r",
                   f"__node:={node_name or name}"]
        for path in (*self.param_files, *extra_files):
            command += ["--params-file", str(path)]
        if params:
            path = self.folder / f"{name}.params.yaml"
            path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
            command += ["--params-file", str(path)]
        for source, target in (remaps or {}).items():
            command += ["-r", f"{source}:={target}"]
        node = NodeProcess(name, command, self.folder / f"{name}.log")
        self.nodes[name] = node
        if start:
            self.start(name)
        return node

    def start(self, name: str) -> NodeProcess:
        """(Re)start node ``name``'s process; its log is appended to."""
        node = self.nodes[name]
        if node.alive:
            raise RuntimeError(f"{name} is running")
        with node.log_path.open("a") as log:
            log.write(f"--- start {node.starts + 1} at {time.time():.6f}\n")
            log.flush()
            node.popen = subprocess.Popen(node.command, env=self.env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        node.starts += 1
        return node

    def signal(self, name: str, sig: int) -> float:
        """Send ``sig`` to node ``name``'s process group; the time just before [s]."""
        node = self.nodes[name]
        now = time.time()
        os.killpg(node.popen.pid, sig)
        return now

    def kill(self, name: str) -> float:
        """SIGKILL node ``name`` and reap it; the time of the signal [s]."""
        sent = self.signal(name, signal.SIGKILL)
        self.nodes[name].popen.wait(timeout=STOP_GRACE_S)
        return sent

    def stop(self, name: str, grace_s: float = STOP_GRACE_S) -> bool:
        """SIGINT (SIGCONT first, in case it is stopped), then SIGKILL after ``grace_s``.
        True when it exited by itself."""
        node = self.nodes[name]
        if node.popen is None or node.popen.poll() is not None:
            return True
        for sig in (signal.SIGCONT, signal.SIGINT):
            try:
                os.killpg(node.popen.pid, sig)
            except ProcessLookupError:
                return True
        try:
            node.popen.wait(timeout=grace_s)
            return True
        except subprocess.TimeoutExpired:
            os.killpg(node.popen.pid, signal.SIGKILL)
            node.popen.wait(timeout=grace_s)
            return False

    def close(self) -> list[str]:
        """Stop every node (in reverse order); the names that had to be killed, and any
        process of a node's group still present afterwards (marked ``left:``)."""
        forced = [name for name in reversed(list(self.nodes)) if not self.stop(name)]
        for name, node in self.nodes.items():
            if node.popen is not None and _group_alive(node.popen.pid):
                forced.append(f"left: {name}")
                os.killpg(node.popen.pid, signal.SIGKILL)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        return forced


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie member still counts until reaped; the group leader was reaped by wait().
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False
