"""The heap a service process builds as it starts, kept out of the garbage collector's way.

A full collection walks every tracked object: in the API process (FastAPI's routes, pydantic's
validators, the MCP server) that took 60 ms, and each one stalled every request in flight then,
64 session opens at once included. What a process builds before it serves lives as long as it
does, so it is frozen once built: collections walk only what serving allocates.
"""

import gc


def freeze_startup_heap() -> None:
    """Collect what starting left behind, then exempt everything alive from later collections."""
    gc.collect()
    gc.freeze()
