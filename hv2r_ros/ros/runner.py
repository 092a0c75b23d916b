"""The whole stack in one process, one executor per node (`hv2r run`, tests, demos).

``build_stack`` asks ``stack_plan.plan_stack`` for the nodes and their parameter files (the
plan the launch files start as separate processes), and constructs each node class with
``--ros-args -r __node:=<name> --params-file ...`` as its own command-line arguments, so rcl
parses the files exactly as for ``ros2 run`` (``/**`` wildcards, later files winning). A
parameter set in a file that the node does not declare is an error (a typo would otherwise be
ignored). Lifecycle nodes with ``enable_autostart`` are configured and activated by ``start``.

Executors (``executors``): ``per_node`` (default) gives every node its own executor on its own
thread: a SingleThreadedExecutor, or a MultiThreadedExecutor with one thread per callback group
for a node that uses several (the prompt node: progress tracking beside re-prompting).
``shared`` puts every node on one MultiThreadedExecutor, as before. rclpy rebuilds an
executor's wait set on every spin and a MultiThreadedExecutor hands each callback to a thread
pool: over seven nodes on two cores that cost about twice the CPU per callback, and the 100 Hz
command output lost ticks (docs/performance.md has the figures).
Nodes named in ``separate`` (executables, e.g. the cameras, or ``synthetic_robot``) run as child
processes with the same parameter files, as the launch files start them; ``shutdown``
interrupts them.

``Stack.stop`` ends a run in this order:

1. hold: every active lifecycle node is deactivated (the safety filter publishes
   ``HOLD requested``), so the command output stops following the policy and brakes to rest
   within the acceleration limits. Once at rest and the robot has caught up
   (``HOLD_SETTLE_S``), the output is re-seeded from the measured state and that is its
   final command: the last command equals the measured state.
2. stop publishing: every timer of every node is cancelled.
3. the executors, the nodes, the child processes and (when the stack created it) the rclpy
   context shut down.

Transitions and the final command run inside the node's own callback group (a guard
condition), never beside its callbacks on another thread.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import rclpy
import yaml
from rclpy.context import Context
from rclpy.executors import (
    Executor, ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor)
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from hv2r_ros.ros.stack_plan import (
    OUTPUT_EXECUTABLE, NodePlan, StackError, StackPlan, plan_stack, require_node)

#: Time for the robot to catch up with the stopped command before the measured state becomes
#: the final command [s] (about ten time constants of a stiff position controller).
HOLD_SETTLE_S = 0.2
_BRAKE_MARGIN_S = 1.0  # beyond the slowest joint's braking time from its velocity limit
_SPIN_POLL_S = 0.1  # how soon an executor thread notices a stop [s]
_PROCESS_STOP_S = 5.0  # SIGINT to a child node process, then SIGKILL [s]
EXECUTORS = ("per_node", "shared")
SYNTHETIC_ROBOT = "synthetic_robot"


def node_class(executable: str) -> type:
    """The node class registered for ``executable`` (StackError when not installed)."""
    module, _, name = require_node(executable).partition(":")
    return getattr(importlib.import_module(module), name)


def _parameter_files(node: NodePlan, directory: Path) -> list[str]:
    """The node's parameter files; each dict is written to a file in ``directory``."""
    files = []
    for i, source in enumerate(node.parameters):
        if isinstance(source, dict):
            path = directory / f"{node.name}.{i}.yaml"
            path.write_text(yaml.safe_dump({"/**": {"ros__parameters": source}}))
            source = str(path)
        files.append(source)
    return files


def make_node(node: NodePlan, *, context: Context, namespace: str, directory: Path) -> Node:
    """Construct ``node`` with its parameter files as the node's ROS arguments.

    Raises:
        StackError: A file sets a parameter the node does not declare.
        ConfigError: Whatever the node raises on a bad parameter, profile, model or device.
    """
    args = ["--ros-args", "-r", f"__node:={node.name}"]
    for path in _parameter_files(node, directory):
        args += ["--params-file", path]
    instance = node_class(node.executable)(context=context, namespace=namespace, cli_args=args)
    # rclpy keeps every override the files gave this node (no public accessor); those the node
    # never declared would be ignored silently.
    unknown = sorted(name for name in getattr(instance, "_parameter_overrides", {})
                     if not instance.has_parameter(name))
    if unknown:
        instance.destroy_node()
        raise StackError(f"parameters not declared by node '{node.name}' "
                         f"({node.executable}): {', '.join(unknown)}; check their spelling "
                         "(docs/nodes.md lists each node's parameters)",
                         file=", ".join(p for p in node.parameters if isinstance(p, str)))
    return instance


def callback_groups(node: Node) -> int:
    """How many callback groups ``node``'s subscriptions, timers, guard conditions, services
    and clients use: the callbacks it can run in parallel."""
    entities = (*node.subscriptions, *node.timers, *node.guards, *node.services, *node.clients)
    return len({id(entity.callback_group) for entity in entities}) or 1


def node_executor(node: Node, context: Context) -> Executor:
    """A SingleThreadedExecutor for ``node``, or a MultiThreadedExecutor with one thread per
    callback group when it uses several."""
    groups = callback_groups(node)
    if groups > 1:
        return MultiThreadedExecutor(num_threads=groups, context=context)
    return SingleThreadedExecutor(context=context)


def node_process_command(node: NodePlan, *, namespace: str, directory: Path) -> list[str]:
    """The command that runs ``node`` as its own process (``python -m hv2r_ros.nodes.<exe>``)
    with its parameter files, as a launch file starts it."""
    module = require_node(node.executable).partition(":")[0]
    args = [sys.executable, "-m", module, "--ros-args", "-r", f"__node:={node.name}"]
    if namespace:
        args += ["-r", f"__ns:=/{namespace.strip('/')}"]
    for path in _parameter_files(node, directory):
        args += ["--params-file", path]
    return args


class Stack:
    """The nodes of one plan, their executors and child processes (build with
    ``build_stack``).

    Attributes:
        plan: The ``StackPlan`` the nodes were built from.
        nodes: Node name -> node, in data-path order.
        executors: The executors spinning them, once started (module docstring).
        executor_mode: ``per_node`` or ``shared``.
        separate: Node name -> the command of a node run as a child process (``start`` spawns
            them).
        processes: Node name -> the child process running it.
        context: The rclpy context of every node.
        error: An exception that ended an executor's spin (a callback raised), else None.
    """

    def __init__(self, plan: StackPlan, context: Context, *, own_context: bool,
                 workdir: Path, executors: str = "per_node",
                 separate: dict[str, list[str]] | None = None) -> None:
        if executors not in EXECUTORS:
            raise StackError("unknown executor arrangement", field="executors", value=executors,
                             choices=list(EXECUTORS))
        self.plan, self.context = plan, context
        self.nodes: dict[str, Node] = {}
        self.executors: list[Executor] = []
        self.executor_mode = executors
        self.separate = dict(separate or {})
        self.processes: dict[str, subprocess.Popen] = {}
        self.error: BaseException | None = None
        self._own_context, self._workdir = own_context, workdir
        self._threads: list[threading.Thread] = []
        self._activated: list[LifecycleNode] = []
        self._stopping = threading.Event()
        self._shared: Executor | None = None

    def add(self, node: Node) -> None:
        """Add a node to the stack (and, once started, spin it at once)."""
        self.nodes[node.get_name()] = node
        if self._threads:
            self._spin(node)

    @property
    def output_node(self) -> Node | None:
        """The node that commands the robot (``command_output``), if the stack has one."""
        return self.nodes.get(OUTPUT_EXECUTABLE)

    def configure(self) -> None:
        """Configure and activate lifecycle nodes with ``enable_autostart`` (before spinning).

        Raises:
            StackError: A transition failed (the node logged why).
        """
        for name, node in self.nodes.items():
            if isinstance(node, LifecycleNode) and node.has_parameter("enable_autostart") \
                    and node.get_parameter("enable_autostart").value:
                for transition in ("configure", "activate"):
                    if getattr(node, f"trigger_{transition}")() != \
                            TransitionCallbackReturn.SUCCESS:
                        raise StackError(f"node '{name}': {transition} failed (its log says "
                                         "why)", field=name)
                self._activated.append(node)

    def start(self) -> None:
        """Autostart the lifecycle nodes, spawn the separate nodes, spin every node."""
        self.configure()
        for name, command in self.separate.items():
            with (self._workdir / f"{name}.log").open("w") as log:
                self.processes[name] = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if self.executor_mode == "shared":
            self._shared = MultiThreadedExecutor(num_threads=max(4, os.cpu_count() or 1),
                                                 context=self.context)
        for node in self.nodes.values():
            self._spin(node)

    def _spin(self, node: Node) -> None:
        if self._shared is not None:
            self._shared.add_node(node)
            if self._threads:
                return
            executor = self._shared
        else:
            executor = node_executor(node, self.context)
            executor.add_node(node)
        self.executors.append(executor)
        thread = threading.Thread(target=self._spin_loop, args=(executor,), daemon=True,
                                  name=f"hv2r-{node.get_name()}")
        self._threads.append(thread)
        thread.start()

    def _spin_loop(self, executor: Executor) -> None:
        try:
            while self.context.ok() and not self._stopping.is_set():
                executor.spin_once(timeout_sec=_SPIN_POLL_S)
        except ExternalShutdownException:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported by run_stack, exit non-zero
            self.error = exc

    @property
    def running(self) -> bool:
        """Every executor thread and child process is alive."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads) and all(
            p.poll() is None for p in self.processes.values())

    def call_in(self, node: Node, function: Callable[[], Any], timeout_s: float = 5.0) -> Any:
        """Run ``function`` once in ``node``'s default callback group (through a guard
        condition); its result, or what it raised.

        Raises:
            TimeoutError: It did not run within ``timeout_s`` (executor not spinning).
        """
        done, result = threading.Event(), {}

        def once() -> None:
            # The executor may run a guard condition's callback again before it counts as
            # taken; the node's (mutually exclusive) group serialises the runs.
            if done.is_set():
                return
            try:
                result["value"] = function()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                result["error"] = exc
            done.set()

        # Destroyed with the node, after the executor stopped: destroying it here could race
        # with the executor's wait set.
        node.create_guard_condition(once, callback_group=node.default_callback_group).trigger()
        if not done.wait(timeout_s):
            raise TimeoutError(f"{node.get_name()}: not run within {timeout_s} s")
        if "error" in result:
            raise result["error"]
        return result.get("value")

    def hold(self) -> bool:
        """Deactivate the lifecycle nodes; once the output is at rest, command the measured
        state (module docstring, step 1). True when the output held (or never commanded)."""
        for node in self._activated:
            self.call_in(node, node.trigger_deactivate)
        self._activated.clear()
        output = self.output_node
        if output is None or output.q_measured is None:
            return True
        limits = self.plan.profile.limits
        deadline = time.monotonic() + float(np.max(limits.velocity_max
                                                   / limits.acceleration_max)) + _BRAKE_MARGIN_S
        while time.monotonic() < deadline:
            holding = output.gate.safety_state != "ACTIVE" or "safety_filter" not in self.nodes
            if holding and not output.guard.velocity.any():
                break
            time.sleep(0.005)
        else:
            output.get_logger().error("hold: still moving at the braking deadline")
            return False
        time.sleep(HOLD_SETTLE_S)
        return self.call_in(output, lambda: _command_measured_state(output))

    def stop_publishing(self) -> None:
        """Cancel every timer of every node (module docstring, step 2)."""
        for node in self.nodes.values():
            for timer in list(node.timers):
                timer.cancel()

    def stop_processes(self) -> None:
        """Interrupt the child node processes (SIGINT, then SIGKILL after
        ``_PROCESS_STOP_S``) and wait for them."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(timeout=_PROCESS_STOP_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def shutdown(self) -> None:
        """Stop the executors and child processes, destroy the nodes, shut down an own
        context, remove temp files."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        # Callbacks already handed to a thread pool end by triggering the executor's guard
        # condition, which rclpy 9's MultiThreadedExecutor.shutdown destroys without waiting
        # for them ("cannot use Destroyable"): let them finish first.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and not all(
                task.done() for executor in self.executors
                for task in list(getattr(executor, "_futures", ()))):
            time.sleep(0.005)
        for executor in self.executors:
            executor.shutdown()
        self.stop_processes()
        for node in reversed(list(self.nodes.values())):
            node.destroy_node()
        self.nodes.clear()
        self.executors.clear()
        self._threads.clear()
        if self._own_context:
            rclpy.try_shutdown(context=self.context)
        shutil.rmtree(self._workdir, ignore_errors=True)

    def stop(self) -> bool:
        """Hold, stop publishing, shut down; True when the hold completed."""
        try:
            held = self.hold() if self.running else False
        finally:
            self.stop_publishing()
            self.shutdown()
        return held


def _command_measured_state(output: Node) -> bool:
    """In the output's callback group: stop its control loop and command the measured state."""
    output.timer.cancel()
    q_cmd, _ = output.chain.reset(output.q_measured)
    if q_cmd is None:
        return False
    output.output.send(q_cmd, output.guard.velocity)
    output.get_logger().info("hold: final command = measured state")
    return True


def build_stack(robot: str, *, models: str, sim: bool = False, synthetic: bool = False,
                prompt_video: str = "", namespace: str = "", output: str = "",
                extra_params: Sequence[str] = (), context: Context | None = None,
                use_fastdds_profile: bool = True, executors: str = "per_node",
                separate: Sequence[str] = (),
                synthetic_size_px: tuple[int, int] | None = None) -> Stack:
    """Plan the stack, construct every node, return it ready to ``start``.

    Args:
        robot, models, sim, prompt_video, namespace, output: As ``plan_stack``.
        synthetic: Generated camera videos and goal image, and a ``SyntheticRobot`` publishing
            joint_states (``hv2r_ros.ros.synthetic``) instead of cameras and a robot.
        extra_params: Extra parameter files (applied last).
        context: An initialised rclpy context to use (kept open by ``shutdown``); None: a new
            one, initialised here after the Fast DDS profile variables are set.
        use_fastdds_profile: Select the shipped Fast DDS profile unless one is set (new
            context only: Fast DDS reads it when a process creates its first participant).
        executors: ``per_node`` or ``shared`` (module docstring).
        separate: Executables whose nodes run as child processes (``camera``, and
            ``synthetic_robot`` with ``synthetic``); they inherit this process's environment,
            the Fast DDS profile variables included.
        synthetic_size_px: (width, height) of the synthetic camera videos [px].

    Raises:
        StackError, ConfigError: Anything wrong with the arguments, files, models or devices;
            nodes already built are destroyed first.
    """
    if sim and synthetic:
        raise StackError("choose one source of camera images and joint states: the simulated "
                         "robot (--sim) or synthetic inputs (--synthetic)", field="synthetic")
    plan = plan_stack(robot, models=models, sim=sim, prompt_video=prompt_video,
                      namespace=namespace, output=output, params_files=extra_params,
                      use_fastdds_profile=use_fastdds_profile and context is None)
    workdir = Path(tempfile.mkdtemp(prefix="hv2r-run-"))
    try:
        if synthetic:
            from hv2r_ros.ros.synthetic import with_synthetic_inputs

            plan = with_synthetic_inputs(plan, workdir / "media", set_prompt=not prompt_video,
                                         size_px=synthetic_size_px)
        own_context = context is None
        if own_context:
            os.environ.update(plan.environment)
            context = Context()
            rclpy.init(args=[], context=context,
                       signal_handler_options=SignalHandlerOptions.NO)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    commands = {node.name: node_process_command(node, namespace=namespace, directory=workdir)
                for node in plan.nodes if node.executable in separate}
    if synthetic and SYNTHETIC_ROBOT in separate:
        commands[SYNTHETIC_ROBOT] = [sys.executable, "-m", "hv2r_ros.ros.synthetic",
                                     plan.robot, "--ros-args"] + (
            ["-r", f"__ns:=/{namespace.strip('/')}"] if namespace else [])
    stack = Stack(plan, context, own_context=own_context, workdir=workdir, executors=executors,
                  separate=commands)
    try:
        for node in plan.nodes:
            if node.executable not in separate:
                stack.add(make_node(node, context=context, namespace=namespace,
                                    directory=workdir))
        if synthetic and SYNTHETIC_ROBOT not in separate:
            from hv2r_ros.ros.synthetic import SyntheticRobot

            stack.add(SyntheticRobot(plan.profile, context=context, namespace=namespace))
    except BaseException:
        stack.shutdown()
        raise
    return stack


@dataclasses.dataclass
class RunResult:
    """How a run ended: ``held`` (the hold completed), ``error`` (a callback raised)."""

    held: bool
    error: BaseException | None


def run_stack(stack: Stack, stop: threading.Event, duration_s: float | None = None) -> RunResult:
    """Start ``stack``, run until ``stop`` is set, ``duration_s`` passed or a callback raised,
    then ``Stack.stop``."""
    try:
        stack.start()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while stack.running and not stop.wait(0.1):
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        held = stack.stop()
    return RunResult(held, stack.error)

