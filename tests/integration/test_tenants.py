"""Tenants through HTTP → Redis → worker → container: isolation, admins, quotas, reloading."""

import asyncio
import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from mcp import ClientSession, types
from mcp.client.streamable_http import streamablehttp_client

from service.store.keys import Keys
from tests.support import Service, api_only

KEYS = {"team-a": "key-of-team-a-0123456789", "team-b": "key-of-team-b-0123456789",
        "ops": "key-of-operators-0123456789"}


def tenants_toml(**extra: str) -> str:
    """team-a, team-b and the admin ops; extra[name] adds lines to that tenant's table."""
    tables = []
    for name, key in KEYS.items():
        digest = hashlib.sha256(key.encode()).hexdigest()
        lines = [f'name = "{name}"', f'key_sha256 = "{digest}"', extra.get(name, "")]
        if name == "ops":
            lines.append("admin = true")
        tables.append("[[tenants]]\n" + "\n".join(lines))
    return "\n\n".join(tables) + "\n"


def write(path: Path, text: str) -> None:
    """Replace the file and move its mtime on, so even a change within one tick is seen."""
    path.write_text(text)
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def as_tenant(service: Service, name: str) -> httpx.Client:
    return httpx.Client(base_url=service.base_url, timeout=120,
                        headers={"authorization": f"Bearer {KEYS[name]}"})


@pytest.fixture(scope="module")
def tenants_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tenants") / "tenants.toml"
    write(path, tenants_toml(**{"team-b": "max_sessions = 1\ntimeout = 2"}))
    return path


@pytest.fixture(scope="module")
def tenanted(redis_url: str, docker_engine: None, tenants_file: Path) -> Iterator[Service]:
    svc = Service(redis_url, {"SANDBOX_POOL_SIZE": "2", "SANDBOX_TENANTS_FILE": str(tenants_file)})
    svc.start(workers=1)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def clients(tenanted: Service) -> Iterator[dict[str, httpx.Client]]:
    opened = {name: as_tenant(tenanted, name) for name in KEYS}
    yield opened
    for client in opened.values():
        client.close()


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "not_found"


def test_a_tenant_reads_only_its_own_jobs(clients: dict[str, httpx.Client]) -> None:
    a, b, ops = clients["team-a"], clients["team-b"], clients["ops"]
    job = a.post("/v1/jobs", json={"code": "print('mine')"}).json()
    deadline = time.monotonic() + 60
    while a.get(f"/v1/jobs/{job['id']}").json()["state"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert a.get(f"/v1/jobs/{job['id']}").json()["result"]["stdout"] == "mine\n"
    assert_not_found(b.get(f"/v1/jobs/{job['id']}"))  # as if it did not exist: never a 403
    assert ops.get(f"/v1/jobs/{job['id']}").json()["result"]["stdout"] == "mine\n"  # an admin


def test_a_tenant_cannot_cancel_another_tenants_job(clients: dict[str, httpx.Client]) -> None:
    a, b = clients["team-a"], clients["team-b"]
    job_id = a.post("/v1/jobs", json={"code": "import time; time.sleep(1); print('a')"}).json()["id"]
    assert_not_found(b.delete(f"/v1/jobs/{job_id}"))  # as if it did not exist
    deadline = time.monotonic() + 60
    while a.get(f"/v1/jobs/{job_id}").json()["state"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    result = a.get(f"/v1/jobs/{job_id}").json()["result"]
    assert (result["outcome"], result["stdout"]) == ("ok", "a\n")  # untouched
    assert a.delete(f"/v1/jobs/{job_id}").json()["cancelled"] is False


def test_a_tenant_sees_and_uses_only_its_own_sessions(clients: dict[str, httpx.Client]) -> None:
    a, b, ops = clients["team-a"], clients["team-b"], clients["ops"]
    opened = a.post("/v1/sessions", json={}).json()
    sid = opened["id"]
    try:
        assert opened["tenant"] == "team-a"
        assert a.post(f"/v1/sessions/{sid}/run", json={"code": "x = 41"}).status_code == 200
        assert_not_found(b.get(f"/v1/sessions/{sid}"))
        assert_not_found(b.post(f"/v1/sessions/{sid}/run", json={"code": "print(x)"}))
        assert_not_found(b.delete(f"/v1/sessions/{sid}"))
        tool = b.post("/v1/tools/run_in_session", json={"session_id": sid, "code": "x"}).json()
        assert tool["is_error"] and '"not_found"' in tool["content"]
        assert sid not in [s["id"] for s in b.get("/v1/sessions").json()["sessions"]]
        assert sid in [s["id"] for s in a.get("/v1/sessions").json()["sessions"]]
        assert sid in [s["id"] for s in ops.get("/v1/sessions").json()["sessions"]]
        # Still whole after the other tenant's attempts.
        again = a.post(f"/v1/sessions/{sid}/run", json={"code": "x + 1"}).json()
        assert again["value"] == "42", again
    finally:
        a.delete(f"/v1/sessions/{sid}")


def test_max_sessions_holds_for_sessions_opened_at_once(clients: dict[str, httpx.Client]) -> None:
    """Opens arriving together are claimed in one script (or a few): the tenant's cap is counted
    session by session within it, and another tenant's opens beside them are not held back."""
    b, a = clients["team-b"], clients["team-a"]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda c: c.post("/v1/sessions", json={}), [b] * 4 + [a] * 2))
    try:
        assert sorted(r.status_code for r in answers[:4]) == [201, 429, 429, 429], answers
        assert {r.json()["error"] for r in answers[:4] if r.status_code == 429} == {"session_quota"}
        assert [r.status_code for r in answers[4:]] == [201, 201], [r.text for r in answers[4:]]
    finally:
        for client, answer in zip([b] * 4 + [a] * 2, answers, strict=True):
            if answer.status_code == 201:
                client.delete(f"/v1/sessions/{answer.json()['id']}")


def test_max_sessions_holds_for_the_tenant_alone(clients: dict[str, httpx.Client]) -> None:
    b, a = clients["team-b"], clients["team-a"]
    first = b.post("/v1/sessions", json={})
    assert first.status_code == 201, first.text
    try:
        second = b.post("/v1/sessions", json={})
        assert second.status_code == 429 and second.json()["error"] == "session_quota"
        assert "retry-after" in second.headers
        other = a.post("/v1/sessions", json={})  # another tenant is not held back
        assert other.status_code == 201, other.text
        a.delete(f"/v1/sessions/{other.json()['id']}")
    finally:
        b.delete(f"/v1/sessions/{first.json()['id']}")
    third = b.post("/v1/sessions", json={})  # closing one made room
    assert third.status_code == 201, third.text
    b.delete(f"/v1/sessions/{third.json()['id']}")


def test_a_tenant_cap_narrows_the_limits(clients: dict[str, httpx.Client]) -> None:
    refused = clients["team-b"].post("/v1/run", json={"code": "print(1)", "timeout": 3})
    assert refused.status_code == 422 and refused.json()["error"] == "limit_exceeded"
    assert clients["team-a"].post("/v1/run", json={"code": "print(1)", "timeout": 3}).json()[
        "outcome"] == "ok"
    network = clients["team-a"].post("/v1/run", json={"code": "print(1)", "network": True})
    assert network.status_code == 422 and network.json()["error"] == "network_not_allowed"


def test_compat_and_tool_routes_run_as_the_key_s_tenant(clients: dict[str, httpx.Client]) -> None:
    a = clients["team-a"]
    fusion = a.post("/run_code", json={"code": "print(7)", "language": "python"}).json()
    assert fusion["status"] == "Success", fusion
    piston = a.post("/api/v2/execute", json={"language": "python", "version": "3",
                                             "files": [{"name": "main.py", "content": "print(8)"}]}).json()
    assert piston["run"]["stdout"] == "8\n", piston
    tool = a.post("/v1/tools/run_python", json={"code": "print(9)"}).json()
    assert not tool["is_error"], tool
    stats = clients["ops"].get("/v1/stats").json()
    rows = {row["name"]: row for row in stats["tenants"]}
    deadline = time.monotonic() + 30  # workers flush their counts at each heartbeat
    while rows["team-a"]["last_minute"] < 3:
        assert time.monotonic() < deadline, rows
        time.sleep(0.5)
        rows = {row["name"]: row for row in clients["ops"].get("/v1/stats").json()["tenants"]}


def test_only_admins_read_the_operators_routes(clients: dict[str, httpx.Client]) -> None:
    for path in ("/v1/stats", "/metrics"):
        refused = clients["team-a"].get(path)
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden", path
        assert clients["ops"].get(path).status_code == 200, path
    stats = clients["ops"].get("/v1/stats").json()
    assert {row["name"] for row in stats["tenants"]} == set(KEYS)
    text = clients["ops"].get("/metrics").text
    assert 'sandbox_tenant_queued_jobs{tenant="team-a"}' in text


def test_a_removed_key_is_refused_at_once_and_a_bad_file_changes_nothing(
        tenanted: Service, tenants_file: Path, clients: dict[str, httpx.Client]) -> None:
    good = tenants_file.read_text()
    try:
        write(tenants_file, good.replace(hashlib.sha256(KEYS["team-a"].encode()).hexdigest(),
                                         "0" * 64))
        refused = clients["team-a"].post("/v1/run", json={"code": "print(1)"})
        assert refused.status_code == 401, refused.text
        assert clients["team-b"].post("/v1/run", json={"code": "print(1)"}).status_code == 200
        write(tenants_file, "[[tenants]]\nname = 'only-me'\n")  # malformed: no key
        assert clients["team-b"].post("/v1/run", json={"code": "print(1)"}).status_code == 200
        assert clients["team-a"].post("/v1/run", json={"code": "print(1)"}).status_code == 401
    finally:
        write(tenants_file, good)
    assert clients["team-a"].post("/v1/run", json={"code": "print(1)"}).status_code == 200


def test_past_max_queued_a_tenant_is_refused_and_nothing_of_a_batch_is_queued(
        redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    write(path, tenants_toml(**{"team-a": "max_queued = 3"}))
    with api_only(redis_url, SANDBOX_TENANTS_FILE=str(path)) as service, \
            as_tenant(service, "team-a") as a, as_tenant(service, "team-b") as b:
        keys = Keys(service.prefix)
        db = redis.Redis.from_url(redis_url)
        for _ in range(2):
            assert a.post("/v1/jobs", json={"code": "print(1)"}).status_code == 202
        refused = a.post("/v1/batch", json={"items": [{"code": "print(2)"}] * 2})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "quota_exceeded"
        assert refused.headers["retry-after"] == "1"
        assert db.xlen(keys.jobs("interactive", "team-a")) == 2
        assert db.xlen(keys.jobs("bulk", "team-a")) == 0  # nothing of the refused batch
        assert a.post("/v1/jobs", json={"code": "print(3)"}).status_code == 202
        single = a.post("/v1/jobs", json={"code": "print(4)"})
        assert single.status_code == 429 and single.json()["error"] == "quota_exceeded"
        assert db.xlen(keys.jobs("interactive", "team-a")) == 3
        assert b.post("/v1/jobs", json={"code": "print(5)"}).status_code == 202  # not b's quota
        db.close()


def wait_for_api(service: Service) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{service.base_url}/livez", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.1)


def queue_jobs(client: httpx.Client, code: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        response = client.post("/v1/jobs", json={"code": code})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def states(client: httpx.Client, ids: list[str]) -> list[str]:
    return [client.get(f"/v1/jobs/{job_id}").json()["state"] for job_id in ids]


@pytest.fixture
def fresh_service(redis_url: str, docker_engine: None, tmp_path: Path):  # type: ignore[no-untyped-def]
    """An API started alone (workers are added by the test) on its own tenants file."""
    services: list[Service] = []

    def start(toml: str, **env: str) -> Service:
        path = tmp_path / "tenants.toml"
        write(path, toml)
        service = Service(redis_url, {"SANDBOX_TENANTS_FILE": str(path), **env})
        services.append(service)
        service.api = service._spawn("api")
        wait_for_api(service)
        return service

    yield start
    for service in services:
        service.stop()


def test_max_running_holds_across_two_workers(fresh_service) -> None:  # type: ignore[no-untyped-def]
    service = fresh_service(tenants_toml(**{"team-a": "max_running = 2"}), SANDBOX_POOL_SIZE="3")
    with as_tenant(service, "team-a") as a:
        # Each program prints when it ran, by the host's clock that every container shares: a
        # sweep of job states over HTTP is no snapshot (a job ends and the next starts during it).
        code = "import time; start = time.time(); time.sleep(1); print(start, time.time())"
        ids = queue_jobs(a, code, 8)
        service.add_worker()
        service.add_worker()
        deadline = time.monotonic() + 120
        while states(a, ids).count("done") < len(ids):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        spans = [tuple(map(float, a.get(f"/v1/jobs/{job_id}").json()["result"]["stdout"].split()))
                 for job_id in ids]
    at_once = [sum(begin <= start < end for begin, end in spans) for start, _ in spans]
    assert max(at_once) == 2, spans  # six containers free, two used


def test_backlogged_tenants_share_the_workers_by_weight(fresh_service) -> None:  # type: ignore[no-untyped-def]
    toml = tenants_toml(**{"team-a": "weight = 1", "team-b": "weight = 3"})
    service = fresh_service(toml, SANDBOX_POOL_SIZE="2")
    with as_tenant(service, "team-a") as a, as_tenant(service, "team-b") as b:
        code = "import time; time.sleep(0.2)"  # slots, not CPU, bound the pace
        light, heavy = queue_jobs(a, code, 40), queue_jobs(b, code, 40)
        service.add_worker()
        deadline = time.monotonic() + 120
        while True:
            done_a, done_b = states(a, light).count("done"), states(b, heavy).count("done")
            if done_a + done_b >= 32:
                break
            assert time.monotonic() < deadline, (done_a, done_b)
            time.sleep(0.1)
    # Both stayed backlogged throughout (40 each): 1:3 of the jobs done, with a tolerance.
    assert 2.0 <= done_b / max(done_a, 1) <= 4.5, (done_a, done_b)


def test_nemo_skills_session_names_are_each_tenant_s_own(
        clients: dict[str, httpx.Client]) -> None:
    a, b = clients["team-a"], clients["team-b"]

    def cell(client: httpx.Client, code: str) -> dict:
        response = client.post("/execute", headers={"x-session-id": "rollout-1"},
                               json={"generated_code": code, "timeout": 2, "language": "ipython"})
        assert response.status_code == 200, response.text
        return response.json()

    try:
        assert cell(a, "secret = 41")["new_session_created"]
        theirs = cell(b, "secret")  # the same name, another tenant: a session of its own
        assert theirs["new_session_created"] and "NameError" in theirs["stdout"], theirs
        assert cell(a, "secret + 1")["stdout"] == "42\n"
        assert list(b.get("/sessions").json()["sessions"]) == ["rollout-1"]
    finally:
        a.delete("/sessions/rollout-1")
        b.delete("/sessions/rollout-1")


async def mcp_call(service: Service, tenant: str, tool: str, arguments: dict) -> dict:
    headers = {"authorization": f"Bearer {KEYS[tenant]}"}
    async with (streamablehttp_client(f"{service.base_url}/mcp", headers=headers,
                                      timeout=120) as (read, write, _),
                ClientSession(read, write) as session):
        await session.initialize()
        result = await session.call_tool(tool, arguments)
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return json.loads(first.text)


@pytest.mark.filterwarnings("ignore:Use `streamable_http_client`:DeprecationWarning")
def test_mcp_acts_as_the_key_s_tenant(tenanted: Service) -> None:
    opened = asyncio.run(mcp_call(tenanted, "team-a", "open_session", {}))
    sid = opened["session_id"]
    try:
        mine = asyncio.run(mcp_call(tenanted, "team-a", "run_in_session",
                                    {"session_id": sid, "code": "6 * 7"}))
        assert mine["value"] == "42", mine
        theirs = asyncio.run(mcp_call(tenanted, "team-b", "run_in_session",
                                      {"session_id": sid, "code": "6 * 7"}))
        assert theirs["error"] == "not_found", theirs
    finally:
        asyncio.run(mcp_call(tenanted, "team-a", "close_session", {"session_id": sid}))


def test_sighup_reads_the_file_even_when_its_stamp_did_not_move(
        tenanted: Service, tenants_file: Path, clients: dict[str, httpx.Client]) -> None:
    good = tenants_file.read_text()
    before = tenants_file.stat()
    digest = hashlib.sha256(KEYS["team-a"].encode()).hexdigest()
    try:
        with tenants_file.open("r+") as f:  # the same inode, size and mtime: a poll sees nothing
            f.write(good.replace(digest, "0" * 64))
        os.utime(tenants_file, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert clients["team-a"].post("/v1/run", json={"code": "print(1)"}).status_code == 200
        assert tenanted.api is not None
        tenanted.api.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while clients["team-a"].post("/v1/run", json={"code": "print(1)"}).status_code != 401:
            assert time.monotonic() < deadline, "SIGHUP did not reload the tenants"
            time.sleep(0.2)
        assert clients["team-b"].post("/v1/run", json={"code": "print(1)"}).status_code == 200
    finally:
        write(tenants_file, good)
    assert clients["team-a"].post("/v1/run", json={"code": "print(1)"}).status_code == 200
