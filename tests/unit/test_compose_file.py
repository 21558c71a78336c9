"""deploy/compose.yaml read as data: what each service gets, and that the pieces agree.

Bringing it up for real is tests/integration/test_compose.py.
"""

import re
from pathlib import Path
from urllib.parse import urlparse

import yaml

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
DEFAULT = re.compile(r"\$\{(\w+):?[-?]([^}]*)\}")


def resolved(value: str) -> str:
    """A value with every ${VAR:-default} replaced by its default."""
    return DEFAULT.sub(lambda m: m.group(2), value)


def environment(service: str) -> dict[str, str]:
    return {k: resolved(str(v)) for k, v in SERVICES[service]["environment"].items()}


def test_services_and_their_images_build_from_this_tree() -> None:
    assert set(SERVICES) == {"redis", "api", "proxy", "worker"}
    for name, service in SERVICES.items():
        assert service["image"], name
        build = service["build"]
        context = DEPLOY / (build if isinstance(build, str) else build["context"])
        dockerfile = "Dockerfile" if isinstance(build, str) else build["dockerfile"]
        assert (context / dockerfile).is_file(), name
    assert SERVICES["api"]["image"] == SERVICES["worker"]["image"]


def test_every_setting_named_is_a_real_settings_field() -> None:
    fields = {f"SANDBOX_{name.upper()}" for name in Settings.model_fields}
    for name in ("api", "worker"):
        env = environment(name)
        assert set(env) <= fields, set(env) - fields
        settings = {k.removeprefix("SANDBOX_").lower(): v for k, v in env.items()}
        Settings(**settings)


def test_api_and_worker_find_redis_by_its_service_name() -> None:
    for name in ("api", "worker"):
        url = urlparse(environment(name)["SANDBOX_REDIS_URL"])
        assert url.hostname in SERVICES
        assert SERVICES[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_two_api_replicas_behind_a_proxy_published_on_loopback_by_default() -> None:
    assert SERVICES["api"]["deploy"]["replicas"] == 2
    assert "ports" not in SERVICES["api"]
    (published,) = SERVICES["proxy"]["ports"]
    host, _, container_port = resolved(published).split(":")
    assert host == "127.0.0.1"
    haproxy = (DEPLOY / "proxy" / "haproxy.cfg").read_text()
    assert re.search(rf"^\s*bind :{container_port}$", haproxy, re.M)
    api_addr = re.search(r"SANDBOX_API_ADDR=(\S+)", (DEPLOY / "proxy" / "Dockerfile").read_text())
    api_host, api_port = api_addr.group(1).split(":")
    assert api_host == "api"
    assert api_port == re.search(r"SANDBOX_PORT=(\d+)", (ROOT / "Dockerfile").read_text()).group(1)


def test_api_keys_are_required_not_defaulted() -> None:
    assert SERVICES["api"]["environment"]["SANDBOX_API_KEYS"].startswith("${SANDBOX_API_KEYS:?")
    assert "SANDBOX_API_KEYS" not in SERVICES["worker"]["environment"]


def test_only_the_worker_touches_the_docker_socket_and_none_is_privileged() -> None:
    for name, service in SERVICES.items():
        mounts = [resolved(v) for v in service.get("volumes", [])]
        socket_mounts = [m for m in mounts if m.endswith(":/var/run/docker.sock")]
        assert len(socket_mounts) == (1 if name == "worker" else 0), name
        assert not service.get("privileged"), name
    assert SERVICES["worker"]["group_add"], "the worker reaches the socket through its group"
    assert "user" not in SERVICES["worker"], "the image's unprivileged user"


def test_redis_appends_only_and_keeps_its_data_in_a_volume() -> None:
    dockerfile = (DEPLOY / "redis" / "Dockerfile").read_text()
    assert re.search(r'"--appendonly",\s*"yes"', dockerfile)
    (mount,) = SERVICES["redis"]["volumes"]
    volume, path = mount.split(":")
    assert path == "/data"
    assert volume in COMPOSE["volumes"]
