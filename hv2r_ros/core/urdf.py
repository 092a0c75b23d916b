"""URDF sources and pure URDF limit parsing.

A robot profile names where its URDF comes from (``urdf:`` in ``config/robots/<robot>.yaml``):

- ``{source: example-robot-data, path: panda_description/urdf/panda.urdf}``: a file of the
  installed ``example-robot-data`` package, relative to its ``robots/`` directory.
- ``{source: file, path: ...}``: an absolute path, a path relative to the profile YAML's
  directory, or a ``package://<pkg>/<relative path>`` URI.
- ``{source: robot_description}``: the XML the caller passes in (a ROS node reads the
  ``robot_description`` parameter; core only takes the string).

Mesh ``package://`` URIs inside the URDFs are never resolved here: pinocchio's
``buildModelFromXML`` ignores geometry, so kinematics need no meshes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import sysconfig
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Mapping

from hv2r_ros.core.errors import UrdfError

PACKAGE = "hv2r_ros"
URDF_SOURCES = ("example-robot-data", "file", "robot_description")
# Only these URDF joint types carry one coordinate that a profile can command or lock.
SINGLE_DOF_TYPES = ("revolute", "continuous", "prismatic")
_ERD_SHARE = Path("share") / "example-robot-data"


@dataclasses.dataclass(frozen=True)
class UrdfJointLimit:
    """Limits of one URDF joint, as written in its ``<limit>`` element.

    Attributes:
        type: URDF joint type (revolute, continuous, prismatic, fixed, floating, planar).
        lower: Lower position limit [rad or m]; -inf for continuous joints or when absent.
        upper: Upper position limit [rad or m]; +inf for continuous joints or when absent.
        velocity: Speed limit [rad/s or m/s]; inf when absent or 0 (URDF for "unspecified").
        effort: Effort limit [N m or N]; inf when absent or 0.
    """

    type: str
    lower: float
    upper: float
    velocity: float
    effort: float


def _attr(limit: ET.Element | None, name: str, default: float) -> float:
    if limit is None or limit.get(name) is None:
        return default
    try:
        return float(limit.get(name))
    except ValueError as exc:
        raise UrdfError(f"<limit {name}> is not a number", value=limit.get(name)) from exc


def parse_joint_limits(urdf_xml: str) -> dict[str, UrdfJointLimit]:
    """Parse the limits of every joint in a URDF document.

    Only the ``<joint>`` children of ``<robot>`` count: ``<transmission>`` blocks also hold
    ``<joint name=...>`` elements without a type.

    Args:
        urdf_xml: URDF document as a string.

    Returns:
        Joint name -> limits, in document order. Continuous joints (and joints without a
        position limit) get ``lower=-inf, upper=+inf``; a missing or zero velocity/effort is inf.

    Raises:
        UrdfError: the XML does not parse, or the root element is not ``<robot>``.
    """
    root = _parse_robot(urdf_xml)
    limits: dict[str, UrdfJointLimit] = {}
    for joint in root.findall("joint"):
        name, kind = joint.get("name"), joint.get("type")
        if not name or not kind:
            raise UrdfError("<joint> needs a name and a type", value=ET.tostring(joint)[:80])
        limit = joint.find("limit")
        lower, upper = -math.inf, math.inf
        # URDF ignores lower/upper on continuous joints; a revolute joint without them is
        # malformed, but urdfdom reads 0/0, so treat "absent" as unbounded and let callers decide.
        if kind in ("revolute", "prismatic") and limit is not None:
            if limit.get("lower") is not None or limit.get("upper") is not None:
                lower, upper = _attr(limit, "lower", 0.0), _attr(limit, "upper", 0.0)
        velocity = _attr(limit, "velocity", math.inf) or math.inf
        effort = _attr(limit, "effort", math.inf) or math.inf
        limits[name] = UrdfJointLimit(kind, lower, upper, velocity, effort)
    return limits


def parse_frame_names(urdf_xml: str) -> set[str]:
    """Names a pinocchio model of this URDF has frames for: every link and every joint."""
    root = _parse_robot(urdf_xml)
    links = {link.get("name") for link in root.findall("link")}
    joints = {joint.get("name") for joint in root.findall("joint")}
    return {name for name in links | joints if name}


def _parse_robot(urdf_xml: str) -> ET.Element:
    try:
        root = ET.fromstring(urdf_xml)
    except ET.ParseError as exc:
        raise UrdfError(f"URDF is not well-formed XML: {exc}") from exc
    if root.tag != "robot":
        raise UrdfError("URDF root element must be <robot>", value=root.tag)
    return root


def example_robot_data_dir() -> Path | None:
    """The ``robots/`` directory of the installed example-robot-data package, or None.

    Looked up, in order: the ``example_robot_data`` Python module (ROS or source builds
    provide ``getModelPath``), the ``cmeel.prefix`` of every ``sys.path`` entry (the PyPI wheel),
    the ``AMENT_PREFIX_PATH`` entries (a ROS apt install) and the interpreter's own prefix.
    """
    try:
        import example_robot_data  # type: ignore[import-not-found]

        # getModelPath returns the directory that holds the given subpath.
        found = Path(example_robot_data.getModelPath("panda_description/urdf/panda.urdf"))
        if (found / "panda_description").is_dir():
            return found
    except Exception:  # noqa: BLE001 - any failure means "not this way", try the next
        pass
    prefixes = [Path(entry) / "cmeel.prefix" for entry in sys.path if entry]
    prefixes += [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes += [Path(sys.prefix), Path(sysconfig.get_path("data"))]
    for prefix in prefixes:
        candidate = prefix / _ERD_SHARE / "robots"
        if candidate.is_dir():
            return candidate
    return None


def package_share_dir(package: str) -> Path | None:
    """The share directory of a package named in a ``package://`` URI, or None.

    For this package, a source checkout (``pip install -e .`` or running from the tree) wins
    over an installed copy, so that the files match the code that runs. Then the ament index
    (only if ``ament_index_python`` imports), then ``<prefix>/share/<package>``.
    """
    if package == PACKAGE:
        repo = Path(__file__).resolve().parents[2]
        if (repo / "package.xml").is_file() and (repo / "config").is_dir():
            return repo
    if package == "example-robot-data":
        robots = example_robot_data_dir()
        return robots.parent if robots is not None else None
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(package))
    except Exception:  # noqa: BLE001 - not importable, or the package is not indexed
        pass
    for prefix in dict.fromkeys((sys.prefix, sysconfig.get_path("data"))):
        candidate = Path(prefix) / "share" / package
        if candidate.is_dir():
            return candidate
    return None


def resolve_file_path(path: str, *, relative_to: Path | None) -> Path:
    """Resolve an absolute path, a ``package://pkg/rel`` URI or a path relative to a directory.

    Raises:
        UrdfError: a ``package://`` URI names a package that cannot be found.
    """
    if path.startswith("package://"):
        package, _, rest = path[len("package://") :].partition("/")
        share = package_share_dir(package)
        if share is None:
            raise UrdfError("package of the URI not found (not installed or not sourced)",
                            value=path)
        return share / rest
    candidate = Path(os.path.expanduser(path))
    if not candidate.is_absolute() and relative_to is not None:
        candidate = relative_to / candidate
    return candidate


def resolve_urdf(
    spec: Mapping[str, Any],
    *,
    profile_file: str | os.PathLike[str] | None,
    robot_description: str | None = None,
) -> tuple[str, str]:
    """Read the URDF a profile's ``urdf:`` section names.

    Args:
        spec: The ``urdf`` mapping: ``source`` (one of ``URDF_SOURCES``) and, except for
            ``robot_description``, ``path``.
        profile_file: The profile YAML, for relative paths and error messages.
        robot_description: URDF XML from the caller, required by ``source: robot_description``.

    Returns:
        ``(urdf_xml, source_description)``: the document and where it came from, in words.

    Raises:
        UrdfError: unknown source, missing path, missing file, or no robot_description given.
    """
    file = str(profile_file) if profile_file is not None else None
    source = spec.get("source")
    if source not in URDF_SOURCES:
        raise UrdfError("unknown URDF source", file=file, field="urdf.source", value=source,
                        choices=URDF_SOURCES)
    if source == "robot_description":
        if not robot_description or not robot_description.strip():
            raise UrdfError(
                "profile takes its URDF from the robot_description parameter, but none was given "
                "(pass robot_description=<xml>, or set urdf.source to file / example-robot-data)",
                file=file, field="urdf.source",
            )
        return robot_description, "robot_description parameter"
    rel = spec.get("path")
    if not isinstance(rel, str) or not rel:
        raise UrdfError(f"urdf.source {source} needs a path", file=file, field="urdf.path",
                        value=rel)
    if source == "example-robot-data":
        robots = example_robot_data_dir()
        if robots is None:
            raise UrdfError(
                "example-robot-data is not installed (pip install example-robot-data, or "
                "apt install ros-$ROS_DISTRO-example-robot-data)",
                file=file, field="urdf.source",
            )
        path = robots / rel
    else:
        base = Path(file).resolve().parent if file else None
        try:
            path = resolve_file_path(rel, relative_to=base)
        except UrdfError as exc:
            raise UrdfError(exc.reason, file=file, field="urdf.path", value=rel) from exc
    if not path.is_file():
        raise UrdfError(f"URDF file not found: {path}", file=file, field="urdf.path", value=rel)
    return path.read_text(encoding="utf-8"), f"{source}: {path}"
