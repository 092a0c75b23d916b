"""The hand's motion in a human demonstration: a seeded, human-like pick-and-place timeline.

The path is that of the grasp point (where the cube's centre sits in the closed hand). Each
move is a minimum-jerk reach whose duration grows with the distance (0.5 s + about 0.6 s/m,
varied by +-15 %, as Fitts-like reaching does), bowed sideways and upward by a seeded fraction
of its length (bow * 4 s (1 - s), zero speed at both ends), with a 1 mm physiological tremor
(three 8-12 Hz sines per axis) and pauses of varying length. Phases come in the order of
``PHASES``, so per-frame labels never go back.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from hv2r_ros.sim.expert_plan import minimum_jerk

PHASES = ("start", "reach", "grasp", "carry", "place", "withdraw", "end")
TREMOR_M = 0.001


@dataclasses.dataclass(frozen=True)
class Move:
    """One segment of the hand's path (positions of the grasp point [m], world frame).

    Attributes:
        phase: Label from ``PHASES``.
        t0_s, t1_s: Start and end time [s].
        start_m, end_m: Grasp point at the start and the end (3,).
        bow_m: Largest sideways/upward deviation from the straight line, mid-way (3,).
        grip: (from, to): hand closure blend, 0 open, 1 closed on the cube.
        attached: The cube moves with the hand.
    """

    phase: str
    t0_s: float
    t1_s: float
    start_m: np.ndarray
    end_m: np.ndarray
    bow_m: np.ndarray
    grip: tuple[float, float]
    attached: bool


@dataclasses.dataclass(frozen=True)
class HandState:
    """The hand at one instant: grasp point (3,) [m], closure blend, phase, cube attached."""

    grasp_point_m: np.ndarray
    grip: float
    phase: str
    attached: bool


class HumanMotion:
    """The hand's timeline: moves in order, then holding still until ``duration_s``.

    Args:
        moves: Consecutive segments.
        end_hold_s: Time [s] the scene is shown after the last move.
        rng: Draws the tremor's frequencies and phases.
    """

    def __init__(self, moves: list[Move], end_hold_s: float, rng: np.random.Generator) -> None:
        self.moves = moves
        self.duration_s = moves[-1].t1_s + end_hold_s
        self._tremor_hz = rng.uniform(8.0, 12.0, (3, 3))
        self._tremor_phase = rng.uniform(0.0, 2.0 * math.pi, (3, 3))

    def at(self, t_s: float) -> HandState:
        """State at ``t_s`` [s]."""
        move = next((m for m in self.moves if t_s < m.t1_s), self.moves[-1])
        if t_s >= self.moves[-1].t1_s:
            return HandState(move.end_m.copy(), move.grip[1], "end", move.attached)
        s = float(minimum_jerk((t_s - move.t0_s) / (move.t1_s - move.t0_s)))
        point = move.start_m + s * (move.end_m - move.start_m) + 4.0 * s * (1.0 - s) * move.bow_m
        tremor = np.sin(2.0 * math.pi * self._tremor_hz * t_s + self._tremor_phase).sum(axis=1)
        point = point + TREMOR_M / 3.0 * tremor
        grip = move.grip[0] + s * (move.grip[1] - move.grip[0])
        return HandState(point, grip, move.phase, move.attached)

    def phase_times(self, phase: str) -> tuple[float, float]:
        """First start and last end [s] of the moves labelled ``phase``."""
        moves = [m for m in self.moves if m.phase == phase]
        return moves[0].t0_s, moves[-1].t1_s


def plan_human_motion(rng: np.random.Generator, pick_m: np.ndarray, place_m: np.ndarray,
                      start_m: np.ndarray, end_m: np.ndarray) -> HumanMotion:
    """A seeded human-like pick-and-place timeline.

    Args:
        rng: Random generator (durations, bows, pauses, tremor).
        pick_m: Cube centre at the start (3,) [m].
        place_m: Cube centre where it is set down (3,) [m].
        start_m, end_m: Grasp point out of view before and after (3,) [m].
    """
    def reach_s(a, b):  # Fitts-like: longer reaches take longer, never exactly the same
        return (0.5 + 0.6 * float(np.linalg.norm(b - a))) * rng.uniform(0.85, 1.15)

    def bow(a, b, sideways, upward):
        d = b - a
        side = np.cross(d, [0.0, 0.0, 1.0])
        side = side / max(float(np.linalg.norm(side)), 1e-9)
        length = float(np.linalg.norm(d))
        return (rng.uniform(-sideways, sideways) * side + [0.0, 0.0, rng.uniform(*upward)]) * length

    up = np.array([0.0, 0.0, 1.0])
    above_pick = pick_m + up * rng.uniform(0.06, 0.09)
    lifted = pick_m + up * rng.uniform(0.08, 0.12)
    above_place = place_m + up * rng.uniform(0.06, 0.09)
    left = place_m + up * rng.uniform(0.06, 0.10)
    plan = [  # phase, to, duration, bow, grip, attached
        ("start", start_m, rng.uniform(0.3, 0.5), np.zeros(3), (0.0, 0.0), False),
        ("reach", above_pick, reach_s(start_m, above_pick),
         bow(start_m, above_pick, 0.12, (0.05, 0.15)), (0.0, 0.0), False),
        ("reach", pick_m, rng.uniform(0.35, 0.5), np.zeros(3), (0.0, 0.0), False),
        ("grasp", pick_m, rng.uniform(0.3, 0.45), np.zeros(3), (0.0, 1.0), False),
        ("carry", lifted, rng.uniform(0.35, 0.5), np.zeros(3), (1.0, 1.0), True),
        ("carry", above_place, reach_s(lifted, above_place),
         bow(lifted, above_place, 0.1, (0.05, 0.2)), (1.0, 1.0), True),
        ("carry", place_m, rng.uniform(0.4, 0.55), np.zeros(3), (1.0, 1.0), True),
        ("place", place_m, rng.uniform(0.25, 0.4), np.zeros(3), (1.0, 0.0), False),
        ("withdraw", left, rng.uniform(0.3, 0.4), np.zeros(3), (0.0, 0.0), False),
        ("withdraw", end_m, reach_s(left, end_m), bow(left, end_m, 0.1, (0.0, 0.1)),
         (0.0, 0.0), False),
    ]
    moves, t, point = [], 0.0, np.asarray(start_m, dtype=np.float64)
    for phase, to, duration, bow_m, grip, attached in plan:
        moves.append(Move(phase, t, t + duration, point, np.asarray(to, float), bow_m, grip,
                          attached))
        t, point = t + duration, np.asarray(to, float)
    return HumanMotion(moves, rng.uniform(0.5, 0.8), rng)
