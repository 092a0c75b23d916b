"""The launch files, run against a small stand-in of the ``launch`` / ``launch_ros`` API (those
packages are not on PyPI): they must declare the arguments and start the nodes of the same plan
the runner uses, with the same parameter files.
"""

import importlib.util
import py_compile
import sys
import types
from pathlib import Path

import pytest
from stack_files import CONFIG, ROOT

from hv2r_ros.ros.stack_plan import LAUNCH_ARGUMENTS, NODE_TYPES, StackError, plan_stack

# --- the launch files ---------------------------------------------------------------------

class _Entity:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Entity):
    def perform(self, context):
        return context.launch_configurations[self.args[0]]


def _fake_launch(monkeypatch):
    """A stand-in for the parts of launch / launch_ros the launch files use."""
    made = {}
    for name in ("launch", "launch.actions", "launch.substitutions",
                 "launch.launch_description_sources", "launch_ros", "launch_ros.actions"):
        made[name] = types.ModuleType(name)
        monkeypatch.setitem(sys.modules, name, made[name])
    made["launch"].LaunchDescription = type("LaunchDescription", (_Entity,), {})
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "SetEnvironmentVariable",
                 "IncludeLaunchDescription"):
        setattr(made["launch.actions"], name, type(name, (_Entity,), {}))
    made["launch.substitutions"].LaunchConfiguration = _LaunchConfiguration
    for name in ("PathJoinSubstitution", "ThisLaunchFileDir"):
        setattr(made["launch.substitutions"], name, type(name, (_Entity,), {}))
    made["launch.launch_description_sources"].PythonLaunchDescriptionSource = type(
        "PythonLaunchDescriptionSource", (_Entity,), {})
    made["launch_ros.actions"].Node = type("Node", (_Entity,), {})


def _load(path: Path, monkeypatch):
    # No __pycache__ in launch/: setup.py installs that folder as it is.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["bringup.launch.py", "sim.launch.py"])
def test_launch_files_compile(name, tmp_path):
    py_compile.compile(str(ROOT / "launch" / name), cfile=str(tmp_path / "x.pyc"), doraise=True)


def test_bringup_starts_the_runner_plan_with_the_same_parameter_files(pairs, tmp_path,
                                                                      monkeypatch):
    _fake_launch(monkeypatch)
    bringup = _load(ROOT / "launch" / "bringup.launch.py", monkeypatch)
    description = bringup.generate_launch_description()
    *declared, opaque = description.args[0]
    assert [(d.args[0], d.kwargs["default_value"]) for d in declared] == \
        [(name, default) for name, default, _ in LAUNCH_ARGUMENTS]
    assert {d.args[0] for d in declared} == {"robot", "sim", "prompt_video", "models",
                                             "namespace", "output", "params_file",
                                             "use_fastdds_profile"}
    extra = tmp_path / "extra.yaml"
    extra.write_text("/**/policy:\n  ros__parameters:\n    inference_rate_hz: 5.0\n")
    values = {name: default for name, default, _ in LAUNCH_ARGUMENTS}
    values.update(robot="so100", models=str(pairs["so100"]), namespace="right",
                  params_file=str(extra))
    context = types.SimpleNamespace(launch_configurations=values, environment={})
    actions = opaque.kwargs["function"](context)
    env = [a for a in actions if type(a).__name__ == "SetEnvironmentVariable"]
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    assert [e.args for e in env] == [("FASTDDS_DEFAULT_PROFILES_FILE",
                                      str(CONFIG / "fastdds_shm.xml"))]
    plan = plan_stack("so100", models=str(pairs["so100"]), namespace="right",
                      params_files=[str(extra)], environ={})
    assert [(n.kwargs["executable"], n.kwargs["name"], n.kwargs["namespace"],
             n.kwargs["parameters"], n.kwargs["package"]) for n in nodes] == \
        [(p.executable, p.name, "right", list(p.parameters), "hv2r_ros") for p in plan.nodes]
    assert nodes[-1].kwargs["parameters"][:2] == [str(CONFIG / "stack.yaml"),
                                                  str(CONFIG / "params" / "so100.yaml")]
    # A profile set by the user is kept; sim:=true without the sim node is refused by name.
    context.environment = {"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}
    assert not [a for a in opaque.kwargs["function"](context)
                if type(a).__name__ == "SetEnvironmentVariable"]
    values["sim"] = "true"
    if "sim" not in NODE_TYPES:
        with pytest.raises(StackError, match="simulated robot node"):
            opaque.kwargs["function"](context)
    values["sim"] = "maybe"
    with pytest.raises(StackError, match="sim: not a boolean"):
        opaque.kwargs["function"](context)


def test_sim_launch_includes_bringup_with_sim_true(monkeypatch):
    _fake_launch(monkeypatch)
    sim = _load(ROOT / "launch" / "sim.launch.py", monkeypatch)
    description = sim.generate_launch_description()
    *declared, include = description.args[0]
    names = [name for name, _, _ in LAUNCH_ARGUMENTS if name != "sim"]
    assert [d.args[0] for d in declared] == names
    source = include.args[0].args[0]
    assert source.args[0][1] == "bringup.launch.py"
    forwarded = dict(include.kwargs["launch_arguments"])
    assert forwarded.pop("sim") == "true"
    assert {k: v.args[0] for k, v in forwarded.items()} == {n: n for n in names}
