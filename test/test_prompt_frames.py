"""core.prompt frames, video and build: demo sources, sampling, bad input, batching, the cache.

Videos are written by cv2.VideoWriter into tmp_path, a few dozen 32x24 frames each. Frame i of
``write_video`` is uniform red ``STEP * i``, so a sampled frame tells which source frame it was.
"""

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.goal import GoalError
from hv2r_ros.core.models.runtime import Encoder
from hv2r_ros.core.prompt import spec as cache
from hv2r_ros.core.prompt.build import build_task_spec, embed_frames
from hv2r_ros.core.prompt.frames import FolderFrames, PromptError, RecordedFrames, SamplingConfig
from hv2r_ros.core.prompt.video import VideoFrames, open_frames
from onnx_fixtures import make_encoder, save

STEP = 6
FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "XVID", ".webm": "VP80"}


def write_video(path, frames=30, fps=30.0, size=(32, 24), colours=None):
    """Uniform frames: red STEP * i by default, else the given RGB colours."""
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC[path.suffix]), fps, size)
    assert writer.isOpened(), path
    colours = colours if colours is not None else [(STEP * i % 256, 0, 0) for i in range(frames)]
    for rgb in colours:
        writer.write(np.full((size[1], size[0], 3), rgb[::-1], np.uint8))
    writer.release()
    return path


def red(frame):
    return float(frame.rgb[..., 0].mean())


class MeanColour:
    """Stands in for runtime.Encoder: embedding = mean RGB; counts calls and images."""

    def __init__(self, path):
        self.path = Path(path)
        self.calls, self.images = 0, 0

    def embed(self, images):
        self.calls += 1
        self.images += len(images)
        return np.array([image.reshape(-1, 3).mean(axis=0) for image in images], np.float32)


@pytest.fixture
def encoder(tmp_path):
    path = tmp_path / "encoder.onnx"
    path.write_bytes(b"hashed only")
    return MeanColour(path)


@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv", ".webm"])
def test_every_container_is_sampled_at_the_rate(tmp_path, suffix):
    video = write_video(tmp_path / f"demo{suffix}", frames=30, fps=30.0)
    source = open_frames(video, SamplingConfig(rate_hz=10.0))
    frames = list(source)
    assert [f.index for f in frames] == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]
    np.testing.assert_allclose([f.time_s for f in frames], np.arange(10) / 10.0, atol=1e-6)
    assert source.expected_count == 10
    for frame in frames:  # lossy codecs: within a few levels of the source frame's red
        assert frame.rgb.dtype == np.uint8 and frame.rgb.shape == (24, 32, 3)
        assert abs(red(frame) - STEP * frame.index) < 8, (frame.index, red(frame))


def test_a_rate_above_the_frame_rate_gives_every_frame(tmp_path):
    frames = list(VideoFrames(write_video(tmp_path / "slow.avi", frames=8, fps=5.0),
                              SamplingConfig(rate_hz=30.0)))
    assert [f.index for f in frames] == list(range(8))
    np.testing.assert_allclose([f.time_s for f in frames], np.arange(8) / 5.0, atol=1e-6)


def test_large_frames_are_downscaled_keeping_the_aspect(tmp_path):
    video = write_video(tmp_path / "big.avi", frames=4, size=(64, 48))
    frames = list(VideoFrames(video, SamplingConfig(max_side_px=16)))
    assert {f.rgb.shape for f in frames} == {(12, 16, 3)}


def write_png(path, rgb, size=(32, 24)):
    assert cv2.imwrite(str(path), np.full((size[1], size[0], 3), rgb[::-1], np.uint8))
    return path


def test_image_folder_in_natural_order_at_its_frame_rate(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (0, 1, 2, 10, 11, 20):  # "frame_10" sorts after "frame_2"
        write_png(folder / f"frame_{i}.png", (i * 10, 0, 0))
    (folder / "notes.txt").write_text("ignored")
    source = open_frames(folder, SamplingConfig(rate_hz=100.0, folder_fps_hz=10.0))
    assert isinstance(source, FolderFrames)
    frames = list(source)
    assert [round(red(f) / 10) for f in frames] == [0, 1, 2, 10, 11, 20]
    np.testing.assert_allclose([f.time_s for f in frames], np.arange(6) / 10.0)


def test_recorded_frames_are_sampled_by_their_stamps():
    stamps = 1000.0 + np.array([0.0, 0.04, 0.09, 0.11, 0.2, 0.26, 0.31])
    frames = [np.full((6, 8, 3), i, np.uint8) for i in range(len(stamps))]
    sampled = list(RecordedFrames(frames, stamps, SamplingConfig(rate_hz=10.0)))
    assert [f.index for f in sampled] == [0, 3, 4, 6]  # first at or after 0, .1, .2, .3 s
    np.testing.assert_allclose([f.time_s for f in sampled], [0.0, 0.11, 0.2, 0.31], atol=1e-9)


def written(path, data):
    path.write_bytes(data)
    return path


def truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def unknown_codec(path):
    path.write_bytes(path.read_bytes().replace(b"MJPG", b"ZZZZ"))
    return path


BAD_FILES = [
    ("missing.mp4", lambda p: p, "does not exist"),
    ("empty.mp4", lambda p: written(p, b""), "empty (0 bytes)"),
    ("corrupt.mp4", lambda p: written(p, b"\x00\x01garbage" * 64), "cannot be opened"),
    ("cut.mp4", lambda p: truncated(write_video(p)), "cut short"),
    ("cut.avi", lambda p: truncated(write_video(p, frames=40)), "truncated: decoded"),
    ("cut.webm", lambda p: truncated(write_video(p, frames=40)), "truncated: decoded"),
    ("none.avi", lambda p: write_video(p, frames=0), "no decodable frames"),
    ("one.avi", lambda p: write_video(p, frames=1), "single frame"),
    ("codec.avi", lambda p: unknown_codec(write_video(p)), "codec 'ZZZZ'"),
    ("notes.txt", lambda p: written(p, b"hello"), "not a demo video"),
]


@pytest.mark.parametrize("name, make, words", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_videos_name_the_file_and_the_problem(tmp_path, encoder, name, make, words):
    path = make(tmp_path / name)
    with pytest.raises(PromptError) as info:
        spec, _ = build_task_spec(path, encoder, cache_dir=tmp_path / "cache")
    assert isinstance(info.value, GoalError) and isinstance(info.value, ConfigError)
    assert str(tmp_path / name) in str(info.value) and words in str(info.value), str(info.value)
    assert not list((tmp_path / "cache").glob("*.npz")) if (tmp_path / "cache").exists() else True


def test_huge_resolution_and_long_demos_are_refused_before_decoding(tmp_path):
    video = write_video(tmp_path / "demo.avi", frames=30, fps=10.0)
    with pytest.raises(PromptError, match=r"resolution 32x24 .* above the limit .*max_pixels"):
        VideoFrames(video, SamplingConfig(max_pixels=32 * 24 - 1))
    with pytest.raises(PromptError, match=r"longer than 2 s .*max_duration_s"):
        VideoFrames(video, SamplingConfig(max_duration_s=2.0))


@pytest.mark.parametrize("case, words", [
    ("empty", "no images"), ("one", "single frame"), ("corrupt", "cannot be decoded"),
    ("sizes", "is 16x12, the folder's first image 32x24")])
def test_bad_image_folders(tmp_path, case, words):
    folder = tmp_path / case
    folder.mkdir()
    if case != "empty":
        write_png(folder / "a0.png", (10, 0, 0))
    if case == "corrupt":
        (folder / "a1.png").write_bytes(b"\x89PNG not really")
    if case == "sizes":
        write_png(folder / "a1.png", (10, 0, 0), size=(16, 12))
    with pytest.raises(PromptError, match=words) as info:
        list(open_frames(folder, SamplingConfig(rate_hz=30.0)))
    assert str(folder) in str(info.value)


@pytest.mark.parametrize("frames, stamps, words", [
    ([], [], "no frames"),
    ([np.zeros((4, 4, 3), np.uint8)], [0.0], "single frame"),
    ([np.zeros((4, 4, 3), np.uint8)] * 2, [0.0], "2 frames but 1 stamps"),
    ([np.zeros((4, 4, 3), np.uint8)] * 2, [0.0, 0.0], "strictly increasing"),
    ([np.zeros((4, 4, 3), np.uint8)] * 2, [0.0, math.nan], "finite"),
    ([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32)], [0, 1], "frame 1"),
    ([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)], [0, 1], "one size"),
])
def test_bad_recordings(frames, stamps, words):
    with pytest.raises(PromptError, match=words) as info:
        RecordedFrames(frames, stamps, name="wrist recording")
    assert "wrist recording" in str(info.value)


@pytest.mark.parametrize("field, value", [("rate_hz", 0.0), ("rate_hz", math.nan),
                                          ("max_side_px", -1), ("max_pixels", True)])
def test_sampling_config_rejects_bad_values(field, value):
    with pytest.raises(ConfigError, match=f"sampling.{field}"):
        SamplingConfig(**{field: value})


def test_embedding_in_batches_matches_one_image_at_a_time(tmp_path):
    encoder = Encoder(save(make_encoder(), tmp_path / "encoder.onnx"), ["cpu"])
    video = write_video(tmp_path / "demo.avi", frames=23, fps=10.0)
    batched, times, indices, thumbs = embed_frames(VideoFrames(video), encoder, batch_size=4)
    assert batched.shape == (23, encoder.spec.embedding_size) and len(thumbs) == 23
    one_by_one = np.concatenate([encoder.embed([f.rgb]) for f in VideoFrames(video)])
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(indices, np.arange(23))


def test_spec_is_cached_by_content_encoder_and_settings(tmp_path, encoder):
    video = write_video(tmp_path / "demo.avi", frames=30, fps=10.0)
    first, report = build_task_spec(video, encoder, cache_dir=tmp_path / "cache", batch_size=8)
    assert not report.cached and report.cache_file.is_file()
    assert encoder.calls == math.ceil(30 / 8) and encoder.images == 30
    copy = tmp_path / "renamed.avi"
    copy.write_bytes(video.read_bytes())
    again, report = build_task_spec(copy, encoder, cache_dir=tmp_path / "cache")
    assert report.cached and encoder.images == 30, "same bytes: no decoding, no embedding"
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    np.testing.assert_array_equal(again.subgoal_frames, first.subgoal_frames)
    assert again.source_digest == first.source_digest and again.settings == first.settings
    _, report = build_task_spec(copy, encoder, cache_dir=tmp_path / "cache",
                                sampling=SamplingConfig(rate_hz=5.0))
    assert not report.cached, "other settings: rebuilt"
    _, report = build_task_spec(copy, encoder, cache_dir=tmp_path / "cache",
                                encoder_hash="another encoder")
    assert not report.cached, "another encoder: rebuilt"


def test_a_damaged_cache_file_is_rebuilt_not_trusted(tmp_path, encoder):
    video = write_video(tmp_path / "demo.avi", frames=20, fps=10.0)
    _, report = build_task_spec(video, encoder, cache_dir=tmp_path / "cache")
    report.cache_file.write_bytes(b"PK\x03\x04 damaged")
    spec, again = build_task_spec(video, encoder, cache_dir=tmp_path / "cache")
    assert not again.cached and spec.embeddings.shape[0] == 20
    assert cache.load_cached(tmp_path / "cache", report.cache_file.stem) is not None


def test_spec_round_trips_and_is_read_only(tmp_path, encoder):
    spec, _ = build_task_spec(write_video(tmp_path / "demo.mkv"), encoder)
    back = cache.TaskSpec.from_bytes(spec.to_bytes())
    for name in ("subgoal_embeddings", "subgoal_frames", "subgoal_times_s", "embeddings",
                 "sample_times_s", "start_embedding"):
        np.testing.assert_array_equal(getattr(back, name), getattr(spec, name))
        assert not getattr(back, name).flags.writeable
    assert back.goal_embedding.shape == (3,) and back.goal_frame.shape[2] == 3
    with pytest.raises(ValueError, match="not a readable task spec"):
        cache.TaskSpec.from_bytes(b"not an npz")


def test_a_goal_image_is_a_one_subgoal_spec(tmp_path, encoder):
    spec, _ = build_task_spec(write_png(tmp_path / "goal.png", (10, 120, 240)), encoder)
    assert spec.subgoal_count == 1 and spec.embeddings.shape == (1, 3)
    np.testing.assert_allclose(spec.goal_embedding, [10, 120, 240], atol=1)
    with pytest.raises(GoalError, match="empty"):
        build_task_spec(written(tmp_path / "empty.png", b""), encoder)


def test_a_non_finite_embedding_is_an_error_and_nothing_is_cached(tmp_path, encoder):
    encoder.embed = lambda images: np.full((len(images), 3), np.nan, np.float32)
    with pytest.raises(PromptError, match="not finite"):
        build_task_spec(write_video(tmp_path / "demo.avi"), encoder, cache_dir=tmp_path / "c")
    assert not list((tmp_path / "c").glob("*.npz")) if (tmp_path / "c").exists() else True


def test_a_camera_recording_becomes_a_spec_cached_by_its_pixels(tmp_path, encoder):
    colours = [(20, 20, 20)] * 8 + [(200, 20, 20)] * 12
    frames = [np.full((12, 16, 3), c, np.uint8) for c in colours]
    stamps = 1.7e9 + np.arange(len(frames)) / 20.0  # 20 Hz epoch stamps
    recording = RecordedFrames(frames, stamps, name="overhead recording")
    spec, report = build_task_spec(recording, encoder, cache_dir=tmp_path / "cache")
    assert spec.source == "overhead recording" and not report.cached
    np.testing.assert_allclose(spec.sample_times_s, np.arange(10) / 10.0, atol=1e-6)
    assert spec.subgoal_count == 1 and spec.subgoal_times_s[0] == pytest.approx(0.4)
    np.testing.assert_allclose(spec.goal_embedding, [200, 20, 20])
    _, again = build_task_spec(RecordedFrames(frames, stamps), encoder,
                               cache_dir=tmp_path / "cache")
    assert again.cached
