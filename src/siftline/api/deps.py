"""Request dependencies: services, the caller's key, and the namespace a request acts in."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from siftline.models import ApiKey, Collection, Namespace
from siftline.service import collections, keys, namespaces
from siftline.service.container import Services

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sk_…`.")


# The dependencies are ``async def`` though they call storage: a key, namespace or collection lookup is one
# indexed SQLite read (tens of µs), less than the hop to the thread pool a plain ``def`` would cost
# (FastAPI runs each sync dependency in the pool).


async def services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(services)]


async def api_key(
    request: Request,
    svc: ServicesDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> ApiKey:
    return keys.authenticate(svc.storage, request.headers.get("authorization"))


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
    return namespaces.get(svc.storage, key, requested)


NamespaceDep = Annotated[Namespace, Depends(namespace)]


async def collection(svc: ServicesDep, ns: NamespaceDep, collection_identifier: str) -> Collection:
    return collections.get(svc.storage, ns, collection_identifier)


CollectionDep = Annotated[Collection, Depends(collection)]
