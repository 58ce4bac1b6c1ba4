"""The operator's own API client (kubeapi) and its writes (client.KubeClient), against the real API server."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from initpipeline.controller.client import FIELD_MANAGER, KubeClient
from initpipeline.controller.kubeapi import ApiError, KubeApi
from tests.e2e.kube import Kube, eventually
from tests.e2e.manifests import BUSYBOX


def connection(kubeconfig: str, embedded: bool, folder: Path) -> kopf.ConnectionInfo:
    """The cluster's admin credentials, as files or (as many kubeconfigs carry them) as data; whichever way
    the kubeconfig has them (the local cluster's names files, kind's embeds data), the other is made in folder."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    keys = ("certificate-authority", "client-certificate", "client-key")

    def pem(key: str) -> bytes:
        named = cluster.get(key) or user.get(key)
        if named:
            return Path(named).read_bytes()
        embedded_data = cluster.get(f"{key}-data") or user.get(f"{key}-data")
        assert embedded_data, f"the kubeconfig has neither {key} nor {key}-data"
        return base64.b64decode(embedded_data)

    if embedded:
        data = {key: base64.b64encode(pem(key)).decode() for key in keys}
        return kopf.ConnectionInfo(server=cluster["server"], ca_data=data["certificate-authority"],
                                   certificate_data=data["client-certificate"],
                                   private_key_data=data["client-key"])
    paths = {key: folder / f"{key}.pem" for key in keys}
    for key, path in paths.items():
        path.write_bytes(pem(key))
    return kopf.ConnectionInfo(server=cluster["server"], ca_path=str(paths["certificate-authority"]),
                               certificate_path=str(paths["client-certificate"]),
                               private_key_path=str(paths["client-key"]))


def pod(namespace: str, name: str, command: Any = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "app", "image": BUSYBOX, "imagePullPolicy": "Never",
                                     "command": command or ["sleep", "3600"]}]}}


@pytest.mark.parametrize("embedded", [False, True], ids=["files", "embedded"])
def test_creates_are_idempotent_and_writes_carry_the_field_manager(kube: Kube, kubeconfig: str,
                                                                    embedded: bool, tmp_path: Path) -> None:
    cluster = KubeClient()
    cluster.connect(KubeApi(connection(kubeconfig, embedded, tmp_path)))
    created, fresh = cluster.create_pod(pod(kube.namespace, "p"))
    assert fresh and created["metadata"]["uid"]
    again, fresh_again = cluster.create_pod(pod(kube.namespace, "p"))  # 409: the existing one, read
    assert not fresh_again and again["metadata"]["uid"] == created["metadata"]["uid"]

    cluster.set_pod_deadline(kube.namespace, "p", 600)
    stored = kube.run("get", "pod", "p", "-o", "json", "--show-managed-fields").stdout
    assert '"activeDeadlineSeconds": 600' in stored
    assert f'"manager": "{FIELD_MANAGER}"' in stored

    cluster.delete_child("Pod", kube.namespace, "p")
    cluster.delete_child("Pod", kube.namespace, "p")  # already going or gone: no error
    eventually("the Pod is gone", lambda: kube.maybe("pod", "p") is None or None, timeout=60)


def test_a_refusal_is_an_api_error_with_the_servers_message(kube: Kube, kubeconfig: str, tmp_path: Path) -> None:
    client = KubeApi(connection(kubeconfig, embedded=False, folder=tmp_path))
    bad = pod(kube.namespace, "Not_A_Name")
    with pytest.raises(ApiError) as refused:
        client.request("POST", f"/api/v1/namespaces/{kube.namespace}/pods", bad)
    assert refused.value.status == 422
    assert "Not_A_Name" in refused.value.message and "metadata.name" in refused.value.message
    with pytest.raises(ApiError) as missing:
        client.request("GET", f"/api/v1/namespaces/{kube.namespace}/pods/nothing-here")
    assert missing.value.status == 404 and "not found" in missing.value.message


def test_a_wrong_certificate_authority_is_refused(kube: Kube, kubeconfig: str, tmp_path: Path) -> None:
    import ssl
    import subprocess

    info = connection(kubeconfig, embedded=False, folder=tmp_path)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=other",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "ca.pem"), "-days", "1"],
                   check=True, capture_output=True)
    other = kopf.ConnectionInfo(server=info.server, ca_path=str(tmp_path / "ca.pem"),
                                certificate_path=info.certificate_path, private_key_path=info.private_key_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        KubeApi(other).request("GET", f"/api/v1/namespaces/{kube.namespace}/pods")
