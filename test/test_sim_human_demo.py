"""Human demonstration videos: a hand proxy moves the layout's cube onto its pad; the MP4 and
its ground truth (phases, cube poses, keyframes) are what prompt evaluation relies on."""

import os

os.environ.setdefault("MUJOCO_GL", "osmesa")

import cv2  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hv2r_ros.core.errors import ConfigError  # noqa: E402
from hv2r_ros.core.robot_profile import load_robot_profile  # noqa: E402
from hv2r_ros.sim.hand import (  # noqa: E402
    FINGERS, OPEN_CLOSURE, HandRig, hand_capsules, hand_mjcf, hand_rotation, sample_skin_rgb,
)
from hv2r_ros.sim.human_demo import (  # noqa: E402
    PHASES, CameraView, HumanDemoInfo, render_human_demo, render_scene_state,
)
from hv2r_ros.sim.scene import build_scene_xml  # noqa: E402
from hv2r_ros.sim.task import evaluate_success, sample_layout  # noqa: E402
from hv2r_ros.sim.video_io import Mp4Writer, read_mp4  # noqa: E402

SEED = 3


@pytest.fixture(scope="module")
def layout():
    return sample_layout(load_robot_profile("panda").workspace, SEED)


@pytest.fixture(scope="module")
def demo(layout, tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "demo.mp4"
    info = render_human_demo(layout, path, seed=SEED)
    frames, fps = read_mp4(path)
    return path, info, frames, fps


def changed_pixels(frame, reference, threshold=30):
    """Pixels whose blurred colour differs from the reference's (the blur absorbs MP4 noise)."""
    a = cv2.GaussianBlur(frame, (7, 7), 0).astype(int)
    b = cv2.GaussianBlur(reference, (7, 7), 0).astype(int)
    return int((np.abs(a - b).max(axis=2) > threshold).sum())


def nearest_colour(layout, rgb):
    """Name of the cube, pad or table whose chromaticity is nearest to a pixel's."""
    colours = {o.name: o.rgba[:3] for o in layout.objects}
    colours.update({p.name: p.rgba[:3] for p in layout.pads})
    colours["table"] = layout.appearance.table_rgba[:3]
    chroma = lambda c: np.asarray(c, float) / max(float(np.sum(c)), 1e-9)  # noqa: E731
    return min(colours, key=lambda n: np.linalg.norm(chroma(colours[n]) - chroma(rgb)))


def colour_at(frame, view, point):
    u, v = view.pixel(point)
    return frame[int(round(v)) - 1:int(round(v)) + 2, int(round(u)) - 1:int(round(u)) + 2].reshape(
        -1, 3).mean(axis=0)


@pytest.fixture(scope="module")
def view(layout):
    model = mujoco.MjModel.from_xml_string(build_scene_xml(None, layout))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return CameraView(model, data, "overhead", (224, 224))


def test_video_is_written_and_reads_back(demo):
    path, info, frames, fps = demo
    assert frames.shape == (info.frame_count, 224, 224, 3) and fps == 15.0
    assert info.frame_count > 3 * 15  # a few seconds of demonstration
    loaded = HumanDemoInfo.load(path.with_suffix(".json"))
    assert loaded.phases == info.phases and loaded.keyframes == info.keyframes
    assert loaded.hand_in_view == info.hand_in_view and loaded.skin_rgb == info.skin_rgb
    assert np.allclose(loaded.object_poses, info.object_poses, atol=1e-6)


def test_first_frame_shows_the_cube_at_its_start_and_no_hand(demo, layout, view):
    _, info, frames, _ = demo
    start = np.asarray(layout.object(layout.target_object).position_m)
    assert np.allclose(info.object_poses[0, :3], start)
    assert changed_pixels(frames[0], render_scene_state(layout)) == 0
    assert not info.hand_in_view[0]
    assert nearest_colour(layout, colour_at(frames[0], view, start)) == layout.target_object


def test_final_frame_shows_the_cube_on_the_target_pad_and_no_hand(demo, layout, view):
    _, info, frames, _ = demo
    final = info.object_poses[-1, :3]
    positions = {o.name: np.asarray(o.position_m) for o in layout.objects}
    positions[layout.target_object] = final
    assert evaluate_success(layout, positions, None).success
    goal = render_scene_state(layout, object_positions={layout.target_object: final})
    assert changed_pixels(frames[-1], goal) == 0
    assert not info.hand_in_view[-1]
    assert nearest_colour(layout, colour_at(frames[-1], view, final)) == layout.target_object
    start = layout.object(layout.target_object).position_m
    assert nearest_colour(layout, colour_at(frames[-1], view, start)) != layout.target_object
    # The same check sees the hand while it holds the cube.
    grasped = info.keyframes[1]["frame"]
    assert info.hand_in_view[grasped]
    assert changed_pixels(frames[grasped], render_scene_state(layout)) > 500


def test_phases_are_monotone_and_keyframes_in_order(demo):
    _, info, _, _ = demo
    order = [PHASES.index(p) for p in info.phases]
    assert order == sorted(order) and set(info.phases) == set(PHASES)
    labels = [k["label"] for k in info.keyframes]
    assert labels == ["start", "grasped", "released", "end"]
    frames = [k["frame"] for k in info.keyframes]
    assert frames == sorted(frames) and frames[-1] < info.frame_count - 1
    assert info.phases[frames[1]] == "grasp" and info.phases[frames[-1]] == "end"
    assert not any(info.hand_in_view[frames[-1]:])
    # The cube moves only between the grasp and the release.
    poses = info.object_poses[:, :3]
    assert np.allclose(poses[:frames[1] + 1], poses[0])
    assert np.allclose(poses[frames[2]:], poses[-1])
    assert np.ptp(poses[:, 2]) > 0.05  # lifted on the way


def test_same_seed_same_video_other_seed_other_demo(demo, layout, tmp_path):
    path, info, frames, _ = demo
    again = render_human_demo(layout, tmp_path / "again.mp4", seed=SEED)
    assert np.array_equal(read_mp4(tmp_path / "again.mp4")[0], frames)
    assert again.phases == info.phases and np.array_equal(again.object_poses, info.object_poses)
    other = render_human_demo(layout, tmp_path / "other.mp4", seed=SEED + 1)
    assert other.skin_rgb != info.skin_rgb and other.phases != info.phases


def test_side_view_size_and_fps_are_configurable(layout, tmp_path):
    info = render_human_demo(layout, tmp_path / "side.mp4", camera="side", size=(320, 240),
                             fps=10.0, seed=SEED)
    frames, fps = read_mp4(tmp_path / "side.mp4")
    assert frames.shape[1:] == (240, 320, 3) and fps == 10.0
    assert len(frames) == info.frame_count
    final = info.object_poses[-1, :3]
    goal = render_scene_state(layout, camera="side", size=(320, 240),
                              object_positions={layout.target_object: final})
    assert changed_pixels(frames[-1], goal) == 0 and not info.hand_in_view[-1]
    assert any(info.hand_in_view)


def test_bad_camera_size_or_fps_is_named(layout, tmp_path):
    with pytest.raises(ConfigError, match="camera.*wrist.*overhead"):
        render_human_demo(layout, tmp_path / "x.mp4", camera="wrist")
    with pytest.raises(ConfigError, match="size"):
        render_human_demo(layout, tmp_path / "x.mp4", size=(0, 224))
    with pytest.raises(ConfigError, match="fps"):
        render_human_demo(layout, tmp_path / "x.mp4", fps=0.0)


def test_fingers_close_around_the_cube_without_entering_it(layout):
    """Every finger stops on the cube or closes fully; none passes through it."""
    bodies, assets = hand_mjcf(sample_skin_rgb(np.random.default_rng(0)))
    model = mujoco.MjModel.from_xml_string(build_scene_xml(None, layout, None, bodies, assets))
    data = mujoco.MjData(model)
    rig = HandRig(model)
    cube = layout.object(layout.target_object)
    rotation = hand_rotation(2.5, 0.25)
    palm = np.asarray(cube.position_m) - rotation @ np.array([0.03, 0.0, -0.052])
    closures = rig.close_on_object(data, palm, rotation, [model.geom(cube.name).id])
    assert np.all(closures > OPEN_CLOSURE + 0.1) and np.all(closures <= 1.0)
    rig.set_pose(data, palm, rotation, closures)
    mujoco.mj_kinematics(model, data)
    for finger in FINGERS:
        for k in (1, 2, 3):
            geom = model.geom(f"hand_{finger}_{k}").id
            assert mujoco.mj_geomDistance(model, data, geom, model.geom(cube.name).id, 0.1,
                                          None) > 0.0
    touching = sum(min(mujoco.mj_geomDistance(model, data, model.geom(f"hand_{f}_{k}").id,
                                              model.geom(cube.name).id, 0.1, None)
                       for k in (1, 2, 3)) < 0.01 for f in FINGERS)
    assert touching >= 3  # thumb against fingers, not an empty fist


def test_hand_segments_are_connected_and_sized_like_a_hand():
    capsules = hand_capsules(np.zeros(3), np.eye(3), np.full(5, 0.5))
    for finger in FINGERS:
        for k in (1, 2):
            assert np.allclose(capsules[f"{finger}_{k}"].end, capsules[f"{finger}_{k + 1}"].start)
    assert np.allclose(capsules["forearm"].end, capsules["upper_arm"].start)
    flat = hand_capsules(np.zeros(3), np.eye(3), np.zeros(5))
    span = flat["middle_3"].end[0] - flat["forearm_wrist"].start[0]
    assert 0.16 < span < 0.22  # wrist to middle fingertip of an adult hand
    tones = np.array([sample_skin_rgb(np.random.default_rng(s)) for s in range(50)])
    assert np.all(tones[:, 0] >= tones[:, 1]) and np.all(tones[:, 1] >= tones[:, 2])
    assert np.ptp(tones[:, 0]) > 0.3  # light to dark


def test_mp4_writer_rejects_wrong_frames_and_reader_names_missing_files(tmp_path):
    with Mp4Writer(tmp_path / "v.mp4", (32, 24), 5.0) as writer:
        with pytest.raises(ValueError, match="uint8"):
            writer.write(np.zeros((32, 24, 3), np.uint8))
        writer.write(np.zeros((24, 32, 3), np.uint8))
    assert read_mp4(tmp_path / "v.mp4")[0].shape == (1, 24, 32, 3)
    with pytest.raises(OSError, match="no such video"):
        read_mp4(tmp_path / "missing.mp4")
