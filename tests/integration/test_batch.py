"""POST /v1/batch: many runs in one call, in order or streamed, all refused or all queued."""


import httpx
import orjson
import redis

from service.store.keys import Keys
from service.tenants import ANONYMOUS
from tests.support import QUEUE_DEPTH, queue_holding


def batch(client: httpx.Client, items: list[dict], **params) -> list[dict]:
    response = client.post("/v1/batch", json={"items": items}, params=params)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_results_in_request_order(client: httpx.Client) -> None:
    items = [
        {"code": "import time; time.sleep(1); print('slow')"},
        {"code": "print(input()[::-1])", "stdin": "olleh"},
        {"code": "raise SystemExit(3)"},
        {"code": "while True: pass", "timeout": 1},
        {"code": "print(open('f').read())", "files": {"f": "from a file"}},
    ]
    results = batch(client, items)
    assert [r["outcome"] for r in results] == ["ok", "ok", "error", "timeout", "ok"]
    assert [r["stdout"] for r in results] == ["slow\n", "hello\n", "", "", "from a file\n"]
    assert results[2]["exit_code"] == 3
    assert len({r["id"] for r in results}) == 5


def test_two_thousand_snippets(client: httpx.Client) -> None:
    items = [{"code": f"import sys; n = int(sys.stdin.read()); print(n * n, {i})", "stdin": str(i)}
             for i in range(2000)]
    results = batch(client, items)
    assert len(results) == 2000
    assert [r["outcome"] for r in results] == ["ok"] * 2000
    assert [r["stdout"] for r in results] == [f"{i * i} {i}\n" for i in range(2000)]
    assert len({r["id"] for r in results}) == 2000


def stream_lines(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [orjson.loads(line) for line in response.text.splitlines()]


def test_stream_as_they_finish(client: httpx.Client) -> None:
    items = [{"code": "import time; time.sleep(2); print('last')"}] + [
        {"code": f"print({i})"} for i in range(1, 6)]
    lines = stream_lines(client.post("/v1/batch?stream=true", json={"items": items}))
    assert sorted(line["index"] for line in lines) == list(range(6))
    assert lines[-1]["index"] == 0, "the slow item ends last"
    for line in lines:
        expected = "last\n" if line["index"] == 0 else f"{line['index']}\n"
        assert (line["result"]["outcome"], line["result"]["stdout"]) == ("ok", expected)


def test_stream_on_accept_header(client: httpx.Client) -> None:
    items = [{"code": f"print({i} * 2)"} for i in range(20)]
    response = client.post("/v1/batch", json={"items": items},
                           headers={"accept": "application/json, application/x-ndjson"})
    by_index = {line["index"]: line["result"] for line in stream_lines(response)}
    assert {i: r["stdout"] for i, r in by_index.items()} == {i: f"{i * 2}\n" for i in range(20)}


def test_empty_batch(client: httpx.Client) -> None:
    assert batch(client, []) == []
    response = client.post("/v1/batch?stream=true", json={"items": []})
    assert stream_lines(response) == []


def test_bad_item_refuses_the_batch(client: httpx.Client) -> None:
    response = client.post("/v1/batch", json={"items": [{"code": "print(1)"}, {"stdin": "x"}]})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["details"][0]["loc"][:3] == ["body", "items", 1]


def test_item_over_a_limit_refuses_the_batch(client: httpx.Client) -> None:
    items = [{"code": "print(1)"}, {"code": "print(2)"}, {"code": "print(3)", "timeout": 10_000}]
    response = client.post("/v1/batch", json={"items": items})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "limit_exceeded"
    assert body["message"].startswith("items[2]: ")
    assert body["details"] == [{"loc": ["body", "items", 2], "msg": body["message"][10:],
                                "type": "limit_exceeded"}]


def test_unsupported_language_item(client: httpx.Client) -> None:
    items = [{"code": "print(1)"}, {"code": "puts 1", "language": "ruby"}]
    response = client.post("/v1/batch?stream=true", json={"items": items})
    assert response.status_code == 422
    assert response.json()["error"] == "unsupported_language"
    assert response.json()["details"][0]["loc"][:3] == ["body", "items", 1]


def test_too_many_items(client: httpx.Client) -> None:
    response = client.post("/v1/batch", json={"items": [{"code": ""}] * 10_001})
    assert response.status_code == 422
    assert response.json()["error"] == "too_many_items"


def test_a_queue_without_room_for_every_item_queues_none(redis_url: str) -> None:
    with queue_holding(redis_url, QUEUE_DEPTH - 1) as (service, client), \
            redis.Redis.from_url(redis_url) as direct:
        for params in ({}, {"stream": "true"}):
            response = client.post("/v1/batch", params=params,
                                   json={"items": [{"code": "print(1)"}, {"code": "print(2)"}]})
            assert response.status_code == 429
            assert response.json()["error"] == "queue_full"
            assert int(response.headers["retry-after"]) >= 1
            assert direct.xlen(Keys(service.prefix).jobs("bulk", ANONYMOUS)) == QUEUE_DEPTH - 1  # none queued


def test_a_batch_larger_than_the_queue_is_refused_for_good(redis_url: str) -> None:
    with queue_holding(redis_url, 0) as (_, client):
        response = client.post("/v1/batch", json={"items": [{"code": ""}] * (QUEUE_DEPTH + 1)})
        assert response.status_code == 422
        assert response.json()["message"] == f"at most {QUEUE_DEPTH} items in one batch"
