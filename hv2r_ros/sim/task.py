"""The tabletop task family: "move the object the human moved to the area where the human left it".

A layout holds K coloured cubes and M flat coloured target pads placed on the table inside the
robot's workspace box, and the (object, pad) pair the human demonstration decides. The robot
sees the same scene whatever the pair is, so a policy that ignores the demonstration picks the
right object and the right pad only by chance: 1 / (K * M), 1/9 with the defaults.

Success, in metres (``SuccessCriteria``; docs/sim.md states the same numbers):

- the target object's centre is within ``place_tolerance_m`` (0.05 m) of the target pad's
  centre in the table plane,
- it rests on the table (not grasped, centre height within ``rest_height_tolerance_m``
  (0.005 m) of half its size),
- every other object is within ``disturb_tolerance_m`` (0.05 m) of where it started.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import numpy as np

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.limits import CartesianLimits
from hv2r_ros.sim.layout import (
    OBJECT_COLOURS, PAD_COLOURS, Appearance, SceneObject, TargetPad, TaskLayout,
)

__all__ = [
    "OBJECT_COLOURS", "PAD_COLOURS", "Appearance", "SceneObject", "SuccessCriteria",
    "SuccessReport", "TargetPad", "TaskConfig", "TaskLayout", "evaluate_success",
    "sample_appearance", "sample_layout",
]


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """How layouts are sampled. Sizes scale with the workspace (see ``for_workspace``).

    Attributes:
        num_objects: Cubes on the table (at most ``len(OBJECT_COLOURS)``).
        num_pads: Target pads (at most ``len(PAD_COLOURS)``).
        object_size_m: Cube edge [m]; each cube varies by up to ``size_jitter_m`` either way.
        size_jitter_m: Edge variation [m].
        pad_half_size_m: Half side of a pad [m].
        margin_m: Distance [m] kept from the edges of the workspace box's table-plane extent.
        min_base_distance_m: Nothing is placed closer to the base axis than this [m].
        max_base_distance_m: Nothing is placed farther from the base axis than this [m].
        clearance_m: Gap [m] kept between any two items (cube footprints and pads).
        colour_jitter: Per-channel colour variation, in [0, 1].
        camera_jitter_m: Camera position jitter [m] (uniform per axis).
        camera_tilt_rad: Camera rotation jitter [rad] (uniform per axis).
    """

    num_objects: int = 3
    num_pads: int = 3
    object_size_m: float = 0.045
    size_jitter_m: float = 0.005
    pad_half_size_m: float = 0.055
    margin_m: float = 0.05
    min_base_distance_m: float = 0.30
    max_base_distance_m: float = 0.70
    clearance_m: float = 0.03
    colour_jitter: float = 0.05
    camera_jitter_m: float = 0.01
    camera_tilt_rad: float = 0.02

    @classmethod
    def for_workspace(cls, workspace: CartesianLimits, **overrides: float) -> "TaskConfig":
        """Defaults for a workspace box: a small arm (SO-100) gets smaller cubes and pads.

        The reference is a Panda-sized box (0.5 m by 0.8 m); a box whose shorter side is
        below 0.4 m scales sizes by that side / 0.4 m (cubes no smaller than 2.5 cm). Items
        stay within 0.75 of the box's farthest corner from the base axis (and 0.7 m), where
        every shipped arm reaches them with the tool pointing down (SO-100: up to 5 cm
        above the table; checked by the test suite).
        """
        extent = workspace.box_max[:2] - workspace.box_min[:2]
        scale = float(min(1.0, min(extent) / 0.4))
        reach = float(np.max(np.linalg.norm(
            np.array([[x, y] for x in (workspace.box_min[0], workspace.box_max[0])
                      for y in (workspace.box_min[1], workspace.box_max[1])]), axis=1)))
        base = cls()
        values = dict(
            object_size_m=max(0.025, base.object_size_m * scale),
            pad_half_size_m=max(0.03, base.pad_half_size_m * scale),
            size_jitter_m=base.size_jitter_m * scale, clearance_m=base.clearance_m * scale,
            margin_m=base.margin_m * scale**2,
            min_base_distance_m=min(base.min_base_distance_m, 0.4 * reach),
            max_base_distance_m=min(base.max_base_distance_m, 0.75 * reach),
        )
        values.update(overrides)
        return dataclasses.replace(base, **values)


@dataclasses.dataclass(frozen=True)
class SuccessCriteria:
    """Success thresholds [m]; see the module docstring."""

    place_tolerance_m: float = 0.05
    rest_height_tolerance_m: float = 0.005
    disturb_tolerance_m: float = 0.05


@dataclasses.dataclass(frozen=True)
class SuccessReport:
    """Outcome of ``evaluate_success``.

    Attributes:
        success: Whether every criterion holds.
        target_distance_m: Table-plane distance [m] from the target object's centre to the
            target pad's centre.
        reason: ``ok`` or the first criterion that fails, in words.
    """

    success: bool
    target_distance_m: float
    reason: str


def evaluate_success(layout: TaskLayout, positions_m: Mapping[str, np.ndarray],
                     grasped: str | None, criteria: SuccessCriteria = SuccessCriteria()
                     ) -> SuccessReport:
    """Judge a state against the layout's goal.

    Args:
        layout: The episode's layout (initial positions, goal).
        positions_m: Object name -> current centre [m] in the base frame, shape (3,), for every
            object of the layout.
        grasped: Name of the object held by the gripper, or None.
        criteria: Thresholds.
    """
    target = layout.object(layout.target_object)
    centre = np.asarray(positions_m[target.name], dtype=np.float64)
    pad = np.asarray(layout.pad(layout.target_pad).position_m)
    distance = float(np.linalg.norm(centre[:2] - pad))
    if distance > criteria.place_tolerance_m:
        return SuccessReport(False, distance, f"{target.name} is {distance:.3f} m from "
                             f"{layout.target_pad} (> {criteria.place_tolerance_m} m)")
    if grasped == target.name:
        return SuccessReport(False, distance, f"{target.name} is still grasped")
    height_error = abs(float(centre[2]) - 0.5 * target.size_m)
    if height_error > criteria.rest_height_tolerance_m:
        return SuccessReport(False, distance, f"{target.name} is not resting on the table "
                             f"(height off by {height_error:.3f} m)")
    for obj in layout.objects:
        if obj.name == target.name:
            continue
        moved = float(np.linalg.norm(np.asarray(positions_m[obj.name])[:2]
                                     - np.asarray(obj.position_m[:2])))
        if moved > criteria.disturb_tolerance_m or grasped == obj.name:
            return SuccessReport(False, distance, f"{obj.name} was disturbed ({moved:.3f} m)")
    return SuccessReport(True, distance, "ok")


def _jitter_rgba(rng: np.random.Generator, base: tuple[float, float, float],
                 jitter: float) -> tuple[float, float, float, float]:
    rgb = np.clip(np.asarray(base) + rng.uniform(-jitter, jitter, 3), 0.0, 1.0)
    return (*map(float, rgb), 1.0)


def _place(rng: np.random.Generator, radii: list[float], lo: np.ndarray, hi: np.ndarray,
           config: TaskConfig) -> np.ndarray | None:
    """Non-overlapping centres (table plane) for discs of ``radii``, or None if none fit."""
    placed: list[np.ndarray] = []
    for radius in radii:
        for _ in range(200):
            xy = rng.uniform(lo + radius, hi - radius)
            r = float(np.linalg.norm(xy))
            if not config.min_base_distance_m <= r <= config.max_base_distance_m:
                continue
            if all(np.linalg.norm(xy - other) >= radius + radii[i] + config.clearance_m
                   for i, other in enumerate(placed)):
                placed.append(xy)
                break
        else:
            return None
    return np.array(placed)


def sample_appearance(rng: np.random.Generator, config: TaskConfig,
                      cameras: tuple[str, ...] = ("overhead", "side", "front", "wrist")
                      ) -> Appearance:
    """Random lighting, table colour and camera jitter."""
    direction = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), -1.0])
    direction /= np.linalg.norm(direction)
    # Wood of varying brightness: a common scale keeps the hue, a little per-channel jitter.
    wood = np.array([0.55, 0.42, 0.30]) * rng.uniform(0.8, 1.15)
    table = _jitter_rgba(rng, tuple(wood), 0.02)
    offsets = {name: tuple(map(float, rng.uniform(-1, 1, 3) * config.camera_jitter_m))
               for name in cameras}
    tilts = {name: tuple(map(float, rng.uniform(-1, 1, 3) * config.camera_tilt_rad))
             for name in cameras}
    return Appearance(tuple(map(float, direction)), float(rng.uniform(0.45, 0.65)),
                      float(rng.uniform(0.2, 0.35)), table, offsets, tilts)


def sample_layout(workspace: CartesianLimits, seed: int, config: TaskConfig | None = None
                  ) -> TaskLayout:
    """Sample a layout inside a workspace box, deterministically for a seed.

    Args:
        workspace: The robot's workspace box (``profile.workspace``); items go inside its
            table-plane extent less ``config.margin_m``, within the base-distance annulus.
        seed: Random seed; the same seed and config give the same layout.
        config: Sampling parameters; default ``TaskConfig.for_workspace(workspace)``.

    Raises:
        ConfigError: the counts exceed the colour families, or the items do not fit.
    """
    config = config or TaskConfig.for_workspace(workspace)
    if not 1 <= config.num_objects <= len(OBJECT_COLOURS):
        raise ConfigError("num_objects out of range", field="num_objects",
                          value=config.num_objects, choices=range(1, len(OBJECT_COLOURS) + 1))
    if not 1 <= config.num_pads <= len(PAD_COLOURS):
        raise ConfigError("num_pads out of range", field="num_pads", value=config.num_pads,
                          choices=range(1, len(PAD_COLOURS) + 1))
    rng = np.random.default_rng(seed)
    lo = np.asarray(workspace.box_min[:2]) + config.margin_m
    hi = np.asarray(workspace.box_max[:2]) - config.margin_m
    sizes = config.object_size_m + rng.uniform(-1, 1, config.num_objects) * config.size_jitter_m
    radii = [config.pad_half_size_m * math.sqrt(2.0)] * config.num_pads
    radii += [0.5 * math.sqrt(2.0) * float(s) for s in sizes]
    centres = None
    if np.all(hi - lo > 2.0 * max(radii)):
        for _ in range(50):
            centres = _place(rng, radii, lo, hi, config)
            if centres is not None:
                break
    if centres is None:
        raise ConfigError("cannot place the objects and pads without overlap in the workspace "
                          "box: use fewer or smaller items, or a smaller clearance_m",
                          field="task", value=dataclasses.asdict(config))
    pad_families = rng.choice(list(PAD_COLOURS), config.num_pads, replace=False)
    object_families = rng.choice(list(OBJECT_COLOURS), config.num_objects, replace=False)
    pads = tuple(
        TargetPad(f"{family}_pad", str(family),
                  _jitter_rgba(rng, PAD_COLOURS[family], config.colour_jitter),
                  tuple(map(float, centres[i])), config.pad_half_size_m)
        for i, family in enumerate(pad_families))
    objects = tuple(
        SceneObject(f"{family}_cube", str(family),
                    _jitter_rgba(rng, OBJECT_COLOURS[family], config.colour_jitter),
                    float(sizes[i]),
                    (*map(float, centres[config.num_pads + i]), 0.5 * float(sizes[i])),
                    float(rng.uniform(-math.pi / 4, math.pi / 4)))
        for i, family in enumerate(object_families))
    target_object = objects[int(rng.integers(len(objects)))].name
    target_pad = pads[int(rng.integers(len(pads)))].name
    return TaskLayout(objects, pads, target_object, target_pad,
                      sample_appearance(rng, config), seed)
