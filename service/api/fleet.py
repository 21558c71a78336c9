"""The workers as the API reads them: those alive now, from their heartbeats (readiness, the
dashboard, metrics and the NeMo-Skills status route)."""

from service.api.services import Services

HEARTBEATS_OF_SILENCE = 3  # a worker silent this many heartbeats counts as gone


async def live_workers(services: Services) -> list[dict[str, str]]:
    """Heartbeat descriptions of the workers that are alive now."""
    return await services.queue.live_workers(services.settings.heartbeat_s * HEARTBEATS_OF_SILENCE)
