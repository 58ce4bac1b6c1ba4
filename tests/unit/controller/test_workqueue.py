"""The work queue: each pipeline at most once in the queue, never on two threads at once."""

from __future__ import annotations

import contextvars
import threading
from collections import Counter

from initpipeline.controller.workqueue import WorkQueue

WAIT = 10.0  # seconds: only a bound on a hang, never a measurement


class Recorder:
    """Records passes; a pass of a uid in `blocked` waits until it is released."""

    def __init__(self) -> None:
        self.passes: Counter[str] = Counter()
        self.running: set[str] = set()
        self.overlaps: list[str] = []
        self.blocked: dict[str, threading.Event] = {}
        self.started: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def block(self, uid: str) -> threading.Event:
        self.started[uid] = threading.Event()
        self.blocked[uid] = threading.Event()
        return self.blocked[uid]

    def __call__(self, uid: str) -> None:
        with self.lock:
            if uid in self.running:
                self.overlaps.append(uid)
            self.running.add(uid)
            self.passes[uid] += 1
        if uid in self.started:
            self.started[uid].set()
        if uid in self.blocked:
            assert self.blocked[uid].wait(WAIT)
        with self.lock:
            self.running.discard(uid)


def running_and_held(uid: str, threads: int) -> tuple[WorkQueue, Recorder, threading.Event]:
    """A queue whose first pass, of `uid`, has started and waits for the returned event."""
    queue, work = WorkQueue(), Recorder()
    release = work.block(uid)
    queue.start(work, threads=threads)
    queue.wake(uid)
    assert work.started[uid].wait(WAIT)
    return queue, work, release


def test_a_burst_of_wakes_for_a_waiting_pipeline_is_one_pass() -> None:
    queue, work, release = running_and_held("busy", threads=1)
    for _ in range(50):
        queue.wake("a")  # waits behind "busy" on the single thread
    assert queue.depth() == 1
    release.set()
    assert queue.wait_idle(WAIT)
    assert work.passes == Counter({"busy": 1, "a": 1})


def test_a_wake_during_a_pass_makes_exactly_one_more_pass_and_never_an_overlap() -> None:
    queue, work, release = running_and_held("a", threads=4)
    for _ in range(20):
        queue.wake("a")  # free threads are idle, yet none may take "a" while it runs
    assert queue.depth() == 0
    release.set()
    assert queue.wait_idle(WAIT)
    assert work.passes["a"] == 2
    assert work.overlaps == []


def test_other_pipelines_go_on_while_one_pass_is_slow() -> None:
    queue, work, release = running_and_held("slow", threads=2)
    for uid in ("a", "b", "c"):
        queue.wake(uid)
    # the second thread serves a, b and c although slow holds the first one
    for _ in range(1000):
        with work.lock:
            if all(work.passes[uid] == 1 for uid in "abc"):
                break
        threading.Event().wait(0.01)
    assert all(work.passes[uid] == 1 for uid in "abc")
    assert not queue.wait_idle(0)  # slow is still running
    release.set()
    assert queue.wait_idle(WAIT)


def test_a_failing_pass_does_not_stop_its_thread() -> None:
    queue, seen = WorkQueue(), []

    def work(uid: str) -> None:
        seen.append(uid)
        if uid == "bad":
            raise RuntimeError("boom")

    queue.start(work, threads=1)
    queue.wake("bad")
    queue.wake("good")
    assert queue.wait_idle(WAIT)
    assert seen == ["bad", "good"]


def test_threads_run_in_the_given_context() -> None:
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker")
    token = marker.set("kopf's")
    context = contextvars.copy_context()
    marker.reset(token)
    queue, seen = WorkQueue(), []
    queue.start(lambda uid: seen.append(marker.get("none")), threads=2, context=context)
    queue.wake("a")
    queue.wake("b")
    assert queue.wait_idle(WAIT)
    assert seen == ["kopf's", "kopf's"]
