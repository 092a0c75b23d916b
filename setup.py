"""ament_python package definition; also installs with plain ``pip install -e .``."""

import os

from setuptools import find_packages, setup

PACKAGE = "hv2r_ros"

# One console entry point per node (added as nodes land) plus the ``hv2r`` command.
NODE_EXECUTABLES: dict[str, str] = {
    "camera": "hv2r_ros.nodes.camera:main",
    "command_output": "hv2r_ros.nodes.command_output:main",
    "expert": "hv2r_ros.nodes.expert:main",
    "policy": "hv2r_ros.nodes.policy:main",
    "prompt": "hv2r_ros.nodes.prompt:main",
    "safety_filter": "hv2r_ros.nodes.safety_filter:main",
    "sim": "hv2r_ros.nodes.sim:main",
}


def share_files(directory: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing ``directory`` recursively into share/hv2r_ros."""
    entries = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        paths = [os.path.join(root, name) for name in files if not name.startswith(".")]
        if paths:
            entries.append((os.path.join("share", PACKAGE, root), paths))
    return entries


data_files = [
    ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
    (f"share/{PACKAGE}", ["package.xml"]),
]
for folder in ("launch", "config", "urdf", "models"):
    data_files += share_files(folder)

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=data_files,
    install_requires=["setuptools"],
    extras_require={"test": ["pytest", "hypothesis"]},
    zip_safe=True,
    maintainer="hv2r_ros maintainers",
    maintainer_email="maintainers@hv2r.dev",
    description="Human demo video to robot: ONNX policy, safety filter and IK for ROS 2.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [f"{exe} = {target}" for exe, target in NODE_EXECUTABLES.items()]
        + ["hv2r = hv2r_ros.cli:main"],
    },
)
