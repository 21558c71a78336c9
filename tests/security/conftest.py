"""Fixtures of the security tests: a service with one warm container, where reuse matters."""

from collections.abc import Iterator

import httpx
import pytest

from tests.security.probe import Warm
from tests.support import Service


@pytest.fixture(scope="session")
def warm_service(redis_url: str, docker_engine: None) -> Iterator[Service]:
    """One worker, one warm container: each execution follows the previous one in it."""
    svc = Service(redis_url, {"SANDBOX_POOL_SIZE": "1", "SANDBOX_MAX_BODY_BYTES": str(48 << 20)})
    svc.start(workers=1, wait_idle=1)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def warm(warm_service: Service) -> Iterator[Warm]:
    with httpx.Client(base_url=warm_service.base_url, timeout=120) as client:
        yield Warm(warm_service, client)
