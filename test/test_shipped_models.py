"""The model pair shipped in models/reference: small enough for git, documented, and valid for
the Panda profile (what `hv2r check` and the demo rely on)."""

from pathlib import Path

import numpy as np
import pytest

from hv2r_ros.core.models.check import check_model_pair
from hv2r_ros.core.models.runtime import ModelPair
from hv2r_ros.core.robot_profile import load_robot_profile

REFERENCE = Path(__file__).resolve().parents[1] / "models" / "reference"
FILES = ("encoder.onnx", "encoder.onnx.data", "policy.onnx", "policy.onnx.data")


def test_shipped_pair_is_complete_and_at_most_30_mb():
    sizes = {name: (REFERENCE / name).stat().st_size for name in FILES}
    assert sum(sizes.values()) <= 30 * 2**20, sizes
    card = (REFERENCE / "MODEL_CARD.md").read_text()
    for section in ("## Data", "## Objective", "## Size", "## Metrics", "## Limits"):
        assert section in card


def test_shipped_pair_passes_the_check_for_the_panda():
    report = check_model_pair(load_robot_profile("panda"), REFERENCE, steps=5)
    assert report.passed, report.format()


def test_shipped_pair_is_the_demo_default_and_conditions_on_the_goal():
    """Two goals give two different chunks for one observation: the goal input is used."""
    from hv2r_ros.cli.demo import default_models_dir

    assert default_models_dir().resolve() == REFERENCE
    pair = ModelPair.load(REFERENCE)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (224, 224, 3), dtype=np.uint8) for _ in range(2)]
    embeddings = pair.encoder.embed(images)
    goals = pair.encoder.embed([rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)
                                for _ in range(2)])
    q = np.asarray(load_robot_profile("panda").home, np.float32)
    a, b = (pair.policy.infer(embeddings, g, q) for g in goals)
    assert np.isfinite(a).all() and np.abs(a - b).max() > 1e-3
