"""GET /metrics: the Prometheus text format, for whom ``SIFTLINE_METRICS_ACCESS`` lets in.

- ``loopback`` (default): clients connecting from this machine (127.0.0.0/8, ::1) and Starlette's
  in-process test client (its client address is the name ``testclient``: it never comes over a
  socket); anyone else gets 403. Behind a reverse proxy on this machine every request comes from
  loopback: use ``key`` there.
- ``key``: an API key without namespace limits (``Authorization: Bearer …``): 401 without a valid key,
  403 with a namespace-limited one.
- ``open``: anyone. ``off``: the route is not there (404), and requests are not counted.

Not in the OpenAPI document: it is for Prometheus, not for API clients.
"""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from siftline.api.deps import ServicesDep
from siftline.errors import ForbiddenError
from siftline.service import keys

router = APIRouter(tags=["metrics"])
IN_PROCESS_CLIENT = "testclient"  # Starlette's TestClient: an in-process client, no network address
SETTING = "SIFTLINE_METRICS_ACCESS"


def is_loopback(host: str | None) -> bool:
    """Whether a client address is this machine's (IPv4 127/8, ::1, or IPv4-mapped 127/8)."""
    if host is None:
        return False
    if host == IN_PROCESS_CLIENT:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def check_access(svc: ServicesDep, request: Request) -> None:
    access = svc.settings.metrics_access
    if access == "key":
        key = keys.authenticate(svc.storage, request.headers.get("authorization"))
        keys.require_unlimited(key, f"read /metrics ({SETTING}=key)")
    elif access == "loopback":
        host = request.client.host if request.client is not None else None
        if not is_loopback(host):
            raise ForbiddenError(
                f"/metrics answers only clients on this machine ({SETTING}=loopback); this request came "
                f"from {host or 'an unknown address'}. To let Prometheus scrape it from elsewhere, set "
                f"{SETTING}=key (and scrape with an API key without namespace limits) or {SETTING}=open.",
                {"setting": SETTING, "value": access, "client": host},
            )


@router.get("/metrics", include_in_schema=False)
def metrics(svc: ServicesDep, request: Request) -> Response:
    """Counters and histograms of this server, and the storage's gauges (read at most every 5 s)."""
    check_access(svc, request)
    return Response(svc.telemetry.render(), media_type=CONTENT_TYPE_LATEST)
