"""ONNX runtime: providers, loading a valid pair, preprocessing, and every malformed-model error."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto
from onnx_fixtures import (
    encoder_spec,
    make_encoder,
    make_policy,
    policy_spec,
    save,
    write_pair,
)

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.models import runtime
from hv2r_ros.core.models.contract import ModelContractError
from hv2r_ros.core.models.preprocess import Preprocessor
from hv2r_ros.core.models.runtime import (
    CPU,
    CUDA,
    TENSORRT,
    Encoder,
    ModelPair,
    Policy,
    create_session,
    select_providers,
)


def images(count=2, hw=(48, 64), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, *hw, 3), dtype=np.uint8)


@pytest.fixture
def pair_dir(tmp_path):
    return write_pair(tmp_path / "models")


# ---------------------------------------------------------------- valid pair


def test_valid_pair_loads_and_runs(pair_dir):
    pair = ModelPair.load(pair_dir)
    assert pair.encoder.provider == CPU and pair.policy.provider == CPU
    assert ModelPair.load(pair_dir, ["cuda", "cpu"]).encoder.provider == CPU  # short names
    frames = images()
    emb = pair.encoder.embed(frames)
    assert emb.shape == (2, 8) and emb.dtype == np.float32
    # One batch of two == each image alone; and deterministic.
    alone = np.concatenate([pair.encoder.embed(frames[:1]), pair.encoder.embed(frames[1:])])
    np.testing.assert_allclose(emb, alone, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(emb, pair.encoder.embed(frames))
    assert not np.allclose(emb[0], emb[1])
    actions = pair.policy.infer(emb, emb[0], np.zeros(7))
    assert actions.shape == (4, 8) and actions.dtype == np.float64
    assert np.all(np.isfinite(actions))


def test_policy_normalises_proprio_and_denormalises_actions(tmp_path):
    spec = policy_spec(proprio_mean=(0.5,) * 7, proprio_std=(2.0,) * 7)
    policy = Policy(save(make_policy(spec), tmp_path / "policy.onnx"))
    rng = np.random.default_rng(3)
    cams, goal, proprio = rng.normal(size=(2, 8)), rng.normal(size=8), rng.normal(size=7)
    feed = {"camera_embeddings": cams[None].astype(np.float32),
            "goal_embedding": goal[None].astype(np.float32),
            "proprio": ((proprio - 0.5) / 2.0)[None].astype(np.float32)}
    raw = policy.session.run(["actions"], feed)[0][0]
    expected = raw * np.asarray(spec.action_std) + np.asarray(spec.action_mean)
    np.testing.assert_allclose(policy.infer(cams, goal, proprio), expected, rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(ValueError, match="proprio"):
        policy.infer(cams, goal, np.zeros(8))


def test_embed_accepts_images_of_different_sizes(pair_dir):
    encoder = Encoder(pair_dir / "encoder.onnx")
    emb = encoder.embed([images(1, (48, 64))[0], images(1, (120, 90), seed=1)[0],
                         images(1, (10, 10), seed=2)[0]])
    assert emb.shape == (3, 8)


def test_fixed_batch_encoder_runs_in_chunks(tmp_path):
    dynamic = Encoder(save(make_encoder(), tmp_path / "dynamic.onnx"))
    fixed = Encoder(save(make_encoder(batch=2), tmp_path / "fixed.onnx"))
    frames = images(3)
    assert fixed.fixed_batch == 2
    np.testing.assert_allclose(fixed.embed(frames), dynamic.embed(frames), rtol=1e-6)


def test_fixed_batch_of_one_is_refused(tmp_path):
    path = save(make_encoder(batch=1), tmp_path / "encoder.onnx")
    with pytest.raises(ModelContractError, match=r"encoder\.onnx: images: batch dim"):
        Encoder(path)


# ---------------------------------------------------------------- providers


def test_select_providers_orders_and_filters(monkeypatch):
    assert select_providers() == [CPU]  # this build: CPU (+ Azure, never chosen)
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU, CUDA, TENSORRT])
    assert select_providers() == [TENSORRT, CUDA, CPU]
    assert select_providers(["cuda"]) == [CUDA, CPU]
    assert select_providers(["CPUExecutionProvider", "trt"]) == [CPU, TENSORRT]
    with pytest.raises(ConfigError, match="unknown execution provider.*'rocm'"):
        select_providers(["rocm"])


def test_create_session_falls_back_when_a_provider_fails(monkeypatch, caplog, pair_dir):
    real = ort.InferenceSession

    class Dropping:  # onnxruntime-gpu without CUDA libraries: silently runs on CPU
        def __init__(self, session):
            self.session = session

        def get_providers(self):
            return self.session.get_providers()

    def fake(path, sess_options=None, providers=()):
        first = providers[0][0]
        if first == TENSORRT:
            raise RuntimeError("libnvinfer.so.10: cannot open shared object file")
        return Dropping(real(path, sess_options=sess_options, providers=[CPU]))

    monkeypatch.setattr(runtime.ort, "InferenceSession", fake)
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU, CUDA, TENSORRT])
    with caplog.at_level(logging.INFO, logger="hv2r.models"):
        session = create_session(pair_dir / "encoder.onnx")
    assert session.get_providers()[0] == CPU
    text = caplog.text
    assert "TensorrtExecutionProvider failed to load" in text and "libnvinfer" in text
    assert "CUDAExecutionProvider requested but onnxruntime dropped it" in text
    assert "running on CPUExecutionProvider" in text


# ---------------------------------------------------------------- preprocessing


def reference_preprocess(image, spec):
    """Slow, loop-by-loop reference: crop, resize, per-pixel channel order/scale/normalise."""
    th, tw = spec.input_size
    h, w = image.shape[:2]
    if spec.resize == "resize_shorter_center_crop":
        scale = max(th / h, tw / w)  # shorter side (relative to the target) fills the target
        ch, cw = min(h, round(th / scale)), min(w, round(tw / scale))
        top, left = (h - ch) // 2, (w - cw) // 2
        image = np.ascontiguousarray(image[top:top + ch, left:left + cw])
        h, w = ch, cw
    if (h, w) != (th, tw):
        shrink = th <= h and tw <= w
        image = cv2.resize(image, (tw, th),
                           interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    low, high = spec.pixel_range
    out = np.zeros((3, th, tw), np.float64)
    for c in range(3):
        src = 2 - c if spec.pixel_format == "bgr" else c
        for y in range(th):
            for x in range(tw):
                value = low + float(image[y, x, src]) * (high - low) / 255.0
                out[c, y, x] = (value - spec.mean[c]) / spec.std[c]
    return out


@pytest.mark.parametrize("spec_fields, hw", [
    (dict(), (48, 64)),                                              # shrink, crop width
    (dict(pixel_format="bgr", pixel_range=(0.0, 255.0),
          mean=(123.7, 116.3, 103.5), std=(58.4, 57.1, 57.4)), (64, 40)),  # crop height
    (dict(resize="resize"), (30, 50)),                               # stretch
    (dict(input_size=(12, 20)), (7, 9)),                             # enlarge, non-square
    (dict(input_size=(12, 20), resize="resize"), (12, 20)),          # already the right size
])
def test_preprocess_matches_reference(spec_fields, hw):
    spec = encoder_spec(**spec_fields)
    pre = Preprocessor(spec, batch=3)
    frames = images(2, hw, seed=7)
    out = pre(frames)
    assert out.shape == (2, 3, *spec.input_size) and out.dtype == np.float32
    assert np.shares_memory(out, pre.buffer)
    for i in range(2):
        np.testing.assert_allclose(out[i], reference_preprocess(frames[i], spec), atol=1e-5,
                                   rtol=1e-5)


def test_preprocess_rejects_wrong_images():
    pre = Preprocessor(encoder_spec(), batch=2)
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        pre(np.zeros((1, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="1..2 images"):
        pre(images(3))


# ---------------------------------------------------------------- malformed models


def expect_error(path, loader, *needles):
    with pytest.raises(ModelContractError) as info:
        loader(path)
    message = str(info.value)
    assert path.name in message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95])
def test_truncated_file(tmp_path, fraction):
    path = save(make_encoder(), tmp_path / "encoder.onnx")
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    expect_error(path, Encoder)


def test_random_bytes(tmp_path):
    path = tmp_path / "encoder.onnx"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    expect_error(path, Encoder, "ONNX")


def test_empty_file(tmp_path):
    path = tmp_path / "encoder.onnx"
    path.write_bytes(b"")  # parses as an empty ModelProto
    expect_error(path, Encoder, "no graph nodes")


def test_missing_file(tmp_path):
    expect_error(tmp_path / "encoder.onnx", Encoder, "not found")
    directory = write_pair(tmp_path / "models")
    (directory / "policy.onnx").unlink()
    with pytest.raises(ModelContractError, match=r"policy\.onnx: policy\.onnx not found"):
        ModelPair.load(directory)


@pytest.mark.parametrize("opset", [12, 24])
def test_wrong_opset(tmp_path, opset):
    path = save(make_encoder(opset=opset), tmp_path / "encoder.onnx")
    expect_error(path, Encoder, "opset_import", "13..23", repr(opset))


@pytest.mark.parametrize("key", ["hv2r.contract", "hv2r.embedding_size", "hv2r.normalize_std"])
def test_missing_encoder_metadata(tmp_path, key):
    path = save(make_encoder(metadata={key: None}), tmp_path / "encoder.onnx")
    expect_error(path, Encoder, key)


def test_missing_policy_metadata(tmp_path):
    path = save(make_policy(metadata={"hv2r.joint_order": None}), tmp_path / "policy.onnx")
    expect_error(path, Policy, "hv2r.joint_order", "missing")


def test_encoder_file_given_as_policy(tmp_path):
    path = save(make_encoder(), tmp_path / "policy.onnx")
    expect_error(path, Policy, "hv2r.contract", "hv2r.policy/1")


@pytest.mark.parametrize("kwargs, needles", [
    (dict(input_name="pixels"), ["graph inputs", "images", "pixels"]),
    (dict(output_name="features"), ["graph outputs", "embedding", "features"]),
    (dict(input_hw=(16, 24)), ["images", "dim 3 must be 16"]),
    (dict(output_dim=6), ["embedding", "dim 1 must be 8"]),
    (dict(input_dtype=TensorProto.FLOAT16), ["images", "float32", "float16"]),
    (dict(input_dtype=TensorProto.UINT8), ["images", "float32", "uint8"]),
])
def test_encoder_graph_mismatch(tmp_path, kwargs, needles):
    path = save(make_encoder(**kwargs), tmp_path / "encoder.onnx")
    expect_error(path, Encoder, *needles)


@pytest.mark.parametrize("kwargs, needles", [
    (dict(input_names=("camera_embeddings", "goal", "proprio")),
     ["graph inputs", "goal_embedding"]),
    (dict(output_name="action"), ["graph outputs", "actions"]),
    (dict(cameras=3), ["camera_embeddings", "dim 1 must be 2"]),
    (dict(embedding_dim=6), ["camera_embeddings", "dim 2 must be 8"]),
    (dict(proprio_dim=8), ["proprio", "dim 1 must be 7"]),
    (dict(chunk_length=5), ["actions", "dim 1 must be 4"]),
    (dict(action_dim=7), ["actions", "dim 2 must be 8"]),
])
def test_policy_graph_mismatch(tmp_path, kwargs, needles):
    path = save(make_policy(**kwargs), tmp_path / "policy.onnx")
    expect_error(path, Policy, *needles)


@pytest.mark.parametrize("external", [False, True])
def test_nan_weights(tmp_path, external):
    path = save(make_policy(nan_weight=True), tmp_path / "policy.onnx", external)
    expect_error(path, Policy, "head.weight", "NaN")
    path = save(make_encoder(nan_weight=True), tmp_path / "encoder.onnx", external)
    expect_error(path, Encoder, "proj.weight", "NaN")


def test_missing_external_data(pair_dir):
    (pair_dir / "encoder.onnx.data").unlink()
    expect_error(pair_dir / "encoder.onnx", Encoder, "encoder.onnx.data", "missing")


def test_truncated_external_data(pair_dir):
    data = pair_dir / "policy.onnx.data"
    data.write_bytes(data.read_bytes()[:40])
    expect_error(pair_dir / "policy.onnx", Policy, "policy.onnx.data", "truncated")


def test_pair_embedding_sizes_must_match(tmp_path):
    directory = write_pair(tmp_path, encoder=make_encoder(encoder_spec(embedding_size=6)))
    with pytest.raises(ModelContractError, match=r"policy\.onnx: hv2r\.embedding_size.*"
                                                 r"encoder's hv2r\.embedding_size 6"):
        ModelPair.load(directory)
