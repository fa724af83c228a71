"""Request dependencies: services, the caller's key, and the namespace a request acts in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from siftline.models import ApiKey, Collection, Namespace
from siftline.service import collections, keys, namespaces
from siftline.service.container import Services

T = TypeVar("T")
_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sk_…`.")


# The dependencies are ``async def`` though they call storage: on SQLite a key, namespace or collection
# lookup is one indexed read (tens of µs), less than the hop to the thread pool a plain ``def`` would cost
# (FastAPI runs each sync dependency in the pool). On PostgreSQL a lookup is a network round trip, which
# may wait for a connection while the database is away: there they run in the pool (``_blocking``), so
# the event loop never waits on the network. The storage says which it is (``Storage.blocking_reads``).


async def _blocking(svc: Services, fn: Callable[..., T], *args: Any) -> T:
    if not svc.storage.blocking_reads:
        return fn(*args)
    return await run_in_threadpool(fn, *args)


async def services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(services)]


_KEY = "siftline.api_key"  # the request's key, once authenticated and counted against its rate limit


async def api_key(
    request: Request,
    svc: ServicesDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> ApiKey:
    """The caller's key (401 when missing, unknown, revoked or expired), counted against its rate limit
    (429 with Retry-After when over it): once per request, also when ``hot.py`` hands one to FastAPI. A key
    refused moments ago is refused again before it is read: hammering costs no storage round trip."""
    known: ApiKey | None = request.scope.get(_KEY)
    if known is not None:  # hot.py read it and handed the request to FastAPI: not read or counted twice
        return known
    authorization = request.headers.get("authorization")
    key_hash = keys.token_hash(authorization)
    if key_hash is not None:
        svc.limiter.check_refused(key_hash)
    key = await _blocking(svc, keys.authenticate, svc.storage, authorization, key_hash)
    svc.limiter.check(key, key_hash)
    request.scope[_KEY] = key
    return key


KeyDep = Annotated[ApiKey, Depends(api_key)]


async def namespace(
    svc: ServicesDep,
    key: KeyDep,
    x_namespace: Annotated[
        str | None,
        Header(description="Namespace name or ns_… id; falls back to ?namespace=, then 'default'."),
    ] = None,
    namespace_param: Annotated[
        str | None, Query(alias="namespace", description="Namespace when no header.")
    ] = None,
) -> Namespace:
    requested = x_namespace or namespace_param or namespaces.DEFAULT_NAMESPACE
    return await _blocking(svc, namespaces.get, svc.storage, key, requested)


NamespaceDep = Annotated[Namespace, Depends(namespace)]


async def collection(svc: ServicesDep, ns: NamespaceDep, collection_identifier: str) -> Collection:
    return await _blocking(svc, collections.get, svc.storage, ns, collection_identifier)


CollectionDep = Annotated[Collection, Depends(collection)]
