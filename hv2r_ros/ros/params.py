"""Parameter tables: each node declares its parameters once, from a tuple of ``ParamSpec``.

``declare`` gives every parameter a ``ParameterDescriptor`` (description with units, range,
read-only flag, the valid choices in ``additional_constraints``), so ``ros2 param describe``
shows the table and rclpy itself rejects a value out of range, of the wrong type or for a
read-only parameter. ``add_validator`` adds what rclpy does not check: choices and non-finite
floats. ``markdown_table`` renders the same table for the README.

Type names: ``bool``, ``int``, ``float``, ``str`` and ``bool[]``, ``int[]``, ``float[]``,
``str[]``. Ranges (``min``/``max``/``step``) apply to ``int`` and ``float`` only.
"""

from __future__ import annotations

import array
import dataclasses
import math
from typing import Any, Callable, Sequence

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from hv2r_ros.core.errors import ConfigError

__all__ = ["ParamSpec", "ParameterError", "add_validator", "declare", "markdown_table"]

_TYPES: dict[str, tuple[Parameter.Type, Callable[[Any], bool]]] = {
    "bool": (Parameter.Type.BOOL, lambda v: isinstance(v, bool)),
    "int": (Parameter.Type.INTEGER, lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": (Parameter.Type.DOUBLE, lambda v: isinstance(v, float)),
    "str": (Parameter.Type.STRING, lambda v: isinstance(v, str)),
    "bool[]": (Parameter.Type.BOOL_ARRAY, lambda v: isinstance(v, bool)),
    "int[]": (Parameter.Type.INTEGER_ARRAY,
              lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float[]": (Parameter.Type.DOUBLE_ARRAY, lambda v: isinstance(v, float)),
    "str[]": (Parameter.Type.STRING_ARRAY, lambda v: isinstance(v, str)),
}
_INT64 = (-(2**63), 2**63 - 1)


class ParameterError(ConfigError):
    """A ROS parameter's default or override is invalid (wrong type, range or choice)."""


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One row of a node's parameter table.

    Attributes:
        name: Parameter name, units as a suffix (``command_timeout_s``).
        type: One of ``bool int float str bool[] int[] float[] str[]``.
        default: Default value of that type (``1.0``, not ``1``, for a float).
        description: What it does, with units.
        min: Lowest valid value (int/float), inclusive; None for unbounded.
        max: Highest valid value (int/float), inclusive; None for unbounded.
        step: Granularity from ``min`` (int/float); 0 for none.
        read_only: Settable only at start-up (from a parameter file or the command line).
        choices: The valid values, when there is a finite set.

    Raises:
        ParameterError: An unknown type, or a default that its own spec rejects.
    """

    name: str
    type: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    step: float = 0
    read_only: bool = False
    choices: Sequence[Any] | None = None

    def __post_init__(self) -> None:
        if not self.name or " " in self.name:
            raise ParameterError("parameter name must be non-empty without spaces",
                                 field="name", value=self.name)
        if self.type not in _TYPES:
            raise ParameterError("unknown parameter type", field=f"{self.name}.type",
                                 value=self.type, choices=list(_TYPES))
        if (self.min is not None or self.max is not None or self.step) \
                and self.type not in ("int", "float"):
            raise ParameterError("min/max/step apply to int and float parameters only",
                                 field=self.name, value=self.type)
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        if isinstance(self.default, list):
            object.__setattr__(self, "default", list(self.default))
        problem = self.check(self.default)
        if problem:
            raise ParameterError(f"default {problem}", field=self.name, value=self.default)

    @property
    def ros_type(self) -> Parameter.Type:
        """The rclpy parameter type."""
        return _TYPES[self.type][0]

    def check(self, value: Any) -> str | None:
        """Why ``value`` is invalid for this spec (type, range, choices, NaN), or None."""
        element_ok = _TYPES[self.type][1]
        if self.type.endswith("[]"):
            if isinstance(value, array.array):  # how rclpy hands over numeric arrays
                value = value.tolist()
            if not isinstance(value, (list, tuple)) or not all(map(element_ok, value)):
                return f"must be a list of {self.type[:-2]}"
            items = list(value)
        elif not element_ok(value):
            return f"must be of type {self.type}"
        else:
            items = [value]
        if self.type.startswith("float") and not all(math.isfinite(v) for v in items):
            return "must be finite"
        if self.min is not None and value < self.min or self.max is not None and value > self.max:
            return f"must be in {_range_text(self)}"
        if self.choices is not None and any(v not in self.choices for v in items):
            return f"must be one of {', '.join(map(str, self.choices))}"
        return None

    def descriptor(self) -> ParameterDescriptor:
        """The ``ParameterDescriptor`` declaring this parameter."""
        descriptor = ParameterDescriptor(
            name=self.name, type=self.ros_type.value, description=self.description,
            read_only=self.read_only)
        if self.choices is not None:
            descriptor.additional_constraints = \
                "one of: " + ", ".join(map(str, self.choices))
        if self.type == "float" and (self.min is not None or self.max is not None):
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=-math.inf if self.min is None else float(self.min),
                to_value=math.inf if self.max is None else float(self.max),
                step=float(self.step))]
        elif self.type == "int" and (self.min is not None or self.max is not None):
            descriptor.integer_range = [IntegerRange(
                from_value=_INT64[0] if self.min is None else int(self.min),
                to_value=_INT64[1] if self.max is None else int(self.max),
                step=int(self.step))]
        return descriptor


def _range_text(spec: ParamSpec) -> str:
    if spec.min is None and spec.max is None:
        return ""
    low = "-inf" if spec.min is None else f"{spec.min:g}"
    high = "inf" if spec.max is None else f"{spec.max:g}"
    return f"[{low}, {high}]" + (f" step {spec.step:g}" if spec.step else "")


def declare(node: Node, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Declare every parameter with its descriptor; return name -> value (override or default).

    An empty-list default declares a statically typed parameter without a value (a list of
    unknown element type would otherwise be declared as a byte array) and reports ``[]``.

    Raises:
        ParameterError: An override (parameter file, command line) of the wrong type, out of
            range or not among the choices; names the parameter.
    """
    values: dict[str, Any] = {}
    for spec in specs:
        empty_list = spec.type.endswith("[]") and not spec.default
        try:
            parameter = node.declare_parameter(
                spec.name, spec.ros_type if empty_list else spec.default, spec.descriptor())
        except InvalidParameterTypeException as exc:
            hint = " (write 1.0, not 1, for a float)" if spec.type == "float" else ""
            raise ParameterError(f"must be of type {spec.type}{hint}: {exc}",
                                 field=f"{node.get_name()}.{spec.name}") from exc
        except InvalidParameterValueException as exc:
            raise ParameterError(f"rejected: {exc}", field=f"{node.get_name()}.{spec.name}",
                                 choices=spec.choices) from exc
        value = parameter.value
        if value is None:  # declared without a value (empty list default, no override)
            value = []
        elif isinstance(value, (array.array, tuple)):
            value = list(value)
        problem = spec.check(value)
        if problem:
            raise ParameterError(problem, field=f"{node.get_name()}.{spec.name}", value=value,
                                 choices=spec.choices)
        values[spec.name] = value
    return values


def add_validator(node: Node, specs: Sequence[ParamSpec]) -> Callable:
    """Reject run-time sets that violate ``choices`` or are non-finite floats.

    Ranges, types and read-only are already enforced by rclpy from the descriptors.
    Parameters not in ``specs`` pass through.

    Returns:
        The registered callback (for ``node.remove_on_set_parameters_callback``).
    """
    by_name = {spec.name: spec for spec in specs}

    def validate(parameters: list[Parameter]) -> SetParametersResult:
        for parameter in parameters:
            spec = by_name.get(parameter.name)
            if spec is None or parameter.type_ != spec.ros_type:
                continue  # rclpy rejects type mismatches with its own reason
            problem = spec.check(parameter.value)
            if problem:
                return SetParametersResult(
                    successful=False, reason=f"{parameter.name} {problem} "
                                             f"(got {parameter.value!r})")
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(validate)
    return validate


def markdown_table(specs: Sequence[ParamSpec]) -> str:
    """The README table: name, type, default, description (with units), range, read-only."""
    rows = ["| name | type | default | description | range | read-only |",
            "| --- | --- | --- | --- | --- | --- |"]
    for spec in specs:
        valid = _range_text(spec)
        if spec.choices is not None:
            valid = "one of " + ", ".join(f"`{c}`" for c in spec.choices)
        cells = [f"`{spec.name}`", f"`{spec.type}`", f"`{spec.default!r}`", spec.description,
                 valid, "yes" if spec.read_only else "no"]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"
