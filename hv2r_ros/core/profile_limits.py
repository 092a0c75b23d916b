"""Joint limits of a robot profile: composed from the YAML, checked against URDF and vendor.

A profile may tighten, never loosen: every operational limit must be within the URDF's and
within the vendor's published one (``vendor_limits``). Position limits additionally keep
``limits.position_margin_rad`` away from the hard limits.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np

from hv2r_ros.core.errors import LimitsError
from hv2r_ros.core.limits import JointLimits
from hv2r_ros.core.profile_schema import ProfileReader
from hv2r_ros.core.urdf import UrdfJointLimit

DEG_PER_RAD = 180.0 / math.pi
# Rates this close to 57.3x an applicable limit were almost surely written in degrees.
_DEGREE_RATIO = (0.6 * DEG_PER_RAD, 1.6 * DEG_PER_RAD)
MAX_MARGIN_RAD = 0.5


@dataclasses.dataclass(frozen=True, eq=False)
class VendorLimits:
    """The vendor's published limits (datasheet, SDK or vendor ROS config), per joint.

    Attributes:
        source: Where the numbers come from (document name or URL).
        position_min: Lower position limits [rad], shape (n,), or None if not published.
        position_max: Upper position limits [rad], shape (n,), or None.
        velocity_max: [rad/s], shape (n,), or None.
        acceleration_max: [rad/s^2], shape (n,), or None.
        jerk_max: [rad/s^3], shape (n,), or None.
    """

    source: str
    position_min: np.ndarray | None = None
    position_max: np.ndarray | None = None
    velocity_max: np.ndarray | None = None
    acceleration_max: np.ndarray | None = None
    jerk_max: np.ndarray | None = None


def read_vendor_limits(reader: ProfileReader, joints: Sequence[str]) -> VendorLimits | None:
    """Parse the optional ``vendor_limits`` section."""
    section = reader.raw.get("vendor_limits")
    if section is None:
        return None
    reader.section("vendor_limits", section, "vendor_limits")
    n = len(joints)
    kwargs: dict[str, Any] = {"source": reader.string(section, "source", "vendor_limits.source")}
    if section.get("position_rad") is not None:
        lo, hi = _position_pair(reader, section["position_rad"], "vendor_limits.position_rad",
                                joints)
        kwargs.update(position_min=lo, position_max=hi)
    for key, attr in (("velocity_rad_s", "velocity_max"),
                      ("acceleration_rad_s2", "acceleration_max"), ("jerk_rad_s3", "jerk_max")):
        if section.get(key) is not None:
            values = reader.vector(section, key, f"vendor_limits.{key}", n, joints)
            _require_positive(reader, values, f"vendor_limits.{key}", joints)
            kwargs[attr] = values
    return VendorLimits(**kwargs)


def _position_pair(reader: ProfileReader, section: Any, field: str,
                   joints: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    schema = "vendor_limits.position_rad" if field.startswith("vendor") else "limits.position_rad"
    reader.section(schema, section, field)
    lo = reader.vector(section, "min", f"{field}.min", len(joints), joints)
    hi = reader.vector(section, "max", f"{field}.max", len(joints), joints)
    for i, joint in enumerate(joints):
        if lo[i] >= hi[i]:
            raise LimitsError(f"min must be below max for joint {joint}", file=reader.file,
                              field=f"{field}.min[{i}]", value=(float(lo[i]), float(hi[i])))
    return lo, hi


def _require_positive(reader: ProfileReader, values: np.ndarray, field: str,
                      joints: Sequence[str]) -> None:
    for i, value in enumerate(values):
        if value <= 0.0:
            raise LimitsError(f"must be > 0 for joint {joints[i]} (0 would stop the joint, "
                              "negative is meaningless)", file=reader.file,
                              field=f"{field}[{i}]", value=float(value))


def _looks_like_degrees(value: float, bound: float, absolute: bool) -> bool:
    """Whether ``value`` is probably in degrees: beyond a full turn (positions and speeds:
    ``absolute``), or about 57.3x the limit it exceeds (any quantity)."""
    if absolute and abs(value) > 2.0 * math.pi + 1e-6:
        return True
    if not math.isfinite(bound) or bound <= 0:
        return False
    return _DEGREE_RATIO[0] < abs(value) / bound < _DEGREE_RATIO[1]


def _not_looser(reader: ProfileReader, value: float, bound: float, *, field: str, joint: str,
                what: str, upper: bool, absolute: bool) -> None:
    """Raise when ``value`` is beyond ``bound`` (above it if ``upper``, else below it)."""
    if not math.isfinite(bound) or (value <= bound if upper else value >= bound):
        return
    hint = "; the value looks like degrees: limits are in radians" if _looks_like_degrees(
        value, bound, absolute) else ""
    relation = "above" if upper else "below"
    raise LimitsError(
        f"looser than the {what} for joint {joint}: {value:g} is {relation} {bound:g}{hint}",
        file=reader.file, field=field, value=float(value))


def build_joint_limits(
    reader: ProfileReader,
    joints: Sequence[str],
    urdf: Mapping[str, UrdfJointLimit],
    vendor: VendorLimits | None,
) -> JointLimits:
    """Build the operational joint limits from the ``limits`` section.

    Position range per joint: the URDF range intersected with the vendor's, shrunk by
    ``position_margin_rad`` on both sides, intersected with ``limits.position_rad`` if given
    (which itself must not reach beyond the URDF or vendor range).

    Raises:
        LimitsError: a limit is looser than the URDF's or the vendor's, not positive, or leaves
            no room between min and max; the message names file, field and joint.
    """
    section = reader.section("limits", reader.raw["limits"], "limits")
    n = len(joints)
    margin = reader.number(section, "position_margin_rad", "limits.position_margin_rad")
    if not 0.0 <= margin <= MAX_MARGIN_RAD:
        raise LimitsError(f"must be within [0, {MAX_MARGIN_RAD}] rad", file=reader.file,
                          field="limits.position_margin_rad", value=margin)
    hard_lo = np.array([urdf[j].lower for j in joints])
    hard_hi = np.array([urdf[j].upper for j in joints])
    if vendor is not None and vendor.position_min is not None:
        for i, joint in enumerate(joints):
            _not_looser(reader, vendor.position_min[i], hard_lo[i], joint=joint, upper=False,
                        field=f"vendor_limits.position_rad.min[{i}]", what="URDF limit",
                        absolute=True)
            _not_looser(reader, vendor.position_max[i], hard_hi[i], joint=joint, upper=True,
                        field=f"vendor_limits.position_rad.max[{i}]", what="URDF limit",
                        absolute=True)
        hard_lo = np.maximum(hard_lo, vendor.position_min)
        hard_hi = np.minimum(hard_hi, vendor.position_max)
    lo, hi = hard_lo + margin, hard_hi - margin
    if section.get("position_rad") is not None:
        user_lo, user_hi = _position_pair(reader, section["position_rad"], "limits.position_rad",
                                          joints)
        for i, joint in enumerate(joints):
            _not_looser(reader, user_lo[i], hard_lo[i], field=f"limits.position_rad.min[{i}]",
                        joint=joint, what="URDF/vendor position limit", upper=False, absolute=True)
            _not_looser(reader, user_hi[i], hard_hi[i], field=f"limits.position_rad.max[{i}]",
                        joint=joint, what="URDF/vendor position limit", upper=True, absolute=True)
        lo, hi = np.maximum(lo, user_lo), np.minimum(hi, user_hi)
    for i, joint in enumerate(joints):
        if not (math.isfinite(lo[i]) and math.isfinite(hi[i])):
            raise LimitsError(f"joint {joint} has no position limit in the URDF (continuous): "
                              "give one in limits.position_rad", file=reader.file,
                              field="limits.position_rad")
        if lo[i] >= hi[i]:
            raise LimitsError(f"no room left for joint {joint}: min {lo[i]:g} >= max {hi[i]:g} "
                              "after the margin", file=reader.file,
                              field="limits.position_margin_rad", value=margin)
    rates = {}
    for key, urdf_values, vendor_attr in (
        ("velocity_rad_s", [urdf[j].velocity for j in joints], "velocity_max"),
        ("acceleration_rad_s2", None, "acceleration_max"),
        ("jerk_rad_s3", None, "jerk_max"),
    ):
        field = f"limits.{key}"
        if key == "jerk_rad_s3" and section.get(key) is None:
            if vendor is not None and vendor.jerk_max is not None:
                raise LimitsError("the vendor publishes a jerk limit: set one (no looser)",
                                  file=reader.file, field=field)
            rates[key] = None
            continue
        values = reader.vector(section, key, field, n, joints)
        _require_positive(reader, values, field, joints)
        vendor_values = getattr(vendor, vendor_attr) if vendor is not None else None
        for i, joint in enumerate(joints):
            if urdf_values is not None:
                _not_looser(reader, values[i], urdf_values[i], field=f"{field}[{i}]", joint=joint,
                            what="URDF limit", upper=True, absolute=key == "velocity_rad_s")
            if vendor_values is not None:
                _not_looser(reader, values[i], vendor_values[i], field=f"{field}[{i}]",
                            joint=joint, what="vendor limit", upper=True,
                            absolute=key == "velocity_rad_s")
            if key == "velocity_rad_s" and values[i] > 2.0 * math.pi:
                raise LimitsError(f"{values[i]:g} rad/s for joint {joint} looks like degrees: "
                                  "limits are in radians", file=reader.file,
                                  field=f"{field}[{i}]", value=float(values[i]))
        rates[key] = values
    return JointLimits(
        names=tuple(joints),
        position_min=lo,
        position_max=hi,
        velocity_max=rates["velocity_rad_s"],
        acceleration_max=rates["acceleration_rad_s2"],
        jerk_max=rates["jerk_rad_s3"],
    )
