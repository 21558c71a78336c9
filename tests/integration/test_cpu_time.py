"""CPU time beside wall time, and the CPU-time limit, through HTTP → Redis → worker → container."""

import httpx

from tests.support import run

LOOP = "while True: pass"
SLEEP = "import time; time.sleep(0.5); print('awake')"
BUSY = "print(sum(i * i for i in range(3 * 10**6)))"


def test_every_result_has_its_cpu_time(client: httpx.Client) -> None:
    busy, sleep = run(client, BUSY), run(client, SLEEP)
    assert (busy["outcome"], sleep["outcome"]) == ("ok", "ok")
    assert busy["timing"]["cpu_ms"] > sleep["timing"]["cpu_ms"]
    assert sleep["timing"]["cpu_ms"] < sleep["timing"]["run_ms"] / 2
    assert 0 <= busy["timing"]["cpu_wait_ms"] <= busy["timing"]["run_ms"]


def test_cpu_timeout_ends_a_cpu_loop_and_says_so(client: httpx.Client) -> None:
    result = run(client, LOOP, timeout=60, cpu_timeout=0.5)
    assert result["outcome"] == "timeout"
    assert result["message"].startswith("CPU time limit reached (cpu_timeout)")
    assert result["timing"]["cpu_ms"] >= 500


def test_cpu_timeout_does_not_end_a_sleeping_program(client: httpx.Client) -> None:
    result = run(client, "import time; time.sleep(1.5); print('awake')", cpu_timeout=0.5)
    assert (result["outcome"], result["stdout"]) == ("ok", "awake\n")


def test_a_timeout_says_which_limit(client: httpx.Client) -> None:
    result = run(client, "import time; time.sleep(60)", timeout=0.5, cpu_timeout=30)
    assert result["outcome"] == "timeout"
    assert result["message"].startswith("time limit reached (timeout)")


def test_cpu_timeout_beyond_the_maximum_is_refused(client: httpx.Client) -> None:
    response = client.post("/v1/run", json={"code": "1", "cpu_timeout": 10**6})
    assert response.status_code == 422
    assert response.json()["error"] == "limit_exceeded"
    response = client.post("/v1/run", json={"code": "1", "cpu_timeout": 0})
    assert response.status_code == 422


def test_piston_reports_cpu_time(client: httpx.Client) -> None:
    body = {"language": "python", "version": "*", "files": [{"content": BUSY}]}
    response = client.post("/api/v2/execute", json=body)
    assert response.status_code == 200, response.text
    stage = response.json()["run"]
    assert stage["cpu_time"] > 0 and stage["wall_time"] > 0
