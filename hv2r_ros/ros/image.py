"""``sensor_msgs/Image`` and ``CompressedImage`` <-> numpy, without cv_bridge.

Encodings: rgb8, bgr8, rgba8, bgra8, mono8 (uint8); mono16, 16UC1 (uint16); 32FC1 (float32).
One-channel images come out (H, W), the others (H, W, C).

Zero copy: rclpy hands ``uint8[]`` fields over as ``array.array('B')``, which exports a writable
buffer, so ``image_to_array`` returns a view of ``msg.data`` (also with row padding, as a strided
view). It copies only to byte-swap a 16-bit or float image whose ``is_bigendian`` differs from
this machine, or when ``data`` is a plain list. The view keeps the message's buffer alive and
stops it from being resized; writing into it writes into the message.

Readers never raise: they return ``(array | None, Status)``. An unknown encoding, an undecodable
compressed image or a depth image passed to ``to_rgb`` is ``HOLD_INVALID_MEASUREMENT``; a size
that does not add up (``step`` shorter than a row, ``data`` not ``step * height`` bytes) is
``HOLD_WRONG_LENGTH``. Writers raise ``ValueError`` on a shape or dtype that does not match the
encoding: that is a programming error, not bad input.
"""

from __future__ import annotations

import array
import sys
from typing import NamedTuple

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image

from hv2r_ros.core.status import Status
from hv2r_ros.ros.stamps import from_seconds

__all__ = [
    "ENCODINGS", "Encoding", "array_to_image", "compressed_to_array", "image_to_array", "to_rgb",
]


class Encoding(NamedTuple):
    """Pixel layout of one ``sensor_msgs/Image`` encoding."""

    dtype: np.dtype
    channels: int


ENCODINGS: dict[str, Encoding] = {
    "rgb8": Encoding(np.dtype(np.uint8), 3),
    "bgr8": Encoding(np.dtype(np.uint8), 3),
    "rgba8": Encoding(np.dtype(np.uint8), 4),
    "bgra8": Encoding(np.dtype(np.uint8), 4),
    "mono8": Encoding(np.dtype(np.uint8), 1),
    "mono16": Encoding(np.dtype(np.uint16), 1),
    "16UC1": Encoding(np.dtype(np.uint16), 1),
    "32FC1": Encoding(np.dtype(np.float32), 1),
}

_BIG_ENDIAN_HOST = sys.byteorder == "big"
_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
}


def _shape(height: int, width: int, channels: int) -> tuple[int, ...]:
    return (height, width) if channels == 1 else (height, width, channels)


def _matches(pixels: np.ndarray, layout: Encoding) -> bool:
    if layout.channels == 1:
        return pixels.dtype == layout.dtype and pixels.ndim == 2
    return pixels.dtype == layout.dtype and pixels.ndim == 3 and pixels.shape[2] == layout.channels


def image_to_array(msg: Image) -> tuple[np.ndarray | None, Status]:
    """View the pixels of an ``Image`` as an array, without copying where possible.

    Args:
        msg: The image; ``step`` may exceed ``width * channels * itemsize`` (row padding).

    Returns:
        ``(pixels, OK)`` with pixels of shape (H, W) or (H, W, C) and the encoding's dtype, a
        view of ``msg.data`` unless a byte swap was needed; or ``(None, HOLD_*)``.
    """
    layout = ENCODINGS.get(msg.encoding)
    if layout is None:
        return None, Status.HOLD_INVALID_MEASUREMENT
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    itemsize = layout.dtype.itemsize
    row_bytes = width * layout.channels * itemsize
    data = msg.data
    if height == 0 or width == 0 or step < row_bytes or len(data) != step * height:
        return None, Status.HOLD_WRONG_LENGTH
    try:
        if isinstance(data, list):  # hand-built messages on old distros; rclpy's take never
            data = np.asarray(data, dtype=np.uint8)
        strides = (step, itemsize) if layout.channels == 1 else \
            (step, layout.channels * itemsize, itemsize)
        pixels = np.ndarray(shape=_shape(height, width, layout.channels), dtype=layout.dtype,
                            buffer=data, strides=strides)
    except (TypeError, ValueError, OverflowError):  # no buffer exported, or a value > 255
        return None, Status.HOLD_WRONG_LENGTH
    if itemsize > 1 and bool(msg.is_bigendian) != _BIG_ENDIAN_HOST:
        pixels = pixels.byteswap()
    return pixels, Status.OK


def to_rgb(pixels: np.ndarray, encoding: str) -> tuple[np.ndarray | None, Status]:
    """Turn colour or grey pixels into (H, W, 3) uint8 RGB for the encoder.

    Args:
        pixels: Output of ``image_to_array`` (or ``compressed_to_array``).
        encoding: Its encoding.

    Returns:
        ``(rgb, OK)``: rgb8 is returned as is (no copy, possibly row-strided); every other
        encoding gives a new C-contiguous array (mono16 scaled by 255/65535). Depth encodings
        (16UC1, 32FC1) and unknown ones give ``(None, HOLD_INVALID_MEASUREMENT)``; a shape that
        does not match the encoding gives ``(None, HOLD_WRONG_LENGTH)``.
    """
    layout = ENCODINGS.get(encoding)
    if layout is None or encoding in ("16UC1", "32FC1"):
        return None, Status.HOLD_INVALID_MEASUREMENT
    if not _matches(pixels, layout):
        return None, Status.HOLD_WRONG_LENGTH
    if encoding == "rgb8":
        return pixels, Status.OK
    if encoding == "mono16":
        grey = (pixels.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), Status.OK
    return cv2.cvtColor(np.ascontiguousarray(pixels), _TO_RGB[encoding]), Status.OK


def compressed_to_array(msg: CompressedImage) -> tuple[np.ndarray | None, Status]:
    """Decode a ``CompressedImage`` (JPEG, PNG, ...) into (H, W, 3) uint8 RGB.

    Args:
        msg: The compressed image. ``format`` is not trusted: OpenCV sniffs the data.
            Depth formats (``compressedDepth``) are not supported.

    Returns:
        ``(rgb, OK)`` or ``(None, HOLD_INVALID_MEASUREMENT)`` when the data does not decode.
    """
    if "compressedDepth" in msg.format or len(msg.data) == 0:
        return None, Status.HOLD_INVALID_MEASUREMENT
    try:
        bgr = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except (cv2.error, TypeError, ValueError):
        return None, Status.HOLD_INVALID_MEASUREMENT
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
        return None, Status.HOLD_INVALID_MEASUREMENT
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), Status.OK


def array_to_image(
    pixels: np.ndarray,
    encoding: str,
    stamp: Time | float,
    frame_id: str,
    out_msg: Image | None = None,
) -> Image:
    """Fill an ``Image`` from pixels (one copy into the message; none allocated when reused).

    Args:
        pixels: Shape (H, W) or (H, W, 1) for one channel, (H, W, C) otherwise, dtype of the
            encoding; any strides.
        encoding: One of ``ENCODINGS``.
        stamp: Capture time, a ``Time`` or seconds [s].
        frame_id: The camera's optical frame.
        out_msg: A message to reuse. Its ``data`` buffer is overwritten in place when it
            already has the right size, otherwise replaced by a new one.

    Returns:
        The filled message (``out_msg`` when given), tightly packed, native byte order.

    Raises:
        ValueError: Unknown encoding, or a shape/dtype that does not match it.
    """
    layout = ENCODINGS.get(encoding)
    if layout is None:
        raise ValueError(f"unknown image encoding {encoding!r}; valid: {', '.join(ENCODINGS)}")
    if layout.channels == 1 and pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if not _matches(pixels, layout):
        raise ValueError(f"{encoding} needs dtype {layout.dtype} and "
                         f"{'(H, W)' if layout.channels == 1 else f'(H, W, {layout.channels})'}"
                         f" pixels, got {pixels.dtype} {pixels.shape}")
    msg = Image() if out_msg is None else out_msg
    if isinstance(stamp, Time):
        msg.header.stamp = stamp
    else:
        from_seconds(stamp, out=msg.header.stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(_BIG_ENDIAN_HOST)
    msg.step = msg.width * layout.channels * layout.dtype.itemsize
    size = msg.step * msg.height
    data = msg.data
    if isinstance(data, array.array) and data.typecode == "B" and len(data) == size:
        target = np.ndarray(pixels.shape, dtype=layout.dtype, buffer=data)
        np.copyto(target, pixels)
    else:
        buffer = array.array("B")
        buffer.frombytes(np.ascontiguousarray(pixels).reshape(-1).view(np.uint8))
        msg.data = buffer
    return msg
