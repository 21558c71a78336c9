"""JSON responses: rendered with orjson (FastAPI's own ORJSONResponse is deprecated), or bytes
that are JSON already (a result as the worker encoded it)."""

from typing import Any

import orjson
from starlette.responses import Response


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")
