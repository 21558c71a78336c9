"""Many runs in one request (a batch's items, a judging's cases, the E2B router's programs):
a job spec for each item, or the whole request refused with the bad item's place."""

from collections.abc import Sequence

from fastapi import Response

from service.api.errors import error_response
from service.jobspec import InvalidRequest, JobSpec, build_job_spec
from service.models import RunRequest
from service.settings import Settings


class InvalidItem(Exception):
    """One item of a list refused: the whole request is, with the item's place in the details."""

    def __init__(self, field: str, index: int, cause: InvalidRequest):
        super().__init__(f"{field}[{index}]: {cause}")
        self.field = field
        self.index = index
        self.cause = cause

    def response(self) -> Response:
        detail = {"loc": ["body", self.field, self.index], "msg": str(self.cause),
                  "type": self.cause.reason}
        return error_response(422, self.cause.reason, str(self), [detail])


def item_specs(requests: Sequence[RunRequest], settings: Settings, field: str,
               wall_clock: bool = False) -> list[JobSpec]:
    specs = []
    for index, request in enumerate(requests):
        try:
            if request.priority is not None:
                raise InvalidRequest("priority_per_item",
                                     "set priority on the request, not on its items")
            specs.append(build_job_spec(request, settings, wall_clock))
        except InvalidRequest as exc:
            raise InvalidItem(field, index, exc) from exc
    return specs
