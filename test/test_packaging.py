"""The package installs the way ROS 2 users expect (ament_python layout, share/ data files)."""

import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_package_xml_is_format_3_with_the_ros_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "hv2r_ros"
    depends = {e.text for e in root if e.tag in ("depend", "exec_depend")}
    for package in ("rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "trajectory_msgs",
                    "diagnostic_msgs", "launch", "launch_ros"):
        assert package in depends, package
    assert root.find("export/build_type").text == "ament_python"
    assert (ROOT / "resource" / "hv2r_ros").exists()


def test_setup_cfg_puts_executables_where_ros2_run_looks():
    text = (ROOT / "setup.cfg").read_text()
    assert "script_dir=$base/lib/hv2r_ros" in text
    assert "install_scripts=$base/lib/hv2r_ros" in text


def test_wheel_installs_config_urdf_and_ament_index_into_share(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("hv2r_ros-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = "hv2r_ros-0.1.0.data/data/share/"
    expected = [
        "ament_index/resource_index/packages/hv2r_ros",
        "hv2r_ros/package.xml",
        "hv2r_ros/urdf/ur5e.urdf",
        "hv2r_ros/config/stack.yaml",
        "hv2r_ros/config/fastdds_shm.xml",
        "hv2r_ros/launch/bringup.launch.py",
        "hv2r_ros/launch/sim.launch.py",
    ] + [f"hv2r_ros/config/{d}/{r}.yaml" for r in ("panda", "ur5e", "xarm7", "so100", "g1")
         for d in ("robots", "params")]
    for path in expected:
        assert data + path in names, path
    entry_points = zipfile.ZipFile(wheel).read("hv2r_ros-0.1.0.dist-info/entry_points.txt")
    assert b"hv2r = hv2r_ros.cli:main" in entry_points
    for node in (b"safety_filter", b"command_output"):  # one executable per node, named as it
        assert node + b" = hv2r_ros.nodes." + node + b":main" in entry_points
    assert not any(name.startswith("test/") for name in names)
    assert not any("__pycache__" in name for name in names)
