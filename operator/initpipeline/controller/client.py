"""The operator's writes to the API server, each at its path (objectwatch.py builds the paths of the
objects that waitForObject steps watch)."""

from __future__ import annotations

import json

from ..spec import names
from ..spec.names import Obj
from .errors import TryAgain
from .kubeapi import ApiError, KubeApi

FIELD_MANAGER = "initpipeline"  # how the operator's writes show in managedFields
_COLLECTIONS = {"Pod": "/api/v1/namespaces/{}/pods", "Deployment": "/apis/apps/v1/namespaces/{}/deployments",
                "StatefulSet": "/apis/apps/v1/namespaces/{}/statefulsets", "Job": "/apis/batch/v1/namespaces/{}/jobs"}


def collection(kind: str, namespace: str) -> str:
    return _COLLECTIONS[kind].format(namespace)


def pipeline_path(namespace: str, name: str) -> str:
    return f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{namespace}/{names.PLURAL}/{name}"


class KubeClient:
    """Creates are idempotent (a 409 is "it exists"), deletes too (a 404 is "it is gone")."""

    def __init__(self) -> None:
        self.api: KubeApi | None = None

    def connect(self, api: KubeApi) -> None:
        """The API client, as the login just made it (again, after a new login)."""
        self.api = api

    def request(self, method: str, path: str, body: Obj | None = None, **params: str) -> Obj:
        if self.api is None:
            raise TryAgain("not logged in to the API server yet", delay=1)
        return self.api.request(method, path, body, params or None)

    def _create(self, body: Obj) -> Obj | None:
        """POST a child; None when one of that name exists (409)."""
        try:
            return self.request("POST", collection(body["kind"], body["metadata"]["namespace"]), body,
                                fieldManager=FIELD_MANAGER)
        except ApiError as exc:
            if exc.status != 409:
                raise
        return None

    def create_pod(self, pod: Obj) -> tuple[Obj, bool]:
        """Create, or read the one that exists: (pod, created)."""
        created = self._create(pod)
        if created is not None:
            return created, True
        meta = pod["metadata"]
        return self.request("GET", f"{collection('Pod', meta['namespace'])}/{meta['name']}"), False

    def delete_pod(self, namespace: str, name: str) -> None:
        self.delete_child("Pod", namespace, name)

    def create_child(self, body: Obj) -> bool:
        """Create a Deployment, StatefulSet or Job; False when one of that name exists (409)."""
        return self._create(body) is not None

    def create_job(self, job: Obj) -> bool:
        """Create a once-steps Job; False when it exists (409). Its Pod is first created as a server-side dry
        run: admission (Pod Security, a policy engine, a quota) judges a Job's Pods only when the Job
        controller makes them, and a refused one would leave the Job without a Pod and the app gated, with
        nothing but an Event on the Job. Refused, this raises the API server's words on the Pod."""
        meta, template = job["metadata"], job["spec"]["template"]
        pod = {"apiVersion": "v1", "kind": "Pod", "spec": template["spec"],
               "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"],
                            "labels": dict(template.get("metadata", {}).get("labels") or {})}}
        try:
            self.request("POST", collection("Pod", meta["namespace"]), pod, dryRun="All", fieldManager=FIELD_MANAGER)
        except ApiError as exc:
            if exc.status in (400, 403, 422):
                raise ApiError(exc.status, exc.reason, json.dumps({
                    "message": f"its Pod would not be admitted: {exc.message}"})) \
                    from None
            raise
        return self.create_child(job)

    def replace_workload(self, body: Obj) -> None:
        """PUT the whole object (at the cached resourceVersion): fields the spec no longer sets go."""
        meta = body["metadata"]
        self.request("PUT", f"{collection(body['kind'], meta['namespace'])}/{meta['name']}", body,
                     fieldManager=FIELD_MANAGER)

    def delete_child(self, kind: str, namespace: str, name: str) -> None:
        """Delete a child of the pipeline; a workload's or Job's Pods go with it (in the background)."""
        try:
            self.request("DELETE", f"{collection(kind, namespace)}/{name}", {"propagationPolicy": "Background"})
        except ApiError as exc:
            if exc.status != 404:
                raise

    def set_pod_deadline(self, namespace: str, name: str, seconds: int) -> None:
        self.request("PATCH", f"{collection('Pod', namespace)}/{name}", {"spec": {"activeDeadlineSeconds": seconds}},
                     fieldManager=FIELD_MANAGER)

    def set_pod_gates(self, namespace: str, name: str, gates: list[Obj]) -> None:
        """Set a Pod's scheduling gates to these (the API server only lets them be removed; a merge patch
        replaces the list)."""
        self.request("PATCH", f"{collection('Pod', namespace)}/{name}", {"spec": {"schedulingGates": gates}},
                     fieldManager=FIELD_MANAGER)

    def set_pod_annotation(self, namespace: str, name: str, key: str, value: str) -> None:
        self.request("PATCH", f"{collection('Pod', namespace)}/{name}", {"metadata": {"annotations": {key: value}}},
                     fieldManager=FIELD_MANAGER)

    def get_pipeline(self, namespace: str, name: str) -> Obj:
        """One pipeline as the API server has it now (the Pod webhook's one read)."""
        return self.request("GET", pipeline_path(namespace, name))

    def write_status(self, namespace: str, name: str, status: Obj) -> None:
        self.request("PATCH", f"{pipeline_path(namespace, name)}/status", {"status": status},
                     fieldManager=FIELD_MANAGER)
