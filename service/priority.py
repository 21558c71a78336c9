"""Which lane a request's jobs wait in: its own `priority` if the operator allows it, else the
route's default (single runs interactive, batches and judgings bulk)."""

from service.jobspec import InvalidRequest
from service.models import Priority
from service.settings import Settings


def choose_lane(requested: Priority | None, default: Priority, items: int,
                settings: Settings) -> Priority:
    if requested is None:
        return default
    if requested is Priority.INTERACTIVE and items > settings.interactive_max_items:
        raise InvalidRequest(
            "priority_not_allowed", f"priority interactive is for at most "
            f"{settings.interactive_max_items} runs at once; this request has {items}")
    return requested
