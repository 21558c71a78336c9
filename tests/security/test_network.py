"""Network: none by default; with `network: true` (when allowed) a walled-off bridge network.

Every address a snippet tries belongs to this machine (its loopback, the Docker bridge gateways)
or to containers this test started; nothing here depends on an outside address.
"""

import contextlib
import ipaddress
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import docker
import httpx
import pytest

from service.worker import firewall
from service.worker.networked import LABEL_BRIDGE
from tests.security.probe import Warm
from tests.support import Service, run

KEY = "network-test-key-0123456789"
PORT_PROBE = (
    "import errno, json, os, socket, sys\n"
    "targets = json.loads(sys.stdin.read())\n"
    "seen = {}\n"
    "for name, (host, port) in targets.items():\n"
    "    s = socket.socket()\n"
    "    s.settimeout(3)\n"
    "    try:\n"
    "        s.connect((host, port))\n"
    "        seen[name] = 'CONNECTED'\n"
    "    except OSError as exc:\n"
    "        seen[name] = errno.errorcode.get(exc.errno, str(exc))\n"
    "    s.close()\n"
    "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "try:\n"
    "    u.sendto(b'x', tuple(targets['listener']))\n"
    "    seen['udp'] = 'SENT'\n"
    "except OSError as exc:\n"
    "    seen['udp'] = errno.errorcode.get(exc.errno, str(exc))\n"
    "print(json.dumps({'interfaces': sorted(os.listdir('/sys/class/net')), 'seen': seen}))\n"
)


class Listener:
    """TCP and UDP listeners of the test on one port of every host address, recording who
    connects or sends."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("0.0.0.0", 0))
        self.port = self.sock.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("0.0.0.0", self.port))
        self.peers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock, self.udp], [], [], 0.2)
            with contextlib.suppress(OSError):
                if self.sock in ready:
                    conn, peer = self.sock.accept()
                    self.peers.append(peer[0])
                    conn.close()
                if self.udp in ready:
                    self.peers.append(self.udp.recvfrom(16)[1][0])

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        self.udp.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


def gateway_of(attrs: dict) -> str:
    """The host's address on a Docker network (the engine may leave it out of the config)."""
    config = attrs["IPAM"]["Config"][0]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def docker0_gateway() -> str:
    client = docker.from_env()
    try:
        return gateway_of(client.networks.get("bridge").attrs)
    finally:
        client.close()


def redis_port(redis_url: str) -> int:
    return urlparse(redis_url).port or 6379


# --- off, the default ------------------------------------------------------------------------

def test_only_loopback_and_nothing_reachable_by_default(warm: Warm, listener: Listener,
                                                         redis_url: str) -> None:
    gateway = docker0_gateway()
    targets = {"listener": [gateway, listener.port],
               "api via docker0": [gateway, warm.service.port],
               "redis via docker0": [gateway, redis_port(redis_url)],
               "redis on loopback": ["127.0.0.1", redis_port(redis_url)],
               "api on loopback": ["127.0.0.1", warm.service.port]}
    for fresh in (False, True):
        result = warm.case(PORT_PROBE, stdin=json.dumps(targets), fresh_interpreter=fresh)
        seen = json.loads(result["stdout"])
        assert seen["interfaces"] == ["lo"]
        assert seen["seen"] == {"listener": "ENETUNREACH", "api via docker0": "ENETUNREACH",
                                "redis via docker0": "ENETUNREACH",
                                "redis on loopback": "ECONNREFUSED",  # the sandbox's own loopback
                                "api on loopback": "ECONNREFUSED", "udp": "ENETUNREACH"}
    assert listener.peers == []


def test_network_requests_are_refused_unless_allowed(warm: Warm) -> None:
    response = warm.client.post("/v1/run", json={"code": "print(1)", "network": True})
    assert response.status_code == 422
    assert response.json()["error"] == "network_not_allowed"


# --- on, when the operator allows it ---------------------------------------------------------

@pytest.fixture(scope="module")
def net_service(redis_url: str, docker_engine: None) -> Iterator[Service]:
    """Network allowed; the API bound on every address (with a key), so the wall must hold it."""
    svc = Service(redis_url, {"SANDBOX_POOL_SIZE": "2", "SANDBOX_ALLOW_NETWORK": "true",
                              "SANDBOX_NETWORK_POOL_SIZE": "2", "SANDBOX_HOST": "0.0.0.0",
                              "SANDBOX_API_KEYS": KEY})
    svc.start(workers=1, wait_idle=2)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def net_client(net_service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=net_service.base_url, timeout=120,
                      headers={"authorization": f"Bearer {KEY}"}) as client:
        yield client


def sandbox_network(prefix: str, timeout: float = 60) -> dict:
    """The worker's sandbox network, once it exists with its warm containers on it."""
    client = docker.from_env()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = client.networks.list(filters={"label": f"sandbox.deployment={prefix}"})
            if found:
                found[0].reload()
                if len(found[0].attrs.get("Containers") or {}) >= 2:
                    return found[0].attrs
            time.sleep(0.2)
        raise AssertionError("no sandbox network with two containers appeared")
    finally:
        client.close()


def test_the_network_is_walled_off_from_this_host(net_service: Service, net_client: httpx.Client,
                                                  listener: Listener, redis_url: str) -> None:
    attrs = sandbox_network(net_service.prefix)
    gateway = gateway_of(attrs)
    assert attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert firewall.is_walled(attrs["Labels"][LABEL_BRIDGE])
    # The control: from the host, the listener and the API answer on the gateway address.
    with socket.create_connection((gateway, listener.port), timeout=3):
        pass
    assert httpx.get(f"http://{gateway}:{net_service.port}/livez", timeout=5).status_code == 200
    targets = {"listener": [gateway, listener.port], "api": [gateway, net_service.port],
               "redis": [gateway, redis_port(redis_url)],
               "listener via docker0": [docker0_gateway(), listener.port],
               "engine on tcp": [gateway, 2375]}
    peers_before = list(listener.peers)
    result = run(net_client, PORT_PROBE, stdin=json.dumps(targets), network=True)
    assert result["outcome"] == "ok", result
    seen = json.loads(result["stdout"])
    assert seen["interfaces"] == ["eth0", "lo"]
    udp = seen["seen"].pop("udp")  # a datagram leaves the socket; the wall stops it after
    assert udp in ("SENT", "ECONNREFUSED", "EHOSTUNREACH")
    assert set(seen["seen"].values()) <= {"ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH"}, seen
    time.sleep(0.5)
    assert listener.peers == peers_before


def test_network_sandboxes_cannot_reach_each_other(net_service: Service,
                                                   net_client: httpx.Client) -> None:
    port = 9999
    server = ("import socket, time\n"
              f"s = socket.create_server(('0.0.0.0', {port}))\n"
              "s.settimeout(0.2)\n"
              "peers = []\n"
              "end = time.monotonic() + 8\n"
              "while time.monotonic() < end:\n"
              "    try:\n"
              "        peers.append(s.accept()[1][0])\n"
              "    except TimeoutError:\n"
              "        pass\n"
              "print(sorted(set(peers)))\n")
    job = net_client.post("/v1/jobs", json={"code": server, "network": True, "timeout": 20})
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    attrs = sandbox_network(net_service.prefix)
    gateway = gateway_of(attrs)
    addresses = [c["IPv4Address"].split("/")[0] for c in attrs["Containers"].values()]
    reached = []
    deadline = time.monotonic() + 5
    while not reached and time.monotonic() < deadline:  # the control: the host reaches it
        for address in addresses:
            with contextlib.suppress(OSError), socket.create_connection((address, port), 0.3):
                reached.append(address)
    assert len(reached) == 1, addresses
    scan = ("import json, socket, sys\n"
            "hits = []\n"
            "for address in json.loads(sys.stdin.read()):\n"
            "    try:\n"
            f"        socket.create_connection((address, {port}), timeout=0.5).close()\n"
            "        hits.append(address)\n"
            "    except OSError:\n"
            "        pass\n"
            "print(hits)\n")
    result = run(net_client, scan, stdin=json.dumps(addresses), network=True)
    assert (result["outcome"], result["stdout"]) == ("ok", "[]\n"), result
    while (status := net_client.get(f"/v1/jobs/{job_id}").json())["state"] != "done":
        time.sleep(0.2)
    assert status["result"]["stdout"] == f"['{gateway}']\n", status


def test_each_network_sandbox_serves_one_execution(net_client: httpx.Client) -> None:
    code = ("import re\n"
            "print(re.search(r'/containers/([0-9a-f]{64})/', open('/proc/self/mountinfo').read())[1])")
    seen = {run(net_client, code, network=True)["stdout"] for _ in range(3)}
    assert len(seen) == 3


def test_the_network_and_its_wall_go_with_the_worker(redis_url: str, docker_engine: None) -> None:
    svc = Service(redis_url, {"SANDBOX_POOL_SIZE": "1", "SANDBOX_ALLOW_NETWORK": "true"})
    svc.start(workers=1)
    try:
        bridge = sandbox_network_bridge(svc.prefix)
        assert firewall.is_walled(bridge)
    finally:
        svc.stop()
    assert not firewall.is_walled(bridge)
    client = docker.from_env()
    try:
        assert client.networks.list(filters={"label": f"sandbox.deployment={svc.prefix}"}) == []
    finally:
        client.close()


def sandbox_network_bridge(prefix: str, timeout: float = 60) -> str:
    client = docker.from_env()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = client.networks.list(filters={"label": f"sandbox.deployment={prefix}"})
            if found:
                return found[0].attrs["Labels"][LABEL_BRIDGE]
            time.sleep(0.2)
        raise AssertionError("no sandbox network appeared")
    finally:
        client.close()
