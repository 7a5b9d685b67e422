"""Time for the engine, injectable so tests can travel.

SpiffWorkflow's timer module reads ``datetime.now`` directly. We patch that module's
``datetime`` name once, here, with a subclass whose ``now()`` asks the clock that is active
for the current action. Outside an action it is the system clock.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from datetime import UTC, datetime, timedelta, tzinfo

from SpiffWorkflow.bpmn.specs.event_definitions import timer as _spiff_timer


class Clock:
    """The system clock. Always returns aware UTC datetimes."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock(Clock):
    """A clock that only moves when told to; for tests and simulations."""

    def __init__(self, start: datetime | None = None):
        self._now = (start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)).astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock.set needs an aware datetime")
        with self._lock:
            self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta | None = None, **kwargs) -> datetime:
        delta = delta if delta is not None else timedelta(**kwargs)
        with self._lock:
            self._now = self._now + delta
            return self._now


SYSTEM_CLOCK = Clock()
_active: contextvars.ContextVar[Clock] = contextvars.ContextVar("tongban_clock", default=SYSTEM_CLOCK)


@contextlib.contextmanager
def using(clock: Clock):
    """Make ``clock`` the time source for SpiffWorkflow while the block runs."""
    token = _active.set(clock)
    try:
        yield clock
    finally:
        _active.reset(token)


def current() -> Clock:
    return _active.get()


class _ClockDatetime(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None):  # type: ignore[override]
        value = _active.get().now()
        if tz is None:
            return datetime.fromtimestamp(value.timestamp())
        return value.astimezone(tz)


_spiff_timer.datetime = _ClockDatetime
