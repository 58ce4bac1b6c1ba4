"""The user's cluster as `status` and `logs` read it: their kubeconfig, a GET, then watches. Nothing here
polls."""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..spec import names
from ..spec.names import Obj

EXIT_READY, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3
CLEAR_SCREEN = "\x1b[H\x1b[2J"


class CommandError(Exception):
    """A failure to report in one line (no traceback), with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Kube:
    core: Any
    custom: Any
    namespace: str

    @classmethod
    def connect(cls, args: argparse.Namespace) -> Kube:
        try:
            import kubernetes
        except ImportError:  # the operator's image leaves the client out
            raise CommandError("status and logs need the kubernetes package: pip install 'initpipeline[cli]'",
                               EXIT_USAGE) from None

        # the client's config module has no type hints
        config: Any = kubernetes.config
        try:
            config.load_kube_config(config_file=args.kubeconfig, context=args.context)
            contexts, active = config.list_kube_config_contexts(config_file=args.kubeconfig)
            if args.context:
                active = next(c for c in contexts if c["name"] == args.context)
            default_ns = active.get("context", {}).get("namespace") or "default"
        except config.ConfigException:
            config.load_incluster_config()  # in a Pod: its service account
            default_ns = "default"
        return cls(kubernetes.client.CoreV1Api(), kubernetes.client.CustomObjectsApi(),
                   args.namespace or default_ns)

    def _json(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return json.loads(call(*args, _preload_content=False, **kwargs).data)
        except ApiException as exc:
            if exc.status == 404:
                raise CommandError(f"not found: {args[-1]} in namespace {self.namespace}") from None
            raise CommandError(f"Kubernetes API error {exc.status} {exc.reason}") from None

    def pipeline(self, name: str) -> Obj:
        found: Obj = self._json(self.custom.get_namespaced_custom_object, names.GROUP, names.VERSION,
                                self.namespace, names.PLURAL, name)
        return found

    def pod(self, name: str) -> Obj:
        found: Obj = self._json(self.core.read_namespaced_pod, name, self.namespace)
        return found

    def pod_names(self, selector: str) -> list[str]:
        """The live Pods that match a label selector, by name."""
        items = self._json(self.core.list_namespaced_pod, self.namespace, label_selector=selector)["items"]
        return sorted(p["metadata"]["name"] for p in items if not p["metadata"].get("deletionTimestamp"))

    def _watch(self, list_call: Callable[..., Any], read: Callable[[], Obj], name: str, *args: Any,
               until: float | None = None) -> Iterator[Obj]:
        """The object named `name` (a read), then each new state of it from a watch; it ends at the
        monotonic time `until`, if given."""
        import kubernetes.watch
        from kubernetes.client.exceptions import ApiException

        watch: Any = kubernetes.watch  # no type hints
        watcher = watch.Watch()
        current = read()
        yield current
        version = current["metadata"]["resourceVersion"]
        while True:
            seconds = 240
            if until is not None:
                seconds = min(seconds, math.ceil(until - time.monotonic()))
                if seconds <= 0:
                    return
            stream = watcher.stream(list_call, *args, field_selector=f"metadata.name={name}",
                                    resource_version=version, timeout_seconds=seconds)
            try:
                for event in stream:
                    obj = event["object"]
                    if event["type"] == "ERROR":  # the version we watch from is too old (410 Gone)
                        raise ApiException(status=410)
                    if not isinstance(obj, dict):
                        obj = self.core.api_client.sanitize_for_serialization(obj)
                    if event["type"] == "DELETED":
                        raise CommandError(f"{name} was deleted")
                    if event["type"] in ("ADDED", "MODIFIED"):
                        version = obj["metadata"]["resourceVersion"]
                        yield obj
            except ApiException as exc:
                if exc.status != 410:
                    raise CommandError(f"Kubernetes API error {exc.status} {exc.reason}") from None
                current = read()  # start again from what is there now
                version = current["metadata"]["resourceVersion"]
                yield current

    def watch_pipeline(self, name: str, until: float | None = None) -> Iterator[Obj]:
        return self._watch(self.custom.list_namespaced_custom_object, lambda: self.pipeline(name), name,
                           names.GROUP, names.VERSION, self.namespace, names.PLURAL, until=until)

    def watch_pod(self, name: str) -> Iterator[Obj]:
        return self._watch(self.core.list_namespaced_pod, lambda: self.pod(name), name, self.namespace)

    def log_chunks(self, pod: str, container: str, follow: bool, previous: bool) -> Iterator[bytes]:
        from kubernetes.client.exceptions import ApiException

        try:
            resp = self.core.read_namespaced_pod_log(pod, self.namespace, container=container, follow=follow,
                                                     previous=previous, _preload_content=False)
        except ApiException as exc:
            raise CommandError(f"cannot read the log of {pod}/{container}: {exc.status} {exc.reason}") from None
        try:
            yield from resp.stream(amt=None, decode_content=True)
        finally:
            resp.release_conn()
