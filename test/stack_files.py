"""Helpers shared by the parameter-file, node-construction and launch-file tests (imported as
``from stack_files import ...``): the config folder, each node's ParamSpec table, file sections,
and tiny model pairs per robot (``models_for``; the ``pairs`` fixture is in conftest.py).
"""

from pathlib import Path

import yaml
from onnx_fixtures import make_encoder, make_policy, policy_spec, write_pair

from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.nodes import camera, command_output, policy, prompt, safety_filter

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
ROBOTS = ("panda", "ur5e", "xarm7", "so100", "g1")
SHM_SEGMENT_BYTES = 16 * 1024 * 1024


def specs_of(section: str, robot: str = "panda"):
    """The ParamSpec table of the node a parameter-file section names."""
    if section.endswith("_camera"):
        return camera.PARAMS
    tables = {"prompt": prompt.PARAMS, "policy": policy.PARAMS,
              "safety_filter": safety_filter.PARAMS,
              "command_output": command_output.parameter_table(load_robot_profile(robot))}
    return tables[section]


def sections(path: Path) -> dict:
    """``node name -> parameters`` of a parameter file written with ``/**/<node>`` keys."""
    data = yaml.safe_load(path.read_text())
    out = {}
    for key, value in data.items():
        assert key.startswith("/**/"), f"{path.name}: {key!r}: use /**/<node> (any namespace)"
        assert set(value) == {"ros__parameters"}, f"{path.name}: {key}"
        out[key[4:]] = value["ros__parameters"]
    return out


def models_for(directory: Path, robot: str, action_space: str = "ee_delta") -> Path:
    """A tiny pair for ``robot``: its joints, cameras and end-effector frames."""
    profile = load_robot_profile(robot)
    joints = tuple(profile.joint_names)
    frames = profile.end_effector_frames if action_space != "joint_position" else ()
    gripper = profile.gripper is not None
    size = (len(joints) if action_space == "joint_position" else 6 * len(frames)) + gripper
    spec = policy_spec(action_space=action_space, joint_order=joints, robot=robot,
                       camera_order=tuple(profile.cameras), end_effector_frames=frames,
                       gripper=gripper, action_size=size, action_mean=(0.0,) * size,
                       action_std=(0.01,) * size, proprio_size=len(joints),
                       proprio_mean=(0.0,) * len(joints), proprio_std=(1.0,) * len(joints))
    return write_pair(directory / f"{robot}_{action_space}", make_encoder(), make_policy(spec))
