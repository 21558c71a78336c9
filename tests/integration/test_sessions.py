"""Sessions through HTTP → Redis → the worker holding the session → its own container, and back."""

import datetime
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import docker
import httpx
import pytest
import redis

from service.settings import Settings
from service.store.keys import Keys
from service.worker.session_capacity import IDLE_SESSION_MIB
from tests.integration.test_run import PROCESS_STATE
from tests.support import Service


def open_session(client: httpx.Client, **limits) -> dict:
    response = client.post("/v1/sessions", json=limits)
    assert response.status_code == 201, response.text
    return response.json()


def call(client: httpx.Client, session_id: str, code: str, **fields) -> dict:
    response = client.post(f"/v1/sessions/{session_id}/run", json={"code": code, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def session_containers(service: Service, session_id: str) -> list:
    """The session's container (recorded in its record when it opened), while it exists."""
    with redis.Redis.from_url(service.redis_url) as store:
        container_id = store.hget(Keys(service.prefix).session(session_id), "container")
    assert container_id, f"no container recorded for session {session_id}"
    engine = docker.from_env()
    try:
        return engine.containers.list(all=True, filters={"id": container_id.decode()})
    finally:
        engine.close()


def eventually(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture
def session(client: httpx.Client) -> Iterator[dict]:
    opened = open_session(client)
    yield opened
    client.delete(f"/v1/sessions/{opened['id']}")


def test_a_cell_sees_what_a_one_shot_run_sees(client: httpx.Client, session: dict) -> None:
    one_shot = client.post("/v1/run", json={"code": PROCESS_STATE}).json()
    cell = call(client, session["id"], PROCESS_STATE)
    assert cell["outcome"] == one_shot["outcome"] == "ok", (cell, one_shot)
    state = json.loads(cell["stdout"])
    # All but SIGINT's handler: a session's raises KeyboardInterrupt only while a cell runs.
    assert json.loads(one_shot["stdout"])[:-1] == state[:-1]
    assert state[-2] is True  # SIGPIPE ignored


def test_variables_imports_functions_and_files_persist(client: httpx.Client, session: dict,
                                                        service: Service) -> None:
    assert session["state"] == "open" and session["calls"] == 0
    assert len(session_containers(service, session["id"])) == 1
    first = call(client, session["id"], "import math\nx = 41\ndef double(n):\n    return 2 * n\n"
                                         "written = open('notes.txt', 'w').write('kept')")
    assert (first["outcome"], first["stdout"], first["stderr"]) == ("ok", "", ""), first
    assert first["value"] is None and first["session_state"] == "open"
    second = call(client, session["id"], "print(double(x))\nmath.sqrt(x + 8)")
    assert (second["outcome"], second["stdout"], second["value"]) == ("ok", "82\n", "7.0"), second
    third = call(client, session["id"], "open('notes.txt').read()")
    assert third["value"] == "'kept'"
    info = client.get(f"/v1/sessions/{session['id']}").json()
    assert (info["state"], info["calls"]) == ("open", 3)


def test_the_last_expression_is_returned_as_a_notebook_shows_it(client: httpx.Client,
                                                                 session: dict) -> None:
    sid = session["id"]
    cases = {
        "'ab' * 2": "'abab'",
        "import numpy as np\nnp.arange(3)": "array([0, 1, 2])",
        "y = 3": None,
        "None": None,
        "print('shown'); y + 1": "4",
        "y + 1;": None,  # a trailing semicolon hides it, as in Jupyter
        "for i in range(2):\n    pass": None,
        "_": "4",  # the last value, as in a notebook
    }
    for code, value in cases.items():
        result = call(client, sid, code)
        assert (result["outcome"], result["value"]) == ("ok", value), (code, result)


def test_errors_are_reported_and_the_session_goes_on(client: httpx.Client, session: dict) -> None:
    sid = session["id"]
    call(client, sid, "kept = 'yes'")
    failed = call(client, sid, "def f():\n    raise ValueError('boom')\nf()")
    assert (failed["outcome"], failed["exit_code"], failed["session_state"]) == ("error", 1, "open")
    assert "ValueError: boom" in failed["stderr"] and 'File "<cell-2>", line 3' in failed["stderr"]
    assert "/opt/runner/" not in failed["stderr"]
    syntax = call(client, sid, "print(1")
    assert syntax["outcome"] == "error" and "SyntaxError" in syntax["stderr"]
    assert "/opt/runner/" not in syntax["stderr"] and "ast.py" not in syntax["stderr"]
    exited = call(client, sid, "import sys; sys.exit(3)")
    assert (exited["outcome"], exited["exit_code"], exited["session_state"]) == ("error", 3, "open")
    assert call(client, sid, "kept")["value"] == "'yes'"


def test_a_call_past_its_timeout_is_interrupted_and_the_session_goes_on(
        client: httpx.Client, session: dict) -> None:
    sid = session["id"]
    call(client, sid, "x = 5")
    result = call(client, sid, "while True:\n    x = 5", timeout=1)
    assert (result["outcome"], result["session_state"]) == ("timeout", "open"), result
    assert "KeyboardInterrupt" in result["stderr"] and "/opt/runner/" not in result["stderr"]
    assert "interrupted" in result["message"]
    assert call(client, sid, "x * 2")["value"] == "10"


def test_a_call_that_ignores_the_interrupt_loses_the_session(client: httpx.Client, service: Service) -> None:
    sid = open_session(client)["id"]
    call(client, sid, "x = 1")
    result = call(client, sid, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                               "while True:\n    pass", timeout=1)
    assert (result["outcome"], result["session_state"]) == ("timeout", "lost"), result
    assert "lost" in result["message"]
    after = client.post(f"/v1/sessions/{sid}/run", json={"code": "x"})
    assert (after.status_code, after.json()["error"]) == (410, "session_lost")
    assert client.get(f"/v1/sessions/{sid}").json()["state"] == "lost"
    eventually(lambda: not session_containers(service, sid), 30,
               "the lost session's container is removed")


def test_a_session_process_killed_by_memory_is_lost(client: httpx.Client) -> None:
    sid = open_session(client, memory_mb=128)["id"]
    result = call(client, sid, "blocks = []\nwhile True:\n    blocks.append(b'x' * (32 << 20))",
                  timeout=30)
    assert result["outcome"] in ("memory_limit", "killed"), result
    assert result["session_state"] == "lost", result
    after = client.post(f"/v1/sessions/{sid}/run", json={"code": "1"})
    assert (after.status_code, after.json()["error"]) == (410, "session_lost")


def test_an_idle_session_expires_and_its_container_goes(client: httpx.Client, service: Service) -> None:
    opened = open_session(client, idle_ttl_s=2)
    sid = opened["id"]
    assert opened["idle_ttl_s"] == 2 and opened["expires_at"] > opened["created_at"]
    call(client, sid, "x = 1")
    eventually(lambda: client.get(f"/v1/sessions/{sid}").json()["state"] == "expired", 30,
               "the idle session expires")
    after = client.post(f"/v1/sessions/{sid}/run", json={"code": "x"})
    assert (after.status_code, after.json()["error"]) == (410, "session_expired")
    eventually(lambda: not session_containers(service, sid), 30, "the expired session's container goes")
    assert sid not in {s["id"] for s in client.get("/v1/sessions").json()["sessions"]}


def test_list_get_close(client: httpx.Client, service: Service) -> None:
    first, second = open_session(client), open_session(client, timeout=5, memory_mb=256)
    listed = {s["id"]: s for s in client.get("/v1/sessions").json()["sessions"]}
    assert {first["id"], second["id"]} <= set(listed)
    assert (listed[second["id"]]["timeout"], listed[second["id"]]["memory_mb"]) == (5, 256)
    closed = client.delete(f"/v1/sessions/{first['id']}")
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    assert client.delete(f"/v1/sessions/{first['id']}").json()["state"] == "closed"
    listed = {s["id"] for s in client.get("/v1/sessions").json()["sessions"]}
    assert first["id"] not in listed and second["id"] in listed
    after = client.post(f"/v1/sessions/{first['id']}/run", json={"code": "1"})
    assert (after.status_code, after.json()["error"]) == (410, "session_closed")
    eventually(lambda: not session_containers(service, first["id"]), 30,
               "the closed session's container goes")
    client.delete(f"/v1/sessions/{second['id']}")


def warm_sessions(client: httpx.Client) -> int:
    workers = client.get("/readyz", params={"verbose": "true"}).json()["workers"]
    return sum(int(w.get("warm_sessions", 0)) for w in workers)


def test_by_default_a_worker_holds_as_many_sessions_as_fit_in_its_share_of_host_memory(
        client: httpx.Client) -> None:
    engine = docker.from_env()
    try:
        host_mib = engine.info()["MemTotal"] / 2**20
    finally:
        engine.close()
    workers = client.get("/readyz", params={"verbose": "true"}).json()["workers"]
    expected = int(host_mib * Settings().session_memory_share // IDLE_SESSION_MIB)
    assert [int(w["session_capacity"]) for w in workers] == [expected, expected]
    assert expected > 64, "a worker with a few GiB holds more sessions than rollouts open at once"


def test_opening_takes_a_warm_container_and_one_comes_up_in_its_place(
        client: httpx.Client, service: Service) -> None:
    eventually(lambda: warm_sessions(client) >= 2, 60, "containers are kept warm for sessions")
    before_open = datetime.datetime.now(datetime.UTC)
    sid = open_session(client)["id"]
    try:
        (container,) = session_containers(service, sid)
        created = datetime.datetime.fromisoformat(container.attrs["Created"][:26] + "+00:00")
        assert created < before_open, "the session's container was started for it"
        assert call(client, sid, "x = 6\nx * 7")["value"] == "42"
        eventually(lambda: warm_sessions(client) >= 2, 60, "a warm container replaces it")
    finally:
        client.delete(f"/v1/sessions/{sid}")


def test_more_sessions_at_once_than_warm_containers_all_open(client: httpx.Client) -> None:
    with ThreadPoolExecutor(5) as pool:
        opened = list(pool.map(lambda _: open_session(client)["id"], range(5)))
    try:
        with ThreadPoolExecutor(5) as pool:
            values = list(pool.map(lambda sid: call(client, sid, f"{sid!r}")["value"], opened))
        assert values == [repr(sid) for sid in opened]
    finally:
        for sid in opened:
            client.delete(f"/v1/sessions/{sid}")


def test_sessions_opened_at_once_share_out_the_warm_containers_of_the_live_workers(
        client: httpx.Client, service: Service) -> None:
    """Opened together (their claims go in one script or a few), each session takes a warm
    container of its own, from the live worker offering the most at that moment; the offers of
    a worker whose heartbeats stopped are left alone."""
    keys = Keys(service.prefix)
    with redis.Redis.from_url(service.redis_url) as store:
        store.zadd(keys.workers, {"gone": int(time.time() * 1000) - 600_000})
        store.rpush(keys.session_warm("gone"), *[f"gone-{i}" for i in range(4)])
    eventually(lambda: warm_sessions(client) >= 4, 60, "two warm containers on each worker")
    before_open = datetime.datetime.now(datetime.UTC)
    with ThreadPoolExecutor(4) as pool:
        opened = list(pool.map(lambda _: open_session(client), range(4)))
    try:
        assert sorted(Counter(s["worker"] for s in opened).values()) == [2, 2], opened
        containers = [session_containers(service, s["id"])[0] for s in opened]
        assert len({c.id for c in containers}) == 4
        for container in containers:
            created = datetime.datetime.fromisoformat(container.attrs["Created"][:26] + "+00:00")
            assert created < before_open, "a session's container was started for it"
        values = [call(client, s["id"], f"{s['id']!r}")["value"] for s in opened]
        assert values == [repr(s["id"]) for s in opened]
        with redis.Redis.from_url(service.redis_url) as store:
            assert store.llen(keys.session_warm("gone")) == 4
    finally:
        for s in opened:
            client.delete(f"/v1/sessions/{s['id']}")
        with redis.Redis.from_url(service.redis_url) as store:
            store.zrem(keys.workers, "gone")
            store.delete(keys.session_warm("gone"))


def test_sessions_do_not_share_state(client: httpx.Client, service: Service) -> None:
    a, b = open_session(client)["id"], open_session(client)["id"]
    call(client, a, "secret = 'a'\nopen('mine.txt', 'w').write('a')")
    probe = call(client, b, "import os\n('secret' in globals(), os.listdir('.'))")
    assert probe["value"] == "(False, [])", probe
    assert session_containers(service, a)[0].id != session_containers(service, b)[0].id
    for sid in (a, b):
        client.delete(f"/v1/sessions/{sid}")


def test_a_second_call_while_one_runs_is_refused(client: httpx.Client, session: dict) -> None:
    sid = session["id"]
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(call, client, sid, "import time\ntime.sleep(8)\n'slept'")
        time.sleep(2)  # the slow call is queued to the worker first, and runs for 8 s
        second = client.post(f"/v1/sessions/{sid}/run", json={"code": "1"})
        assert (second.status_code, second.json()["error"]) == (409, "session_busy")
        assert slow.result()["value"] == "'slept'"
    busy = client.post(f"/v1/sessions/{sid}/run", json={"code": "1"})
    assert busy.status_code == 200


def test_unknown_session_and_bad_requests(client: httpx.Client) -> None:
    missing = client.post("/v1/sessions/nope/run", json={"code": "1"})
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert client.get("/v1/sessions/nope").status_code == 404
    assert client.delete("/v1/sessions/nope").status_code == 404
    too_long = client.post("/v1/sessions", json={"idle_ttl_s": 10**9})
    assert (too_long.status_code, too_long.json()["error"]) == (422, "limit_exceeded")
    unknown = client.post("/v1/sessions", json={"stdin": "x"})
    assert (unknown.status_code, unknown.json()["error"]) == (422, "invalid_request")


def test_one_shot_runs_are_unaffected_by_sessions(client: httpx.Client, session: dict) -> None:
    call(client, session["id"], "leak = 'no'")
    result = client.post("/v1/run", json={"code": "print('leak' in globals())"}).json()
    assert (result["outcome"], result["stdout"]) == ("ok", "False\n")


# --- caps and a dead worker, on deployments of their own -------------------------------------------

@pytest.fixture(scope="module")
def capped(redis_url: str, docker_engine: None) -> Iterator[Service]:
    svc = Service(redis_url, {"SANDBOX_POOL_SIZE": "1", "SANDBOX_MAX_SESSIONS": "2"})
    svc.start(workers=1)
    yield svc
    svc.stop()


def test_the_cluster_wide_cap_is_atomic(capped: Service) -> None:
    with httpx.Client(base_url=capped.base_url, timeout=120) as client:
        with ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(lambda _: client.post("/v1/sessions", json={}), range(5)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [201, 201, 429, 429, 429], [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.json()["error"] == "session_limit" and refused.headers["retry-after"]
        opened = [a.json()["id"] for a in answers if a.status_code == 201]
        assert client.delete(f"/v1/sessions/{opened[0]}").status_code == 200
        again = client.post("/v1/sessions", json={})
        assert again.status_code == 201, again.text
        for sid in (opened[1], again.json()["id"]):
            client.delete(f"/v1/sessions/{sid}")


@pytest.fixture(scope="module")
def one_worker(redis_url: str, docker_engine: None) -> Iterator[Service]:
    svc = Service(redis_url, {"SANDBOX_POOL_SIZE": "1", "SANDBOX_MAX_SESSIONS_PER_WORKER": "1"})
    svc.start(workers=1)
    yield svc
    svc.stop()


def test_the_per_worker_cap(one_worker: Service) -> None:
    with httpx.Client(base_url=one_worker.base_url, timeout=120) as client:
        first = open_session(client)
        refused = client.post("/v1/sessions", json={})
        assert (refused.status_code, refused.json()["error"]) == (429, "session_limit")
        client.delete(f"/v1/sessions/{first['id']}")
        eventually(lambda: client.post("/v1/sessions", json={}).status_code == 201, 15,
                   "room again once the worker's heartbeat shows the session closed")


def test_a_session_whose_worker_died_says_session_lost(one_worker: Service) -> None:
    """SIGKILL the worker during a call: the waiting call, and every later one, get 410."""
    with httpx.Client(base_url=one_worker.base_url, timeout=120) as client:
        for s in client.get("/v1/sessions").json()["sessions"]:
            client.delete(f"/v1/sessions/{s['id']}")
        eventually(lambda: client.post("/v1/sessions", json={}).status_code == 201, 15,
                   "a session opens")
        (opened,) = client.get("/v1/sessions").json()["sessions"]
        sid = opened["id"]
        assert call(client, sid, "x = 1")["outcome"] == "ok"
        worker = one_worker.workers[0]
        assert f"-{worker.pid}-" in opened["worker"]
        answers: list[httpx.Response] = []
        waiting = threading.Thread(target=lambda: answers.append(client.post(
            f"/v1/sessions/{sid}/run", json={"code": "import time\ntime.sleep(60)", "timeout": 90})))
        waiting.start()
        time.sleep(1)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        waiting.join(timeout=60)  # the call's own limit is 90 s: an unnoticed death hangs past it
        assert not waiting.is_alive(), "the waiting call hangs"
        (answer,) = answers
        assert (answer.status_code, answer.json()["error"]) == (410, "session_lost"), answer.text
        later = client.post(f"/v1/sessions/{sid}/run", json={"code": "x"})
        assert (later.status_code, later.json()["error"]) == (410, "session_lost")
        assert client.get(f"/v1/sessions/{sid}").json()["state"] == "lost"
        eventually(lambda: not session_containers(one_worker, sid), 30,
                   "the dead worker's session container goes with it")
