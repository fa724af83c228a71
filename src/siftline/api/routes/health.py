"""GET /v1/health: liveness, no key needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from siftline import __version__
from siftline.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/v1/health", summary="Health check (no API key needed)")
async def health(svc: ServicesDep) -> dict[str, Any]:
    return {"status": "ok", "version": __version__, "storage": svc.storage.info()["backend"]}
