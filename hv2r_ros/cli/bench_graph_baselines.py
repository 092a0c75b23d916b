"""Baselines for ``hv2r bench graph``, and generated model variants for its cost sweep.

Three baselines, measured in the bench's process after the graph has stopped, on the run's
image size and the same model pair:

- ``image path``: from received ``sensor_msgs/Image`` messages (one per camera) to the
  encoder's input tensor. Ours: ``image_to_array`` (a view of the message buffer) and the
  encoder's preallocated ``Preprocessor``. Naive: what per-message conversion code often does,
  each step copying and allocating: ``bytes(msg.data)`` -> array, float32 at full resolution,
  resize, ``(x - mean) / std``, transpose, stack.
- ``model calls``: the encoder on all cameras + the policy, ONNX Runtime against the same
  weights in PyTorch eager (``encoder.pt`` / ``policy.pt`` beside the ONNX files when present,
  random weights of the same architecture otherwise: latency does not depend on the values),
  on the same input tensors.
- ``sequential loop``: one thread at the control rate that, every inference period, converts
  the latest images the naive way and runs the eager models inline, then steps the same chunk
  executor, Cartesian filter, IK and joint guard and builds the command message: the loop of
  PyTorch-based deployment scripts. Its command period error and camera-to-command latency
  compare with the graph's.

Needs torch (requirements-dev.txt) for the eager baselines and the variants; the image path runs
without it. ``variant_pair`` writes a pair with another camera count or chunk length: the
given encoder, and a random-weight MLP policy exported with ``hv2r export``'s exporter.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hv2r_ros.core.timing import Samples, period_figures

CAMERA_NAMES = ("wrist", "overhead", "left", "right")
_CAMERA_RATE_HZ = 30.0


def synthetic_images(count: int, size_px: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """``count`` RGB uint8 images of (width, height) ``size_px``."""
    width, height = size_px
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def _summary(durations: Sequence[float]) -> dict[str, float]:
    samples = Samples()
    for value in durations:
        samples.add(value)
    return samples.summary_ms()


def _time_blocks(steps: dict[str, Any], count: int, rounds: int = 5) -> dict[str, dict]:
    """Each step ``count`` times, in ``rounds`` interleaved blocks (see bench_models._time)."""
    from hv2r_ros.cli.bench_models import _time

    figures = _time(steps, count, warmup=2, rounds=rounds)
    return {name: {"p50_ms": f["p50_ms"], "p99_ms": f["p99_ms"]} for name, f in figures.items()}


class NaiveImagePath:
    """Image messages -> encoder input (N, 3, H, W) float32 the copying way (module docstring).

    Args:
        spec: The encoder's ``EncoderSpec``.
    """

    def __init__(self, spec: Any) -> None:
        import cv2

        self.cv2, self.spec = cv2, spec
        low, high = spec.pixel_range
        self.scale = (high - low) / 255.0
        self.low = low
        self.mean = np.asarray(spec.mean, np.float32)
        self.std = np.asarray(spec.std, np.float32)

    def one(self, msg: Any) -> np.ndarray:
        height, width = self.spec.input_size
        image = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(
            msg.height, msg.width, 3)
        image = image.astype(np.float32) * self.scale + self.low
        image = self.cv2.resize(image, (width, height), interpolation=self.cv2.INTER_AREA)
        image = (image - self.mean) / self.std
        return np.ascontiguousarray(image.transpose(2, 0, 1))

    def __call__(self, msgs: Sequence[Any]) -> np.ndarray:
        return np.stack([self.one(msg) for msg in msgs])


def image_path_baseline(pair: Any, msgs: Sequence[Any], steps: int) -> dict:
    """Ours vs naive, per inference (all cameras' messages -> encoder input) [ms]."""
    from hv2r_ros.core.models.preprocess import Preprocessor
    from hv2r_ros.ros.image import image_to_array, to_rgb

    pre = Preprocessor(pair.encoder.spec, len(msgs))
    naive = NaiveImagePath(pair.encoder.spec)

    def ours() -> np.ndarray:
        images = []
        for msg in msgs:
            pixels, _ = image_to_array(msg)
            rgb, _ = to_rgb(pixels, msg.encoding)
            images.append(rgb)
        return pre(images)

    gap = float(np.max(np.abs(ours() - naive(msgs))))
    figures = _time_blocks({"ours": ours, "naive": lambda: naive(msgs)}, steps)
    figures["naive_over_ours_p50"] = figures["naive"]["p50_ms"] / figures["ours"]["p50_ms"]
    figures["max_input_difference"] = gap  # resize on float vs uint8: small, not zero
    return figures


def eager_models(pair: Any) -> tuple[Any, Any, str] | tuple[None, None, str]:
    """The pair's PyTorch modules ``(encoder, policy, weights note)``, or ``(None, None,
    reason)`` when torch is missing or the encoder's architecture is not in the registry."""
    try:
        from torch import nn
    except ImportError:
        return None, None, "torch not installed (requirements-dev.txt)"
    from hv2r_ros.learning.architectures import ENCODERS, MlpPolicy, build_encoder
    from hv2r_ros.learning.architectures.weights import load_weights

    spec, pspec = pair.encoder.spec, pair.policy.spec
    if spec.architecture not in ENCODERS:
        return None, None, (f"encoder architecture {spec.architecture!r} is not in the "
                            "registry: no PyTorch module to compare with")
    encoder, _ = build_encoder(spec.architecture, spec.input_size[0], spec.embedding_size)
    policy: nn.Module = MlpPolicy(len(pspec.camera_order), pspec.embedding_size,
                                  pspec.proprio_size, pspec.chunk_length,
                                  pspec.action_size).eval()
    notes = []
    for module, name in ((encoder, "encoder.pt"), (policy, "policy.pt")):
        path = pair.directory / name
        try:
            load_weights(module, path) if path.is_file() else None
            notes.append(f"{name}" if path.is_file() else f"{name} absent: random weights")
        except Exception as exc:  # noqa: BLE001 - any checkpoint problem: time random weights
            notes.append(f"{name} not loaded ({type(exc).__name__}): random weights")
    return encoder.eval(), policy.eval(), ", ".join(notes)


class EagerStep:
    """Naive image path + PyTorch eager encoder and policy: one inference, actions (H, A)."""

    def __init__(self, pair: Any, encoder: Any, policy: Any) -> None:
        import torch

        self.torch, self.encoder, self.policy = torch, encoder, policy
        self.naive = NaiveImagePath(pair.encoder.spec)
        pspec = pair.policy.spec
        self.p_mean = torch.tensor(pspec.proprio_mean, dtype=torch.float32)
        self.p_std = torch.tensor(pspec.proprio_std, dtype=torch.float32)
        self.a_mean = np.asarray(pspec.action_mean)
        self.a_std = np.asarray(pspec.action_std)

    def models(self, batch: np.ndarray, goal: np.ndarray, q: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            emb = self.encoder(torch.from_numpy(batch))
            prop = (torch.from_numpy(np.asarray(q, np.float32)) - self.p_mean) / self.p_std
            out = self.policy(emb[None], torch.from_numpy(goal)[None], prop[None])[0]
        return out.numpy().astype(np.float64) * self.a_std + self.a_mean

    def __call__(self, msgs: Sequence[Any], goal: np.ndarray, q: np.ndarray) -> np.ndarray:
        return self.models(self.naive(msgs), goal, q)


def model_baseline(pair: Any, eager: EagerStep, batch: np.ndarray, goal: np.ndarray,
                   q: np.ndarray, steps: int) -> dict:
    """Encoder + policy on the same input tensor: ONNX Runtime (its default threads) vs
    PyTorch eager with 1 thread and with one per CPU [ms]; ``eager`` is the faster of the two,
    and torch is left set to its thread count for the sequential loop."""
    torch = eager.torch
    encoder, policy = pair.encoder, pair.policy

    def runtime() -> np.ndarray:
        emb = encoder.session.run(None, {"images": batch})[0]
        return policy.infer(emb, goal, q)

    def eager_with(threads: int):
        def step() -> np.ndarray:
            torch.set_num_threads(threads)
            return eager.models(batch, goal, q)
        return step

    counts = sorted({1, os.cpu_count() or 1})
    gap = float(np.max(np.abs(runtime() - eager_with(counts[-1])())))
    figures = _time_blocks({"runtime": runtime, **{f"eager_{n}_threads": eager_with(n)
                                                     for n in counts}}, steps)
    best = min(counts, key=lambda n: figures[f"eager_{n}_threads"]["p50_ms"])
    torch.set_num_threads(best)
    figures["eager"] = {**figures[f"eager_{best}_threads"], "threads": best}
    figures["eager_over_runtime_p50"] = figures["eager"]["p50_ms"] / figures["runtime"]["p50_ms"]
    figures["max_action_difference"] = gap
    return figures


def sequential_loop(pair: Any, eager: EagerStep, profile: Any, images: Sequence[np.ndarray],
                    duration_s: float, inference_rate_hz: float) -> dict:
    """The sequential loop (module docstring) for ``duration_s``; its command figures."""
    from rclpy.serialization import serialize_message

    from hv2r_ros.core.chunk_executor import ChunkExecutor
    from hv2r_ros.core.command_chain import CartesianCommandChain
    from hv2r_ros.core.observation import chunk_to_targets
    from hv2r_ros.core.safety.joint_guard import JointGuard
    from hv2r_ros.ros.image import array_to_image
    from hv2r_ros.ros.joints import joint_trajectory

    spec = pair.policy.spec
    period = profile.control_period_s
    cartesian = spec.action_space != "joint_position"
    chain = CartesianCommandChain(profile) if cartesian else JointGuard(profile.limits, period)
    chunks = ChunkExecutor("receding_horizon", clock=time.time)
    q = np.asarray(profile.home, dtype=np.float64)
    chain.reset(q)
    goal = np.zeros(spec.embedding_size, np.float32)
    sends, first, inference = [], Samples(), Samples()
    last_source = None
    start = time.monotonic()
    next_tick, next_inference = start, start
    while next_tick - start < duration_s:
        now = time.monotonic()
        if now < next_tick:
            time.sleep(next_tick - now)
        wall = time.time()
        if time.monotonic() >= next_inference:
            capture = math.floor(wall * _CAMERA_RATE_HZ) / _CAMERA_RATE_HZ  # latest frame
            msgs = [array_to_image(image, "rgb8", capture, "camera") for image in images]
            t0 = time.perf_counter()
            actions = eager(msgs, goal, q)
            inference.add(time.perf_counter() - t0)
            targets, times, _ = chunk_to_targets(spec, actions, q, chain if cartesian else None)
            chunks.add(targets, times, capture)
            next_inference += 1.0 / inference_rate_hz
        target, _ = chunks.target(time.time())
        q_cmd, _ = chain.step(target, q)
        if q_cmd is not None:
            q = q_cmd
            serialize_message(joint_trajectory(profile.joint_names, np.stack([q, q]),
                                               [period, 2 * period], time.time()))
        sent = time.monotonic()
        sends.append(sent)
        if target is not None and chunks.source_stamp_s != last_source:
            last_source = chunks.source_stamp_s
            first.add(time.time() - last_source)
        next_tick += period
        if time.monotonic() - next_tick > period:  # fell a whole period behind: re-anchor
            next_tick = time.monotonic()
    return {"control": period_figures(sends, period),
            "camera_to_command_first": first.summary_ms(),
            "inference": inference.summary_ms()}


def variant_pair(models_dir: Path, out_dir: Path, *, cameras: int | None = None,
                 chunk_length: int | None = None) -> Path:
    """A pair in ``out_dir``: ``models_dir``'s encoder (copied) and a random-weight MLP policy
    like its policy but with ``cameras`` cameras and ``chunk_length`` steps. Needs torch."""
    import torch

    from hv2r_ros.core.models.onnx_file import read_model_file
    from hv2r_ros.learning.architectures import MlpPolicy
    from hv2r_ros.learning.export import export_policy

    spec = read_model_file(models_dir / "policy.onnx", "policy").spec
    camera_order = tuple(CAMERA_NAMES[:cameras]) if cameras else spec.camera_order
    spec = dataclasses.replace(spec, camera_order=camera_order,
                               chunk_length=chunk_length or spec.chunk_length)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("encoder.onnx", "encoder.onnx.data"):  # copies: onnxruntime refuses a
        if (models_dir / name).exists():                 # symlinked external-data file
            shutil.copyfile(models_dir / name, out_dir / name)
    torch.manual_seed(0)
    policy = MlpPolicy(len(spec.camera_order), spec.embedding_size, spec.proprio_size,
                       spec.chunk_length, spec.action_size).eval()
    with torch.no_grad():  # small outputs: the chunk stays near the observed pose
        policy.head.weight.mul_(0.01)
        policy.head.bias.zero_()
    export_policy(policy, spec, out_dir / "policy.onnx", verbose=False)
    return out_dir
