"""Tenants: the teams sharing one deployment, each with its keys, limits and share.

SANDBOX_TENANTS_FILE names a TOML file of `[[tenants]]` tables. It is read again when it changes
(its mtime, size or inode, checked at every authentication) or on SIGHUP; a file that does not
parse or validate is refused with a log line naming the problem, and the tenants read last stay
in force. Without a file, SANDBOX_API_KEYS makes one tenant, `default`, an admin; without keys
at all (development), every caller is the admin tenant `anonymous`.

Keys are compared as SHA-256 digests, every tenant's each time (hmac.compare_digest, no early
exit), so neither the time taken nor the file reveals a key.
"""

import hashlib
import hmac
import logging
import os
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.settings import Settings

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
DEFAULT = "default"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # it goes into Redis keys and metric labels
HEX_DIGEST = r"^[0-9a-fA-F]{64}$"


class TenantsFileError(ValueError):
    """The tenants file cannot be used: unreadable, not TOML, or not a valid list of tenants."""


class TenantEntry(BaseModel):
    """One `[[tenants]]` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    key_sha256: Annotated[str, Field(pattern=HEX_DIGEST)] | None = None
    key: Annotated[str, Field(min_length=16)] | None = None
    admin: bool = False
    max_queued: Annotated[int, Field(ge=1)] | None = None
    max_running: Annotated[int, Field(ge=1)] | None = None
    weight: Annotated[int, Field(ge=1, le=1000)] = 1
    max_sessions: Annotated[int, Field(ge=0)] | None = None
    timeout: Annotated[float, Field(gt=0)] | None = None
    memory_mb: Annotated[int, Field(ge=1)] | None = None
    allow_network: bool = False

    @model_validator(mode="after")
    def _one_key(self) -> "TenantEntry":
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError(f"tenant {self.name!r}: give exactly one of key_sha256 and key")
        return self

    def digest(self) -> bytes:
        if self.key_sha256 is not None:
            return bytes.fromhex(self.key_sha256)
        return sha256(str(self.key))


class TenantsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenants: Annotated[list[TenantEntry], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> "TenantsFile":
        names = [t.name for t in self.tenants]
        if len(set(names)) != len(names):
            raise ValueError("two tenants have the same name")
        digests = [t.digest() for t in self.tenants]
        if len(set(digests)) != len(digests):
            raise ValueError("two tenants have the same key")
        return self


def sha256(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class Tenant:
    """A tenant in force: its name, whether it is an admin, its limits (None: no limit)."""

    name: str
    admin: bool = False
    max_queued: int | None = None
    max_running: int | None = None
    weight: int = 1
    max_sessions: int | None = None
    max_timeout_s: float | None = None
    max_memory_mb: int | None = None
    allow_network: bool = True

    @classmethod
    def from_entry(cls, entry: TenantEntry) -> "Tenant":
        return cls(entry.name, entry.admin, entry.max_queued, entry.max_running, entry.weight,
                   entry.max_sessions, entry.timeout, entry.memory_mb, entry.allow_network)

    def can_see(self, owner: str | None) -> bool:
        """Whether a job or session owned by `owner` is this tenant's to read and use."""
        return self.admin or owner == self.name

    def capped(self, settings: Settings) -> Settings:
        """The settings a request of this tenant is checked against: its caps within the
        deployment's (a default above a cap comes down to it)."""
        changes: dict[str, object] = {"allow_network": settings.allow_network and self.allow_network}
        if self.max_timeout_s is not None:
            cap = min(settings.max_timeout_s, self.max_timeout_s)
            changes |= {"max_timeout_s": cap, "default_timeout_s": min(settings.default_timeout_s, cap)}
        if self.max_memory_mb is not None:
            cap = max(settings.min_memory_mb, min(settings.max_memory_mb, self.max_memory_mb))
            changes |= {"max_memory_mb": cap, "default_memory_mb": min(settings.default_memory_mb, cap)}
        return settings.model_copy(update=changes)


ANONYMOUS_TENANT = Tenant(ANONYMOUS, admin=True)


@dataclass(frozen=True)
class TenantTable:
    """Tenants by key digest."""

    by_digest: tuple[tuple[bytes, Tenant], ...]

    @cached_property
    def tenants(self) -> dict[str, Tenant]:
        return {tenant.name: tenant for _, tenant in self.by_digest}

    def find(self, key: str) -> Tenant | None:
        given = sha256(key)
        found = None
        for digest, tenant in self.by_digest:  # every one, whichever matches
            if hmac.compare_digest(given, digest):
                found = tenant
        return found


def parse_tenants(text: str) -> TenantTable:
    try:
        parsed = TenantsFile.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise TenantsFileError(f"not TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise TenantsFileError(problems) from exc
    return TenantTable(tuple((e.digest(), Tenant.from_entry(e)) for e in parsed.tenants))


def read_tenants(path: Path) -> TenantTable:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TenantsFileError(f"unreadable: {exc}") from exc
    return parse_tenants(text)


def keys_table(settings: Settings) -> TenantTable:
    """SANDBOX_API_KEYS as one admin tenant: with one tenant there is nobody to keep apart, and
    its key holders keep what they had (the dashboard, /metrics, every session)."""
    tenant = Tenant(DEFAULT, admin=True)
    return TenantTable(tuple((sha256(k.get_secret_value()), tenant) for k in settings.api_keys))


class TenantDirectory:
    """The tenants in force for one API process, and the key → tenant lookup."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.path = Path(settings.tenants_file) if settings.tenants_file else None
        self._stamp: tuple[int, int, int] | None = None
        self.table = keys_table(settings)
        self._limits: dict[str, Settings] = {}
        if self.path is not None:
            self._stamp = self._stat()
            self._install(read_tenants(self.path))  # no last good file yet: fail to start

    @property
    def open(self) -> bool:
        """No keys anywhere: every caller is the anonymous admin (development)."""
        return not self.table.by_digest

    def authenticate(self, key: str | None) -> Tenant | None:
        """The tenant of a bearer key; None for a missing or unknown key."""
        self.refresh()
        if self.open:
            return ANONYMOUS_TENANT
        return self.table.find(key) if key else None

    def in_force(self) -> list[Tenant]:
        """The tenants callers may be now, by name."""
        tenants = self.table.tenants.values() if not self.open else [ANONYMOUS_TENANT]
        return sorted(tenants, key=lambda t: t.name)

    def limits(self, tenant: Tenant) -> Settings:
        """The settings capped for the tenant (computed once per load)."""
        capped = self._limits.get(tenant.name)
        if capped is None:
            capped = self._limits[tenant.name] = tenant.capped(self.settings)
        return capped

    def refresh(self) -> None:
        """Read the file again if it changed since it was last read."""
        if self.path is None:
            return
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            self.reload()

    def reload(self) -> None:
        """Read the file now (SIGHUP); a bad file is logged and the tenants in force kept."""
        if self.path is None:
            return
        try:
            table = read_tenants(self.path)
        except TenantsFileError as exc:
            log.error("tenants file refused; the tenants read before stay in force",
                      extra={"path": str(self.path), "error": str(exc)})
            return
        self._install(table)
        log.info("tenants file read", extra={"path": str(self.path),
                                             "tenants": sorted(table.tenants)})

    def _install(self, table: TenantTable) -> None:
        self.table = table
        self._limits = {}

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)  # type: ignore[arg-type]
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino
