"""One action source per activation of the safety stage.

The node reports the publishers of the action topic (any ids, e.g. endpoint GIDs) with
``note``; those present when the first chunk after activation is accepted are bound
(``bind``), and a publisher that appears later (a restarted or a second policy) latches a
reason until the next activation (``reset``). A restarted policy therefore stays inactive until
the operator activates the stage again.
"""

from __future__ import annotations

from typing import Collection

__all__ = ["SourceBinding"]


class SourceBinding:
    """The bound publishers of the action topic and the latch a new one sets.

    Attributes:
        latch: Why the stage holds for a new source ("" while none appeared).
    """

    def __init__(self) -> None:
        self._now: frozenset[str] | None = None
        self._bound: frozenset[str] | None = None
        self.latch = ""

    def reset(self) -> None:
        """Forget the bound sources and the latch (an activation)."""
        self._bound, self.latch = None, ""

    def note(self, sources: Collection[str], active: bool) -> bool:
        """The publishers now; a publisher not bound while ``active`` latches. Returns whether
        the latch is set."""
        self._now = frozenset(sources)
        if active and self._bound is not None and not self._now <= self._bound and not self.latch:
            new = len(self._now - self._bound)
            self.latch = (f"{new} new publisher(s) of the action topic: the policy restarted or "
                          "another node publishes; deactivate and activate the safety filter to "
                          "follow it")
        return bool(self.latch)

    def bind(self) -> None:
        """A chunk was accepted: bind the publishers noted last, if none are bound yet."""
        if self._bound is None:
            self._bound = self._now
