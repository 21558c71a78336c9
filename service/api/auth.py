"""Bearer-key authentication: a key names its tenant (service/tenants.py); no keys configured
at all (development) makes every caller the anonymous admin."""

from fastapi import Depends, HTTPException, Request

from service import logs
from service.tenants import Tenant, TenantDirectory


def bearer(header: str) -> str | None:
    """The key of an `Authorization: Bearer <key>` header."""
    scheme, _, given = header.partition(" ")
    return given if scheme.lower() == "bearer" and given else None


async def require_key(request: Request) -> Tenant:
    """The caller's tenant; 401 without a key the tenants in force know."""
    directory: TenantDirectory = request.app.state.tenants
    tenant = directory.authenticate(bearer(request.headers.get("authorization", "")))
    if tenant is None:
        raise HTTPException(401, "a valid 'Authorization: Bearer <key>' header is required",
                            headers={"WWW-Authenticate": "Bearer"})
    logs.bind_tenant(tenant.name)
    return tenant


async def require_admin(tenant: Tenant = Depends(require_key)) -> Tenant:
    """An admin tenant; 403 for any other (the route is one for operators)."""
    if not tenant.admin:
        raise HTTPException(403, "only an admin tenant may read this")
    return tenant
