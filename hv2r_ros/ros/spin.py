"""The one ``main()`` body every node shares: init, build, spin, shut down.

Only ``KeyboardInterrupt`` and ``ExternalShutdownException`` count as a normal stop; anything
else (a construction error naming a file and field, a callback that raised) propagates, so the
process exits non-zero. ``destroy_node()`` runs only on a normal exit: after Ctrl-C it has been
seen to hang (ros-notes), and the process is exiting anyway.
"""

from __future__ import annotations

from typing import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def run_node(
    make_node: Callable[[], Node],
    args: list[str] | None = None,
    *,
    executor_factory: Callable[[], Executor] = SingleThreadedExecutor,
    start: Callable[[Node], None] | None = None,
) -> None:
    """Initialise rclpy, build the node, run ``start`` (e.g. lifecycle autostart), spin.

    Args:
        make_node: Builds the node (after ``rclpy.init``).
        args: Command-line arguments for ``rclpy.init`` (``--ros-args ...``).
        executor_factory: The executor; a MultiThreadedExecutor for nodes whose callback groups
            must run in parallel (inference beside subscriptions).
        start: Called once with the node before spinning; may raise ``SystemExit``.
    """
    rclpy.init(args=args)
    try:
        node = make_node()
    except BaseException:
        rclpy.try_shutdown()
        raise
    executor = executor_factory()
    executor.add_node(node)
    try:
        if start is not None:
            start(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    else:
        node.destroy_node()
    finally:
        executor.shutdown()
        rclpy.try_shutdown()
