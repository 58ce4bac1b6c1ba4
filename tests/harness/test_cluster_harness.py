"""`hack/cluster.sh down` and `up` touch only what the harness made: a contributor's machine has Docker, kind
and VPNs of its own. Foreign devices, namespaces, chains and processes named the way other clusters name
theirs are made first, and must survive a `down` and an `up` of the real cluster."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.e2e
CLUSTER = ROOT / "hack" / "cluster.sh"
# Named as Docker, CNI plugins and other kubelets name theirs; 192.0.2.0/24 (TEST-NET-1) matches no traffic.
VETH, VETH_PEER, NETNS = "vethforeign0", "vethforeign1", "cni-foreign-0000"
FILTER_CHAIN, NAT_CHAIN = "KUBE-FOREIGN-TEST", "CNI-FOREIGN-TEST"
FOREIGN_CGROUP = Path("/sys/fs/cgroup/pids/kubepods")
FORWARD_RULE = ["FORWARD", "-s", "192.0.2.0/24", "-j", FILTER_CHAIN]


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=600)


def exists() -> dict[str, bool]:
    return {
        "veth": sh("ip", "link", "show", VETH, check=False).returncode == 0,
        "netns": NETNS in sh("ip", "netns", "list").stdout.split(),
        "filter chain": sh("iptables", "-S", FILTER_CHAIN, check=False).returncode == 0,
        "jump to it": sh("iptables", "-C", *FORWARD_RULE, check=False).returncode == 0,
        "nat chain": sh("iptables", "-t", "nat", "-S", NAT_CHAIN, check=False).returncode == 0,
        "process": foreign_process is not None and foreign_process.poll() is None,
    }


foreign_process: subprocess.Popen[bytes] | None = None


@pytest.fixture
def foreign() -> Iterator[None]:
    global foreign_process
    if os.environ.get("INITPIPELINE_E2E_KUBECONFIG") or os.geteuid() != 0:
        pytest.skip("runs the local cluster harness, as root")
    sh("ip", "link", "add", VETH, "type", "veth", "peer", "name", VETH_PEER)
    sh("ip", "netns", "add", NETNS)
    sh("iptables", "-N", FILTER_CHAIN)
    sh("iptables", "-A", FILTER_CHAIN, "-j", "RETURN")
    sh("iptables", "-I", *FORWARD_RULE)
    sh("iptables", "-t", "nat", "-N", NAT_CHAIN)
    # a process in the cgroup that a kubelet with the default cgroupRoot would use
    FOREIGN_CGROUP.mkdir(exist_ok=True)
    foreign_process = subprocess.Popen(["sleep", "900"])
    (FOREIGN_CGROUP / "cgroup.procs").write_text(str(foreign_process.pid))
    try:
        assert all(exists().values()), exists()
        yield
    finally:
        foreign_process.kill()
        foreign_process.wait()
        sh("ip", "link", "delete", VETH, check=False)
        sh("ip", "netns", "delete", NETNS, check=False)
        sh("iptables", "-D", *FORWARD_RULE, check=False)
        for table, chain in (("filter", FILTER_CHAIN), ("nat", NAT_CHAIN)):
            sh("iptables", "-t", table, "-F", chain, check=False)
            sh("iptables", "-t", table, "-X", chain, check=False)
        FOREIGN_CGROUP.rmdir()


def test_down_and_up_leave_what_they_did_not_make(foreign: None) -> None:
    down = sh("bash", str(CLUSTER), "down")
    assert exists() == dict.fromkeys(exists(), True), down.stderr
    # and what was ours is gone
    assert sh("ip", "link", "show", "ipl0", check=False).returncode != 0
    assert "KUBE-SERVICES" not in sh("iptables", "-t", "nat", "-S").stdout
    assert "INITPIPELINE-GUARD" not in sh("iptables", "-S").stdout
    assert not [line for line in sh("findmnt", "-rn", "-o", "TARGET").stdout.splitlines()
                if line.startswith("/run/initpipeline/")]

    up = sh("bash", str(CLUSTER), "up")
    assert "cluster is up" in up.stderr
    assert exists() == dict.fromkeys(exists(), True)
    # the pods' network namespaces are in containerd's state folder, not among the host's
    assert [ns for ns in sh("ip", "netns", "list").stdout.split() if ns.startswith("cni-")] == [NETNS]
