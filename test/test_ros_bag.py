"""MCAP bags: ROS messages round-trip, schemas follow rosbag2's ros2msg layout."""

from __future__ import annotations

import numpy as np
from mcap.reader import make_reader
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import MultiDOFJointTrajectory, MultiDOFJointTrajectoryPoint
from geometry_msgs.msg import Transform

from hv2r_ros.ros.bag import BagReader, BagWriter, message_definition, type_name


def test_messages_round_trip_in_order_with_metadata(tmp_path):
    path = tmp_path / "episode.mcap"
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    with BagWriter(path, metadata={"episode": {"seed": 3}}) as bag:
        for i in range(5):
            image = Image(height=6, width=8, encoding="rgb8", step=24, data=pixels.tobytes())
            image.header.stamp.sec = i
            bag.write("/overhead_camera/image_raw", image, i * 10**9)
            bag.write("/joint_states", JointState(name=["a", "b"], position=[i, -i]),
                      i * 10**9 + 1)
        bag.add_metadata("outcome", {"success": True})
    reader = BagReader(path)
    assert reader.metadata() == {"episode": {"seed": "3"}, "outcome": {"success": "True"}}
    messages = list(reader.messages())
    assert [t for t, _, _ in messages] == ["/overhead_camera/image_raw", "/joint_states"] * 5
    times = [ns for _, _, ns in messages]
    assert times == sorted(times)
    image = messages[4][1]
    assert image.header.stamp.sec == 2
    np.testing.assert_array_equal(np.frombuffer(bytes(image.data), np.uint8).reshape(6, 8, 3),
                                  pixels)
    joints = [m for t, m, _ in reader.messages(["/joint_states"])]
    assert [list(m.position) for m in joints] == [[i, -i] for i in range(5)]


def test_schema_is_ros2msg_with_every_dependency_once(tmp_path):
    text = message_definition(type_name(MultiDOFJointTrajectory))
    headers = [line for line in text.splitlines() if line.startswith("MSG: ")]
    assert len(headers) == len(set(headers))
    for dep in ("std_msgs/Header", "trajectory_msgs/MultiDOFJointTrajectoryPoint",
                "geometry_msgs/Transform", "geometry_msgs/Vector3", "geometry_msgs/Quaternion",
                "builtin_interfaces/Time", "builtin_interfaces/Duration", "geometry_msgs/Twist"):
        assert f"MSG: {dep}" in headers
    path = tmp_path / "a.mcap"
    with BagWriter(path) as bag:
        msg = MultiDOFJointTrajectory(points=[MultiDOFJointTrajectoryPoint(
            transforms=[Transform()])])
        bag.write("/hv2r/action", msg, 5)
    with path.open("rb") as stream:
        reader = make_reader(stream)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        (schema,) = summary.schemas.values()
        (channel,) = summary.channels.values()
    assert (schema.name, schema.encoding) == ("trajectory_msgs/msg/MultiDOFJointTrajectory",
                                               "ros2msg")
    assert channel.message_encoding == "cdr"
    (_, back, _), = BagReader(path).messages()
    assert back.points[0].transforms[0].rotation.w == 1.0
