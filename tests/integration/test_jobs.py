"""POST /v1/jobs and GET /v1/jobs/{id}: the asynchronous lifecycle and its expiry."""

import time

import httpx

from tests.support import api_only, wait_done


def test_job_lifecycle(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", json={"code": "import time; time.sleep(1.5); print('late')"})
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["state"] == "queued"
    body = wait_done(client, accepted["id"])
    assert "running" in body["seen"]
    assert body["result"]["id"] == accepted["id"]
    assert body["result"]["outcome"] == "ok"
    assert body["result"]["stdout"] == "late\n"


def test_sync_result_readable_by_id(client: httpx.Client) -> None:
    result = client.post("/v1/run", json={"code": "print(5)"}).json()
    body = client.get(f"/v1/jobs/{result['id']}").json()
    assert body["state"] == "done"
    assert body["result"] == result


def test_unknown_job(client: httpx.Client) -> None:
    response = client.get("/v1/jobs/does-not-exist")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_results_expire(client: httpx.Client) -> None:
    """The test service keeps results 20 s (SANDBOX_RESULT_TTL_S)."""
    job_id = client.post("/v1/jobs", json={"code": "print(1)"}).json()["id"]
    wait_done(client, job_id)
    time.sleep(21)
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404


def test_a_job_waiting_longer_than_the_result_ttl_is_still_there(redis_url: str) -> None:
    """Results expire; a job still waiting in the queue (here: no worker at all) does not."""
    with api_only(redis_url, SANDBOX_RESULT_TTL_S="1") as service, \
            httpx.Client(base_url=service.base_url, timeout=30) as client:
        job_id = client.post("/v1/jobs", json={"code": "print(1)"}).json()["id"]
        time.sleep(2.5)
        response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "queued"
