"""Image conversion: round trips, zero copy, padding, byte order and every way a message lies."""

import array
import sys

import cv2
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image

from hv2r_ros.core.status import Status
from hv2r_ros.ros.image import (
    ENCODINGS,
    array_to_image,
    compressed_to_array,
    image_to_array,
    to_rgb,
)

pytestmark = pytest.mark.ros  # needs rclpy and the message packages

RNG = np.random.default_rng(7)


def pixels_for(encoding, height=5, width=7):
    layout = ENCODINGS[encoding]
    shape = (height, width) if layout.channels == 1 else (height, width, layout.channels)
    if layout.dtype.kind == "f":
        return RNG.uniform(-5.0, 5.0, shape).astype(layout.dtype)
    return RNG.integers(0, np.iinfo(layout.dtype).max, shape, endpoint=True).astype(layout.dtype)


def over_the_wire(msg):
    """The message as a subscriber gets it (rclpy's deserialisation)."""
    return deserialize_message(serialize_message(msg), Image)


def buffer_of(msg):
    return np.frombuffer(msg.data, dtype=np.uint8)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_every_encoding_is_exact_and_zero_copy(encoding):
    pixels = pixels_for(encoding)
    msg = over_the_wire(array_to_image(pixels, encoding, 12.25, "cam_optical"))
    assert isinstance(msg.data, array.array)  # what the fast path relies on
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 250_000_000)
    assert msg.header.frame_id == "cam_optical"
    out, status = image_to_array(msg)
    assert status is Status.OK
    assert out.dtype == pixels.dtype and out.shape == pixels.shape
    np.testing.assert_array_equal(out, pixels)
    assert np.shares_memory(out, buffer_of(msg))


def test_padded_step_gives_a_strided_view():
    pixels = pixels_for("rgb8", 4, 5)
    row = 5 * 3
    padded = np.zeros((4, row + 9), dtype=np.uint8)
    padded[:, :row] = pixels.reshape(4, row)
    padded[:, row:] = 0xEE  # garbage in the padding must not leak into the pixels
    msg = Image(height=4, width=5, encoding="rgb8", step=row + 9,
                data=array.array("B", padded.tobytes()))
    out, status = image_to_array(msg)
    assert status is Status.OK
    np.testing.assert_array_equal(out, pixels)
    assert np.shares_memory(out, buffer_of(msg)) and out.strides == (row + 9, 3, 1)
    rgb, status = to_rgb(out, "rgb8")
    assert status is Status.OK and rgb is out


def test_padded_step_16_bit():
    pixels = pixels_for("mono16", 3, 4)
    padded = np.zeros((3, 6), dtype=np.uint16)
    padded[:, :4] = pixels
    msg = Image(height=3, width=4, encoding="mono16", step=12, is_bigendian=sys.byteorder == "big",
                data=array.array("B", padded.tobytes()))
    out, status = image_to_array(msg)
    assert status is Status.OK
    np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1"])
def test_foreign_byte_order_is_swapped_into_a_copy(encoding):
    pixels = pixels_for(encoding)
    foreign = pixels.astype(pixels.dtype.newbyteorder("S"))  # same values, other byte order
    msg = Image(height=5, width=7, encoding=encoding, step=7 * pixels.itemsize,
                is_bigendian=sys.byteorder != "big",
                data=array.array("B", foreign.tobytes()))
    out, status = image_to_array(msg)
    assert status is Status.OK and out.dtype.isnative
    np.testing.assert_array_equal(out, pixels)
    assert not np.shares_memory(out, buffer_of(msg))


def test_byte_order_flag_is_ignored_for_8_bit():
    pixels = pixels_for("mono8")
    msg = array_to_image(pixels, "mono8", 0.0, "c")
    msg.is_bigendian = 1
    out, status = image_to_array(msg)
    assert status is Status.OK and np.shares_memory(out, buffer_of(msg))
    np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize("change", [
    {"data": array.array("B", bytes(5 * 21 - 1))},  # truncated by one byte
    {"data": array.array("B", bytes(5 * 21 + 3))},  # longer than step * height
    {"step": 20},  # a row does not fit in the step
    {"height": 0, "data": array.array("B")},
    {"width": 0, "step": 0, "data": array.array("B")},
])
def test_sizes_that_do_not_add_up_hold(change):
    msg = Image(height=5, width=7, encoding="rgb8", step=21, data=array.array("B", bytes(105)))
    for key, value in change.items():
        setattr(msg, key, value)
    assert image_to_array(msg) == (None, Status.HOLD_WRONG_LENGTH)


@pytest.mark.parametrize("encoding", ["yuv422", "bayer_rggb8", "RGB8", "", "64FC1"])
def test_unknown_encoding_holds(encoding):
    msg = Image(height=1, width=1, encoding=encoding, step=3, data=array.array("B", bytes(3)))
    assert image_to_array(msg) == (None, Status.HOLD_INVALID_MEASUREMENT)


def test_encoding_is_trusted_only_as_far_as_the_sizes_agree():
    msg = array_to_image(pixels_for("rgb8"), "rgb8", 0.0, "c")
    msg.encoding = "mono16"  # 7 * 2 bytes per row fit in a 21-byte step:
    msg.step = 21
    out, status = image_to_array(msg)
    assert status is Status.OK and out.shape == (5, 7)  # a possible reading, so it is taken
    msg.encoding = "32FC1"  # 28 bytes per row do not fit in 21
    assert image_to_array(msg) == (None, Status.HOLD_WRONG_LENGTH)


def test_bytes_and_list_data_also_convert():
    pixels = pixels_for("mono8")
    from_bytes = Image(height=5, width=7, encoding="mono8", step=7)
    from_bytes._data = pixels.tobytes()  # a message built by hand, bypassing the setter
    out, status = image_to_array(from_bytes)
    assert status is Status.OK and not out.flags.writeable
    np.testing.assert_array_equal(out, pixels)
    from_list = Image(height=5, width=7, encoding="mono8", step=7)
    from_list._data = pixels.reshape(-1).tolist()
    out, status = image_to_array(from_list)
    assert status is Status.OK
    np.testing.assert_array_equal(out, pixels)


def test_reused_message_is_written_in_place():
    out_msg = Image()
    first = array_to_image(pixels_for("bgra8"), "bgra8", 1.0, "c", out_msg=out_msg)
    buffer = first.data
    second_pixels = pixels_for("bgra8")
    second = array_to_image(second_pixels, "bgra8", 2.5, "c", out_msg=out_msg)
    assert second is out_msg and second.data is buffer
    np.testing.assert_array_equal(image_to_array(second)[0], second_pixels)
    assert second.header.stamp.sec == 2 and second.header.stamp.nanosec == 500_000_000
    bigger = array_to_image(pixels_for("bgra8", 6, 7), "bgra8", 3.0, "c", out_msg=out_msg)
    assert bigger.data is not buffer and image_to_array(bigger)[0].shape == (6, 7, 4)


def test_writer_packs_strided_and_single_channel_input():
    pixels = pixels_for("rgb8", 6, 8)[::2, ::2]  # non-contiguous
    msg = array_to_image(pixels, "rgb8", 0.0, "c")
    assert msg.step == 4 * 3
    np.testing.assert_array_equal(image_to_array(msg)[0], pixels)
    mono = pixels_for("32FC1")
    np.testing.assert_array_equal(
        image_to_array(array_to_image(mono[:, :, None], "32FC1", 0.0, "c"))[0], mono)


@pytest.mark.parametrize("pixels, encoding", [
    (np.zeros((2, 2, 3), np.uint16), "rgb8"),
    (np.zeros((2, 2), np.uint8), "rgb8"),
    (np.zeros((2, 2, 3), np.uint8), "rgba8"),
    (np.zeros((2, 2), np.uint8), "nv12"),
])
def test_writer_rejects_mismatched_arrays(pixels, encoding):
    with pytest.raises(ValueError, match="encoding|needs"):
        array_to_image(pixels, encoding, 0.0, "c")


def test_to_rgb_colour_orders_and_grey():
    rgb = pixels_for("rgb8")
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)])
    cases = {
        "rgb8": rgb, "bgr8": rgb[..., ::-1], "rgba8": rgba, "bgra8": rgba[..., [2, 1, 0, 3]],
    }
    for encoding, pixels in cases.items():
        out, status = to_rgb(pixels, encoding)
        assert status is Status.OK and out.dtype == np.uint8
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)
    grey = pixels_for("mono8")
    out, _ = to_rgb(grey, "mono8")
    np.testing.assert_array_equal(out, np.dstack([grey] * 3))
    out, _ = to_rgb(np.array([[0, 257, 65535]], np.uint16), "mono16")
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 255])


def test_to_rgb_refuses_depth_unknown_and_mismatched():
    assert to_rgb(pixels_for("16UC1"), "16UC1") == (None, Status.HOLD_INVALID_MEASUREMENT)
    assert to_rgb(pixels_for("32FC1"), "32FC1") == (None, Status.HOLD_INVALID_MEASUREMENT)
    assert to_rgb(pixels_for("rgb8"), "hsv") == (None, Status.HOLD_INVALID_MEASUREMENT)
    assert to_rgb(pixels_for("rgba8"), "rgb8") == (None, Status.HOLD_WRONG_LENGTH)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_compressed_decodes_to_rgb(ext):
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:, :12] = (255, 0, 0)  # left half red, in RGB
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    msg = CompressedImage(format=ext[1:], data=array.array("B", encoded.tobytes()))
    out, status = compressed_to_array(msg)
    assert status is Status.OK and out.shape == (16, 24, 3)
    assert abs(int(out[8, 4, 0]) - 255) <= 3 and int(out[8, 4, 2]) <= 3
    if ext == ".png":
        np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("data, fmt", [
    (b"", "jpeg"),
    (b"\xff\xd8\xff\xe0 not really a jpeg", "jpeg"),
    (bytes(range(256)) * 4, "png"),
    (b"\x89PNG\r\n\x1a\n" + bytes(40), "png"),
    (bytes(64), "16UC1; compressedDepth"),
])
def test_corrupt_compressed_holds(data, fmt):
    msg = CompressedImage(format=fmt, data=array.array("B", data))
    assert compressed_to_array(msg) == (None, Status.HOLD_INVALID_MEASUREMENT)
