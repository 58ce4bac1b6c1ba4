"""Pipelines waiting to be reconciled, and the threads that reconcile them.

kopf's handlers only say which pipeline an event concerns (wake) and return at once, so kopf
holds no event body while a reconcile waits for a thread: what waits is a uid. A uid is queued at
most once and never reconciled on two threads at once (the semantics of client-go's workqueue): a
burst of events for one pipeline costs one pass, or two if one came in during the pass.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)


class WorkQueue:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._order: deque[str] = deque()
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._again: set[str] = set()  # woken while running: queued again when that pass ends
        self._threads: list[threading.Thread] = []

    @property
    def started(self) -> bool:
        return bool(self._threads)

    def start(self, work: Callable[[str], None], threads: int, context: contextvars.Context | None = None) -> None:
        """Serve the queue with `threads` threads calling work(uid), each in a copy of `context`
        (kopf's, so that they can post Events as its handlers do). A second start does nothing."""
        with self._changed:
            if self._threads:
                return
            base = context if context is not None else contextvars.copy_context()
            for number in range(threads):
                thread = threading.Thread(target=base.copy().run, args=(self._serve, work), daemon=True,
                                          name=f"initpipeline-reconcile-{number}")
                self._threads.append(thread)
                thread.start()

    def wake(self, uid: str) -> None:
        with self._changed:
            if uid in self._running:
                self._again.add(uid)
            elif uid not in self._queued:
                self._queued.add(uid)
                self._order.append(uid)
                self._changed.notify()

    def depth(self) -> int:
        """Pipelines waiting for a thread (not those being reconciled)."""
        with self._changed:
            return len(self._queued)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or running; False if that did not happen within timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._queued and not self._running, timeout)

    def _take(self) -> str:
        with self._changed:
            while not self._order:
                self._changed.wait()
            uid = self._order.popleft()
            self._queued.discard(uid)
            self._running.add(uid)
            return uid

    def _done(self, uid: str) -> None:
        with self._changed:
            self._running.discard(uid)
            if uid in self._again:
                self._again.discard(uid)
                self._queued.add(uid)
                self._order.append(uid)
            self._changed.notify_all()

    def _serve(self, work: Callable[[str], None]) -> None:
        while True:
            uid = self._take()
            try:
                work(uid)
            except Exception:  # work handles its own errors; one that escapes must not stop the thread
                log.exception("reconciling %s failed", uid)
            finally:
                self._done(uid)
