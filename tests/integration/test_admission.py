"""CPU admission of native runs, through HTTP → Redis → worker → container: with one CPU slot,
a busy run holds it and the next native run waits; a sleeping one holds none; the
compatibility routes (plain wall clock) are not admitted at all. Order, not timings."""

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support import Service

BUSY = "import time\nend = time.time() + 3\nwhile time.time() < end: pass\nprint(time.time())"
SLEEP = "import time; time.sleep(3); print(time.time())"
POOL = 3
STARTED = "import time; print(time.time())"  # the host's clock, as every container reads it


@pytest.fixture(scope="module")
def one_slot(redis_url: str, docker_engine: None) -> Iterator[httpx.Client]:
    svc = Service(redis_url, {"SANDBOX_CPU_SLOTS": "1", "SANDBOX_POOL_SIZE": str(POOL)})
    svc.start(workers=1, wait_idle=POOL)
    with httpx.Client(base_url=svc.base_url, timeout=120) as client:
        yield client
    svc.stop()


def started_before_the_end(client: httpx.Client, first: dict, second: tuple[str, dict]) -> bool:
    """Whether the second request's code, sent once the first has its container, started before
    the first one's code ended (each prints the time)."""
    idle = POOL
    for _ in range(600):  # until the previous runs' containers are back
        if idle_containers(client) >= idle:
            break
        time.sleep(0.02)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(client.post, "/v1/run", json=first)
        for _ in range(600):  # until the first was admitted and leased a container
            if idle_containers(client) < idle:
                break
            time.sleep(0.02)
        path, body = second
        answer = client.post(path, json=body).json()
        first_answer = running.result().json()
    second_stdout = answer["stdout"] if path == "/v1/run" else answer["run_result"]["stdout"]
    assert first_answer["outcome"] == "ok", first_answer
    return float(second_stdout) < float(first_answer["stdout"])


def idle_containers(client: httpx.Client) -> int:
    return client.get("/readyz", params={"verbose": "true"}).json()["checks"]["idle_containers"]


def test_a_busy_run_holds_the_cpu_slot(one_slot: httpx.Client) -> None:
    assert not started_before_the_end(one_slot, {"code": BUSY}, ("/v1/run", {"code": STARTED}))


def test_a_sleeping_run_holds_no_cpu_slot(one_slot: httpx.Client) -> None:
    assert started_before_the_end(one_slot, {"code": SLEEP}, ("/v1/run", {"code": STARTED}))


def test_the_compatibility_routes_are_not_admitted(one_slot: httpx.Client) -> None:
    body = {"code": STARTED, "language": "python"}
    assert started_before_the_end(one_slot, {"code": BUSY}, ("/run_code", body))
