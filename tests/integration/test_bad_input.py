"""Malformed requests get a 4xx with a machine-readable reason, never a 5xx."""

import json

import httpx
import pytest


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({}, 422, "invalid_request"),
        ({"code": 42}, 422, "invalid_request"),
        ({"code": "print(1)", "timeout": "soon"}, 422, "invalid_request"),
        ({"code": "print(1)", "timeout": -1}, 422, "invalid_request"),
        ({"code": "print(1)", "timeout": 10_000}, 422, "limit_exceeded"),
        ({"code": "print(1)", "memory_mb": 10**6}, 422, "limit_exceeded"),
        ({"code": "print(1)", "max_output_bytes": 1 << 40}, 422, "limit_exceeded"),
        ({"code": "print(1)", "language": "cobol"}, 422, "unsupported_language"),
        ({"code": "print(1)", "surprise": True}, 422, "invalid_request"),
        ({"code": "print(1)", "files": {"../escape": "x"}}, 422, "invalid_file_name"),
        ({"code": "print(1)", "files": {"/etc/passwd": "x"}}, 422, "invalid_file_name"),
        ({"code": "print(1)", "files": {"a": {"base64": "!!!"}}}, 422, "invalid_base64"),
        ({"code": "print(1)", "files": {"a": 5}}, 422, "invalid_request"),
    ],
)
def test_invalid_fields(client: httpx.Client, body: dict, status: int, reason: str) -> None:
    response = client.post("/v1/run", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == reason
    assert response.json()["message"]


def test_broken_json(client: httpx.Client) -> None:
    response = client.post("/v1/run", content=b'{"code": "print(1)"',
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"


def test_wrong_content_type(client: httpx.Client) -> None:
    response = client.post("/v1/run", content=b"print(1)", headers={"content-type": "text/plain"})
    assert 400 <= response.status_code < 500
    assert "error" in response.json()


def test_body_over_cap(client: httpx.Client) -> None:
    """The test service caps bodies at 4 MiB."""
    response = client.post("/v1/run", json={"code": "#" * (5 << 20)})
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def test_body_over_cap_without_length(client: httpx.Client) -> None:
    def chunks():
        yield b'{"code": "'
        for _ in range(5):
            yield b"#" * (1 << 20)
        yield b'"}'

    response = client.post("/v1/run", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_code_over_cap(client: httpx.Client) -> None:
    response = client.post("/v1/run", json={"code": "#" * ((1 << 20) + 1)})
    assert response.status_code == 422
    assert response.json()["error"] == "code_too_large"


def test_wrong_method(client: httpx.Client) -> None:
    response = client.get("/v1/run")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_lone_surrogate_in_code(client: httpx.Client) -> None:
    """JSON may carry a lone surrogate (an escaped byte); Python source cannot."""
    code = "print(1)  # \udcff"
    for path, body in [("/v1/run", {"code": code}),
                       ("/v1/batch", {"items": [{"code": "print(2)"}, {"code": code}]}),
                       ("/v1/judge", {"code": code, "cases": [{"expected_stdout": "1"}]}),
                       ("/run_code", {"code": code, "language": "python"}),
                       ("/api/v2/execute", {"language": "python", "version": "*",
                                            "files": [{"content": code}]})]:
        response = client.post(path, content=json.dumps(body),  # ASCII: the surrogate escaped
                               headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (path, response.text)
        assert "surrogates not allowed" in response.text, (path, response.text)
