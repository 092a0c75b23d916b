"""Reading an ONNX model file and checking it against the contract, before a session exists.

``read_model_file`` is the one entry point: it parses the file (external data not loaded), checks
the opset, parses the metadata into a spec, checks that every external-data file is present and
long enough, runs ``onnx.checker``, and scans every floating-point initializer for NaN/inf with
numpy (external data is memory-mapped, not copied). ``check_io`` compares the graph's declared
inputs/outputs with what the spec says. Every failure is a ModelContractError naming the file and
the tensor or metadata key, with what to do about it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from hv2r_ros.core.models.contract import (
    EncoderSpec,
    ModelContractError,
    PolicySpec,
    encoder_spec_from_metadata,
    policy_spec_from_metadata,
)

# Default-domain opsets accepted. 13 is the first with the ops current exporters emit (e.g.
# Split/Squeeze with tensor inputs); 23 is the newest torch.onnx (2.13) exports and that
# onnxruntime >= 1.22 runs. An older onnxruntime on the robot may reject the top of the range:
# then re-export with ``opset_version`` it supports.
MIN_OPSET, MAX_OPSET = 13, 23

_FLOAT_TYPES = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64,
                TensorProto.FLOAT16: np.float16, TensorProto.BFLOAT16: np.uint16}


@dataclasses.dataclass(frozen=True)
class TensorDecl:
    """A graph input or output as declared: name, element type, dims (int, or str if symbolic)."""

    name: str
    elem_type: int
    dims: tuple[int | str, ...]

    @property
    def type_name(self) -> str:
        return TensorProto.DataType.Name(self.elem_type).lower()


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """A parsed, contract-checked model file (graph without external data loaded)."""

    path: Path
    model: onnx.ModelProto
    spec: EncoderSpec | PolicySpec
    inputs: tuple[TensorDecl, ...]
    outputs: tuple[TensorDecl, ...]
    opset: int


def read_model_file(path: str | Path, kind: str) -> ModelFile:
    """Parse and validate an ``encoder`` or ``policy`` file; see the module docstring."""
    path = Path(path)
    file = str(path)
    if not path.is_file():
        raise ModelContractError("model file not found", file=file)
    try:
        model = onnx.load(file, load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types on garbage
        raise ModelContractError(
            f"cannot parse the ONNX file ({type(exc).__name__}: {exc}); it is truncated or not "
            "ONNX: copy it again or re-export it", file=file) from exc
    if not model.graph.node or not model.graph.output:
        raise ModelContractError(
            "not a usable ONNX model (no graph nodes or outputs): the file is truncated or not "
            "ONNX; copy it again or re-export it", file=file)
    opset = _default_opset(model, file)
    props = {p.key: p.value for p in model.metadata_props}
    if kind == "encoder":
        spec: EncoderSpec | PolicySpec = encoder_spec_from_metadata(props, file)
    elif kind == "policy":
        spec = policy_spec_from_metadata(props, file)
    else:
        raise ValueError(f"kind must be 'encoder' or 'policy', got {kind!r}")
    _check_external_files(model, path)
    try:
        onnx.checker.check_model(file)
    except Exception as exc:
        raise ModelContractError(f"invalid ONNX graph: {exc}", file=file) from exc
    scan_initializers(model, path.parent, file)
    inits = {t.name for t in model.graph.initializer}
    inputs = tuple(_decl(v) for v in model.graph.input if v.name not in inits)
    return ModelFile(path, model, spec, inputs, tuple(_decl(v) for v in model.graph.output),
                     opset)


def _default_opset(model: onnx.ModelProto, file: str) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ModelContractError("no default-domain opset import", file=file, field="opset_import")
    if not MIN_OPSET <= versions[0] <= MAX_OPSET:
        raise ModelContractError(
            f"opset outside the supported range {MIN_OPSET}..{MAX_OPSET}; re-export with "
            f"opset_version between them", file=file, field="opset_import", value=versions[0])
    return versions[0]


def _external_info(tensor: TensorProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in tensor.external_data}


def _check_external_files(model: onnx.ModelProto, path: Path) -> None:
    for tensor in model.graph.initializer:
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        info = _external_info(tensor)
        data = path.parent / info.get("location", "")
        if not data.is_file():
            raise ModelContractError(
                f"external data file {data.name} missing: copy it beside the model (it holds "
                f"tensor {tensor.name})", file=str(path), field=tensor.name, value=str(data))
        end = int(info.get("offset", 0)) + int(info.get("length", 0))
        if data.stat().st_size < end:
            raise ModelContractError(
                f"external data file {data.name} is truncated ({data.stat().st_size} bytes, "
                f"tensor {tensor.name} ends at byte {end}): copy it again", file=str(path),
                field=tensor.name)


def _tensor_values(tensor: TensorProto, base_dir: Path) -> np.ndarray:
    dtype = _FLOAT_TYPES[tensor.data_type]
    if tensor.data_location != TensorProto.EXTERNAL:
        if tensor.data_type == TensorProto.BFLOAT16 and not tensor.raw_data:
            return np.asarray(tensor.int32_data, np.uint32).astype(np.uint16)
        if tensor.data_type == TensorProto.BFLOAT16:
            return np.frombuffer(tensor.raw_data, np.uint16)
        return numpy_helper.to_array(tensor)
    info = _external_info(tensor)
    count = int(np.prod(tensor.dims, dtype=np.int64))
    if count == 0:
        return np.empty(0, dtype)
    return np.memmap(base_dir / info["location"], dtype=dtype, mode="r",
                     offset=int(info.get("offset", 0)), shape=(count,))


def scan_initializers(model: onnx.ModelProto, base_dir: Path, file: str) -> None:
    """Raise if a floating-point initializer holds NaN or +-inf, naming the tensor.

    Constant nodes are not scanned: a constant -inf attention mask is legitimate, and a NaN
    constant shows up as a non-finite output on the probe run (``hv2r check``).
    """
    for tensor in model.graph.initializer:
        if tensor.data_type not in _FLOAT_TYPES:
            continue
        values = _tensor_values(tensor, base_dir)
        if tensor.data_type == TensorProto.BFLOAT16:
            bad = int(np.count_nonzero((values & 0x7F80) == 0x7F80))
        else:
            bad = values.size - int(np.count_nonzero(np.isfinite(values)))
        if bad:
            raise ModelContractError(
                f"weights contain {bad} NaN/inf value(s): the export or training diverged; "
                "re-export from a finite checkpoint", file=file, field=tensor.name)


def _decl(value: onnx.ValueInfoProto) -> TensorDecl:
    tensor = value.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                 for d in tensor.shape.dim)
    return TensorDecl(value.name, tensor.elem_type, dims)


def check_io(decls: Sequence[TensorDecl], expected: Sequence[tuple[str, Sequence]],
             what: str, file: str) -> None:
    """Check declared tensors against ``(name, dims)`` pairs; float32 only.

    An expected dim is an int (a declared fixed dim must equal it; a symbolic one is accepted and
    checked on the warm-up run), None (anything), or a callable ``dim -> error text or None``.
    """
    names = [d.name for d in decls]
    wanted = [name for name, _ in expected]
    if sorted(names) != sorted(wanted):
        missing = [n for n in wanted if n not in names]
        raise ModelContractError(
            f"must be exactly {wanted}; missing {missing}", file=file,
            field=f"graph {what}", value=names, choices=wanted)
    by_name = {d.name: d for d in decls}
    for name, dims in expected:
        decl = by_name[name]
        if decl.elem_type != TensorProto.FLOAT:
            raise ModelContractError(
                "must be float32 (tensor(float)); export the inputs and outputs in float32 (a "
                "half-precision model casts inside the graph)", file=file, field=name,
                value=decl.type_name)
        if len(decl.dims) != len(dims):
            raise ModelContractError(f"must have rank {len(dims)}, shape {list(dims)}",
                                     file=file, field=name, value=list(decl.dims))
        for axis, (got, want) in enumerate(zip(decl.dims, dims)):
            if callable(want):
                problem = want(got)
            elif isinstance(want, int) and isinstance(got, int) and got != want:
                problem = f"dim {axis} must be {want}"
            else:
                problem = None
            if problem:
                raise ModelContractError(f"{problem} (shape must be {_show(dims)})", file=file,
                                         field=name, value=list(decl.dims))


def _show(dims: Sequence) -> str:
    return "[" + ", ".join("B" if callable(d) or d is None else str(d) for d in dims) + "]"
