"""core.goal: the goal frame of an image or a demo video, embedded once per content."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.goal import GoalError, GoalProvider, file_digest, load_goal_frame
from hv2r_ros.core.models.runtime import Encoder
from hv2r_ros.core.status import Status
from onnx_fixtures import make_encoder, save

FRAMES = 12


def write_png(path, rgb=(10, 120, 240)):
    image = np.zeros((24, 32, 3), np.uint8)
    image[:] = rgb
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def write_video(path, frames=FRAMES, step=20):
    """Frame i is uniform red ``step * i`` (RGB), so the frame index can be read back."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (32, 24))
    for i in range(frames):
        writer.write(np.full((24, 32, 3), (0, 0, step * i), np.uint8))  # BGR
    writer.release()
    return path


class CountingEncoder:
    """Stands in for runtime.Encoder: embedding = mean colour, counts its calls."""

    def __init__(self, path, value=None):
        self.path = Path(path)
        self.calls = 0
        self.value = value

    def embed(self, images):
        self.calls += 1
        out = np.array([image.reshape(-1, 3).mean(axis=0) for image in images], np.float32)
        if self.value is not None:
            out[:] = self.value
        return out


@pytest.fixture
def encoder_file(tmp_path):
    path = tmp_path / "encoder.onnx"
    path.write_bytes(b"not a real model, only hashed")
    return path


def test_image_is_read_as_rgb(tmp_path):
    rgb, description = load_goal_frame(write_png(tmp_path / "goal.png"))
    assert rgb.dtype == np.uint8 and rgb.shape == (24, 32, 3) and rgb.flags.c_contiguous
    assert tuple(rgb[0, 0]) == (10, 120, 240)
    assert "goal.png" in description and "32x24" in description


def test_video_gives_its_last_frame(tmp_path):
    rgb, description = load_goal_frame(write_video(tmp_path / "demo.mp4"))
    assert rgb.shape == (24, 32, 3)
    # lossy codec: within a few levels of the last frame's red, far from the one before
    assert abs(float(rgb[..., 0].mean()) - 20 * (FRAMES - 1)) < 6, rgb[..., 0].mean()
    assert "demo.mp4" in description and f"#{FRAMES - 1}" in description


def test_long_video_seeks_to_the_end(tmp_path):
    rgb, description = load_goal_frame(write_video(tmp_path / "long.avi", frames=60, step=4))
    assert "#59" in description
    assert abs(float(rgb[..., 0].mean()) - 4 * 59) < 6, rgb[..., 0].mean()


@pytest.mark.parametrize("name, content, words", [
    ("missing.mp4", None, "does not exist"),
    ("empty.png", b"", "empty"),
    ("corrupt.png", b"\x89PNG but not really", "cannot be decoded"),
    ("corrupt.mp4", b"\x00\x01garbage" * 64, "video"),
    ("notes.txt", b"hello", "unsupported"),
])
def test_bad_inputs_name_the_file(tmp_path, name, content, words):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(GoalError) as info:
        load_goal_frame(path)
    assert isinstance(info.value, ConfigError)
    assert str(path) in str(info.value) and words in str(info.value), str(info.value)


def test_video_without_frames(tmp_path):
    path = write_video(tmp_path / "none.avi", frames=0)
    if not path.exists() or path.stat().st_size == 0:  # OpenCV may write nothing at all
        path.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST")
    with pytest.raises(GoalError, match="none.avi"):
        load_goal_frame(path)


def test_directory_and_empty_path_are_rejected(tmp_path):
    with pytest.raises(GoalError, match="not a file"):
        load_goal_frame(tmp_path)
    with pytest.raises(GoalError, match="prompt_video"):
        load_goal_frame("")


def test_cache_by_content_avoids_a_second_embed(tmp_path, encoder_file):
    encoder = CountingEncoder(encoder_file)
    goals = GoalProvider(encoder)
    first = write_png(tmp_path / "a.png")
    embedding, frame, status = goals.set_source(first)
    assert status is Status.OK and embedding.dtype == np.float32 and embedding.shape == (3,)
    assert frame.shape == (24, 32, 3)
    copy = tmp_path / "copy_of_a.png"
    copy.write_bytes(first.read_bytes())
    again, _, status = goals.set_source(copy)  # same bytes under another name: a hit
    assert status is Status.OK and encoder.calls == 1 and goals.embed_calls == 1
    np.testing.assert_array_equal(again, embedding)
    other, _, _ = goals.set_source(write_png(tmp_path / "b.png", rgb=(200, 0, 0)))
    assert encoder.calls == 2 and not np.allclose(other, embedding)


def test_another_encoder_does_not_reuse_the_cache(tmp_path, encoder_file):
    png = write_png(tmp_path / "a.png")
    other_file = tmp_path / "other.onnx"
    other_file.write_bytes(b"another model")
    assert file_digest(encoder_file) != file_digest(other_file)
    assert GoalProvider(CountingEncoder(encoder_file)).encoder_digest != \
        GoalProvider(CountingEncoder(other_file)).encoder_digest
    goals = GoalProvider(CountingEncoder(other_file))
    goals.set_source(png)
    assert goals.embed_calls == 1


def test_non_finite_embedding_is_rejected_and_not_cached(tmp_path, encoder_file):
    encoder = CountingEncoder(encoder_file, value=np.nan)
    goals = GoalProvider(encoder)
    png = write_png(tmp_path / "a.png")
    embedding, frame, status = goals.set_source(png)
    assert embedding is None and status is Status.HOLD_NON_FINITE and frame is not None
    goals.set_source(png)
    assert encoder.calls == 2


def test_with_the_onnx_encoder(tmp_path):
    encoder = Encoder(save(make_encoder(), tmp_path / "encoder.onnx"), ["cpu"])
    goals = GoalProvider(encoder)
    embedding, frame, status = goals.set_source(write_video(tmp_path / "demo.mp4"))
    assert status is Status.OK and embedding.shape == (encoder.spec.embedding_size,)
    np.testing.assert_allclose(embedding, encoder.embed([frame])[0], rtol=1e-6)
    assert not embedding.flags.writeable
