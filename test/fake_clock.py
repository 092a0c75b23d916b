"""An injectable clock for tests (imported as ``from fake_clock import FakeClock``)."""


class FakeClock:
    """Returns ``now`` [s] until a test moves it (``clock.now += dt``)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
