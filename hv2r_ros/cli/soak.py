"""Soak: closed-loop episodes on the simulated robot with random faults, the stack as separate
processes as on a robot.

``hv2r soak --duration-s 1800`` starts the simulated robot, the scripted expert (the policy
process; it solves the sim's pick-and-place from ground truth), the safety filter and the command
output, each in its own process, with fault relays in front of the safety filter's actions and
of the stack's joint_states (``hv2r_ros.ros.fault_rig``, ``hv2r_ros.ros.fault_relay``). Episodes
follow each other (a new layout after each success, or after 60 s). After a random pause one
fault at a time is injected, most often while the robot moves:

  policy_stop       the policy process frozen (SIGSTOP) 0.2-1.5 s, then continued
  policy_kill       the policy process killed and restarted: latched until the operator
                    activates the safety filter again
  action_loss       10-50 % of the actions dropped for 1-4 s
  action_outage     every action dropped for 250 ms
  action_future     action stamps 0.5 s in the future for 1 s
  action_duplicate  the last action repeated instead of new ones for 1 s
  action_reorder    actions swapped pairwise for 2 s
  joint_states_stall / joint_states_repeat   joint_states missing / repeated for 0.1-1 s
  estop             the e-stop pressed and released: latched until the operator reset

Each fault gets one log line: what, when, the HOLD latency when the robot was moving, and how it
ended: ``recovered`` (the safety filter ACTIVE again by itself), ``latched`` (held until the
operator's reset or activation, then ACTIVE) or ``NOT RECOVERED`` (not ACTIVE within 20 s).
At the end: episodes, faults by kind and outcome, and the joint commands' limit violations
(position, velocity v_max * T and acceleration per period, against the robot profile). The exit
code is 1 on any violation, any fault not recovered or a node process that died by itself.
Camera faults need the policy node and its models: the reliability tests cover them.
"""

from __future__ import annotations

import argparse
import os

RECOVERY_S = 20.0   # a fault's end to ACTIVE again
EPISODE_S = 60.0    # longest episode before a new layout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration-s", type=float, default=1800.0, metavar="S",
                        help="soak duration [s] (default 1800)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the fault schedule, the relays and the first layout")
    parser.add_argument("--robot", default="panda", help="robot profile with one end effector")
    parser.add_argument("--domain-id", type=int, default=100 + os.getpid() % 100,
                        help="ROS_DOMAIN_ID of the soak's processes (default 100 + pid %% 100)")
    parser.add_argument("--folder", default="", metavar="DIR",
                        help="node logs go here (default: a temporary folder, removed on "
                             "success)")
    parser.add_argument("--mean-gap-s", type=float, default=6.0, metavar="S",
                        help="mean pause between the end of a fault and the next one [s]")


def run(args: argparse.Namespace) -> int:
    import shutil
    import tempfile
    from pathlib import Path

    from hv2r_ros.ros.soak_session import SoakSession

    folder = Path(args.folder or tempfile.mkdtemp(prefix="hv2r-soak-"))
    session = SoakSession(folder, args.domain_id, args.robot, args.seed, args.mean_gap_s)
    try:
        session.start()
        session.run(args.duration_s)
    finally:
        died = session.close()
    ok = session.report(died)
    if ok and not args.folder:
        shutil.rmtree(folder, ignore_errors=True)
    elif not ok:
        print(f"hv2r soak: node logs in {folder}", flush=True)
    return 0 if ok else 1
