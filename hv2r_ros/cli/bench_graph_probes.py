"""Stage probes for ``hv2r bench graph``: timing wrappers put on a running stack's nodes.

A probe replaces something a node looks up when it is called (a subscription's or timer's
``callback``, a method of the core object the node holds, a publisher's ``publish``, an ONNX
session's ``run``) with a wrapper that records the call's duration; the nodes themselves are
not changed, and they run exactly the code they run without the bench. Each wrapper costs about
a microsecond per call. Stages (per call, every duration kept, ``core.timing.Samples``):

inference path, per camera frame or per chunk:
    image_conversion    the policy node's image callback: Image -> ndarray view -> RGB, gate
    preprocessing       ``Encoder.embed`` minus its ONNX session calls (resize, normalise)
    encoder, policy     the two ONNX session calls: the model time
    chunk_targets       ``PolicyRunner.step`` minus the three above: observation gate, proprio
                        normalisation, finiteness, chunk -> targets (FK for ee_delta)
    chunk_publish       from the end of the step to the end of ``hv2r/action``'s publish:
                        message build + serialisation + write
    safety              the safety filter's ``hv2r/action`` callback: read, validate, limit,
                        state, publish ``hv2r/action_safe``
    chunk_receipt       the command output's ``hv2r/action_safe`` callback: read + schedule
control path, per control tick:
    chunk_scheduling    ``ChunkExecutor.target``: the chunk point interpolated for this tick
    safety_tick         ``CartesianCommandChain.step`` minus the IK: FK, Cartesian filter,
                        joint guard (the whole joint guard for joint-space chunks)
    ik                  ``DifferentialIK.step``
    command_publish     ``output.send``: command message + publish
    control_tick        the whole control timer callback
and, from the message info of each received image, ``image_transport`` (DDS write to DDS
receipt) and ``image_queue`` (receipt to the start of the callback); per chunk,
``capture_to_inference`` (capture stamp to the start of the inference step that used it) and,
at the command output, ``capture_to_safe_chunk`` (capture stamp to the start of its receipt
callback: the path up to the control loop, without the wait for its next tick).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.subscription import Subscription
from sensor_msgs.msg import Image

from hv2r_ros.core.timing import Samples
from hv2r_ros.ros.stamps import to_seconds

INFERENCE_STAGES = ("image_conversion", "preprocessing", "encoder", "policy", "chunk_targets",
                    "chunk_publish", "safety", "chunk_receipt")
TICK_STAGES = ("chunk_scheduling", "safety_tick", "ik", "command_publish", "control_tick")
TRANSPORT = ("image_transport", "image_queue", "capture_to_inference",
             "capture_to_safe_chunk")
#: Stages that are not the stack's own overhead.
MODEL_STAGES = ("encoder", "policy")
_WITH_INFO = hasattr(Subscription, "CallbackType")  # MessageInfo: rclpy Iron and later


class SessionProbe:
    """An onnxruntime session whose ``run`` is timed; anything else is forwarded.

    Attributes:
        pending_s: Run time accumulated since the caller last reset it [s].
    """

    def __init__(self, session: Any, samples: Samples) -> None:
        self._session, self._samples = session, samples
        self.pending_s = 0.0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = self._session.run(*args, **kwargs)
        duration = time.perf_counter() - start
        self._samples.add(duration)
        self.pending_s += duration
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


class GraphProbe:
    """Every stage of one stack (one namespace), plus its command publications.

    Attributes:
        samples: Stage name -> ``Samples`` (module docstring).
        command_times: ``time.perf_counter`` of every command publication [s].
        first_latency, command_age: Per command that follows a chunk, publication time minus
            the chunk's capture stamp [s]: for the first command of each chunk (the
            camera-to-command latency), and for every one (how old the plan being followed is).
        chunks: Chunks received by the command output.
    """

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.samples = {name: Samples(name)
                        for name in (*INFERENCE_STAGES, *TICK_STAGES, *TRANSPORT)}
        self.command_times: list[float] = []
        self.first_latency, self.command_age = Samples("first"), Samples("age")
        self.chunks = 0
        self._lock = threading.Lock()
        self._tick: dict[str, Any] = {"source": None, "last_source": None}
        self._step_end = 0.0
        self._marks: dict[str, int] = {}
        self._mark_commands = self._mark_chunks = 0

    # -- attaching ---------------------------------------------------------------------------

    def attach(self) -> None:
        """Put the probes on the policy, safety filter and command output nodes that run in
        this process (after ``Stack.start``: the safety filter creates its subscription on
        configure); the command output must be one."""
        nodes = self.stack.nodes
        if "policy" in nodes:
            self._attach_policy(nodes["policy"])
        if "safety_filter" in nodes:
            self._attach_safety(nodes["safety_filter"])
        self._attach_output(nodes["command_output"])

    def _timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        samples = self.samples[name]

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = function(*args, **kwargs)
            samples.add(time.perf_counter() - start)
            return result
        return wrapper

    def _wrap_subscription(self, node: Any, suffix: str, name: str) -> None:
        matches = [s for s in node.subscriptions if s.topic_name.endswith(suffix)]
        if not matches:
            raise RuntimeError(f"{node.get_name()}: no subscription on '*{suffix}' to probe")
        for sub in matches:
            sub.callback = self._timed(name, sub.callback)

    def _attach_policy(self, policy: Any) -> None:
        conversion = self.samples["image_conversion"]
        transport, queue = self.samples["image_transport"], self.samples["image_queue"]
        for sub in policy.subscriptions:
            if sub.msg_type is not Image:
                continue
            original = sub.callback
            if _WITH_INFO:
                def on_image(msg, info, original=original):
                    received = info["received_timestamp"]
                    start_ns = time.time_ns()
                    start = time.perf_counter()
                    original(msg)
                    conversion.add(time.perf_counter() - start)
                    transport.add((received - info["source_timestamp"]) * 1e-9)
                    queue.add((start_ns - received) * 1e-9)
                sub.callback = on_image
            else:
                sub.callback = self._timed("image_conversion", original)
        runner = policy.runner
        encoder, model = runner.encoder, runner.policy
        enc_session = SessionProbe(encoder.session, self.samples["encoder"])
        pol_session = SessionProbe(model.session, self.samples["policy"])
        encoder.session, model.session = enc_session, pol_session
        embed, step, publish = encoder.embed, runner.step, policy.action_pub.publish
        pre, targets = self.samples["preprocessing"], self.samples["chunk_targets"]
        chunk_publish = self.samples["chunk_publish"]

        last_pre = [0.0]

        def timed_embed(images):
            enc_session.pending_s = 0.0
            start = time.perf_counter()
            out = embed(images)
            last_pre[0] = time.perf_counter() - start - enc_session.pending_s
            pre.add(last_pre[0])
            return out

        waited = self.samples["capture_to_inference"]

        def timed_step(now_s):
            enc_session.pending_s = pol_session.pending_s = last_pre[0] = 0.0
            wall = time.time()
            start = time.perf_counter()
            out, status = step(now_s)
            end = time.perf_counter()
            if out is not None:
                waited.add(wall - out.stamp_s)
                models = enc_session.pending_s + pol_session.pending_s
                targets.add(end - start - models - last_pre[0])
                self._step_end = end
            return out, status

        def timed_publish(msg):
            publish(msg)
            chunk_publish.add(time.perf_counter() - self._step_end)

        encoder.embed, runner.step, policy.action_pub.publish = \
            timed_embed, timed_step, timed_publish

    def _attach_safety(self, safety: Any) -> None:
        self._wrap_subscription(safety, "hv2r/action", "safety")

    def _attach_output(self, output: Any) -> None:
        receipt, arrival = self.samples["chunk_receipt"], self.samples["capture_to_safe_chunk"]
        for sub in output.subscriptions:
            if sub.topic_name.endswith("hv2r/action_safe"):
                def on_chunk(msg, original=sub.callback):
                    arrival.add(time.time() - to_seconds(msg.header.stamp))
                    start = time.perf_counter()
                    original(msg)
                    receipt.add(time.perf_counter() - start)
                    with self._lock:
                        self.chunks += 1
                sub.callback = on_chunk
        output.timer.callback = self._timed("control_tick", output.timer.callback)
        chunks, chain, out = output.chunks, output.chain, output.output
        target = chunks.target
        scheduling = self.samples["chunk_scheduling"]
        tick = self._tick

        def timed_target(now_s):
            start = time.perf_counter()
            result = target(now_s)
            scheduling.add(time.perf_counter() - start)
            tick["source"] = chunks.source_stamp_s if result[0] is not None else None
            return result
        chunks.target = timed_target
        if hasattr(chain, "ik"):  # Cartesian chunks: filter + IK + guard
            ik_step, chain_step = chain.ik.step, chain.step
            ik, safety_tick = self.samples["ik"], self.samples["safety_tick"]
            ik_time = [0.0]

            def timed_ik(*args, **kwargs):
                start = time.perf_counter()
                result = ik_step(*args, **kwargs)
                ik_time[0] = time.perf_counter() - start
                ik.add(ik_time[0])
                return result

            def timed_chain(*args, **kwargs):
                ik_time[0] = 0.0
                start = time.perf_counter()
                result = chain_step(*args, **kwargs)
                safety_tick.add(time.perf_counter() - start - ik_time[0])
                return result
            chain.ik.step, chain.step = timed_ik, timed_chain
        else:  # joint chunks: the guard alone
            chain.step = self._timed("safety_tick", chain.step)
        send = out.send
        publish = self.samples["command_publish"]

        def timed_send(q_cmd, dq_cmd):
            start = time.perf_counter()
            result = send(q_cmd, dq_cmd)
            end = time.perf_counter()
            wall = time.time()
            publish.add(end - start)
            source, tick["source"] = tick["source"], None
            with self._lock:
                self.command_times.append(end)
                if source is not None:
                    self.command_age.add(wall - source)
                    if source != tick["last_source"]:
                        self.first_latency.add(wall - source)
                        tick["last_source"] = source
            return result
        out.send = timed_send

    # -- reading -----------------------------------------------------------------------------

    def mark(self) -> None:
        """Start of the measured window: what came before is warm-up."""
        self._marks = {name: len(s) for name, s in self.samples.items()}
        self._marks["first"], self._marks["age"] = len(self.first_latency), len(self.command_age)
        with self._lock:
            self._mark_commands, self._mark_chunks = len(self.command_times), self.chunks

    def window(self) -> dict[str, Samples]:
        """Every stage's samples since ``mark``, plus ``first`` and ``age`` latencies."""
        out = {name: s.since(self._marks.get(name, 0)) for name, s in self.samples.items()}
        out["first"] = self.first_latency.since(self._marks.get("first", 0))
        out["age"] = self.command_age.since(self._marks.get("age", 0))
        return out

    def commands_since_mark(self) -> list[float]:
        with self._lock:
            return self.command_times[self._mark_commands:]

    def chunks_since_mark(self) -> int:
        with self._lock:
            return self.chunks - self._mark_chunks

    def has_followed_a_chunk(self) -> bool:
        return len(self.first_latency) > 0


class DiagnosticsProbe(Node):
    """The latest key/values of every ``diagnostics`` status, by status name: the figures of
    nodes that run in other processes (the policy's encoder and policy latencies).

    Args:
        **kwargs: ``rclpy.node.Node`` keyword arguments (context, namespace).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("bench_diagnostics", **kwargs)
        self.latest: dict[str, dict[str, str]] = {}
        self.create_subscription(DiagnosticArray, "diagnostics", self._on_diagnostics, 50)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.latest[status.name] = {kv.key: kv.value for kv in status.values}

    def find(self, prefix: str) -> dict[str, str]:
        """The key/values of the first status whose name starts with ``prefix`` ({} if none)."""
        return next((v for k, v in self.latest.items() if k.startswith(prefix)), {})
