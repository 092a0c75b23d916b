"""Tiny ONNX encoder/policy graphs that follow the model contract, and ways to break them.

Import from any test under ``test/`` as ``from onnx_fixtures import ...``: ``test/`` has no
``__init__.py``, so pytest (default ``prepend`` import mode) puts it on ``sys.path``.
(``from test.onnx_fixtures import`` would not work: ``test`` is also a standard-library package.)

The graphs are a few hundred parameters, built with ``onnx.helper``; no weights live in the
repository. Every builder takes keyword overrides so a test can produce exactly one defect:
a wrong tensor name, shape or dtype, a bad opset, a NaN weight, a NaN output, missing metadata.

Encoder: ``images`` [B, 3, H, W] -> GlobalAveragePool -> Flatten -> MatMul + bias -> ``embedding``
[B, D]. Policy: Flatten(``camera_embeddings``) ++ ``goal_embedding`` ++ ``proprio`` -> MatMul +
bias -> Tanh -> Reshape -> ``actions`` [B, H, A].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hv2r_ros.core.models.contract import EncoderSpec, PolicySpec, to_metadata

PANDA_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
OPSET = 17
IR_VERSION = 8  # opset 17's IR version: loadable by every onnxruntime that runs opset 17
FLOAT = TensorProto.FLOAT


def encoder_spec(**overrides: Any) -> EncoderSpec:
    """A small valid encoder spec (16x16 RGB in [0, 1], ImageNet stats, D = 8)."""
    fields = dict(input_size=(16, 16), pixel_format="rgb", pixel_range=(0.0, 1.0),
                  mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                  resize="resize_shorter_center_crop", embedding_size=8,
                  architecture="tiny-test", pretrained_on="nothing")
    fields.update(overrides)
    return EncoderSpec(**fields)


def policy_spec(**overrides: Any) -> PolicySpec:
    """A small valid policy spec for panda: actions 7 joint positions + gripper, H = 4, P = 7."""
    joints = overrides.get("joint_order", PANDA_JOINTS)
    gripper = overrides.get("gripper", True)
    size = len(joints) + int(gripper)
    fields = dict(action_space="joint_position", gripper=gripper, chunk_length=4,
                  control_rate_hz=10.0, camera_order=("wrist", "overhead"),
                  joint_order=tuple(joints), end_effector_frames=(), embedding_size=8,
                  action_size=size, proprio_size=len(joints),
                  action_mean=tuple(0.1 * i for i in range(size)), action_std=(0.5,) * size,
                  proprio_mean=(0.0,) * len(joints), proprio_std=(1.0,) * len(joints),
                  robot="panda")
    fields.update(overrides)
    return PolicySpec(**fields)


def _model(nodes, inputs, outputs, inits, metadata: Mapping[str, str], opset: int,
           name: str) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="hv2r-test-fixtures")
    model.ir_version = IR_VERSION
    helper.set_model_props(model, dict(metadata))
    return model


def _metadata(spec: EncoderSpec | PolicySpec, metadata: Mapping[str, str | None]) -> dict:
    props = to_metadata(spec)
    for key, value in metadata.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    return props


def make_encoder(spec: EncoderSpec | None = None, *, input_name: str = "images",
                 output_name: str = "embedding", input_dtype: int = FLOAT,
                 batch: Any = "batch", input_hw: tuple[int, int] | None = None,
                 output_dim: int | None = None, opset: int = OPSET, nan_weight: bool = False,
                 metadata: Mapping[str, str | None] = (), seed: int = 0) -> onnx.ModelProto:
    """A tiny encoder graph; every keyword breaks one thing when set off its default.

    Args:
        spec: Metadata to embed (default ``encoder_spec()``).
        input_hw: (H, W) declared on the input (default the spec's input_size).
        output_dim: D declared and produced (default the spec's embedding_size).
        input_dtype: ``TensorProto`` element type of the input (a Cast to float follows).
        metadata: Props to override; a value of None deletes the key.
        nan_weight: Put a NaN into the ``proj.weight`` initializer.
    """
    spec = spec or encoder_spec()
    h, w = input_hw or spec.input_size
    dim = output_dim or spec.embedding_size
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(3, dim)).astype(np.float32)
    if nan_weight:
        weight[1, 2 % dim] = np.nan
    bias = rng.normal(size=(dim,)).astype(np.float32)
    nodes = []
    source = input_name
    if input_dtype != FLOAT:
        nodes.append(helper.make_node("Cast", [input_name], ["as_float"], to=FLOAT))
        source = "as_float"
    nodes += [
        helper.make_node("GlobalAveragePool", [source], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "proj.weight"], ["projected"]),
        helper.make_node("Add", ["projected", "proj.bias"], [output_name]),
    ]
    inputs = [helper.make_tensor_value_info(input_name, input_dtype, [batch, 3, h, w])]
    outputs = [helper.make_tensor_value_info(output_name, FLOAT, [batch, dim])]
    inits = [numpy_helper.from_array(weight, "proj.weight"),
             numpy_helper.from_array(bias, "proj.bias")]
    return _model(nodes, inputs, outputs, inits, _metadata(spec, dict(metadata)), opset,
                  "tiny_encoder")


def make_policy(spec: PolicySpec | None = None, *, input_names: tuple[str, str, str] | None = None,
                output_name: str = "actions", cameras: int | None = None,
                embedding_dim: int | None = None, proprio_dim: int | None = None,
                chunk_length: int | None = None, action_dim: int | None = None,
                opset: int = OPSET, nan_weight: bool = False, nan_output: bool = False,
                metadata: Mapping[str, str | None] = (), seed: int = 1) -> onnx.ModelProto:
    """A tiny policy graph; declared sizes default to the spec's, each can be overridden.

    Args:
        spec: Metadata to embed (default ``policy_spec()``).
        input_names: Names of (camera embeddings, goal, proprio) inputs.
        nan_weight: Put a NaN into the ``head.weight`` initializer.
        nan_output: Add Log(-1) (NaN) to every action: finite weights, NaN output.
        metadata: Props to override; a value of None deletes the key.
    """
    spec = spec or policy_spec()
    cams = cameras or len(spec.camera_order)
    dim = embedding_dim or spec.embedding_size
    prop = proprio_dim or spec.proprio_size
    horizon = chunk_length or spec.chunk_length
    act = action_dim or spec.action_size
    names = input_names or ("camera_embeddings", "goal_embedding", "proprio")
    rng = np.random.default_rng(seed)
    features = (cams + 1) * dim + prop
    weight = (0.3 * rng.normal(size=(features, horizon * act))).astype(np.float32)
    if nan_weight:
        weight[0, 0] = np.nan
    bias = (0.1 * rng.normal(size=(horizon * act,))).astype(np.float32)
    inits = [numpy_helper.from_array(weight, "head.weight"),
             numpy_helper.from_array(bias, "head.bias")]
    head = "tanh"
    nodes = [
        helper.make_node("Flatten", [names[0]], ["cams_flat"], axis=1),
        helper.make_node("Concat", ["cams_flat", names[1], names[2]], ["features"], axis=1),
        helper.make_node("MatMul", ["features", "head.weight"], ["mm"]),
        helper.make_node("Add", ["mm", "head.bias"], ["pre"]),
        helper.make_node("Tanh", ["pre"], [head]),
    ]
    if nan_output:
        inits.append(numpy_helper.from_array(np.array([-1.0], np.float32), "minus_one"))
        nodes += [helper.make_node("Log", ["minus_one"], ["nan"]),
                  helper.make_node("Add", [head, "nan"], ["poisoned"])]
        head = "poisoned"
    # A Constant node, not an initializer: shape inference cannot read external data.
    shape = numpy_helper.from_array(np.array([-1, horizon, act], np.int64), "out_shape")
    nodes += [helper.make_node("Constant", [], ["out_shape"], value=shape),
              helper.make_node("Reshape", [head, "out_shape"], [output_name])]
    inputs = [helper.make_tensor_value_info(names[0], FLOAT, ["batch", cams, dim]),
              helper.make_tensor_value_info(names[1], FLOAT, ["batch", dim]),
              helper.make_tensor_value_info(names[2], FLOAT, ["batch", prop])]
    outputs = [helper.make_tensor_value_info(output_name, FLOAT, ["batch", horizon, act])]
    return _model(nodes, inputs, outputs, inits, _metadata(spec, dict(metadata)), opset,
                  "tiny_policy")


def save(model: onnx.ModelProto, path: str | Path, external_data: bool = False) -> Path:
    """Write ``model``; with ``external_data`` every tensor goes to ``<name>.data`` beside it."""
    path = Path(path)
    if external_data:
        onnx.save_model(model, str(path), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=path.name + ".data",
                        size_threshold=0)
    else:
        onnx.save_model(model, str(path))
    return path


def write_pair(directory: str | Path, encoder: onnx.ModelProto | None = None,
               policy: onnx.ModelProto | None = None, external_data: bool = True) -> Path:
    """Write ``encoder.onnx`` and ``policy.onnx`` (+ ``.onnx.data``) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save(encoder if encoder is not None else make_encoder(), directory / "encoder.onnx",
         external_data)
    save(policy if policy is not None else make_policy(), directory / "policy.onnx",
         external_data)
    return directory

