"""Work that falls due later (a pipeline's steps deadline, a held status write, a retry), done at that
moment by one thread: no per-object timer polls every pipeline, and kopf needs no finalizer for it."""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
Action = Callable[[], None]


class Alarms:
    """At most one pending alarm per key; setting it again moves it. Due times are read on `clock` (the
    controller's one clock), so a test that freezes it sees what falls due and when without waiting."""

    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        self._heap: list[tuple[dt.datetime, int, str]] = []
        self._due: dict[str, tuple[dt.datetime, int, Action]] = {}
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the due alarms' actions on a thread of their own from now on (once)."""
        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="initpipeline-alarms", daemon=True)
                self._thread.start()

    def at(self, moment: dt.datetime, key: str, action: Action) -> None:
        with self._changed:
            current = self._due.get(key)
            if current is not None and current[0] == moment:
                return
            seq = next(self._order)
            self._due[key] = (moment, seq, action)
            heapq.heappush(self._heap, (moment, seq, key))
            self._changed.notify()

    def cancel(self, key: str) -> None:
        with self._changed:
            self._due.pop(key, None)  # its heap entry is skipped when it comes up

    def pending(self) -> dict[str, dt.datetime]:
        with self._changed:
            return {key: due[0] for key, due in self._due.items()}

    def take_due(self) -> list[Action]:
        """The actions whose moment has come, earliest first, no longer pending."""
        with self._changed:
            return self._take_due(self._clock())

    def seconds_to_next(self) -> float | None:
        """How long until the next alarm falls due (None: none is pending)."""
        with self._changed:
            return self._seconds_to_next()

    def _seconds_to_next(self) -> float | None:
        self._skip_gone()
        return (self._heap[0][0] - self._clock()).total_seconds() if self._heap else None

    def _skip_gone(self) -> None:
        while self._heap and self._due.get(self._heap[0][2], (None, -1))[1] != self._heap[0][1]:
            heapq.heappop(self._heap)  # cancelled or moved

    def _take_due(self, now: dt.datetime) -> list[Action]:
        due = []
        self._skip_gone()
        while self._heap and self._heap[0][0] <= now:
            key = heapq.heappop(self._heap)[2]
            due.append(self._due.pop(key)[2])
            self._skip_gone()
        return due

    def _run(self) -> None:
        while True:
            with self._changed:
                due = self._take_due(self._clock())
                if not due:
                    self._changed.wait(self._seconds_to_next())
                    continue
            for action in due:
                try:
                    action()
                except Exception:  # one failing action must not stop the others
                    log.exception("a scheduled action failed")
