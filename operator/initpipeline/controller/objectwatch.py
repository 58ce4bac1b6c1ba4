"""Watches of the objects that waitForObject steps wait for, while some step still waits for them.

kopf registers its watches at start, for kinds known then; a step may name any kind (a Job, a
cert-manager Certificate), so each such object gets a watch of its own: one thread, one request
filtered to the object's name, started when a pipeline first waits for it and stopped when no
pipeline does (its condition held, or the pipelines are gone). Each change wakes the pipelines that
wait for it; their pass reads what was seen last (`seen`) and decides with core/objects.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..core.objects import ObjectRef, Observation
from ..spec.names import Obj
from .client import KubeClient
from .kubeapi import ApiError

log = logging.getLogger(__name__)
WATCH_SECONDS = 240  # one watch request; the next goes on from the last resourceVersion
RETRY_SECONDS = (1, 2, 5, 10, 30)  # after a failure, growing while failures repeat
FORBIDDEN_HINT = "add it to the chart's objectWaits.rules"


class UnknownKind(Exception):
    pass


def _slim(obj: Obj) -> Obj:
    """What the condition needs: the generation and the status."""
    meta = obj.get("metadata") or {}
    return {"metadata": {"name": meta.get("name"), "uid": meta.get("uid"), "generation": meta.get("generation")},
            "status": obj.get("status") or {}}


class ObjectWatches:
    def __init__(self, client: KubeClient, wake: Callable[[str], None]) -> None:
        self.client, self.wake = client, wake
        self._lock = threading.Lock()
        self._wanted: dict[str, frozenset[ObjectRef]] = {}  # by pipeline uid
        self._stops: dict[ObjectRef, threading.Event] = {}  # one watching thread each
        self._seen: dict[ObjectRef, Observation] = {}
        self._plurals: dict[tuple[str, str], str] = {}  # (apiVersion, kind) -> resource, from discovery

    def want(self, uid: str, refs: set[ObjectRef]) -> None:
        """The objects that this pipeline waits for now (an empty set: none)."""
        with self._lock:
            if refs:
                self._wanted[uid] = frozenset(refs)
            elif self._wanted.pop(uid, None) is None:
                return  # waited for nothing before either (most pipelines, on every pass): nothing changes
            needed = set().union(*self._wanted.values()) if self._wanted else set()
            for ref in needed - self._stops.keys():
                stop = self._stops[ref] = threading.Event()
                threading.Thread(target=self._watch, args=(ref, stop), daemon=True,
                                 name=f"initpipeline-object-{ref.kind}-{ref.name}"[:60]).start()
            for ref in self._stops.keys() - needed:
                self._stops.pop(ref).set()
                self._seen.pop(ref, None)

    def forget(self, uid: str) -> None:
        self.want(uid, set())

    def seen(self, ref: ObjectRef) -> Observation | None:
        with self._lock:
            return self._seen.get(ref)

    def watching(self) -> set[ObjectRef]:
        with self._lock:
            return set(self._stops)

    def _observe(self, ref: ObjectRef, stop: threading.Event, observation: Observation) -> None:
        with self._lock:
            if stop.is_set() or self._seen.get(ref) == observation:
                return
            self._seen[ref] = observation
            waiting = [uid for uid, refs in self._wanted.items() if ref in refs]
        for uid in waiting:
            self.wake(uid)

    def _watch(self, ref: ObjectRef, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                path = self._collection(ref)
                selector = {"fieldSelector": f"metadata.name={ref.name}"}
                listing = self.client.request("GET", path, None, **selector)
                items = listing.get("items") or []
                self._observe(ref, stop, Observation(_slim(items[0]) if items else None))
                version = str(listing.get("metadata", {}).get("resourceVersion", ""))
                failures = 0
                while version and not stop.is_set():
                    version = self._follow(ref, stop, path, selector, version)
            except UnknownKind as exc:
                self._observe(ref, stop, Observation(problem=str(exc)))
            except ApiError as exc:
                problem = f"the operator cannot read it: {exc.status} {exc.reason}"
                if exc.status == 403:
                    problem = f"the operator may not watch {ref.kind} objects ({FORBIDDEN_HINT})"
                self._observe(ref, stop, Observation(problem=problem))
            except Exception as exc:  # a dropped connection, a restarting API server: watch again
                log.debug("watch of %s %s in %s failed: %s", ref.kind, ref.name, ref.namespace, exc)
            failures += 1
            stop.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])

    def _follow(self, ref: ObjectRef, stop: threading.Event, path: str, selector: dict[str, str],
                version: str) -> str:
        """One watch request from `version`; the version to go on from ("" to list again)."""
        api = self.client.api
        if api is None:
            return ""
        params = {**selector, "resourceVersion": version, "allowWatchBookmarks": "true"}
        for event in api.watch(path, params, WATCH_SECONDS):
            if stop.is_set():
                return ""
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                return ""  # most often 410 Gone: the version is too old; list again
            version = str(obj.get("metadata", {}).get("resourceVersion") or version)
            if kind in ("ADDED", "MODIFIED"):
                self._observe(ref, stop, Observation(_slim(obj)))
            elif kind == "DELETED":
                self._observe(ref, stop, Observation(None))
        return version

    def _collection(self, ref: ObjectRef) -> str:
        group_version = ref.api_version
        base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
        key = (ref.api_version, ref.kind)
        with self._lock:
            plural = self._plurals.get(key)
        if plural is None:
            try:
                resources = self.client.request("GET", base).get("resources") or []
            except ApiError as exc:
                if exc.status == 404:
                    raise UnknownKind(f"the API server serves no {ref.api_version}") from None
                raise
            plural = next((r["name"] for r in resources
                           if r.get("kind") == ref.kind and "/" not in r.get("name", "") and r.get("namespaced")),
                          None)
            if plural is None:
                raise UnknownKind(f"{ref.api_version} has no namespaced kind {ref.kind}")
            with self._lock:
                self._plurals[key] = plural
        return f"{base}/namespaces/{ref.namespace}/{plural}"
