"""CPU admission of native runs, through HTTP → Redis → worker → container: with one CPU slot,
a busy run holds it and the next native run waits; a sleeping one holds none; the
compatibility routes (plain wall clock) are not admitted at all. Order, not timings."""

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support import Service

BUSY = "import time\nend = time.time() + 3\nwhile time.time() < end: pass\nprint('busy done')"
SLEEP = "import time; time.sleep(3); print('slept')"


@pytest.fixture(scope="module")
def one_slot(redis_url: str, docker_engine: None) -> Iterator[httpx.Client]:
    svc = Service(redis_url, {"SANDBOX_CPU_SLOTS": "1"})
    svc.start(workers=1, wait_idle=3)
    with httpx.Client(base_url=svc.base_url, timeout=120) as client:
        yield client
    svc.stop()


def finish_order(client: httpx.Client, first: tuple[str, dict], second: tuple[str, dict]) -> list:
    """Which of two requests, the second sent once the first runs, answered first."""
    order = []

    def send(path: str, body: dict) -> None:
        response = client.post(path, json=body)
        assert response.status_code == 200, response.text
        order.append(body["code"])

    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(send, *first)
        wait_until_running(client)
        pool.submit(send, *second).result()
        running.result()
    return order


def wait_until_running(client: httpx.Client) -> None:
    """Until the worker has a container busy (the first request is in its container)."""
    for _ in range(600):
        workers = client.get("/readyz", params={"verbose": "true"}).json()["workers"]
        if any(int(float(w.get("busy") or 0)) for w in workers):
            return
        time.sleep(0.02)
    raise AssertionError("the first run never started")


def test_a_busy_run_holds_the_cpu_slot(one_slot: httpx.Client) -> None:
    order = finish_order(one_slot, ("/v1/run", {"code": BUSY}), ("/v1/run", {"code": "print(1)"}))
    assert order == [BUSY, "print(1)"]


def test_a_sleeping_run_holds_no_cpu_slot(one_slot: httpx.Client) -> None:
    order = finish_order(one_slot, ("/v1/run", {"code": SLEEP}), ("/v1/run", {"code": "print(1)"}))
    assert order == ["print(1)", SLEEP]


def test_the_compatibility_routes_are_not_admitted(one_slot: httpx.Client) -> None:
    print_one = {"code": "print(1)", "language": "python"}
    order = finish_order(one_slot, ("/v1/run", {"code": BUSY}), ("/run_code", print_one))
    assert order == ["print(1)", BUSY]

