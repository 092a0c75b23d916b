"""The MuJoCo tabletop scene: builds for every arm, renders deterministically, cameras see."""

import os
import struct

os.environ.setdefault("MUJOCO_GL", "osmesa")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hv2r_ros.core.robot_profile import load_robot_profile  # noqa: E402
from hv2r_ros.sim.robot_geometry import (  # noqa: E402
    decimate, parse_link_geometries, read_stl, triangle_count,
)
from hv2r_ros.sim.scene import SceneConfig, build_scene, build_scene_xml  # noqa: E402
from hv2r_ros.sim.task import OBJECT_COLOURS, sample_layout  # noqa: E402
from hv2r_ros.sim.world import SimConfig, SimWorld  # noqa: E402

ARMS = ("panda", "ur5e", "xarm7", "so100")


@pytest.fixture(scope="module")
def profiles():
    return {name: load_robot_profile(name) for name in ARMS}


@pytest.fixture(scope="module")
def panda_world(profiles):
    world = SimWorld(profiles["panda"], SimConfig(), sample_layout(profiles["panda"].workspace, 0))
    yield world
    world.close()


@pytest.mark.parametrize("arm", ARMS)
def test_scene_builds_for_every_arm(arm, profiles):
    profile = profiles[arm]
    layout = sample_layout(profile.workspace, 1)
    scene = build_scene(profile, layout)
    model = mujoco.MjModel.from_xml_string(scene.xml)
    cameras = {model.camera(i).name for i in range(model.ncam)}
    assert cameras == {"overhead", "side", "front", "wrist"}
    for body in scene.link_bodies:
        assert model.body(body).mocapid[0] >= 0
    assert len(scene.link_bodies) >= len(profile.joint_names)
    for obj in layout.objects:
        assert model.body(obj.name).mocapid[0] >= 0
    for pad in layout.pads:
        assert model.geom(pad.name).size[0] == pytest.approx(pad.half_size_m)
    assert model.vis.quality.offsamples == 0 and model.vis.quality.shadowsize == 0
    budget = SceneConfig().max_triangles
    for geoms in scene.geometry.link_geoms.values():
        assert all(len(g.faces) <= budget for g in geoms if g.faces is not None)
    assert not any(model.light_castshadow)


def test_scene_without_robot_takes_extra_bodies_and_assets(profiles):
    layout = sample_layout(profiles["panda"].workspace, 2)
    xml = build_scene_xml(
        None, layout,
        extra_bodies=['<body name="hand_palm" mocap="true"><geom type="box" size="0.04 0.05 '
                      '0.01" material="hand_skin" contype="0" conaffinity="0"/></body>'],
        extra_assets=['<material name="hand_skin" rgba="0.9 0.7 0.6 1"/>'])
    model = mujoco.MjModel.from_xml_string(xml)
    names = [model.body(i).name for i in range(model.nbody)]
    assert "hand_palm" in names and not any(n.startswith("robot_") for n in names)
    assert {model.camera(i).name for i in range(model.ncam)} == {"overhead", "side", "front"}


def _binary_stl(path, triangles):
    with open(path, "wb") as f:
        f.write(b"\0" * 80 + struct.pack("<I", len(triangles)))
        for tri in triangles:
            f.write(struct.pack("<3f", 0, 0, 0) + struct.pack("<9f", *np.ravel(tri)) + b"\0\0")


TETRA = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 0, 0], [0, 1, 0], [0, 0, 1]],
                  [[0, 0, 0], [0, 0, 1], [1, 0, 0]], [[1, 0, 0], [0, 1, 0], [0, 0, 1]]], float)


def test_stl_reading_binary_and_ascii(tmp_path):
    _binary_stl(tmp_path / "b.stl", TETRA)
    lines = ["solid t"] + ["facet normal 0 0 0\nouter loop\n" + "\n".join(
        f"vertex {x} {y} {z}" for x, y, z in tri) + "\nendloop\nendfacet" for tri in TETRA]
    (tmp_path / "a.stl").write_text("\n".join(lines + ["endsolid t"]))
    for name in ("b.stl", "a.stl"):
        vertices, faces = read_stl(tmp_path / name)
        assert vertices.shape == (4, 3) and faces.shape == (4, 3)
    (tmp_path / "bad.stl").write_text("not a mesh")
    with pytest.raises(ValueError, match="not a binary or ASCII STL"):
        read_stl(tmp_path / "bad.stl")


def test_decimation_keeps_the_shape_within_budget():
    # A finely tessellated sphere: 80 x 160 grid, ~25 000 triangles.
    theta, phi = np.meshgrid(np.linspace(0, np.pi, 80), np.linspace(0, 2 * np.pi, 160))
    vertices = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi),
                         np.cos(theta)], -1).reshape(-1, 3)
    idx = np.arange(80 * 160).reshape(160, 80)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[:-1, 1:], idx[1:, 1:]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                            np.stack([b, d, c], -1).reshape(-1, 3)])
    small_v, small_f = decimate(vertices, faces, 600)
    assert 50 < len(small_f) <= 600
    assert np.allclose(np.linalg.norm(small_v, axis=1), 1.0, atol=0.1)


def test_missing_or_non_stl_mesh_falls_back_to_capsules(tmp_path):
    _binary_stl(tmp_path / "ok.stl", TETRA * 0.1)
    urdf = f"""<robot name="r">
      <link name="base"><collision><geometry><mesh filename="{tmp_path}/ok.stl"/></geometry>
      </collision></link>
      <link name="arm"><visual><geometry><mesh filename="arm.dae"/></geometry></visual></link>
      <link name="fore"><collision><geometry><mesh filename="missing.stl"/></geometry>
      </collision></link>
      <link name="tip"/>
      <joint name="j1" type="revolute"><parent link="base"/><child link="arm"/>
        <origin xyz="0 0 0.3"/><axis xyz="0 0 1"/><limit lower="-1" upper="1"/></joint>
      <joint name="j2" type="revolute"><parent link="arm"/><child link="fore"/>
        <origin xyz="0.4 0 0"/><axis xyz="0 1 0"/><limit lower="-1" upper="1"/></joint>
      <joint name="j3" type="fixed"><parent link="fore"/><child link="tip"/>
        <origin xyz="0.3 0 0"/></joint>
    </robot>"""
    geoms = parse_link_geometries(urdf, base_dir=tmp_path)
    assert [g.kind for g in geoms["base"]] == ["mesh"]
    assert geoms["arm"][0].kind == "capsule" and geoms["arm"][0].fromto[3:] == (0.4, 0.0, 0.0)
    assert geoms["fore"][0].kind == "capsule" and geoms["fore"][0].fromto[3:] == (0.3, 0.0, 0.0)
    assert "tip" not in geoms
    assert triangle_count(geoms) == 4


def test_renders_deterministic_per_seed_and_differ_across_seeds(profiles):
    profile = profiles["panda"]
    images = []
    for seed in (5, 5, 6):
        with SimWorld(profile, SimConfig(), sample_layout(profile.workspace, seed)) as world:
            images.append([world.render(cam) for cam in ("overhead", "wrist")])
    for a, b in zip(images[0], images[1]):
        assert a.dtype == np.uint8 and a.shape == (224, 224, 3)
        assert np.array_equal(a, b)
    for a, c in zip(images[0], images[2]):
        assert np.mean(np.any(a != c, axis=-1)) > 0.05


def test_render_sizes_and_errors(panda_world):
    assert panda_world.render("overhead", 640, 480).shape == (480, 640, 3)
    with pytest.raises(ValueError, match="cameras: overhead"):
        panda_world.render("nose")
    with pytest.raises(ValueError, match="offscreen buffer"):
        panda_world.render("overhead", 1280, 720)


def test_every_camera_sees_every_object_in_its_colour(panda_world):
    image = panda_world.render("overhead").astype(float)
    families = np.array(list(OBJECT_COLOURS.values()))
    for camera in ("overhead", "side", "front", "wrist"):
        pixels = panda_world.object_pixels(camera)
        assert all(n >= 20 for n in pixels.values()), (camera, pixels)
    seg = panda_world._render("overhead", 224, 224, segmentation=True)
    for obj in panda_world.layout.objects:
        mask = seg[..., 0] == panda_world.model.geom(obj.name).id
        colour = np.median(image[mask], axis=0)
        # Shading scales brightness; compare chromaticity with every colour family.
        chroma = colour / colour.sum()
        nearest = np.argmin(np.linalg.norm(families / families.sum(1, keepdims=True) - chroma,
                                           axis=1))
        assert list(OBJECT_COLOURS)[nearest] == obj.colour


def test_wrist_camera_moves_with_the_arm(profiles):
    profile = profiles["panda"]
    with SimWorld(profile, SimConfig(), sample_layout(profile.workspace, 0)) as world:
        before = world.render("wrist"), world.render("overhead")
        cam_before = world.data.cam_xpos[world.model.camera("wrist").id].copy()
        target = profile.home.copy()
        target[0] += 0.4
        world.step(target, None, 2.0)
        after = world.render("wrist"), world.render("overhead")
        cam_after = world.data.cam_xpos[world.model.camera("wrist").id]
        tool_move = np.linalg.norm(world.tool_pose()[:2])
        # Rotating joint 1 by 0.4 rad swings the camera on a circle about the base axis.
        assert np.linalg.norm(cam_after - cam_before) > 0.05
        assert np.linalg.norm(cam_after[:2]) == pytest.approx(np.linalg.norm(cam_before[:2]),
                                                              abs=1e-6)
        assert tool_move > 0.2
        assert np.mean(np.any(before[0] != after[0], axis=-1)) > 0.3
        overhead_cam = world.model.camera("overhead").id
        assert np.allclose(world.data.cam_xpos[overhead_cam], world.model.cam_pos[overhead_cam])


@pytest.mark.parametrize("arm", ARMS)
def test_drawn_robot_matches_the_kinematic_model(arm, profiles):
    profile = profiles[arm]
    geometry = build_scene(profile, sample_layout(profile.workspace, 0)).geometry
    kin = profile.kinematic_model()
    ee = profile.end_effector_frames[0]
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(profile.limits.position_min, profile.limits.position_max)
        drawn = geometry.frame_poses(q, None, (ee,))[ee]
        assert np.allclose(drawn.homogeneous, kin.frame_pose(q, kin.frame_id(ee)).homogeneous,
                           atol=1e-9)
