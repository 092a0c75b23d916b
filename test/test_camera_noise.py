"""Simulated camera sensor noise: consecutive frames of a still scene differ, as a sensor's do."""

import numpy as np
import pytest

from hv2r_ros.sim.camera_noise import ImageNoise


@pytest.mark.parametrize("shape", [(480, 640, 3), (224, 224, 3), (2000, 2000, 3)])
def test_frames_of_a_still_scene_differ_and_the_noise_has_its_std(shape):
    noise = ImageNoise(2.0, seed=1)
    still = np.full(shape, 128, np.uint8)
    frames = [noise(still) for _ in range(20)]
    assert all(f.dtype == np.uint8 and f.shape == shape for f in frames)
    assert all(not np.array_equal(a, b) for a, b in zip(frames, frames[1:]))
    deviation = np.stack(frames[:3]).astype(float) - 128
    assert abs(deviation.mean()) < 0.05 and 1.9 < deviation.std() < 2.1
    np.testing.assert_array_equal(still, 128)  # the input is not modified


def test_noise_saturates_at_the_8_bit_range_and_zero_std_is_the_identity():
    noise = ImageNoise(20.0, seed=2)
    dark, bright = np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 255, np.uint8)
    assert noise(dark).min() == 0 and noise(dark).max() > 0
    assert noise(bright).max() == 255 and noise(bright).min() < 255
    assert ImageNoise(0.0)(dark) is dark


@pytest.mark.parametrize("std", [-1.0, float("nan"), float("inf")])
def test_invalid_std_is_refused(std):
    with pytest.raises(ValueError, match="std"):
        ImageNoise(std)
