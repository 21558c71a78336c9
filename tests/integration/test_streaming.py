"""Streamed output (`Accept: text/event-stream`): output events as the code prints, then the
result, through HTTP → Redis → worker → runner and back."""

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.test_sessions import call, open_session

EVENTS = {"accept": "text/event-stream"}


def read_events(response: httpx.Response) -> Iterator[tuple[str, dict]]:
    name = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: ") and name is not None:
            yield name, json.loads(line.removeprefix("data: "))
            name = None


@pytest.fixture
def session_id(client: httpx.Client) -> Iterator[str]:
    opened = open_session(client)
    yield opened["id"]
    client.delete(f"/v1/sessions/{opened['id']}")


def test_a_session_call_streams_its_output_before_the_code_ends(client: httpx.Client,
                                                                session_id: str) -> None:
    code = ("import sys, time\nprint('first', flush=True)\ntime.sleep(3)\n"
            "print('warned', file=sys.stderr)\nprint('second')\n6 * 7")
    seen: list[tuple[str, dict]] = []
    calls_at_first_chunk = None
    with client.stream("POST", f"/v1/sessions/{session_id}/run", json={"code": code},
                       headers=EVENTS) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for name, data in read_events(response):
            if not seen:
                calls_at_first_chunk = client.get(f"/v1/sessions/{session_id}").json()["calls"]
            seen.append((name, data))
    assert seen[0] == ("stdout", {"text": "first\n"})
    assert calls_at_first_chunk == 0, "the first chunk came only once the call had ended"
    output = {"stdout": "", "stderr": ""}
    for name, data in seen[:-1]:
        output[name] += data["text"]
    assert output == {"stdout": "first\nsecond\n", "stderr": "warned\n"}
    name, result = seen[-1]
    assert name == "result"
    assert (result["outcome"], result["value"], result["stdout"]) == ("ok", "42", "first\nsecond\n")
    assert client.get(f"/v1/sessions/{session_id}").json()["calls"] == 1


def test_streamed_output_is_bounded_by_the_cap(client: httpx.Client, session_id: str) -> None:
    with client.stream("POST", f"/v1/sessions/{session_id}/run", headers=EVENTS,
                       json={"code": "print('x' * 5000)", "max_output_bytes": 1000}) as response:
        seen = list(read_events(response))
    streamed = "".join(data["text"] for name, data in seen if name == "stdout")
    assert streamed == "x" * 1000
    assert seen[-1][0] == "result" and seen[-1][1]["stdout_truncated"] is True


def test_a_refusal_is_an_http_error_or_an_error_event(client: httpx.Client,
                                                     session_id: str) -> None:
    missing = client.post("/v1/sessions/nope/run", json={"code": "1"}, headers=EVENTS)
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    client.delete(f"/v1/sessions/{session_id}")
    closed = client.post(f"/v1/sessions/{session_id}/run", json={"code": "1"}, headers=EVENTS)
    assert (closed.status_code, closed.json()["error"]) == (410, "session_closed")


def test_without_the_header_a_call_answers_as_before(client: httpx.Client,
                                                     session_id: str) -> None:
    assert call(client, session_id, "print('plain')\n1")["stdout"] == "plain\n"


def test_a_run_streams_its_output_before_the_code_ends(client: httpx.Client) -> None:
    code = ("import sys, time\nprint('first', flush=True)\ntime.sleep(3)\n"
            "print('warned', file=sys.stderr)\nprint('second')")
    seen: list[tuple[str, dict]] = []
    state_at_first_chunk = None
    with client.stream("POST", "/v1/run", json={"code": code}, headers=EVENTS) as response:
        assert response.status_code == 200
        for name, data in read_events(response):
            if name == "stdout" and state_at_first_chunk is None:
                job_id = seen[0][1]["id"]
                state_at_first_chunk = client.get(f"/v1/jobs/{job_id}").json()["state"]
            seen.append((name, data))
    assert seen[0][0] == "queued"
    assert seen[1] == ("stdout", {"text": "first\n"})
    assert state_at_first_chunk == "running", "the first chunk came only once the run had ended"
    streamed = {"stdout": "", "stderr": ""}
    for name, data in seen[1:-1]:
        streamed[name] += data["text"]
    assert streamed == {"stdout": "first\nsecond\n", "stderr": "warned\n"}
    name, result = seen[-1]
    assert name == "result" and result["id"] == seen[0][1]["id"]
    assert (result["outcome"], result["stdout"], result["stderr"]) == ("ok", "first\nsecond\n",
                                                                      "warned\n")


def test_a_streamed_run_is_bounded_by_its_caps(client: httpx.Client) -> None:
    with client.stream("POST", "/v1/run", headers=EVENTS,
                       json={"code": "print('y' * 5000)", "max_output_bytes": 1000}) as response:
        seen = list(read_events(response))
    assert "".join(data["text"] for name, data in seen if name == "stdout") == "y" * 1000
    assert seen[-1][1]["outcome"] == "output_limit"


def test_a_refused_run_is_an_http_error(client: httpx.Client) -> None:
    response = client.post("/v1/run", json={"code": "1", "timeout": 99999}, headers=EVENTS)
    assert (response.status_code, response.json()["error"]) == (422, "limit_exceeded")
