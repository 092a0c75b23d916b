"""Task layouts: seeded sampling inside the workspace, the goal pair, success in metres."""

import dataclasses
import math
from collections import Counter

import numpy as np
import pytest

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.sim.task import (
    OBJECT_COLOURS, PAD_COLOURS, SuccessCriteria, TaskConfig, TaskLayout, evaluate_success,
    sample_layout,
)

ARMS = ("panda", "ur5e", "xarm7", "so100")


@pytest.fixture(scope="module")
def workspaces():
    return {name: load_robot_profile(name).workspace for name in ARMS}


def test_same_seed_same_layout_and_seeds_differ(workspaces):
    ws = workspaces["panda"]
    assert sample_layout(ws, 7) == sample_layout(ws, 7)
    positions = {tuple(o.position_m) for seed in range(20) for o in sample_layout(ws, seed).objects}
    assert len(positions) == 60


@pytest.mark.parametrize("arm", ARMS)
def test_items_inside_workspace_apart_and_on_the_table(arm, workspaces):
    ws = workspaces[arm]
    config = TaskConfig.for_workspace(ws)
    for seed in range(150):
        layout = sample_layout(ws, seed)
        discs = [(np.array(p.position_m), p.half_size_m * math.sqrt(2)) for p in layout.pads]
        discs += [(np.array(o.position_m[:2]), o.size_m / math.sqrt(2)) for o in layout.objects]
        for obj in layout.objects:
            assert obj.position_m[2] == pytest.approx(obj.size_m / 2)
            assert abs(obj.size_m - config.object_size_m) <= config.size_jitter_m + 1e-12
        for i, (centre, radius) in enumerate(discs):
            assert np.all(centre - radius >= ws.box_min[:2] + config.margin_m - 1e-9)
            assert np.all(centre + radius <= ws.box_max[:2] - config.margin_m + 1e-9)
            assert config.min_base_distance_m <= np.linalg.norm(centre) <= \
                config.max_base_distance_m
            for other, other_radius in discs[i + 1:]:
                assert np.linalg.norm(centre - other) >= radius + other_radius + \
                    config.clearance_m - 1e-9


def test_small_arm_gets_smaller_items(workspaces):
    small = TaskConfig.for_workspace(workspaces["so100"])
    large = TaskConfig.for_workspace(workspaces["panda"])
    assert small.object_size_m < large.object_size_m == 0.045
    assert small.pad_half_size_m < large.pad_half_size_m


def test_colours_are_distinct_families_with_small_jitter(workspaces):
    for seed in range(50):
        layout = sample_layout(workspaces["panda"], seed)
        assert len({o.colour for o in layout.objects}) == len(layout.objects)
        assert len({p.colour for p in layout.pads}) == len(layout.pads)
        for obj in layout.objects:
            assert np.max(np.abs(np.array(obj.rgba[:3]) - OBJECT_COLOURS[obj.colour])) <= 0.05
            assert obj.name == f"{obj.colour}_cube"
        for pad in layout.pads:
            assert np.max(np.abs(np.array(pad.rgba[:3]) - PAD_COLOURS[pad.colour])) <= 0.05


def test_goal_pair_is_uniform_over_objects_and_pads(workspaces):
    counts = Counter()
    for seed in range(1800):
        layout = sample_layout(workspaces["panda"], seed)
        counts[(layout.objects.index(layout.object(layout.target_object)),
                layout.pads.index(layout.pad(layout.target_pad)))] += 1
    assert len(counts) == 9
    assert all(140 <= n <= 260 for n in counts.values()), counts  # expected 200 each


def _placed(layout, name, pad_name, offset=(0.0, 0.0)):
    """Object positions with ``name`` moved onto ``pad_name`` (plus an offset [m])."""
    positions = {o.name: np.array(o.position_m) for o in layout.objects}
    obj, pad = layout.object(name), layout.pad(pad_name)
    positions[name] = np.array([*(np.array(pad.position_m) + offset), obj.size_m / 2])
    return positions


def test_goal_blind_policy_succeeds_by_chance_only(workspaces):
    rng = np.random.default_rng(0)
    wins = 0
    trials = 2000
    for seed in range(trials):
        layout = sample_layout(workspaces["panda"], seed)
        guess = layout.objects[rng.integers(3)].name, layout.pads[rng.integers(3)].name
        wins += evaluate_success(layout, _placed(layout, *guess), None).success
    assert 0.08 < wins / trials < 0.145  # 1/9 = 0.111


def test_success_criteria_in_metres(workspaces):
    layout = sample_layout(workspaces["panda"], 3)
    target, pad = layout.target_object, layout.target_pad
    size = layout.object(target).size_m
    report = evaluate_success(layout, _placed(layout, target, pad), None)
    assert report.success and report.reason == "ok" and report.target_distance_m < 1e-12
    assert evaluate_success(layout, _placed(layout, target, pad, (0.049, 0.0)), None).success
    far = evaluate_success(layout, _placed(layout, target, pad, (0.0, 0.051)), None)
    assert not far.success and far.target_distance_m == pytest.approx(0.051)
    assert "0.051" in far.reason
    held = evaluate_success(layout, _placed(layout, target, pad), target)
    assert not held.success and "grasped" in held.reason
    lifted = _placed(layout, target, pad)
    lifted[target][2] = size / 2 + 0.01
    assert not evaluate_success(layout, lifted, None).success
    other = next(o for o in layout.objects if o.name != target)
    for shift, ok in ((0.04, True), (0.06, False)):
        moved = _placed(layout, target, pad)
        moved[other.name] = moved[other.name] + [shift, 0.0, 0.0]
        assert evaluate_success(layout, moved, None).success is ok
    strict = SuccessCriteria(place_tolerance_m=0.01)
    assert not evaluate_success(layout, _placed(layout, target, pad, (0.02, 0.0)), None,
                                strict).success


def test_layout_validation_names_the_field(workspaces):
    layout = sample_layout(workspaces["panda"], 0)
    with pytest.raises(ConfigError, match="target_object.*valid choices"):
        dataclasses.replace(layout, target_object="unicorn")
    with pytest.raises(ConfigError, match="target_pad"):
        dataclasses.replace(layout, target_pad=layout.objects[0].name)
    with pytest.raises(ConfigError, match="unique"):
        TaskLayout(layout.objects * 2, layout.pads, layout.target_object, layout.target_pad)


def test_impossible_configs_are_refused(workspaces):
    ws = workspaces["panda"]
    with pytest.raises(ConfigError, match="num_objects"):
        sample_layout(ws, 0, TaskConfig(num_objects=len(OBJECT_COLOURS) + 1))
    with pytest.raises(ConfigError, match="without overlap"):
        sample_layout(ws, 0, TaskConfig(pad_half_size_m=0.3))
