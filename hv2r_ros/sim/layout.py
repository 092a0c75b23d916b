"""A tabletop layout: the cubes, the target pads, the goal pair, lighting and camera jitter.

``task.sample_layout`` draws one from a seed; ``scene.build_scene`` turns one into MJCF.
Positions are in the robot's base frame [m]; the table top is the plane z = 0.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from hv2r_ros.core.errors import ConfigError

# Colour families (linear RGB in [0, 1]); a sampled colour jitters around its family's base.
OBJECT_COLOURS: Mapping[str, tuple[float, float, float]] = {
    "red": (0.85, 0.10, 0.10), "green": (0.10, 0.70, 0.15), "blue": (0.10, 0.25, 0.90),
    "yellow": (0.95, 0.85, 0.10), "orange": (1.00, 0.45, 0.00), "purple": (0.55, 0.15, 0.75),
}
# Pads are pale or dark, never one of the object hues, so a pixel's colour names one thing.
PAD_COLOURS: Mapping[str, tuple[float, float, float]] = {
    "white": (0.93, 0.93, 0.93), "black": (0.08, 0.08, 0.08), "cyan": (0.20, 0.80, 0.85),
    "pink": (0.95, 0.55, 0.75),
}



@dataclasses.dataclass(frozen=True)
class SceneObject:
    """A cube on the table.

    Attributes:
        name: Unique name, ``<colour>_cube``; also the MJCF body name.
        colour: Colour family (a key of ``OBJECT_COLOURS``).
        rgba: Rendered colour, shape (4,), in [0, 1].
        size_m: Edge length [m].
        position_m: Initial centre [m] in the base frame, shape (3,); z = size_m / 2.
        yaw_rad: Initial rotation about the vertical [rad].
    """

    name: str
    colour: str
    rgba: tuple[float, float, float, float]
    size_m: float
    position_m: tuple[float, float, float]
    yaw_rad: float


@dataclasses.dataclass(frozen=True)
class TargetPad:
    """A flat square target area on the table.

    Attributes:
        name: Unique name, ``<colour>_pad``; also the MJCF geom name.
        colour: Colour family (a key of ``PAD_COLOURS``).
        rgba: Rendered colour, shape (4,).
        position_m: Centre on the table [m], shape (2,) (x, y in the base frame).
        half_size_m: Half the side of the square [m].
    """

    name: str
    colour: str
    rgba: tuple[float, float, float, float]
    position_m: tuple[float, float]
    half_size_m: float


@dataclasses.dataclass(frozen=True)
class Appearance:
    """Lighting and camera jitter of one scene.

    Attributes:
        light_direction: Key light direction (unit, pointing down), shape (3,).
        light_diffuse: Key light intensity in [0, 1].
        ambient: Ambient light in [0, 1].
        table_rgba: Table colour, shape (4,).
        camera_offsets_m: Camera name -> position offset [m], shape (3,).
        camera_tilts_rad: Camera name -> small rotation vector [rad], shape (3,).
    """

    light_direction: tuple[float, float, float] = (0.3, 0.2, -1.0)
    light_diffuse: float = 0.55
    ambient: float = 0.28
    table_rgba: tuple[float, float, float, float] = (0.55, 0.42, 0.30, 1.0)
    camera_offsets_m: Mapping[str, tuple[float, float, float]] = dataclasses.field(
        default_factory=dict)
    camera_tilts_rad: Mapping[str, tuple[float, float, float]] = dataclasses.field(
        default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TaskLayout:
    """One episode's scene and goal.

    Attributes:
        objects: The cubes, in sampling order.
        pads: The target pads.
        target_object: Name of the object the demonstration moves.
        target_pad: Name of the pad the demonstration leaves it on.
        appearance: Lighting, table colour and camera jitter.
        seed: The seed it was sampled from (None if built by hand).
    """

    objects: tuple[SceneObject, ...]
    pads: tuple[TargetPad, ...]
    target_object: str
    target_pad: str
    appearance: Appearance = dataclasses.field(default_factory=Appearance)
    seed: int | None = None

    def __post_init__(self) -> None:
        names = [o.name for o in self.objects] + [p.name for p in self.pads]
        if len(set(names)) != len(names):
            raise ConfigError("object and pad names must be unique", field="layout",
                              value=names)
        if self.target_object not in names[: len(self.objects)]:
            raise ConfigError("target_object is not one of the objects", field="target_object",
                              value=self.target_object, choices=[o.name for o in self.objects])
        if self.target_pad not in names[len(self.objects):]:
            raise ConfigError("target_pad is not one of the pads", field="target_pad",
                              value=self.target_pad, choices=[p.name for p in self.pads])

    def object(self, name: str) -> SceneObject:
        """The object called ``name``."""
        return next(o for o in self.objects if o.name == name)

    def pad(self, name: str) -> TargetPad:
        """The pad called ``name``."""
        return next(p for p in self.pads if p.name == name)
