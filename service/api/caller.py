"""The caller of a synchronous route: if it hangs up, its jobs are cancelled (service/hangup.py)."""

from fastapi import Request

from service import hangup


async def watch_caller(request: Request) -> None:
    """Router dependency of the routes that wait for results. The body has been read by the
    time anything waits (FastAPI reads it to validate the request), so the receive channel has
    nothing left to say but the disconnect."""
    hangup.watch(request.receive)
