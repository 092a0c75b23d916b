"""Camera images to the encoder's input tensor, as the encoder's metadata says.

Input images are uint8 H x W x 3 in **RGB** order (convert ``bgr8`` ROS images before calling).
Per image, in this order:

1. Geometry. ``resize``: stretch to the input size. ``resize_shorter_center_crop``: scale so the
   shorter side (relative to the target aspect ratio) fills the target, keep the centre: done as
   a centre crop of the source to the target aspect ratio, then one resize, which is the same
   mapping as resize-then-crop up to sub-pixel rounding of the crop edges and resizes fewer
   pixels. ``cv2.INTER_AREA`` when shrinking in both axes, ``cv2.INTER_LINEAR`` otherwise; the
   resize writes straight into a preallocated buffer.
2. Channel order: RGB kept, or reversed when the model wants ``bgr``.
3. Values: ``x [0, 255] -> low + x * (high - low) / 255`` (the pixel_range), then
   ``(x - mean) / std`` per channel, folded into one multiply-add per channel:
   ``y = x * gain + offset``, ``gain = (high - low) / 255 / std``, ``offset = (low - mean) / std``.
4. Layout: NCHW float32, written into a preallocated output buffer.

After construction a call allocates nothing of its own (numpy ufuncs write with ``out=``).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from hv2r_ros.core.models.contract import EncoderSpec


def crop_box(height: int, width: int, target: tuple[int, int]) -> tuple[int, int, int, int]:
    """Centred (top, left, h, w) of the largest region of ``height x width`` with the target's
    aspect ratio; ``target`` is (H, W) [px]."""
    th, tw = target
    if height * tw > width * th:  # source relatively taller: full width, crop rows
        h = max(1, min(height, round(width * th / tw)))
        return (height - h) // 2, 0, h, width
    w = max(1, min(width, round(height * tw / th)))
    return 0, (width - w) // 2, height, w


def interpolation(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> int:
    """INTER_AREA when shrinking in both axes (anti-aliased), INTER_LINEAR otherwise."""
    if dst_hw[0] <= src_hw[0] and dst_hw[1] <= src_hw[1]:
        return cv2.INTER_AREA
    return cv2.INTER_LINEAR


def fit_image(image: np.ndarray, spec: EncoderSpec, out: np.ndarray | None = None) -> np.ndarray:
    """Step 1 (geometry) alone: ``image`` (h, w, 3) uint8 -> (H, W, 3) uint8 at the input size.

    Training code uses it to prepare frames exactly as the runtime will.
    """
    height, width = spec.input_size
    if out is None:
        out = np.empty((height, width, 3), np.uint8)
    if spec.resize == "resize_shorter_center_crop":
        top, left, h, w = crop_box(image.shape[0], image.shape[1], (height, width))
        image = image[top:top + h, left:left + w]
    if image.shape[:2] == (height, width):
        np.copyto(out, image)
    else:
        cv2.resize(image, (width, height), dst=out,
                   interpolation=interpolation(image.shape[:2], (height, width)))
    return out


class Preprocessor:
    """Fills a preallocated float32 [batch, 3, H, W] buffer from RGB uint8 images.

    Args:
        spec: The encoder's spec (input size, pixel format and range, mean/std, resize mode).
        batch: Largest number of images per call (the buffer's first dimension).

    Attributes:
        buffer: The output buffer, float32 [batch, 3, H, W]; each call overwrites it.
        gain, offset: Per-channel float32 multiply-add folding scale, mean and std, shape (3,).
    """

    def __init__(self, spec: EncoderSpec, batch: int) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.spec = spec
        self.batch = batch
        height, width = spec.input_size
        low, high = spec.pixel_range
        std = np.asarray(spec.std, np.float64)
        self.gain = ((high - low) / 255.0 / std).astype(np.float32)
        self.offset = ((low - np.asarray(spec.mean, np.float64)) / std).astype(np.float32)
        # Output channel c reads input channel _source[c] (RGB input).
        self._source = (2, 1, 0) if spec.pixel_format == "bgr" else (0, 1, 2)
        self.buffer = np.empty((batch, 3, height, width), np.float32)
        self._resized = np.empty((batch, height, width, 3), np.uint8)

    def __call__(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Preprocess ``images`` (N <= batch, each uint8 h x w x 3, RGB; sizes may differ).

        Returns:
            A view of ``buffer``: float32 [N, 3, H, W], valid until the next call.
        """
        count = len(images)
        if not 1 <= count <= self.batch:
            raise ValueError(f"expected 1..{self.batch} images, got {count}")
        for i in range(count):
            self._one(images[i], i)
        return self.buffer[:count]

    def _one(self, image: np.ndarray, index: int) -> None:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image {index}: expected uint8 HxWx3 (RGB), got "
                             f"{image.dtype} {image.shape}")
        resized = fit_image(image, self.spec, self._resized[index])
        out = self.buffer[index]
        for channel, source in enumerate(self._source):
            np.multiply(resized[:, :, source], self.gain[channel], out=out[channel])
            np.add(out[channel], self.offset[channel], out=out[channel])
