"""The Unitree G1 arm SDK channel through Unitree's Python SDK (``unitree_sdk2py``, extra).

:class:`ArmSdkChannel` publishes :class:`~hv2r_ros.core.unitree_arm.ArmSdkFrame` s as
``unitree_hg`` ``LowCmd_`` messages on ``rt/arm_sdk``, each with the CRC computed by the SDK's own
``CRC`` class after every field is set, and reads ``rt/lowstate`` (``LowState_``) for the measured
positions of all 35 motor slots. Transport: the SDK's channel factory (Cyclone DDS) on one DDS
domain and network interface per process (the SDK's factory is a process-wide singleton).

The robot publishes ``LowState_`` at 500 Hz and decoding one in Python costs ~0.45 ms (measured
here: 23 % of a core for all of them). The state is therefore polled, not handled on arrival: a
reader that keeps only the newest sample is taken once per control period, on the caller's
thread. Taking empties it, so a sample found at one poll arrived since the previous one.

The SDK is imported when a channel is built, never at import time: the rest of the stack runs
without it, and a missing or broken SDK raises :class:`UnitreeSdkError` naming what to install.
"""

from __future__ import annotations

import socket
import threading
import types

import numpy as np

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.unitree_arm import MOTOR_SLOT_COUNT, ArmSdkFrame

__all__ = ["COMMAND_TOPIC", "INSTALL", "STATE_TOPIC", "ArmSdkChannel", "UnitreeSdkError",
           "fill_low_cmd", "load_sdk", "motor_positions"]

#: Topics of Unitree's G1 arm SDK examples.
COMMAND_TOPIC, STATE_TOPIC = "rt/arm_sdk", "rt/lowstate"
INSTALL = ("install the 'unitree' extra: `make unitree` (the Cyclone DDS 0.10 C library, then "
           "`pip install --no-deps -r requirements-unitree.txt`); see docs/unitree_g1.md")
# What goes wrong with the unitree-sdk2 1.0.1 wheel on PyPI, and what to do instead.
_PYPI_WHEEL = ("the unitree-sdk2 1.0.1 wheel on PyPI lacks the b2 package its __init__ imports "
               "and the CRC library (unitree_sdk2_python issues #81, #71): uninstall it and "
               "install Unitree's source as requirements-unitree.txt does")

_sdk: types.SimpleNamespace | None = None
_factory: tuple[int, str] | None = None  # (domain id, interface) the SDK's factory runs on
_participant = None  # this module's DDS participant on that domain, for the state readers
_factory_lock = threading.Lock()


class UnitreeSdkError(ConfigError):
    """The Unitree SDK is missing or broken, or its DDS transport cannot start."""


def load_sdk() -> types.SimpleNamespace:
    """The SDK's channel classes, ``unitree_hg`` message types and CRC (imported once).

    Raises:
        UnitreeSdkError: ``unitree_sdk2py`` or Cyclone DDS is not importable, or the SDK's CRC
            library is missing; the message names the extra to install.
    """
    global _sdk
    if _sdk is not None:
        return _sdk
    try:
        from unitree_sdk2py.core import channel
        from unitree_sdk2py.idl.default import unitree_hg_msg_dds__LowCmd_ as new_low_cmd
        from unitree_sdk2py.idl.unitree_hg.msg.dds_ import LowCmd_, LowState_
        from unitree_sdk2py.utils.crc import CRC
    except ImportError as exc:
        hint = _PYPI_WHEEL if "b2" in str(exc) else INSTALL
        raise UnitreeSdkError(f"the Unitree SDK (unitree_sdk2py) cannot be imported: {hint} "
                              f"({exc})", field="command_interface.type",
                              value="unitree_arm_sdk") from exc
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.qos import Policy, Qos
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    try:
        crc = CRC()
    except OSError as exc:  # the ctypes CRC library is not beside crc.py
        raise UnitreeSdkError(f"the Unitree SDK's CRC library is missing: {_PYPI_WHEEL} "
                              f"({exc})", field="command_interface.type",
                              value="unitree_arm_sdk") from exc
    _sdk = types.SimpleNamespace(
        initialize=channel.ChannelFactoryInitialize, Publisher=channel.ChannelPublisher,
        Subscriber=channel.ChannelSubscriber, LowCmd_=LowCmd_, LowState_=LowState_,
        new_low_cmd=new_low_cmd, crc=crc, Participant=DomainParticipant, Topic=Topic,
        Reader=DataReader, newest_only=Qos(Policy.History.KeepLast(1)))
    return _sdk


def _start_factory(sdk: types.SimpleNamespace, domain_id: int, network_interface: str):
    """Start the SDK's channel factory (once per process); this module's participant on it."""
    global _factory, _participant
    wanted = (int(domain_id), network_interface)
    with _factory_lock:
        if _factory == wanted:
            return _participant
        if _factory is not None:
            raise UnitreeSdkError(
                f"the Unitree SDK already runs on DDS domain {_factory[0]}, interface "
                f"{_factory[1] or '(automatic)'!r} in this process (its channel factory is a "
                "process-wide singleton)", field="unitree_domain_id", value=wanted)
        try:
            sdk.initialize(int(domain_id), network_interface or None)
        except Exception as exc:  # the SDK raises a bare Exception after printing the cause
            found = [name for _, name in socket.if_nameindex()]
            raise UnitreeSdkError(f"the Unitree SDK could not start DDS ({exc})",
                                  field="unitree_network_interface",
                                  value=network_interface, choices=found) from exc
        _factory = wanted
        # Created after the factory's Domain, so it runs on the SDK's interface configuration.
        _participant = sdk.Participant(int(domain_id))
        return _participant


def motor_positions(low_state) -> np.ndarray:
    """Measured positions [rad] of all 35 motor slots of a ``unitree_hg`` ``LowState_``."""
    return np.fromiter((motor.q for motor in low_state.motor_state), dtype=np.float64,
                       count=MOTOR_SLOT_COUNT)


def fill_low_cmd(msg, frame: ArmSdkFrame, crc) -> None:
    """Write ``frame`` into the ``LowCmd_`` ``msg`` slot by slot, then its CRC (SDK's ``CRC``).

    The CRC covers every field, so it is computed last. ``mode`` stays as the message's
    default, as in Unitree's arm SDK examples.
    """
    for cmd, q, dq, tau, kp, kd in zip(msg.motor_cmd, frame.q.tolist(), frame.dq.tolist(),
                                       frame.tau.tolist(), frame.kp.tolist(), frame.kd.tolist()):
        cmd.q, cmd.dq, cmd.tau, cmd.kp, cmd.kd = q, dq, tau, kp, kd
    msg.crc = crc.Crc(msg)


class ArmSdkChannel:
    """Publishes arm SDK frames and reads the robot's measured motor positions.

    Args:
        domain_id: DDS domain of the robot (0 on a G1).
        network_interface: Interface on the robot's network (``enp2s0``); empty: Cyclone DDS
            chooses.
        command_topic, state_topic: The SDK channel names.

    Raises:
        UnitreeSdkError: The SDK is missing, DDS cannot start on that interface, or the SDK
            already runs on another domain or interface in this process.
    """

    def __init__(self, *, domain_id: int = 0, network_interface: str = "",
                 command_topic: str = COMMAND_TOPIC, state_topic: str = STATE_TOPIC) -> None:
        sdk = load_sdk()
        participant = _start_factory(sdk, domain_id, network_interface)
        self._crc = sdk.crc
        self._msg = sdk.new_low_cmd()
        self.sent = 0
        self._publisher = sdk.Publisher(command_topic, sdk.LowCmd_)
        self._publisher.Init()
        self._reader = sdk.Reader(participant, sdk.Topic(participant, state_topic,
                                                         sdk.LowState_), sdk.newest_only)
        #: The last positions read by :meth:`poll_state` [rad], shape (35,), or None.
        self.motor_q: np.ndarray | None = None

    def poll_state(self) -> np.ndarray | None:
        """Positions [rad] of all 35 slots from a ``LowState_`` that arrived since the last poll
        (the newest), or None when none did. Non-blocking."""
        samples = self._reader.take(N=1)
        if not samples:
            return None
        self.motor_q = motor_positions(samples[-1])
        return self.motor_q

    def send(self, frame: ArmSdkFrame) -> bool:
        """Publish one frame as a ``LowCmd_`` with its CRC; False when the SDK's write failed."""
        fill_low_cmd(self._msg, frame, self._crc)
        written = bool(self._publisher.Write(self._msg))
        self.sent += written
        return written

    def close(self) -> None:
        """Stop publishing and reading (the factory stays up for the process)."""
        self._publisher.Close()
        self._reader = None
