"""The video prompt: a human demo becomes a task spec, and the robot's progress is tracked on it.

Modules, in data-path order:

- ``frames``: demo frames from a video file, a folder of images or a camera recording, sampled
  at a fixed rate; every way a demo can be unusable is a ``PromptError`` naming the file.
- ``keyframes``: subgoals where the embedding trajectory settles; the goal is the final one.
- ``spec``: the ``TaskSpec`` (goal and subgoal embeddings, frames, times, digests) and its
  on-disk cache keyed by content hash.
- ``build``: frames -> batched encoder -> keyframes -> ``TaskSpec``, through the cache.
- ``progress`` and ``calibration``: VIP-style progress toward the current subgoal, monotone
  subgoal advancement and completion, with thresholds calibrated on successful rollouts.
- ``session``: one prompt at a time plus its tracker, as the prompt node uses them.
- ``evaluation``: keyframe F1 with a time tolerance and Spearman rank correlation.

Import from the modules themselves (``from hv2r_ros.core.prompt.build import
build_task_spec``); this package module imports nothing, so ``core.goal`` and the prompt
modules can depend on each other's leaves without an import cycle.
"""
