"""PyTorch -> ONNX export under the model contract, with a numerical parity check.

``export_encoder`` / ``export_policy`` trace the model with ``torch.onnx.export(dynamo=True)``
using the contract's tensor names and a dynamic batch axis, write the spec's metadata into
``metadata_props``, save the weights as external data beside the model (``NAME.onnx.data``,
referenced by a relative path, so the pair can be moved together), check the file with
``onnx.checker``, then run it with onnxruntime (CPU) and the PyTorch model eager on the same
random inputs. The export fails with ``ExportParityError`` when

    max |onnx - torch| > atol + rtol * max |torch|

(defaults atol = rtol = 1e-4, fp32): ResNet/ViT reorderings and kernel fusions stay around
1e-6..1e-5 of the output scale, a wrong graph is off by orders of magnitude. A model that fails
the check is deleted, so no file that disagrees with its PyTorch model is left behind.

The exported policy sees normalised proprio and emits normalised actions; the runtime applies
the metadata's proprio_mean/std and action_mean/std (see contract.py).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import onnx
import torch
from torch import nn

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.models.contract import (
    ACTION_SPACES,
    EE_ACTION_SIZE,
    ENCODER_INPUT,
    ENCODER_OUTPUT,
    POLICY_INPUTS,
    POLICY_OUTPUT,
    EncoderSpec,
    ModelContractError,
    PolicySpec,
    encoder_spec_from_metadata,
    policy_spec_from_metadata,
    to_metadata,
)

if TYPE_CHECKING:
    from hv2r_ros.core.robot_profile import RobotProfile

DEFAULT_OPSET = 18
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-4
EXPORT_BATCH = 2  # traced example batch; parity runs at another size to exercise the dynamic axis
PARITY_BATCH = 3


class ExportParityError(ConfigError):
    """The exported ONNX model and the PyTorch model disagree beyond the tolerance."""


@dataclasses.dataclass(frozen=True)
class ParityResult:
    """Outcome of one parity check.

    Attributes:
        output: Output tensor compared.
        max_abs_error: max |onnx - torch| over the batch.
        tolerance: atol + rtol * max |torch| it was held to.
        batch: Batch size of the random inputs.
    """

    output: str
    max_abs_error: float
    tolerance: float
    batch: int

    def __str__(self) -> str:
        return (f"parity {self.output}: max |onnx - torch| = {self.max_abs_error:.3e} "
                f"(tolerance {self.tolerance:.3e}, batch {self.batch})")


def export_encoder(model: nn.Module, spec: EncoderSpec, path: str | os.PathLike[str], *,
                   opset: int = DEFAULT_OPSET, atol: float = DEFAULT_ATOL,
                   rtol: float = DEFAULT_RTOL, seed: int = 0, verbose: bool = True
                   ) -> ParityResult:
    """Export an encoder (B, 3, H, W) -> (B, D) to ``path`` and check parity.

    Args:
        model: Maps normalised images float32 (B, 3, H, W) to embeddings (B, D); put in eval
            mode here.
        spec: Its contract metadata; H, W = spec.input_size, D = spec.embedding_size.
        path: Output ``.onnx`` file; the weights go to ``path + ".data"`` beside it.
        opset: ONNX opset.
        atol, rtol: Parity tolerance, see the module docstring.
        seed: Seed of the random parity inputs.
        verbose: Print the parity line.

    Returns:
        The ParityResult.

    Raises:
        ModelContractError: ``spec`` is invalid or the model's output shape disagrees with it.
        ExportParityError: ONNX and PyTorch outputs differ beyond the tolerance.
    """
    encoder_spec_from_metadata(to_metadata(spec), file=os.fspath(path))  # validate early
    height, width = spec.input_size
    example = (torch.randn(EXPORT_BATCH, 3, height, width),)
    return _export(model, example, (ENCODER_INPUT,), ENCODER_OUTPUT,
                   (EXPORT_BATCH, spec.embedding_size), to_metadata(spec), path,
                   opset, atol, rtol, seed, verbose)


def export_policy(model: nn.Module, spec: PolicySpec, path: str | os.PathLike[str], *,
                  opset: int = DEFAULT_OPSET, atol: float = DEFAULT_ATOL,
                  rtol: float = DEFAULT_RTOL, seed: int = 0, verbose: bool = True
                  ) -> ParityResult:
    """Export a policy ((B,C,D), (B,D), (B,P)) -> (B,H,A) to ``path`` and check parity.

    Args:
        model: ``model(camera_embeddings, goal_embedding, proprio) -> actions`` on normalised
            proprio and actions; put in eval mode here.
        spec: Its contract metadata (C = len(camera_order), D, P, H, A and the statistics).
        path, opset, atol, rtol, seed, verbose: As for ``export_encoder``.

    Returns:
        The ParityResult.

    Raises:
        ModelContractError: ``spec`` is invalid or the model's output shape disagrees with it.
        ExportParityError: ONNX and PyTorch outputs differ beyond the tolerance.
    """
    policy_spec_from_metadata(to_metadata(spec), file=os.fspath(path))
    example = (torch.randn(EXPORT_BATCH, len(spec.camera_order), spec.embedding_size),
               torch.randn(EXPORT_BATCH, spec.embedding_size),
               torch.randn(EXPORT_BATCH, spec.proprio_size))
    return _export(model, example, POLICY_INPUTS, POLICY_OUTPUT,
                   (EXPORT_BATCH, spec.chunk_length, spec.action_size), to_metadata(spec),
                   path, opset, atol, rtol, seed, verbose)


def check_parity(model: nn.Module, path: str | os.PathLike[str], *, batch: int = PARITY_BATCH,
                 atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL, seed: int = 0
                 ) -> ParityResult:
    """Run the ONNX file and the PyTorch model on the same random inputs and compare.

    Input shapes come from the ONNX graph, its dynamic batch axis set to ``batch``; the
    inputs are standard-normal float32 (normalised images, embeddings and proprio alike).

    Raises:
        ExportParityError: The outputs differ beyond atol + rtol * max |torch|, or are not
            finite, or differ in shape.
    """
    import onnxruntime as ort

    file = os.fspath(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(file, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    feeds = {}
    for node in session.get_inputs():
        shape = [batch if i == 0 else int(dim) for i, dim in enumerate(node.shape)]
        feeds[node.name] = rng.standard_normal(shape).astype(np.float32)
    output = session.get_outputs()[0].name
    got = session.run([output], feeds)[0]
    model.eval()
    with torch.no_grad():
        want = model(*(torch.from_numpy(feeds[node.name]) for node in session.get_inputs()))
    want = want.numpy()
    if got.shape != want.shape:
        raise ExportParityError(f"ONNX output shape {got.shape} != PyTorch {want.shape}",
                                file=file, field=output)
    error = float(np.max(np.abs(got - want)))
    tolerance = atol + rtol * float(np.max(np.abs(want)))
    if not (np.isfinite(got).all() and np.isfinite(want).all()) or not error <= tolerance:
        raise ExportParityError(
            f"ONNX and PyTorch disagree: max |onnx - torch| = {error:.3e} > tolerance "
            f"{tolerance:.3e} (atol {atol:g} + rtol {rtol:g} x max |torch|, batch {batch})",
            file=file, field=output)
    return ParityResult(output, error, tolerance, batch)


def data_path(path: str | os.PathLike[str]) -> Path:
    """The external-data file of ``path``: ``NAME.onnx.data`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".data")


def policy_spec_for_robot(profile: RobotProfile, *, embedding_size: int, chunk_length: int,
                          action_space: str = "ee_delta", gripper: bool | None = None,
                          cameras: Sequence[str] | None = None,
                          control_rate_hz: float | None = None,
                          stats: Mapping[str, Sequence[float]] | None = None) -> PolicySpec:
    """A PolicySpec for ``profile``: its joint order, end-effector frames, cameras and rate.

    Args:
        profile: The robot profile (``load_robot_profile("panda")``).
        embedding_size: D of the encoder the policy is paired with.
        chunk_length: H, actions per inference.
        action_space: ``ee_delta``, ``ee_absolute`` or ``joint_position``.
        gripper: Whether action rows end with a gripper command; default: the profile has one.
        cameras: Camera order (C names); default: the profile's cameras in file order.
        control_rate_hz: Rate of the chunk's steps [Hz]; default: the profile's control rate.
        stats: ``action_mean``, ``action_std`` (length A), ``proprio_mean``, ``proprio_std``
            (length P); default: identity (mean 0, std 1).

    Proprio is the joint positions [rad] in ``profile.joint_names`` order, so P = joints.
    """
    if action_space not in ACTION_SPACES:
        raise ConfigError("unknown action space", field="action_space", value=action_space,
                          choices=ACTION_SPACES)
    gripper = profile.gripper is not None if gripper is None else gripper
    cameras = tuple(profile.cameras) if cameras is None else tuple(cameras)
    frames = () if action_space == "joint_position" else profile.end_effector_frames
    action_size = (len(profile.joint_names) if action_space == "joint_position"
                   else EE_ACTION_SIZE[action_space] * len(frames)) + int(gripper)
    proprio_size = len(profile.joint_names)
    stats = dict(stats or {})
    defaults = {"action_mean": (0.0,) * action_size, "action_std": (1.0,) * action_size,
                "proprio_mean": (0.0,) * proprio_size, "proprio_std": (1.0,) * proprio_size}
    unknown = sorted(set(stats) - set(defaults))
    if unknown:
        raise ConfigError("unknown normalisation statistics", field=unknown[0],
                          choices=sorted(defaults))
    values = {key: tuple(float(v) for v in stats.get(key, default))
              for key, default in defaults.items()}
    spec = PolicySpec(action_space=action_space, gripper=gripper, chunk_length=chunk_length,
                      control_rate_hz=control_rate_hz or profile.control_rate_hz,
                      camera_order=cameras, joint_order=profile.joint_names,
                      end_effector_frames=frames, embedding_size=embedding_size,
                      action_size=action_size, proprio_size=proprio_size, **values,
                      robot=profile.name)
    policy_spec_from_metadata(to_metadata(spec))  # validates lengths, e.g. of the stats
    return spec


def _to_onnx(model: nn.Module, example: tuple[torch.Tensor, ...], inputs: Sequence[str],
             output: str, opset: int) -> onnx.ModelProto:
    batch = torch.export.Dim("batch", min=1, max=4096)
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed": by design here
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec")
            # All inputs share the one batch Dim on purpose; torch notes it once per input.
            warnings.filterwarnings("ignore", category=UserWarning,
                                    message="# The axis name: batch will not be used")
            program = torch.onnx.export(
                model, example, dynamo=True, input_names=list(inputs), output_names=[output],
                dynamic_shapes=tuple({0: batch} for _ in example), opset_version=opset,
                optimize=True, verbose=False)
    finally:
        registration.setLevel(level)
    return program.model_proto


def _export(model: nn.Module, example: tuple[torch.Tensor, ...], inputs: Sequence[str],
            output: str, output_shape: tuple[int, ...], metadata: dict[str, str],
            path: str | os.PathLike[str], opset: int, atol: float, rtol: float, seed: int,
            verbose: bool) -> ParityResult:
    path = Path(path)
    model.eval()
    with torch.no_grad():
        shape = tuple(model(*example).shape)
    if shape != output_shape:
        raise ModelContractError(
            f"model output shape {shape} does not match the spec's {output_shape}",
            file=os.fspath(path), field=output)
    proto = _to_onnx(model, example, inputs, output, opset)
    props = {p.key: p.value for p in proto.metadata_props if not p.key.startswith("hv2r.")}
    onnx.helper.set_model_props(proto, {**props, **metadata})
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, data_path(path)):  # onnx appends to an existing data file
        stale.unlink(missing_ok=True)
    onnx.save_model(proto, os.fspath(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=data_path(path).name,
                    size_threshold=1024)
    # onnx creates the data file owner-only; give it the model file's permissions so a robot
    # account that can read the model can read its weights.
    if data_path(path).exists():  # absent when every tensor is under the 1 kB threshold
        data_path(path).chmod(path.stat().st_mode & 0o777)
    onnx.checker.check_model(os.fspath(path))
    try:
        result = check_parity(model, path, atol=atol, rtol=rtol, seed=seed)
    except ExportParityError:
        for written in (path, data_path(path)):
            written.unlink(missing_ok=True)
        raise
    if verbose:
        print(f"{path}: {result}")
    return result
