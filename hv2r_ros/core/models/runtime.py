"""ONNX Runtime sessions for the encoder and the policy, checked against the model contract.

Providers are tried in the order TensorRT -> CUDA -> CPU among those this onnxruntime build
offers; one that fails to load (raises, or is silently dropped by onnxruntime-gpu) is skipped and
the provider in use is logged (logger ``hv2r.models``). Loading validates everything before the
first inference (see ``onnx_file``): the file parses, opset, metadata, external data, finite
weights, graph input/output names, shapes and dtypes; then a warm-up run checks the real output
shape. Failures raise ModelContractError naming the file and the tensor or metadata key.

The runtime does not judge outputs: ``Policy.infer`` returns the de-normalised actions as they
come, NaN included. Callers check ``np.isfinite`` (``hv2r check`` does, and the policy node
holds the robot on a non-finite chunk).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.models import contract as c
from hv2r_ros.core.models.onnx_file import check_io, read_model_file
from hv2r_ros.core.models.preprocess import Preprocessor

logger = logging.getLogger("hv2r.models")

TENSORRT, CUDA, CPU = ("TensorrtExecutionProvider", "CUDAExecutionProvider",
                       "CPUExecutionProvider")
PROVIDER_ORDER = (TENSORRT, CUDA, CPU)
PROVIDER_ALIASES = {"tensorrt": TENSORRT, "trt": TENSORRT, "cuda": CUDA, "cpu": CPU}
# TensorRT builds an engine per model on first load (minutes); cache it across runs.
TRT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "hv2r", "tensorrt")


def select_providers(preferred: Sequence[str] | None = None) -> list[str]:
    """Providers to try, best first: ``preferred`` (default TensorRT, CUDA, CPU) filtered to
    ``onnxruntime.get_available_providers()``, CPU always last as the fallback.

    Args:
        preferred: Provider names, full (``CUDAExecutionProvider``) or short (``tensorrt``,
            ``trt``, ``cuda``, ``cpu``), in the order to try.
    """
    wanted = []
    for name in preferred if preferred is not None else PROVIDER_ORDER:
        full = PROVIDER_ALIASES.get(name.lower(), name)
        if full not in PROVIDER_ORDER:
            raise ConfigError("unknown execution provider", field="providers", value=name,
                              choices=[*PROVIDER_ALIASES, *PROVIDER_ORDER])
        wanted.append(full)
    available = set(ort.get_available_providers())
    chosen = [p for p in wanted if p in available]
    for name in wanted:
        if name not in available:
            logger.debug("%s not in this onnxruntime build (has %s)", name, sorted(available))
    return chosen if CPU in chosen else [*chosen, CPU]


def session_options(intra_op_threads: int | None = None, *,
                    allow_spinning: bool = False) -> ort.SessionOptions:
    """Full graph optimisation, memory arena and pattern reuse (no per-call allocation churn).

    Args:
        intra_op_threads: Threads per operator; None lets onnxruntime use one per physical core.
        allow_spinning: Let idle worker threads busy-wait for the next call. Off: inference runs
            a few times a second beside the IK and safety loop, which need those cores (measured
            on 2 shared cores: same p50, lower p99 without spinning).
    """
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning",
                                     "1" if allow_spinning else "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = True
    options.enable_mem_pattern = True
    options.intra_op_num_threads = intra_op_threads or 0
    options.log_severity_level = 3  # errors only; the provider choice is logged by us
    return options


def _provider_options(name: str) -> dict[str, str]:
    if name == TENSORRT:
        return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": TRT_CACHE_DIR,
                "trt_timing_cache_enable": "True", "trt_timing_cache_path": TRT_CACHE_DIR}
    return {}


def create_session(path: str | Path, providers: Sequence[str] | None = None, *,
                   intra_op_threads: int | None = None) -> ort.InferenceSession:
    """An InferenceSession on the first provider of ``providers`` that loads.

    Args:
        path: The .onnx file (external data beside it).
        providers: Provider names in order, full or short, passed through
            ``select_providers`` (default TensorRT, CUDA, CPU; CPU is always the last resort).
        intra_op_threads: See ``session_options``.

    Raises:
        ModelContractError: No provider, CPU included, can load the model.
    """
    providers = select_providers(providers)
    options = session_options(intra_op_threads)
    for i, name in enumerate(providers):
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options,
                providers=[(p, _provider_options(p)) for p in providers[i:]])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            if i == len(providers) - 1:
                raise c.ModelContractError(
                    f"onnxruntime cannot load the model ({exc}); re-export it with a supported "
                    "opset and operators", file=str(path)) from exc
            logger.warning("%s: %s failed to load (%s); trying %s", path, name, exc,
                           providers[i + 1])
            continue
        active = session.get_providers()[0]
        if active != name:
            logger.warning("%s: %s requested but onnxruntime dropped it", path, name)
        logger.info("%s: running on %s", path, active)
        return session
    raise AssertionError("unreachable: select_providers always returns CPU last")


def _encoder_batch(dim: int | str) -> str | None:
    if isinstance(dim, int) and dim < 2:
        return (f"batch dim is fixed to {dim}: export it dynamic (or >= 2) so all cameras run "
                "as one batch")
    return None


def _policy_batch(dim: int | str) -> str | None:
    if isinstance(dim, int) and dim != 1:
        return f"batch dim must be dynamic or 1, not {dim}"
    return None


def _warm_up(run, want: tuple[int, ...], name: str, file: str) -> None:
    """First inference on zeros: real output shape and dtype, and runtime failures, at load."""
    try:
        got = run()
    except Exception as exc:  # onnxruntime's error types; ValueError from our checks
        raise c.ModelContractError(f"warm-up inference failed ({exc})", file=file,
                                   field=name) from exc
    if got.dtype != np.float32 or got.shape != want:
        raise c.ModelContractError(f"warm-up output must be float32 {list(want)}", file=file,
                                   field=name, value=f"{got.dtype} {list(got.shape)}")


class Encoder:
    """Camera images -> embeddings, all cameras in one batch.

    Args:
        path: ``encoder.onnx`` (contract ``hv2r.encoder/1``).
        providers: Provider names in order, full or short (see ``create_session``).
        batch_size: Images per batch the buffers are sized for (grows on demand when the batch
            axis is dynamic).
        intra_op_threads: See ``session_options``.

    Attributes:
        spec: The EncoderSpec read from the file.
        provider: The execution provider in use.
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None, *,
                 batch_size: int = 2, intra_op_threads: int | None = None) -> None:
        model = read_model_file(path, "encoder")
        self.path, self.spec = model.path, model.spec
        self.opset = model.opset
        height, width = self.spec.input_size
        file = str(self.path)
        check_io(model.inputs, [(c.ENCODER_INPUT, [_encoder_batch, 3, height, width])],
                 "inputs", file)
        check_io(model.outputs, [(c.ENCODER_OUTPUT, [None, self.spec.embedding_size])],
                 "outputs", file)
        batch = model.inputs[0].dims[0]
        self.fixed_batch = batch if isinstance(batch, int) else None
        self.session = create_session(self.path, providers, intra_op_threads=intra_op_threads)
        self.provider = self.session.get_providers()[0]
        self._pre = Preprocessor(self.spec, self.fixed_batch or batch_size)
        zeros = np.zeros((self._pre.batch, height, width, 3), np.uint8)
        _warm_up(lambda: self.embed(zeros), (self._pre.batch, self.spec.embedding_size),
                 c.ENCODER_OUTPUT, file)

    def embed(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Embed N RGB uint8 images (array (N, h, w, 3) or list of h x w x 3, sizes may differ).

        Returns:
            float32 (N, D), a new array.
        """
        count = len(images)
        if self.fixed_batch is None:
            if count > self._pre.batch:
                self._pre = Preprocessor(self.spec, count)
            return self._run(self._pre(images))
        step = self.fixed_batch
        parts = []
        for start in range(0, count, step):
            chunk = images[start:start + step]
            self._pre(chunk)
            parts.append(self._run(self._pre.buffer)[:len(chunk)])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([c.ENCODER_OUTPUT], {c.ENCODER_INPUT: batch})[0]


class Policy:
    """(camera embeddings, goal embedding, proprio) -> de-normalised action chunk.

    Args:
        path: ``policy.onnx`` (contract ``hv2r.policy/1``).
        providers, intra_op_threads: As for Encoder.

    Attributes:
        spec: The PolicySpec read from the file.
        provider: The execution provider in use.
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None, *,
                 intra_op_threads: int | None = None) -> None:
        model = read_model_file(path, "policy")
        self.path, self.spec = model.path, model.spec
        self.opset = model.opset
        spec, file = self.spec, str(self.path)
        cams, dim = len(spec.camera_order), spec.embedding_size
        names = c.POLICY_INPUTS
        check_io(model.inputs, [(names[0], [_policy_batch, cams, dim]),
                                (names[1], [_policy_batch, dim]),
                                (names[2], [_policy_batch, spec.proprio_size])], "inputs", file)
        check_io(model.outputs, [(c.POLICY_OUTPUT, [_policy_batch, spec.chunk_length,
                                                    spec.action_size])], "outputs", file)
        self._feed = {names[0]: np.zeros((1, cams, dim), np.float32),
                      names[1]: np.zeros((1, dim), np.float32),
                      names[2]: np.zeros((1, spec.proprio_size), np.float32)}
        std = np.asarray(spec.proprio_std, np.float64)
        self._proprio_gain = (1.0 / std).astype(np.float32)
        self._proprio_offset = (-np.asarray(spec.proprio_mean, np.float64) / std).astype(
            np.float32)
        self._action_std = np.asarray(spec.action_std, np.float64)
        self._action_mean = np.asarray(spec.action_mean, np.float64)
        self.session = create_session(self.path, providers, intra_op_threads=intra_op_threads)
        self.provider = self.session.get_providers()[0]
        _warm_up(lambda: self.session.run([c.POLICY_OUTPUT], self._feed)[0],
                 (1, spec.chunk_length, spec.action_size), c.POLICY_OUTPUT, file)

    def infer(self, camera_embeddings: np.ndarray, goal: np.ndarray,
              proprio: np.ndarray) -> np.ndarray:
        """One action chunk.

        Args:
            camera_embeddings: (C, D), rows in ``spec.camera_order``.
            goal: (D,), the goal embedding.
            proprio: (P,), raw (un-normalised) proprioception in ``spec.joint_order`` [rad].

        Returns:
            float64 (H, A) actions in robot units, de-normalised with action_mean/std; not
            checked for finiteness (callers do).
        """
        cams, goal_in, prop = (self._feed[n] for n in c.POLICY_INPUTS)
        for name, value, buffer in (("camera_embeddings", camera_embeddings, cams),
                                    ("goal", goal, goal_in), ("proprio", proprio, prop)):
            if np.shape(value) != buffer.shape[1:]:
                raise ValueError(f"{name} must have shape {buffer.shape[1:]}, "
                                 f"got {np.shape(value)}")
        cams[0] = camera_embeddings
        goal_in[0] = goal
        np.multiply(proprio, self._proprio_gain, out=prop[0], casting="same_kind")
        np.add(prop[0], self._proprio_offset, out=prop[0])
        raw = self.session.run([c.POLICY_OUTPUT], self._feed)[0][0]
        return raw * self._action_std + self._action_mean


@dataclasses.dataclass(frozen=True)
class ModelPair:
    """The encoder and the policy of one models directory, their embedding sizes matched."""

    encoder: Encoder
    policy: Policy
    directory: Path

    ENCODER_FILE = "encoder.onnx"
    POLICY_FILE = "policy.onnx"

    @classmethod
    def load(cls, models_dir: str | Path, providers: Sequence[str] | None = None, *,
             intra_op_threads: int | None = None) -> ModelPair:
        """Load ``encoder.onnx`` and ``policy.onnx`` (and their ``.onnx.data``) from a folder.

        Raises:
            ModelContractError: A file is missing or invalid, or the embedding sizes differ.
        """
        directory = Path(models_dir)
        for name in (cls.ENCODER_FILE, cls.POLICY_FILE):
            if not (directory / name).is_file():
                raise c.ModelContractError(
                    f"{name} not found: a models folder holds encoder.onnx and policy.onnx "
                    "(with their .onnx.data files)", file=str(directory / name))
        encoder = Encoder(directory / cls.ENCODER_FILE, providers,
                          intra_op_threads=intra_op_threads)
        policy = Policy(directory / cls.POLICY_FILE, providers,
                        intra_op_threads=intra_op_threads)
        if encoder.spec.embedding_size != policy.spec.embedding_size:
            raise c.ModelContractError(
                f"does not match the encoder's hv2r.embedding_size "
                f"{encoder.spec.embedding_size} ({encoder.path})", file=str(policy.path),
                field="hv2r.embedding_size", value=policy.spec.embedding_size)
        return cls(encoder, policy, directory)
