"""The robot profile schema and a typed reader that names the file and field of every error.

``SCHEMA`` is the single description of which keys a profile may hold (``docs/robots.md``
documents each with its unit). Unknown keys are errors, not warnings: a misspelt
``velocity_rad_s`` silently falling back to a default is how a limit gets lost.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from hv2r_ros.core.errors import RobotProfileError

REQUIRED, OPTIONAL = True, False

# Section path -> {key: required}. "end_effectors[]" is each list item, "cameras.*" each camera.
SCHEMA: dict[str, dict[str, bool]] = {
    "": {
        "name": REQUIRED,
        "description": OPTIONAL,
        "urdf": REQUIRED,
        "base_frame": REQUIRED,
        "joints": REQUIRED,
        "locked_joints": OPTIONAL,
        "end_effectors": REQUIRED,
        "gripper": OPTIONAL,
        "limits": REQUIRED,
        "workspace": REQUIRED,
        "safety": REQUIRED,
        "control": REQUIRED,
        "home_rad": REQUIRED,
        "command_interface": REQUIRED,
        "cameras": OPTIONAL,
        "vendor_limits": OPTIONAL,
    },
    "urdf": {"source": REQUIRED, "path": OPTIONAL},
    "end_effectors[]": {"name": REQUIRED, "frame": REQUIRED},
    "gripper": {"joint": REQUIRED, "open_position": REQUIRED, "closed_position": REQUIRED},
    "limits": {
        "position_margin_rad": REQUIRED,
        "position_rad": OPTIONAL,
        "velocity_rad_s": REQUIRED,
        "acceleration_rad_s2": REQUIRED,
        "jerk_rad_s3": OPTIONAL,
    },
    "limits.position_rad": {"min": REQUIRED, "max": REQUIRED},
    "workspace": {
        "frame": OPTIONAL,
        "min_m": REQUIRED,
        "max_m": REQUIRED,
        "tool_linear_speed_m_s": REQUIRED,
        "tool_angular_speed_rad_s": REQUIRED,
        "tool_linear_acceleration_m_s2": REQUIRED,
        "tool_angular_acceleration_rad_s2": REQUIRED,
    },
    "safety": {
        "command_timeout_s": REQUIRED,
        "observation_max_age_s": REQUIRED,
        "singularity_slowdown_condition": REQUIRED,
        "singularity_halt_condition": REQUIRED,
        "singularity_length_scale_m": OPTIONAL,
    },
    "control": {"rate_hz": REQUIRED},
    "command_interface": {"type": REQUIRED, "topic": REQUIRED},
    "cameras.*": {"topic": REQUIRED, "frame": OPTIONAL},
    "vendor_limits": {
        "source": REQUIRED,
        "position_rad": OPTIONAL,
        "velocity_rad_s": OPTIONAL,
        "acceleration_rad_s2": OPTIONAL,
        "jerk_rad_s3": OPTIONAL,
    },
    "vendor_limits.position_rad": {"min": REQUIRED, "max": REQUIRED},
}

_DEGREE_KEY = re.compile(r"deg")
_TOPIC = re.compile(r"^[~/]?[A-Za-z_{][A-Za-z0-9_{}/]*$")


def read_yaml(path: Path) -> Any:
    """Parse a YAML file with ``yaml.safe_load``; a syntax error names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RobotProfileError(f"cannot read the profile: {exc}", file=str(path)) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise RobotProfileError(f"YAML syntax error: {problem}", file=str(path),
                                field=line) from exc


class ProfileReader:
    """Typed access to a parsed profile; every error names ``file`` and the dotted field.

    Args:
        raw: The parsed YAML document.
        file: The profile file, for error messages.
    """

    def __init__(self, raw: Any, file: str) -> None:
        self.file = file
        if not isinstance(raw, dict):
            raise RobotProfileError("a profile must be a YAML mapping", file=file,
                                    value=type(raw).__name__)
        self.raw = raw
        self.section("", raw, "")

    def error(self, message: str, field: str, value: Any = None, choices: Any = None) -> None:
        raise RobotProfileError(message, file=self.file, field=field or None, value=value,
                                choices=choices)

    def section(self, schema: str, mapping: Any, field: str) -> dict[str, Any]:
        """Check a mapping against ``SCHEMA[schema]``: a dict, no unknown keys, no missing ones."""
        if not isinstance(mapping, dict):
            self.error("must be a mapping", field, value=mapping)
        spec = SCHEMA[schema]
        prefix = f"{field}." if field else ""
        for key in mapping:
            if key in spec:
                continue
            if isinstance(key, str) and _DEGREE_KEY.search(key):
                self.error(
                    "limits are in radians (rad, rad/s, rad/s^2, rad/s^3): rename the key to "
                    f"{_DEGREE_KEY.sub('rad', key)!r} and convert the values (1 deg = 0.01745 rad)",
                    prefix + str(key),
                )
            self.error("unknown key (a typo?)", prefix + str(key), choices=sorted(spec))
        for key, required in spec.items():
            if required and key not in mapping:
                self.error("required field is missing", prefix + key)
        return mapping

    def get(self, mapping: Mapping[str, Any], key: str, field: str) -> Any:
        """``mapping[key]``; None (YAML ``null`` or absent) is an error for required keys."""
        value = mapping.get(key)
        if value is None:
            self.error("required field is missing or null", field)
        return value

    def string(self, mapping: Mapping[str, Any], key: str, field: str) -> str:
        value = self.get(mapping, key, field)
        if not isinstance(value, str) or not value.strip():
            self.error("must be a non-empty string", field, value=value)
        return value

    def topic(self, mapping: Mapping[str, Any], key: str, field: str) -> str:
        value = self.string(mapping, key, field)
        if not _TOPIC.match(value) or "//" in value:
            self.error("not a valid topic name", field, value=value)
        return value

    def number(self, mapping: Mapping[str, Any], key: str, field: str) -> float:
        """A finite number (YAML ``.nan``/``.inf``, strings and booleans are errors)."""
        value = self.get(mapping, key, field)
        return self._finite(value, field)

    def _finite(self, value: Any, field: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error("must be a number", field, value=value)
        if not math.isfinite(value):
            self.error("must be finite (NaN or inf would disable the check)", field, value=value)
        return float(value)

    def vector(self, mapping: Mapping[str, Any], key: str, field: str, n: int,
               names: Sequence[str] | None = None) -> np.ndarray:
        """A list of ``n`` finite numbers, one per joint (``names`` says which in errors)."""
        value = self.get(mapping, key, field)
        if not isinstance(value, list):
            self.error(f"must be a list of {n} numbers", field, value=value)
        if len(value) != n:
            what = f"one per joint ({', '.join(names)})" if names else f"{n} values"
            self.error(f"wrong length: expected {n} values, {what}, got {len(value)}", field,
                       value=value)
        out = np.array([self._finite(v, f"{field}[{i}]") for i, v in enumerate(value)])
        out.setflags(write=False)
        return out

    def string_list(self, mapping: Mapping[str, Any], key: str, field: str) -> tuple[str, ...]:
        """A non-empty list of unique non-empty strings."""
        value = self.get(mapping, key, field)
        if not isinstance(value, list) or not value:
            self.error("must be a non-empty list of names", field, value=value)
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                self.error("must be a non-empty string", f"{field}[{i}]", value=item)
        seen: set[str] = set()
        for i, item in enumerate(value):
            if item in seen:
                self.error("duplicate name", f"{field}[{i}]", value=item)
            seen.add(item)
        return tuple(value)
