"""Session fixtures: a real Redis, a real Docker engine, and the service started on them."""

from collections.abc import Iterator

import httpx
import pytest

from tests.support import Service, ensure_docker, redis_server

collect_ignore = ["bench"]  # the benchmark (python -m tests.bench) holds no tests


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def docker_engine() -> None:
    ensure_docker()


@pytest.fixture(scope="session")
def service(redis_url: str, docker_engine: None) -> Iterator[Service]:
    """Two workers (three warm containers each) and one API process."""
    svc = Service(redis_url, {"SANDBOX_RESULT_TTL_S": "20", "SANDBOX_MAX_BODY_BYTES": str(4 << 20)})
    svc.start(workers=2, wait_idle=6)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def client(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.base_url, timeout=120) as c:
        yield c
