"""The API process freezes the heap it built before serving (service/heap.py)."""

import gc
import uuid

from service.api.app import create_app
from service.settings import Settings


async def test_the_api_freezes_what_it_built_before_it_serves(redis_url: str) -> None:
    app = create_app(Settings(redis_url=redis_url, key_prefix=f"test-{uuid.uuid4().hex[:8]}"))
    before = gc.get_freeze_count()
    try:
        async with app.router.lifespan_context(app):
            serving = gc.get_freeze_count()
    finally:
        gc.unfreeze()  # the rest of the suite runs in this process
    # The app's routes and validators, the MCP server, the Redis clients: tens of thousands.
    assert serving - before > 20_000
