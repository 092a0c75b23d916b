"""ROS 2 bags as MCAP files: write and read real ROS messages without a rosbag2 install.

The files follow rosbag2's MCAP storage layout (profile ``ros2``, message encoding ``cdr``,
schema encoding ``ros2msg``: the type's ``.msg`` text followed by each dependency as
``====...`` / ``MSG: pkg/Type`` / text), so ``ros2 bag info`` / ``ros2 bag play`` and Foxglove
read them. Messages are serialised with rclpy's own CDR serialiser; the ``.msg`` texts come
from the installed message packages (``share/<pkg>/msg/<Type>.msg`` on the ament index).
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any, Iterator

from ament_index_python.packages import get_package_share_directory
from mcap.reader import make_reader
from mcap.writer import CompressionType, Writer
from rclpy.serialization import deserialize_message, serialize_message

__all__ = ["BagReader", "BagWriter", "message_class", "message_definition", "type_name"]

_SEPARATOR = "=" * 80
_PRIMITIVES = {
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
    "uint32", "int64", "uint64", "string", "wstring",
}


def type_name(msg_or_class: Any) -> str:
    """``pkg/msg/Type`` of a message instance or class (rosbag2's topic type string)."""
    cls = msg_or_class if isinstance(msg_or_class, type) else type(msg_or_class)
    package = cls.__module__.split(".")[0]
    return f"{package}/msg/{cls.__name__}"


def message_class(type_string: str) -> type:
    """The Python class of ``pkg/msg/Type`` (imported from the installed message package)."""
    package, _, name = type_string.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def _msg_text(package: str, name: str) -> str:
    try:
        share = Path(get_package_share_directory(package))
    except (LookupError, OSError):  # a venv with the PyPI wheels and no AMENT_PREFIX_PATH
        share = Path(sys.prefix) / "share" / package
    return (share / "msg" / f"{name}.msg").read_text()


def _dependencies(package: str, text: str) -> list[tuple[str, str]]:
    """(package, Type) of every non-primitive field type in a .msg text, in order."""
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        field_type = re.sub(r"\[.*?\]$", "", line.split()[0])
        field_type = re.sub(r"<=\d+$", "", field_type)  # bounded strings: string<=10
        if field_type in _PRIMITIVES or field_type.startswith(("string<", "wstring<")):
            continue
        if "/" in field_type:
            dep_package, dep_name = field_type.split("/")[0], field_type.split("/")[-1]
        elif field_type == "Header":
            dep_package, dep_name = "std_msgs", "Header"
        else:
            dep_package, dep_name = package, field_type
        found.append((dep_package, dep_name))
    return found


def message_definition(type_string: str) -> str:
    """rosbag2's ``ros2msg`` schema text of ``pkg/msg/Type`` (dependencies appended once)."""
    package, _, name = type_string.split("/")
    text = _msg_text(package, name)
    parts, seen = [text.rstrip("\n")], {(package, name)}
    queue = _dependencies(package, text)
    while queue:
        dep = queue.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        dep_text = _msg_text(*dep)
        parts.append(f"{_SEPARATOR}\nMSG: {dep[0]}/{dep[1]}\n{dep_text.rstrip(chr(10))}")
        queue.extend(_dependencies(dep[0], dep_text))
    return "\n".join(parts) + "\n"


class BagWriter:
    """Writes ROS messages to one MCAP file (zstd-compressed chunks).

    Args:
        path: Output ``.mcap`` file (its folder is created).
        metadata: Optional ``{name: {key: value}}`` metadata records (strings).
    """

    def __init__(self, path: str | Path, metadata: dict[str, dict[str, str]] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("wb")
        self._writer = Writer(self._file, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library="hv2r_ros")
        self._channels: dict[str, int] = {}
        self._schemas: dict[str, int] = {}
        self._sequence = 0
        for name, values in (metadata or {}).items():
            self._writer.add_metadata(name, {k: str(v) for k, v in values.items()})

    def _channel(self, topic: str, msg: Any) -> int:
        if topic not in self._channels:
            type_string = type_name(msg)
            if type_string not in self._schemas:
                self._schemas[type_string] = self._writer.register_schema(
                    name=type_string, encoding="ros2msg",
                    data=message_definition(type_string).encode())
            self._channels[topic] = self._writer.register_channel(
                topic=topic, message_encoding="cdr", schema_id=self._schemas[type_string])
        return self._channels[topic]

    def write(self, topic: str, msg: Any, time_ns: int) -> None:
        """Append ``msg`` on ``topic`` with log and publish time ``time_ns`` [ns]."""
        self._writer.add_message(channel_id=self._channel(topic, msg), log_time=int(time_ns),
                                 publish_time=int(time_ns), sequence=self._sequence,
                                 data=serialize_message(msg))
        self._sequence += 1

    def add_metadata(self, name: str, values: dict[str, Any]) -> None:
        """A metadata record (string values), e.g. the episode's outcome after it ran."""
        self._writer.add_metadata(name, {k: str(v) for k, v in values.items()})

    def close(self) -> None:
        """Finish the file (summary, index); the bag is unreadable until this runs."""
        if self._file.closed:
            return
        self._writer.finish()
        self._file.close()

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BagReader:
    """Reads an MCAP bag written by ``BagWriter`` (or rosbag2's MCAP storage).

    Args:
        path: The ``.mcap`` file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._classes: dict[str, type] = {}

    def metadata(self) -> dict[str, dict[str, str]]:
        """All metadata records, by name."""
        with self.path.open("rb") as stream:
            return {record.name: dict(record.metadata)
                    for record in make_reader(stream).iter_metadata()}

    def messages(self, topics: list[str] | None = None) -> Iterator[tuple[str, Any, int]]:
        """``(topic, message, log_time_ns)`` in log-time order, optionally only ``topics``."""
        with self.path.open("rb") as stream:
            reader = make_reader(stream)
            for schema, channel, message in reader.iter_messages(topics=topics):
                cls = self._classes.get(schema.name)
                if cls is None:
                    cls = self._classes[schema.name] = message_class(schema.name)
                yield channel.topic, deserialize_message(message.data, cls), message.log_time
