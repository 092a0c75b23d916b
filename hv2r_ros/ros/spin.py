"""The one ``main()`` body every node shares: init, build, spin, shut down.

Only ``KeyboardInterrupt`` and ``ExternalShutdownException`` count as a normal stop. A
``ConfigError`` while building the node (it names the file and field) is logged as one fatal
line and exits 1, without a traceback (a parameter's error without a file names the
``--params-file`` that sets it, found by reading the files given on the command line); anything else (a callback that raised) propagates, so the
process exits non-zero. ``destroy_node()`` runs only on a normal exit: after Ctrl-C it has been
seen to hang (ros-notes), and the process is exiting anyway.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import rclpy
import rclpy.logging
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from hv2r_ros.core.errors import ConfigError


def run_node(
    make_node: Callable[[], Node],
    args: list[str] | None = None,
    *,
    executor_factory: Callable[[], Executor] = SingleThreadedExecutor,
    start: Callable[[Node], None] | None = None,
    name: str | None = None,
) -> None:
    """Initialise rclpy, build the node, run ``start`` (e.g. lifecycle autostart), spin.

    Args:
        make_node: Builds the node (after ``rclpy.init``).
        args: Command-line arguments for ``rclpy.init`` (``--ros-args ...``).
        executor_factory: The executor; a MultiThreadedExecutor for nodes whose callback groups
            must run in parallel (inference beside subscriptions).
        start: Called once with the node before spinning; may raise ``SystemExit``.
        name: Logger name of the fatal line on a ``ConfigError`` (default: the node's class).
    """
    rclpy.init(args=args)
    try:
        node = make_node()
    except ConfigError as exc:
        logger = name or getattr(make_node, "__name__", "node")
        rclpy.logging.get_logger(logger).fatal(str(exc) + _parameter_source(exc, args))
        rclpy.try_shutdown()
        raise SystemExit(1) from exc
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


def wire_or_destroy(node: Node, wire: Callable[[], None]) -> None:
    """Run ``wire()`` (a node's set-up); on any error destroy ``node`` and re-raise.

    Nothing half-built stays registered with the context when, say, a model file is invalid.
    """
    try:
        wire()
    except Exception:
        node.destroy_node()
        raise


def params_files(args: list[str] | None) -> list[str]:
    """The ``--params-file`` arguments of a ROS command line (``sys.argv`` when None)."""
    argv = list(sys.argv if args is None else args)
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--params-file"]


def _sets(document, parameter: str) -> bool:
    """Whether a ROS 2 parameter YAML document sets ``parameter`` for some node."""
    if not isinstance(document, dict):
        return False
    for section in document.values():
        if isinstance(section, dict):
            params = section.get("ros__parameters")
            if isinstance(params, dict):
                node = params
                for key in parameter.split("."):
                    if not isinstance(node, dict) or key not in node:
                        break
                    node = node[key]
                else:
                    return True
            elif _sets(section, parameter):  # a namespace level
                return True
    return False


def _parameter_source(exc: ConfigError, args: list[str] | None) -> str:
    """`` (set in FILE)`` for a parameter error that names no file, from the command line's
    parameter files (the last file that sets it wins, as in rcl); '' when none is known."""
    if exc.file or not exc.field:
        return ""
    files = params_files(args)
    if not files:
        return ""
    import yaml

    setting = []
    for file in files:
        try:
            document = yaml.safe_load(Path(file).read_text())
        except (OSError, yaml.YAMLError):
            continue
        if _sets(document, exc.field.split("[")[0]):
            setting.append(file)
    if setting:
        return f" (set in {setting[-1]})"
    return f" (none of the parameter files {', '.join(files)} sets it)"
