"""Exception hierarchy for construction-time errors.

Loops never raise (they return a status); these are raised while loading configs, URDFs and
models, before anything moves. Every message names the file, the field, the offending value and,
where there is a finite set, the valid choices.
"""

from __future__ import annotations

from typing import Any, Iterable


class Hv2rError(Exception):
    """Base class of every error raised by hv2r_ros."""


class ConfigError(Hv2rError):
    """A configuration value is missing, malformed or unsafe.

    Args:
        message: What is wrong, in words.
        file: The file that holds the value (YAML, URDF, parameter file), if known.
        field: Dotted path of the field inside the file, e.g. ``limits.velocity_rad_s[3]``.
        value: The offending value, shown with ``repr``.
        choices: The valid options, listed in the message when given.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | None = None,
        value: Any = None,
        choices: Iterable[Any] | None = None,
    ) -> None:
        self.file = file
        self.field = field
        self.value = value
        self.choices = list(choices) if choices is not None else None
        self.reason = message
        where = ": ".join(part for part in (file, field) if part)
        text = f"{where}: {message}" if where else message
        if value is not None:
            text += f" (got {value!r})"
        if self.choices is not None:
            text += f"; valid choices: {', '.join(map(str, self.choices))}"
        super().__init__(text)


class RobotProfileError(ConfigError):
    """A robot profile YAML under ``config/robots/`` is invalid."""


class UrdfError(ConfigError):
    """A URDF cannot be found, parsed, or lacks a joint or frame the profile names."""


class LimitsError(ConfigError):
    """A limit is malformed, switched off, or looser than the URDF or vendor limit."""


class FrameNotFoundError(UrdfError):
    """A frame named in a profile or a target does not exist in the kinematic model."""
