"""Optional bearer-key authentication: on when SANDBOX_API_KEYS lists keys."""

import hmac

from fastapi import Depends, HTTPException, Request

from service.api.services import Services, get_services


async def require_key(request: Request, services: Services = Depends(get_services)) -> None:
    keys = services.settings.api_keys
    if not keys:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and any(
        hmac.compare_digest(given.encode(), k.get_secret_value().encode()) for k in keys
    ):
        return
    raise HTTPException(401, "a valid 'Authorization: Bearer <key>' header is required",
                        headers={"WWW-Authenticate": "Bearer"})
