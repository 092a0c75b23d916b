"""Docs that users read stay true to the code."""

import pathlib

from hv2r_ros.ros.node_docs import NODES, render

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_node_reference_matches_the_nodes():
    text = (ROOT / "docs" / "nodes.md").read_text()
    assert text == render(), "regenerate: python -m hv2r_ros.ros.node_docs > docs/nodes.md"


def test_every_node_has_an_executable_and_a_section():
    setup = (ROOT / "setup.py").read_text()
    text = render()
    for name in NODES:
        if (ROOT / "hv2r_ros" / "nodes" / f"{name}.py").exists():
            assert f'"{name}": "hv2r_ros.nodes.{name}:main"' in setup
            assert f"## `{name}`" in text


def test_readme_first_screen_has_the_two_commands():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:20])
    assert "make demo" in first_screen and "make test" in first_screen
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
