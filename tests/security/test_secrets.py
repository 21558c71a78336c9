"""No secret reaches the sandbox: not the worker's environment, not the host's paths or sockets."""

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support import ROOT, Service, run

CANARY = "canary-7f3a9c1e5b2d4e6f"
KEY = "sk-secret-api-key-5e8d2c"

SEARCH = r'''
import json, os
found, checked = [], 0
def look(where, data):
    global checked
    checked += 1
    for needle in NEEDLES:
        if needle.encode() in data:
            found.append([where, needle])
NEEDLES = json.loads(os.environ.get("NEEDLES_VIA_STDIN") or input())
look("environ", "\0".join(f"{k}={v}" for k, v in os.environ.items()).encode())
for pid in filter(str.isdigit, os.listdir("/proc")):
    for name in ("environ", "cmdline", "mountinfo", "mounts"):
        try:
            look(f"/proc/{pid}/{name}", open(f"/proc/{pid}/{name}", "rb").read())
        except OSError:
            pass
for top in ("/etc", "/opt", "/run", "/var", "/tmp", "/dev/shm", "/root", "/home", "/srv", "/mnt"):
    for root, dirs, names in os.walk(top):
        for name in names:
            path = os.path.join(root, name)
            try:
                if os.path.isfile(path) and os.path.getsize(path) < 1 << 20:
                    look(path, open(path, "rb").read())
            except OSError:
                pass
sockets = [p for p in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock")
           if os.path.exists(p)]
unreadable = []
for pid in ("1", str(os.getppid())):
    try:
        open(f"/proc/{pid}/environ", "rb").read()
    except PermissionError:
        unreadable.append(pid)
print(json.dumps({"found": found, "checked": checked, "sockets": sockets,
                  "unreadable": unreadable,
                  "env_keys": sorted(os.environ),
                  "mountinfo": open("/proc/self/mountinfo").read()}))
'''


@pytest.fixture(scope="module")
def secret_service(redis_url: str, docker_engine: None) -> Iterator[Service]:
    """The worker's environment holds secrets of the kinds a deployment has."""
    svc = Service(redis_url, {"SANDBOX_POOL_SIZE": "1", "SANDBOX_API_KEYS": KEY,
                              "AWS_SECRET_ACCESS_KEY": CANARY, "DATABASE_URL": f"pg://{CANARY}",
                              "SANDBOX_UNUSED_SECRET": CANARY})
    svc.start(workers=1)
    yield svc
    svc.stop()


@pytest.mark.parametrize("fresh", [False, True])
def test_the_sandbox_sees_none_of_the_workers_secrets(secret_service: Service, fresh: bool) -> None:
    needles = [CANARY, KEY, secret_service.redis_url, str(ROOT),
               "SANDBOX_REDIS_URL", "SANDBOX_API_KEYS", "AWS_SECRET", "DATABASE_URL"]
    with httpx.Client(base_url=secret_service.base_url, timeout=120,
                      headers={"authorization": f"Bearer {KEY}"}) as client:
        result = run(client, SEARCH, stdin=json.dumps(needles), fresh_interpreter=fresh)
    assert result["outcome"] == "ok", result
    seen = json.loads(result["stdout"])
    assert seen["found"] == [], seen["found"]
    assert seen["checked"] > 50  # it did look: the image's /etc alone has more files
    assert seen["sockets"] == []
    assert "docker.sock" not in seen["mountinfo"]
    assert len(seen["unreadable"]) == 2  # docker-init's and the runner's environments
    assert not any(k.startswith(("SANDBOX_", "AWS_", "DATABASE")) for k in seen["env_keys"])
