"""gVisor (runsc) under this machine's Docker engine, through the SANDBOX_RUNTIME setting.

tests/security/enable_gvisor.sh installs Debian's runsc and registers it with the running engine
by a configuration reload (no restart). A container made from the service's own spec with
SANDBOX_RUNTIME=runsc then runs on gVisor's kernel with every hardening flag in force, and the
whole service runs there (the runner watches its children without pidfds, which this runsc
lacks; the worker reaches runners over the attach stream).
"""

import json
import subprocess
from collections.abc import Iterator

import docker
import httpx
import pytest

from service.settings import Settings
from service.worker.docker_engine import Owner, container_spec
from tests.support import ROOT, Service

CHECK = (
    "import errno, json, os\n"
    "os.setgroups([]); os.setgid(10001); os.setuid(10001)\n"
    "seen = {'release': os.uname().release, 'uid': os.getuid()}\n"
    "try:\n"
    "    os.setuid(0)\n"
    "    seen['setuid0'] = 'ALLOWED'\n"
    "except OSError as exc:\n"
    "    seen['setuid0'] = errno.errorcode[exc.errno]\n"
    "try:\n"
    "    open('/etc/x', 'w')\n"
    "    seen['write_etc'] = 'ALLOWED'\n"
    "except OSError as exc:\n"
    "    seen['write_etc'] = errno.errorcode[exc.errno]\n"
    "seen['interfaces'] = sorted(os.listdir('/sys/class/net'))\n"
    "seen['mountinfo_has_host_paths'] = '/var/lib/docker' in open('/proc/self/mountinfo').read()\n"
    "print(json.dumps(seen))\n"
)


@pytest.fixture(scope="module")
def runsc() -> Iterator[str]:
    subprocess.run([ROOT / "tests/security/enable_gvisor.sh", "runsc"], check=True, timeout=600)
    yield "runsc"


def run_with_spec(settings: Settings, code: str) -> str:
    spec = container_spec(settings, settings.image_for("python"), Owner("gvisor-test", "w", "h", 0), 128)
    client = docker.from_env()
    api = client.api
    try:
        # Kept after exit, and logged, so the test can read what it printed.
        host_config = api.create_host_config(**{
            **spec["host_config"], "auto_remove": False,
            "log_config": docker.types.LogConfig(type="json-file")})
        config = api.create_container_config(**{
            **spec, "host_config": host_config, "stdin_open": False,
            "entrypoint": ["python3", "-c", code], "command": None})
        container_id = api.create_container_from_config(config, None)["Id"]
        try:
            api.start(container_id)
            assert api.wait(container_id, timeout=120)["StatusCode"] == 0
            return api.logs(container_id, stdout=True, stderr=False).decode()
        finally:
            api.remove_container(container_id, force=True)
    finally:
        client.close()


def test_the_runtime_setting_runs_containers_on_gvisor(runsc: str) -> None:
    seen = json.loads(run_with_spec(Settings(runtime=runsc), CHECK))
    assert seen["release"] == "4.4.0"  # gVisor's own kernel answers, not the host's
    assert seen["uid"] == 10001
    assert seen["setuid0"] == "EPERM"
    assert seen["write_etc"] in ("EROFS", "EACCES")  # gVisor checks permission first
    assert seen["interfaces"] == ["lo"]
    assert seen["mountinfo_has_host_paths"] is False  # runc shows the engine's layer paths


def test_without_the_setting_the_host_kernel_answers() -> None:
    seen = json.loads(run_with_spec(Settings(), CHECK))
    assert seen["release"] != "4.4.0"
    assert seen["mountinfo_has_host_paths"] is True


def test_the_service_runs_on_gvisor(runsc: str, redis_url: str, docker_engine: None) -> None:
    """The whole path on gVisor: warm pool, runner (forking without pidfds), timeout, reuse."""
    svc = Service(redis_url, {"SANDBOX_RUNTIME": runsc, "SANDBOX_POOL_SIZE": "1"})
    svc.start(workers=1)
    try:
        with httpx.Client(base_url=svc.base_url, timeout=120) as client:
            def run(code: str, **fields: object) -> dict:
                return client.post("/v1/run", json={"code": code, **fields}).json()

            assert run("import os; print(os.uname().release)")["stdout"] == "4.4.0\n"
            assert run("import numpy; print(numpy.arange(4).sum())")["stdout"] == "6\n"
            assert run("raise SystemExit(3)")["exit_code"] == 3
            assert run("while True: pass", timeout=1)["outcome"] == "timeout"
            assert run("print('after')")["stdout"] == "after\n"
    finally:
        svc.stop()


def test_a_batch_on_gvisor_loses_no_container(runsc: str, redis_url: str,
                                              docker_engine: None) -> None:
    """At the engine's pids count alone, gVisor's sandbox kernel ran out of processes now and
    then (about one execution in 150 of a batch) and the container died with the run in it."""
    count = 400
    svc = Service(redis_url, {"SANDBOX_RUNTIME": runsc, "SANDBOX_POOL_SIZE": "4"})
    svc.start(workers=1)
    try:
        with httpx.Client(base_url=svc.base_url, timeout=600) as client:
            items = [{"code": f"print({i})"} for i in range(count)]
            results = client.post("/v1/batch", json={"items": items}).json()["results"]
        wrong = [(i, r["outcome"], r.get("message")) for i, r in enumerate(results)
                 if r["stdout"] != f"{i}\n"]
        assert wrong == []
    finally:
        svc.stop()
