"""/v1/batch: many runs in one call, answered in order, or streamed as NDJSON as they end."""

import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from service.api.auth import require_key
from service.api.batching import InvalidItem, item_specs
from service.api.caller import watch_caller
from service.api.errors import SUBMIT_ERRORS, error_response
from service.api.responses import json_response
from service.api.services import Services, get_services
from service.models import BatchLine, BatchRequest, BatchResult, Priority
from service.priority import choose_lane

router = APIRouter(prefix="/v1", tags=["batch"],
                   dependencies=[Depends(require_key), Depends(watch_caller)])

NDJSON = "application/x-ndjson"


def wants_ndjson(request: Request, stream: bool) -> bool:
    accepted = (part.split(";")[0].strip() for part in request.headers.get("accept", "").split(","))
    return stream or NDJSON in accepted


async def ndjson_lines(results: AsyncIterator[tuple[int, bytes]]) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(results):
        async for index, result in results:
            yield b'{"index":%d,"result":%s}\n' % (index, result)


STREAM_DOC = {
    "description": "The results in request order; or, streamed (`?stream=true` or "
                   f"`Accept: {NDJSON}`), one JSON object per line as each run ends.",
    "content": {NDJSON: {"schema": BatchLine.model_json_schema()}},
}


@router.post("/batch", response_model=BatchResult, responses={200: STREAM_DOC, **SUBMIT_ERRORS})
async def batch(body: BatchRequest, request: Request, stream: bool = False,
                services: Services = Depends(get_services)) -> Response:
    """Run many snippets in one call: queued in one round trip, all or none.

    A bad item refuses the whole batch (422; `details[0].loc` names the item). A queue that
    cannot take every item answers 429: retry the whole batch after Retry-After seconds.
    """
    settings = services.settings
    if len(body.items) > settings.batch_limit:
        return error_response(422, "too_many_items",
                              f"at most {settings.batch_limit} items in one batch")
    try:
        specs = item_specs(body.items, settings, "items")
    except InvalidItem as exc:
        return exc.response()
    lane = choose_lane(body.priority, Priority.BULK, len(specs), settings)
    if wants_ndjson(request, stream):
        results = await services.submitter.run_as_completed(specs, lane)
        return StreamingResponse(ndjson_lines(results), media_type=NDJSON)
    results = await services.submitter.run_many(specs, lane) if specs else []
    return json_response(b'{"results":[%s]}' % b",".join(results))
