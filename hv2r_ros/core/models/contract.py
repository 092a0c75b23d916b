"""The self-describing model contract: what an ONNX encoder or policy carries in its metadata.

Everything needed to run a model travels inside the file (ONNX ``metadata_props``, string
values; lists and numbers JSON-encoded), so a model cannot be paired with the wrong
preprocessing, joint order or normalisation. See docs/model_contract.md.

Encoder (``hv2r.contract = hv2r.encoder/1``):
    input ``images``: float32 [B, 3, H, W], already resized, scaled and normalised by the runtime
    output ``embedding``: float32 [B, D]

Policy (``hv2r.contract = hv2r.policy/1``):
    inputs ``camera_embeddings`` float32 [B, C, D], ``goal_embedding`` float32 [B, D],
    ``proprio`` float32 [B, P] (normalised by the runtime with proprio_mean/std)
    output ``actions``: float32 [B, H, A] (normalised; the runtime de-normalises with
    action_mean/std)
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Mapping

from hv2r_ros.core.errors import ConfigError

ENCODER_CONTRACT = "hv2r.encoder/1"
POLICY_CONTRACT = "hv2r.policy/1"
ENCODER_INPUT, ENCODER_OUTPUT = "images", "embedding"
POLICY_INPUTS = ("camera_embeddings", "goal_embedding", "proprio")
POLICY_OUTPUT = "actions"
PIXEL_FORMATS = ("rgb", "bgr")
RESIZE_MODES = ("resize", "resize_shorter_center_crop")
ACTION_SPACES = ("ee_delta", "ee_absolute", "joint_position")
# Per end-effector frame: delta = [dx, dy, dz, rx, ry, rz] (translation [m], rotation vector
# [rad], base frame); absolute = [x, y, z, qx, qy, qz, qw]. Joint positions: one per joint [rad].
EE_ACTION_SIZE = {"ee_delta": 6, "ee_absolute": 7}


class ModelContractError(ConfigError):
    """A model's metadata is missing, malformed, or inconsistent with its graph or robot."""


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """What the runtime needs to feed an encoder.

    Attributes:
        input_size: (H, W) of the ``images`` input [px].
        pixel_format: Channel order the model expects, ``rgb`` or ``bgr``.
        pixel_range: (low, high) the 8-bit pixels are mapped to before normalisation,
            (0, 1) or (0, 255).
        mean: Per-channel mean subtracted after scaling, in the pixel_range units, length 3.
        std: Per-channel std divided after subtracting the mean, length 3, > 0.
        resize: ``resize`` (stretch to input_size) or ``resize_shorter_center_crop``.
        embedding_size: D, the length of the output embedding.
        architecture: Free text, e.g. ``resnet18-r3m``.
        pretrained_on: Free text: the data the weights were trained on.
    """

    input_size: tuple[int, int]
    pixel_format: str
    pixel_range: tuple[float, float]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str
    embedding_size: int
    architecture: str = ""
    pretrained_on: str = ""


@dataclasses.dataclass(frozen=True)
class PolicySpec:
    """What the runtime needs to feed a policy and read its actions.

    Attributes:
        action_space: ``ee_delta``, ``ee_absolute`` or ``joint_position``.
        gripper: Whether each action row ends with one gripper command in [0, 1] (0 open).
        chunk_length: H, actions per inference.
        control_rate_hz: Rate the chunk's steps are meant to be executed at [Hz].
        camera_order: Camera names in the order of ``camera_embeddings`` (C of them).
        joint_order: Joint names of ``proprio`` (and of joint-position actions).
        end_effector_frames: Frames of end-effector actions, in action order (ee spaces).
        embedding_size: D, shared with the encoder.
        action_size: A, the length of one action row.
        proprio_size: P, the length of ``proprio``.
        action_mean, action_std: De-normalisation of actions, length A (std > 0).
        proprio_mean, proprio_std: Normalisation of proprio, length P (std > 0).
        robot: Profile name the policy was trained for (informational).
    """

    action_space: str
    gripper: bool
    chunk_length: int
    control_rate_hz: float
    camera_order: tuple[str, ...]
    joint_order: tuple[str, ...]
    end_effector_frames: tuple[str, ...]
    embedding_size: int
    action_size: int
    proprio_size: int
    action_mean: tuple[float, ...]
    action_std: tuple[float, ...]
    proprio_mean: tuple[float, ...]
    proprio_std: tuple[float, ...]
    robot: str = ""

    def expected_action_size(self) -> int:
        """A implied by the action space, the frames or joints, and the gripper flag."""
        if self.action_space == "joint_position":
            size = len(self.joint_order)
        else:
            size = EE_ACTION_SIZE[self.action_space] * len(self.end_effector_frames)
        return size + (1 if self.gripper else 0)


_ENCODER_KEYS = {
    "input_size": "hv2r.input_size", "pixel_format": "hv2r.pixel_format",
    "pixel_range": "hv2r.pixel_range", "mean": "hv2r.normalize_mean",
    "std": "hv2r.normalize_std", "resize": "hv2r.resize",
    "embedding_size": "hv2r.embedding_size", "architecture": "hv2r.architecture",
    "pretrained_on": "hv2r.pretrained_on",
}
_POLICY_KEYS = {
    "action_space": "hv2r.action_space", "gripper": "hv2r.gripper",
    "chunk_length": "hv2r.chunk_length", "control_rate_hz": "hv2r.control_rate_hz",
    "camera_order": "hv2r.camera_order", "joint_order": "hv2r.joint_order",
    "end_effector_frames": "hv2r.end_effector_frames",
    "embedding_size": "hv2r.embedding_size", "action_size": "hv2r.action_size",
    "proprio_size": "hv2r.proprio_size", "action_mean": "hv2r.action_mean",
    "action_std": "hv2r.action_std", "proprio_mean": "hv2r.proprio_mean",
    "proprio_std": "hv2r.proprio_std", "robot": "hv2r.robot",
}
_OPTIONAL = {"architecture", "pretrained_on", "robot"}


def to_metadata(spec: EncoderSpec | PolicySpec) -> dict[str, str]:
    """Metadata props (string -> string) describing ``spec``, contract key included."""
    is_encoder = isinstance(spec, EncoderSpec)
    keys = _ENCODER_KEYS if is_encoder else _POLICY_KEYS
    props = {"hv2r.contract": ENCODER_CONTRACT if is_encoder else POLICY_CONTRACT}
    for field, key in keys.items():
        value = getattr(spec, field)
        props[key] = value if isinstance(value, str) else json.dumps(
            list(value) if isinstance(value, tuple) else value)
    return props


def _decode(props: Mapping[str, str], field: str, key: str, file: str | None) -> Any:
    if key not in props:
        if field in _OPTIONAL:
            return ""
        raise ModelContractError("metadata entry missing", file=file, field=key)
    raw = props[key]
    if field in ("pixel_format", "resize", "action_space", "architecture", "pretrained_on",
                 "robot"):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelContractError(f"metadata value is not valid JSON ({exc.msg})", file=file,
                                 field=key, value=raw) from exc


def _numbers(values: Any, key: str, file: str | None, length: int | None = None,
             positive: bool = False) -> tuple[float, ...]:
    if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ModelContractError("must be a list of numbers", file=file, field=key, value=values)
    if length is not None and len(values) != length:
        raise ModelContractError(f"must have {length} entries", file=file, field=key,
                                 value=values)
    if not all(math.isfinite(v) and (v > 0 or not positive) for v in values):
        raise ModelContractError("entries must be finite" + (" and > 0" if positive else ""),
                                 file=file, field=key, value=values)
    return tuple(float(v) for v in values)


def _integer(value: Any, key: str, file: str | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ModelContractError("must be a positive integer", file=file, field=key,
                                 value=value)
    return value


def _names(value: Any, key: str, file: str | None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ModelContractError("must be a list of names", file=file, field=key, value=value)
    if len(set(value)) != len(value):
        raise ModelContractError("names must be unique", file=file, field=key, value=value)
    return tuple(value)


def _choice(value: str, choices: tuple[str, ...], key: str, file: str | None) -> str:
    if value not in choices:
        raise ModelContractError("unknown value", file=file, field=key, value=value,
                                 choices=choices)
    return value


def _check_contract(props: Mapping[str, str], expected: str, file: str | None) -> None:
    contract = props.get("hv2r.contract")
    if contract is None:
        raise ModelContractError(
            "not an hv2r model: metadata entry hv2r.contract missing (export it with "
            "`hv2r export`, or add the metadata described in docs/model_contract.md)",
            file=file, field="hv2r.contract")
    if contract != expected:
        raise ModelContractError("wrong model kind or contract version", file=file,
                                 field="hv2r.contract", value=contract, choices=[expected])


def encoder_spec_from_metadata(props: Mapping[str, str], file: str | None = None) -> EncoderSpec:
    """Parse and validate an encoder's metadata; errors name the file and the key."""
    _check_contract(props, ENCODER_CONTRACT, file)
    raw = {field: _decode(props, field, key, file) for field, key in _ENCODER_KEYS.items()}
    k = _ENCODER_KEYS
    size = raw["input_size"]
    if not isinstance(size, list) or len(size) != 2:
        raise ModelContractError("must be [height, width]", file=file, field=k["input_size"],
                                 value=size)
    pixel_range = _numbers(raw["pixel_range"], k["pixel_range"], file, 2)
    if pixel_range not in ((0.0, 1.0), (0.0, 255.0)):
        raise ModelContractError("must be [0, 1] or [0, 255]", file=file,
                                 field=k["pixel_range"], value=list(pixel_range))
    return EncoderSpec(
        input_size=(_integer(size[0], k["input_size"], file),
                    _integer(size[1], k["input_size"], file)),
        pixel_format=_choice(raw["pixel_format"], PIXEL_FORMATS, k["pixel_format"], file),
        pixel_range=pixel_range,
        mean=_numbers(raw["mean"], k["mean"], file, 3),
        std=_numbers(raw["std"], k["std"], file, 3, positive=True),
        resize=_choice(raw["resize"], RESIZE_MODES, k["resize"], file),
        embedding_size=_integer(raw["embedding_size"], k["embedding_size"], file),
        architecture=raw["architecture"],
        pretrained_on=raw["pretrained_on"],
    )


def policy_spec_from_metadata(props: Mapping[str, str], file: str | None = None) -> PolicySpec:
    """Parse and validate a policy's metadata; errors name the file and the key."""
    _check_contract(props, POLICY_CONTRACT, file)
    raw = {field: _decode(props, field, key, file) for field, key in _POLICY_KEYS.items()}
    k = _POLICY_KEYS
    if not isinstance(raw["gripper"], bool):
        raise ModelContractError("must be true or false", file=file, field=k["gripper"],
                                 value=raw["gripper"])
    rate = _numbers([raw["control_rate_hz"]], k["control_rate_hz"], file, 1, positive=True)[0]
    action_size = _integer(raw["action_size"], k["action_size"], file)
    proprio_size = _integer(raw["proprio_size"], k["proprio_size"], file)
    spec = PolicySpec(
        action_space=_choice(raw["action_space"], ACTION_SPACES, k["action_space"], file),
        gripper=raw["gripper"],
        chunk_length=_integer(raw["chunk_length"], k["chunk_length"], file),
        control_rate_hz=rate,
        camera_order=_names(raw["camera_order"], k["camera_order"], file),
        joint_order=_names(raw["joint_order"], k["joint_order"], file),
        end_effector_frames=tuple(raw["end_effector_frames"] or ()),
        embedding_size=_integer(raw["embedding_size"], k["embedding_size"], file),
        action_size=action_size,
        proprio_size=proprio_size,
        action_mean=_numbers(raw["action_mean"], k["action_mean"], file, action_size),
        action_std=_numbers(raw["action_std"], k["action_std"], file, action_size, True),
        proprio_mean=_numbers(raw["proprio_mean"], k["proprio_mean"], file, proprio_size),
        proprio_std=_numbers(raw["proprio_std"], k["proprio_std"], file, proprio_size, True),
        robot=raw["robot"],
    )
    if spec.action_space != "joint_position" and not spec.end_effector_frames:
        raise ModelContractError("end-effector action spaces need the frames", file=file,
                                 field=k["end_effector_frames"], value=[])
    if spec.expected_action_size() != action_size:
        raise ModelContractError(
            f"does not match the action space ({spec.action_space}, "
            f"{len(spec.end_effector_frames) or len(spec.joint_order)} frames/joints, "
            f"gripper={spec.gripper}: {spec.expected_action_size()})",
            file=file, field=k["action_size"], value=action_size)
    return spec
