"""Access: the API binds loopback by default; with keys, nothing under /v1 answers without one;
a bind beyond this machine without keys is refused."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import ROOT, Service, free_port

KEYS = ("first-key-a1b2c3", "second-key-d4e5f6")


@pytest.fixture(scope="module")
def keyed(redis_url: str, docker_engine: None) -> Iterator[Service]:
    svc = Service(redis_url, {"SANDBOX_POOL_SIZE": "1", "SANDBOX_API_KEYS": ",".join(KEYS)})
    svc.start(workers=1)
    yield svc
    svc.stop()


@pytest.mark.parametrize("headers", [
    {},
    {"authorization": "Bearer"},
    {"authorization": "Bearer wrong-key"},
    {"authorization": f"Bearer {KEYS[0]}x"},
    {"authorization": f"Bearer {KEYS[0][:-1]}"},
    {"authorization": f"Basic {KEYS[0]}"},
    {"authorization": KEYS[0]},
    {"authorization": f"Bearer {KEYS[0]},{KEYS[1]}"},
    {"x-api-key": KEYS[0]},
    {"authorization": f"Bearer  {KEYS[0]}"},
])
def test_no_valid_key_no_answer(keyed: Service, headers: dict) -> None:
    for method, path, body in (("POST", "/v1/run", {"code": "print(1)"}),
                               ("POST", "/v1/jobs", {"code": "print(1)"}),
                               ("GET", "/v1/jobs/anything", None)):
        response = httpx.request(method, keyed.base_url + path, json=body, headers=headers,
                                 timeout=30)
        assert response.status_code == 401, (path, headers, response.text)
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


# probes, SandboxFusion's ping and NeMo-Skills' health
KEYLESS = {"/v1/ping", "/livez", "/readyz", "/healthz", "/health"}


def test_every_route_but_the_probes_wants_a_key(keyed: Service) -> None:
    """Every route the API documents, and the MCP endpoint, answer 401 without a key."""
    paths = httpx.get(f"{keyed.base_url}/openapi.json", timeout=30).json()["paths"]
    routes = [(method.upper(), path.replace("{", "").replace("}", ""))
              for path, methods in paths.items() if path not in KEYLESS
              and not path.startswith("/dashboard") for method in methods]
    assert len(routes) > 15 and ("POST", "/v1/judge") in routes, routes
    for method, path in [*routes, ("POST", "/mcp")]:
        response = httpx.request(method, keyed.base_url + path, json={}, timeout=30,
                                 headers={"authorization": "Bearer wrong-key"})
        assert response.status_code == 401, (method, path, response.text)
    for path in KEYLESS:
        assert httpx.get(keyed.base_url + path, timeout=30).status_code in (200, 503), path


@pytest.mark.parametrize("key", KEYS)
def test_each_key_works(keyed: Service, key: str) -> None:
    for scheme in ("Bearer", "bearer"):
        response = httpx.post(keyed.base_url + "/v1/run", json={"code": "print(6*7)"},
                              headers={"authorization": f"{scheme} {key}"}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["stdout"] == "42\n"


def test_refusal_comes_before_the_body_is_judged(keyed: Service) -> None:
    """Without a key even a malformed body is a 401, so the API says nothing to strangers."""
    response = httpx.post(keyed.base_url + "/v1/run", content=b"{not json",
                          headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code in (400, 401)
    response = httpx.post(keyed.base_url + "/v1/run", json={"code": 1}, timeout=30)
    assert response.status_code in (401, 422)
    assert "print" not in response.text


def start_api(env: dict[str, str], command: str = "api") -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    return subprocess.Popen([sys.executable, "-m", "service.cli", command], cwd=ROOT,
                            env={**base, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.parametrize("command", ["api", "serve"])
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_a_bind_beyond_loopback_without_keys_is_refused(command: str, host: str) -> None:
    proc = start_api({"SANDBOX_HOST": host, "SANDBOX_PORT": str(free_port())}, command)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "refusing to bind" in err


def test_the_insecure_bind_needs_saying_so(redis_url: str) -> None:
    port = free_port()
    proc = start_api({"SANDBOX_HOST": "0.0.0.0", "SANDBOX_PORT": str(port),
                      "SANDBOX_ALLOW_INSECURE_BIND": "true", "SANDBOX_REDIS_URL": redis_url})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code == 200
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.2)
        else:
            raise AssertionError("the API did not start")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_loopback_is_the_default() -> None:
    from service.settings import Settings

    assert Settings().host == "127.0.0.1"
