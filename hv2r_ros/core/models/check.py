"""Validate a model pair against a robot profile before anything moves (``hv2r check``).

Each check gives one PASS/FAIL line; the pair is usable only when every line passes. Checks:
the encoder and the policy load (file, opset, metadata, external data, finite weights, tensor
names/shapes/dtypes), embedding sizes match, the cameras are the profile's, the joint order is
exactly the profile's, the action and proprio sizes fit the robot's joints or end-effector
frames (and gripper), the policy's control rate is no faster than the robot's loop, a probe
observation gives finite actions, and the per-step latency (encoder on all cameras as one batch
+ policy) fits in the time one action chunk lasts.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from hv2r_ros.core.models.contract import EE_ACTION_SIZE, ModelContractError, PolicySpec
from hv2r_ros.core.models.runtime import Encoder, ModelPair, Policy
from hv2r_ros.core.robot_profile import RobotProfile

PROBE_IMAGE_HW = (480, 640)  # probe camera images [px]; any size works, this is a common one


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One line of the report: a named check, whether it passed, and why."""

    name: str
    passed: bool
    detail: str


@dataclasses.dataclass
class CheckReport:
    """Everything ``check_model_pair`` found.

    Attributes:
        robot: Profile name.
        models_dir: The folder checked.
        results: One CheckResult per check, in the order run.
        provider: Execution provider of the encoder and policy (``encoder / policy``), if loaded.
        latency_ms: ``{"p50": .., "p99": ..}`` per step [ms], if measured.
    """

    robot: str
    models_dir: Path
    results: list[CheckResult] = dataclasses.field(default_factory=list)
    provider: str | None = None
    latency_ms: dict[str, float] | None = None

    @property
    def passed(self) -> bool:
        """True when there was at least one check and every check passed."""
        return bool(self.results) and all(r.passed for r in self.results)

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def add(self, name: str, problem: str | None, ok_detail: str = "") -> bool:
        self.results.append(CheckResult(name, problem is None, problem or ok_detail))
        return problem is None

    def format(self) -> str:
        """The printed report: a header, one PASS/FAIL line per check, a verdict line."""
        lines = [f"hv2r check: robot {self.robot}, models {self.models_dir}"]
        lines += [f"{'PASS' if r.passed else 'FAIL'}  {r.name:15s} {r.detail}"
                  for r in self.results]
        failed = len(self.failures())
        lines.append(f"RESULT: PASS ({len(self.results)} checks)" if self.passed else
                     f"RESULT: FAIL ({failed} of {len(self.results)} checks failed)")
        return "\n".join(lines)


def expected_proprio_size(spec: PolicySpec) -> int:
    """P per the contract: one joint position [rad] per joint of joint_order."""
    return len(spec.joint_order)


def probe_proprio(spec: PolicySpec, profile: RobotProfile) -> np.ndarray:
    """Proprio at the profile's home pose, joints mapped by name (0 if unknown), shape (P,)."""
    home = dict(zip(profile.joint_names, profile.home))
    proprio = np.zeros(spec.proprio_size)
    for i, name in enumerate(spec.joint_order[:spec.proprio_size]):
        proprio[i] = home.get(name, 0.0)
    return proprio


def _load(report: CheckReport, name: str, loader: Callable[[], Encoder | Policy],
          ) -> Encoder | Policy | None:
    try:
        model = loader()
    except ModelContractError as exc:
        report.add(name, str(exc))
        return None
    spec = model.spec
    if isinstance(model, Encoder):
        what = (f"{spec.architecture or 'encoder'}, {spec.input_size[0]}x{spec.input_size[1]} "
                f"{spec.pixel_format} {list(spec.pixel_range)}, D={spec.embedding_size}")
    else:
        what = (f"{spec.action_space}{' + gripper' if spec.gripper else ''}, "
                f"H={spec.chunk_length} A={spec.action_size} at {spec.control_rate_hz:g} Hz")
    report.add(name, None, f"{model.path.name}: {what}, opset {model.opset}, "
                           f"{model.provider}")
    return model


def _joint_order(spec: PolicySpec, profile: RobotProfile) -> str | None:
    model, robot = spec.joint_order, profile.joint_names
    for i, (a, b) in enumerate(zip(model, robot)):
        if a != b:
            return (f"hv2r.joint_order[{i}] is {a!r}, the profile's joint {i} is {b!r} "
                    f"(order matters; profile order: {list(robot)})")
    if len(model) != len(robot):
        return (f"hv2r.joint_order has {len(model)} joints, profile {profile.name} has "
                f"{len(robot)}: {list(robot)}")
    return None


def _action_size(spec: PolicySpec, profile: RobotProfile) -> str | None:
    grip = 1 if spec.gripper else 0
    if spec.action_space == "joint_position":
        want = len(profile.joint_names) + grip
        basis = f"{len(profile.joint_names)} joints"
    else:
        unknown = [f for f in spec.end_effector_frames if f not in profile.end_effector_frames]
        if unknown:
            return (f"hv2r.end_effector_frames {unknown} not end effectors of {profile.name}; "
                    f"choices: {list(profile.end_effector_frames)}")
        want = EE_ACTION_SIZE[spec.action_space] * len(spec.end_effector_frames) + grip
        basis = f"{len(spec.end_effector_frames)} frame(s) x {EE_ACTION_SIZE[spec.action_space]}"
    if spec.action_size != want:
        return (f"hv2r.action_size is {spec.action_size}, {profile.name} with "
                f"{spec.action_space} needs {want} ({basis}{' + gripper' if grip else ''})")
    if spec.gripper and profile.gripper is None:
        return f"the policy commands a gripper, profile {profile.name} has none"
    return None


def _spec_checks(report: CheckReport, spec: PolicySpec, profile: RobotProfile,
                 file: str) -> None:
    def add(name: str, problem: str | None, ok_detail: str) -> None:
        report.add(name, f"{file}: {problem}" if problem else None, ok_detail)

    cams = list(profile.cameras)
    unknown = [n for n in spec.camera_order if n not in profile.cameras]
    add("cameras", "hv2r.camera_order is empty" if not spec.camera_order else
        f"hv2r.camera_order names {unknown}, not cameras of {profile.name}: {cams}"
        if unknown else None, f"{list(spec.camera_order)}")
    add("joint order", _joint_order(spec, profile), f"{len(spec.joint_order)} joints, "
        f"same order as {profile.name}")
    add("action size", _action_size(spec, profile), f"A={spec.action_size} "
        f"({spec.action_space}{' + gripper' if spec.gripper else ''})")
    want_p = expected_proprio_size(spec)
    add("proprio size", None if spec.proprio_size == want_p else
        f"hv2r.proprio_size is {spec.proprio_size}, expected {want_p} (one position per "
        "joint of hv2r.joint_order)", f"P={spec.proprio_size}")
    rate, robot_rate = spec.control_rate_hz, profile.control_rate_hz
    add("control rate", None if rate <= robot_rate else
        f"hv2r.control_rate_hz {rate:g} Hz is faster than {profile.name}'s control loop "
        f"({robot_rate:g} Hz)", f"{rate:g} Hz <= robot loop {robot_rate:g} Hz")


def _probe(report: CheckReport, pair: ModelPair, profile: RobotProfile, steps: int,
           seed: int) -> None:
    spec = pair.policy.spec
    rng = np.random.default_rng(seed)
    shape = (len(spec.camera_order), *PROBE_IMAGE_HW, 3)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    goal = pair.encoder.embed(rng.integers(0, 256, (1, *PROBE_IMAGE_HW, 3), dtype=np.uint8))[0]
    proprio = probe_proprio(spec, profile)

    def step() -> tuple[np.ndarray, np.ndarray]:
        embeddings = pair.encoder.embed(images)
        return embeddings, pair.policy.infer(embeddings, goal, proprio)

    embeddings, actions = step()
    bad = [f"{file.name}: non-finite {name}" for name, value, file in (
        ("embedding", embeddings, pair.encoder.path), ("goal embedding", goal, pair.encoder.path),
        ("actions", actions, pair.policy.path)) if not np.all(np.isfinite(value))]
    if not report.add("probe", f"{'; '.join(bad)} on the probe observation (random images, "
                      "home pose)" if bad else None, f"finite actions {list(actions.shape)}, "
                      f"|a|max={np.max(np.abs(actions)):.3g}"):
        return
    durations = np.empty(steps)
    for i in range(steps):
        start = time.perf_counter()
        step()
        durations[i] = time.perf_counter() - start
    p50, p99 = (float(np.percentile(durations, q) * 1e3) for q in (50, 99))
    report.latency_ms = {"p50": p50, "p99": p99}
    budget_ms = spec.chunk_length / spec.control_rate_hz * 1e3
    detail = (f"p50 {p50:.2f} ms, p99 {p99:.2f} ms per step (encoder x{shape[0]} + policy, "
              f"{steps} steps); one chunk lasts {budget_ms:.0f} ms")
    report.add("latency", None if p99 < budget_ms else
               f"{detail}: the chunk runs out before the next is ready", detail)


def check_model_pair(profile: RobotProfile, models_dir: str | Path,
                     providers: Sequence[str] | None = None, steps: int = 50,
                     seed: int = 0) -> CheckReport:
    """Run every check of the module docstring; never raises for a bad model.

    Args:
        profile: The robot the pair is meant for.
        models_dir: Folder with ``encoder.onnx`` and ``policy.onnx`` (+ ``.onnx.data``).
        providers: Execution providers in order (default TensorRT -> CUDA -> CPU).
        steps: Timed steps for the latency figures (>= 1).
        seed: Seed of the probe images.
    """
    directory = Path(models_dir)
    report = CheckReport(profile.name, directory)
    encoder = _load(report, "encoder", lambda: Encoder(directory / ModelPair.ENCODER_FILE,
                                                       providers))
    policy = _load(report, "policy", lambda: Policy(directory / ModelPair.POLICY_FILE,
                                                    providers))
    both = isinstance(encoder, Encoder) and isinstance(policy, Policy)
    if both:
        report.provider = f"{encoder.provider} / {policy.provider}"
        sizes = encoder.spec.embedding_size, policy.spec.embedding_size
        both = report.add("embedding size", None if sizes[0] == sizes[1] else
                          f"encoder hv2r.embedding_size {sizes[0]} != policy's {sizes[1]}",
                          f"D={sizes[0]}")
    if isinstance(policy, Policy):
        _spec_checks(report, policy.spec, profile, policy.path.name)
    # The probe only needs consistent shapes; it runs even when a robot check failed.
    if both and policy.spec.camera_order:
        _probe(report, ModelPair(encoder, policy, directory), profile, max(1, steps), seed)
    return report
