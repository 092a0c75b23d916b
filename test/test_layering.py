"""Layering: core/ never depends on ROS or torch; torch stays out of the runtime path.

Every core module imports with rclpy, *_msgs and torch blocked; the ROS glue and the ``hv2r``
command import with torch blocked (export and training import it inside their commands).
"""

import importlib
import pkgutil
import subprocess
import sys
import textwrap

import hv2r_ros.core


def core_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(hv2r_ros.core.__path__, prefix="hv2r_ros.core.")
    )


def test_core_has_modules():
    assert "hv2r_ros.core.limits" in core_modules()


def test_core_imports_without_ros():
    # A fresh interpreter, so modules already imported by other tests cannot hide an import.
    script = textwrap.dedent(
        f"""
        import importlib, importlib.abc, sys

        class BlockRos(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                root = name.split(".")[0]
                if root in ("rclpy", "launch", "launch_ros", "torch") or root.endswith("_msgs"):
                    raise ImportError(f"core must not import ROS package or torch: {{name}}")
                return None

        sys.meta_path.insert(0, BlockRos())
        for module in {core_modules()!r}:
            importlib.import_module(module)
        print("imported", len({core_modules()!r}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout


def test_blocker_catches_a_ros_import():
    """The check above can fail: a module importing rclpy is refused by the same blocker."""
    script = textwrap.dedent(
        """
        import importlib.abc, sys

        class BlockRos(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("rclpy",):
                    raise ImportError("blocked")
                return None

        sys.meta_path.insert(0, BlockRos())
        import rclpy
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode != 0 and "blocked" in result.stderr


def test_every_module_imports():
    for module in core_modules():
        importlib.import_module(module)


def test_runtime_path_imports_without_torch():
    modules = sorted(
        info.name
        for package in ("hv2r_ros.ros", "hv2r_ros.cli", "hv2r_ros.core", "hv2r_ros.sim")
        for info in pkgutil.walk_packages(
            importlib.import_module(package).__path__, prefix=package + ".")
    )
    script = textwrap.dedent(
        f"""
        import importlib, importlib.abc, sys

        class BlockTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ImportError(f"torch imported on the runtime path: {{name}}")
                return None

        sys.meta_path.insert(0, BlockTorch())
        for module in {modules!r}:
            importlib.import_module(module)
        from hv2r_ros.cli import build_parser
        build_parser()
        print("imported", len({modules!r}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
