"""Every failure becomes a JSON body with a machine-readable reason; never a bare 500."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from service.api.responses import JsonResponse
from service.jobspec import InvalidRequest
from service.models import ErrorBody
from service.store import QueueFull, QueueUnavailable, QuotaExceeded
from service.submit import CallerGone

log = logging.getLogger(__name__)

RETRY_AFTER_FULL_S = 1
RETRY_AFTER_DOWN_S = 2
STATUS_REASONS = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
    429: "queue_full", 503: "unavailable", 504: "timeout",
}


def documented(errors: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route: each status with the error body and what it means."""
    return {status: {"model": ErrorBody, "description": text} for status, text in errors.items()}


SUBMIT_ERRORS = documented({  # of every route that queues runs
    400: "Malformed JSON.",
    401: "Missing or wrong API key.",
    413: "Request body over the cap.",
    422: "Invalid request: a field's type, a limit above its maximum, an unknown language.",
    429: "`queue_full`, or `quota_exceeded` (your tenant's max_queued): retry after "
         "Retry-After seconds.",
    503: "The queue (Redis) is unreachable; retry after Retry-After seconds.",
})


def error_response(status: int, reason: str, message: str,
                   details: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JsonResponse:
    body: dict[str, Any] = {"error": reason, "message": message}
    if details is not None:
        body["details"] = details
    return JsonResponse(body, status_code=status, headers=headers)


def _validation_reason(errors: list[dict[str, Any]]) -> tuple[int, str]:
    kinds = {e.get("type") for e in errors}
    if "json_invalid" in kinds:
        return 400, "invalid_json"
    if any(e.get("type") == "enum" and e.get("loc", ())[-1:] == ("language",) for e in errors):
        return 422, "unsupported_language"
    return 422, "invalid_request"


def _clean(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors without the echoed input (it may be huge) or non-JSON context."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in errors]


async def on_validation_error(_: Request, exc: RequestValidationError) -> JsonResponse:
    errors = list(exc.errors())
    status, reason = _validation_reason(errors)
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = f"{where}: {first.get('msg')}" if where else str(first.get("msg", "invalid request"))
    return error_response(status, reason, message, _clean(errors))


async def on_invalid_request(_: Request, exc: InvalidRequest) -> JsonResponse:
    return error_response(422, exc.reason, str(exc))


async def on_queue_full(_: Request, exc: QueueFull) -> JsonResponse:
    return error_response(429, "queue_full", "the queue is full; retry later",
                          headers={"Retry-After": str(RETRY_AFTER_FULL_S)})


async def on_quota_exceeded(_: Request, exc: QuotaExceeded) -> JsonResponse:
    return error_response(429, "quota_exceeded", "your tenant has as many jobs waiting or "
                          "running as its max_queued allows; retry later",
                          headers={"Retry-After": str(RETRY_AFTER_FULL_S)})


async def on_queue_unavailable(_: Request, exc: QueueUnavailable) -> JsonResponse:
    log.warning("queue unavailable", extra={"error": str(exc)})
    return error_response(503, "queue_unavailable", "the job queue is unreachable; retry later",
                          headers={"Retry-After": str(RETRY_AFTER_DOWN_S)})


async def on_caller_gone(_: Request, exc: CallerGone) -> JsonResponse:
    """Never read (its caller has gone), but logged and counted as nginx's 499."""
    return error_response(499, "client_closed_request",
                          "the caller hung up; its unfinished jobs were cancelled")


async def on_http_error(_: Request, exc: HTTPException) -> JsonResponse:
    reason = STATUS_REASONS.get(exc.status_code, "http_error")
    return error_response(exc.status_code, reason, str(exc.detail), headers=exc.headers)


async def on_unexpected(_: Request, exc: Exception) -> JsonResponse:
    log.exception("unexpected error")
    return error_response(500, "internal_error", "the service failed; this is not your request's fault")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidRequest, on_invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(QueueFull, on_queue_full)  # type: ignore[arg-type]
    app.add_exception_handler(QuotaExceeded, on_quota_exceeded)  # type: ignore[arg-type]
    app.add_exception_handler(QueueUnavailable, on_queue_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(CallerGone, on_caller_gone)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_unexpected)
