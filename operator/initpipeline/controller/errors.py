"""The controller's own signal for "not yet": the pass ends and the pipeline is reconciled again later."""

from __future__ import annotations


class TryAgain(Exception):
    """Something the pass needs is not there yet (a name still taken, a child changed meanwhile, the API
    answering with an error): an alarm puts the pipeline back on the work queue after `delay` seconds
    (controller/passes.py)."""

    def __init__(self, message: str, delay: float):
        super().__init__(message)
        self.delay = delay
