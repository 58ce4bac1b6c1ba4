"""The operator's context: one object, shared by reference through kopf's memo, so that a new login
(client.connect) reaches every pass."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from ..spec.names import Obj
from .alarms import Alarms
from .client import KubeClient
from .memory import PipelineMemory
from .metrics import Metrics
from .objectwatch import ObjectWatches
from .settings import OperatorConfig
from .workqueue import WorkQueue

# A pipeline's alarms, keyed by purpose + uid: its steps' deadline (no prefix), a held status write,
# and a retry. Each wakes the pipeline on the work queue.
WRITE_KEY = "write/"
RETRY_KEY = "retry/"
EventPoster = Callable[[Obj, str, str, str], None]
Clock = Callable[[], dt.datetime]


def wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Controller:
    """Split by what each part is: the frozen configuration, the client that writes, what it remembers of
    each pipeline, and the queue and alarms that run passes. `clock` is the one clock that the controller
    reads: status times, write holds, deadlines, retries and alarms."""

    config: OperatorConfig
    post_event: EventPoster
    metrics: Metrics
    client: KubeClient = field(default_factory=KubeClient)
    clock: Clock = wall_clock
    queue: WorkQueue = field(default_factory=WorkQueue)
    memory: dict[str, PipelineMemory] = field(default_factory=dict)  # by pipeline uid
    # Namespaces seen being deleted (when): the deletions of their Pods recreate nothing.
    terminating: dict[str, dt.datetime] = field(default_factory=dict)
    objects: ObjectWatches = field(init=False)  # of waitForObject steps
    alarms: Alarms = field(init=False)  # on the clock; their thread starts with the work queue

    def __post_init__(self) -> None:
        self.objects = ObjectWatches(self.client, self.queue.wake)
        self.alarms = Alarms(self.clock)

    def remember(self, uid: str) -> PipelineMemory:
        return self.memory.setdefault(uid, PipelineMemory())

    def forget(self, uid: str, namespace: str, name: str) -> None:
        """A deleted pipeline: nothing of it stays in memory or in the metrics, and none of its alarms fires."""
        self.memory.pop(uid, None)
        self.objects.forget(uid)
        for purpose in ("", WRITE_KEY, RETRY_KEY):
            self.alarms.cancel(purpose + uid)
        self.metrics.forget(namespace, name)

    def wake_at(self, moment: dt.datetime, uid: str, purpose: str = "") -> None:
        """Reconcile the pipeline again at that moment (one alarm per purpose; setting it again moves it)."""
        self.alarms.at(moment, purpose + uid, functools.partial(self.queue.wake, uid))

    def wake_in(self, seconds: float, uid: str, purpose: str = "") -> None:
        self.wake_at(self.clock() + dt.timedelta(seconds=seconds), uid, purpose)
