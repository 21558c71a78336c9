"""The tenants file: parsing, refusals, key lookup, caps, and reloading (no Redis needed)."""

import hashlib
import os
from pathlib import Path

import pytest

from service.settings import Settings
from service.tenants import (
    ANONYMOUS,
    DEFAULT,
    TenantDirectory,
    TenantsFileError,
    parse_tenants,
)

KEY_A = "key-of-team-a-0123456789"
KEY_B = "key-of-team-b-0123456789"
FILE = f"""
[[tenants]]
name = "team-a"
key_sha256 = "{hashlib.sha256(KEY_A.encode()).hexdigest()}"
max_queued = 10
max_running = 2
weight = 3
max_sessions = 1
timeout = 5
memory_mb = 256

[[tenants]]
name = "ops"
key = "{KEY_B}"
admin = true
"""


def write(path: Path, text: str) -> None:
    path.write_text(text)
    stamp = path.stat().st_mtime_ns + 1_000_000_000  # a new mtime even within one tick
    os.utime(path, ns=(stamp, stamp))


def test_a_file_names_each_key_its_tenant() -> None:
    table = parse_tenants(FILE)
    team = table.find(KEY_A)
    assert team is not None and team.name == "team-a" and not team.admin
    assert (team.max_queued, team.max_running, team.weight, team.max_sessions) == (10, 2, 3, 1)
    ops = table.find(KEY_B)
    assert ops is not None and ops.admin
    assert table.find("wrong-key-0123456789") is None


@pytest.mark.parametrize("text, problem", [
    ("tenants = [", "not TOML"),
    ("[[tenants]]\nname = 'a'\n", "exactly one of key_sha256 and key"),
    (f"[[tenants]]\nname = 'a b'\nkey = '{KEY_A}'\n", "name"),
    (f"[[tenants]]\nname = 'a'\nkey = '{KEY_A}'\nweight = 0\n", "weight"),
    (f"[[tenants]]\nname = 'a'\nkey = '{KEY_A}'\nmax_runing = 3\n", "max_runing"),
    (f"[[tenants]]\nname = 'a'\nkey = '{KEY_A}'\n[[tenants]]\nname = 'b'\nkey = '{KEY_A}'\n",
     "same key"),
    (f"[[tenants]]\nname = 'a'\nkey = '{KEY_A}'\n[[tenants]]\nname = 'a'\nkey = '{KEY_B}'\n",
     "same name"),
    ("[[tenants]]\nname = 'a'\nkey_sha256 = 'abc'\n", "key_sha256"),
    ("", "tenants"),
])
def test_a_bad_file_is_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(TenantsFileError, match=problem):
        parse_tenants(text)


def test_caps_narrow_the_deployment_limits() -> None:
    settings = Settings(allow_network=True)
    team = parse_tenants(FILE).find(KEY_A)
    assert team is not None
    capped = team.capped(settings)
    assert capped.max_timeout_s == 5 and capped.default_timeout_s == 5
    assert capped.max_memory_mb == 256 and capped.default_memory_mb == 256
    assert not capped.allow_network  # a tenant gets network only when its entry says so
    ops = parse_tenants(FILE).find(KEY_B)
    assert ops is not None and ops.capped(settings).max_timeout_s == settings.max_timeout_s


def test_without_a_file_the_api_keys_are_one_admin_tenant_and_no_keys_anyone() -> None:
    keyed = TenantDirectory(Settings(api_keys=[KEY_A]))
    tenant = keyed.authenticate(KEY_A)
    assert tenant is not None and tenant.name == DEFAULT and tenant.admin
    assert keyed.authenticate(KEY_B) is None and keyed.authenticate(None) is None
    anyone = TenantDirectory(Settings()).authenticate(None)
    assert anyone is not None and anyone.name == ANONYMOUS and anyone.admin


def test_the_file_and_the_api_keys_are_not_both_set(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        Settings(api_keys=[KEY_A], tenants_file=str(tmp_path / "t.toml"))


def test_a_changed_file_is_read_again_and_a_bad_one_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    write(path, FILE)
    directory = TenantDirectory(Settings(tenants_file=str(path)))
    assert directory.authenticate(KEY_A) is not None
    without_a = FILE.split("[[tenants]]")[2]
    write(path, "[[tenants]]" + without_a)
    assert directory.authenticate(KEY_A) is None  # removed: refused at once
    assert directory.authenticate(KEY_B) is not None
    write(path, "[[tenants]]\nname = 'broken'\n")
    assert directory.authenticate(KEY_B) is not None  # the last good file stays in force
    path.unlink()
    assert directory.authenticate(KEY_B) is not None


def test_a_bad_file_at_start_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text("not = [toml")
    with pytest.raises(TenantsFileError):
        TenantDirectory(Settings(tenants_file=str(path)))
