"""Work that falls due later (a pipeline's steps deadline), done at that moment by one thread:
no per-object timer polls every pipeline, and kopf needs no finalizer for it."""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Alarms:
    """At most one pending alarm per key; setting it again moves it."""

    def __init__(self) -> None:
        self._heap: list[tuple[dt.datetime, int, str]] = []
        self._due: dict[str, tuple[dt.datetime, int, Callable[[], None]]] = {}
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def at(self, moment: dt.datetime, key: str, action: Callable[[], None]) -> None:
        with self._changed:
            current = self._due.get(key)
            if current is not None and current[0] == moment:
                return
            seq = next(self._order)
            self._due[key] = (moment, seq, action)
            heapq.heappush(self._heap, (moment, seq, key))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="initpipeline-alarms", daemon=True)
                self._thread.start()
            self._changed.notify()

    def cancel(self, key: str) -> None:
        with self._changed:
            self._due.pop(key, None)  # its heap entry is skipped when it comes up

    def pending(self) -> dict[str, dt.datetime]:
        with self._changed:
            return {key: due[0] for key, due in self._due.items()}

    def _run(self) -> None:
        while True:
            with self._changed:
                action = self._next_due()
            try:
                action()
            except Exception:  # one failing action must not stop the others
                log.exception("a scheduled action failed")

    def _next_due(self) -> Callable[[], None]:
        """Wait (holding the condition) until an alarm is due, and take it."""
        while True:
            while self._heap and self._due.get(self._heap[0][2], (None, -1))[1] != self._heap[0][1]:
                heapq.heappop(self._heap)  # cancelled or moved
            if not self._heap:
                self._changed.wait()
                continue
            moment, _, key = self._heap[0]
            wait = (moment - dt.datetime.now(dt.UTC)).total_seconds()
            if wait > 0:
                self._changed.wait(wait)
                continue
            heapq.heappop(self._heap)
            return self._due.pop(key)[2]
