"""Shared test configuration.

Hypothesis runs derandomized under CI (``CI`` set), so a CI failure reproduces exactly; locally
it explores new examples each run.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Tiny ONNX model pairs for every robot (and a joint-space one for the Panda)."""
    from stack_files import ROBOTS, models_for

    root = tmp_path_factory.mktemp("pairs")
    made = {robot: models_for(root, robot) for robot in ROBOTS}
    made["panda_joint"] = models_for(root, "panda", "joint_position")
    return made


@pytest.fixture
def rig_factory():
    """Builds command_output test rigs (``command_output_rig.Rig``) and closes them after."""
    from command_output_rig import Rig

    rigs = []

    def make(*args, **kwargs):
        rigs.append(Rig(*args, **kwargs))
        return rigs[-1]

    yield make
    for rig in rigs:
        rig.close()
