"""The execution inspector at ``/ui``: server-rendered pages (Jinja2 templates), plain JavaScript and CSS
shipped in this package (``templates/``, ``static/``), nothing fetched from anywhere else.

``install(app)`` mounts it: static files first, then the sign-in forms, the pages and their JSON, and
last the catch-all 404 of ``/ui/…`` (a page added later goes in ``ROUTERS``, before it).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from siftline.api.ui import auth, data, pages
from siftline.api.ui.render import STATIC_DIR

ROUTERS = (auth.router, pages.router, data.router)


def install(app: FastAPI) -> None:
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(pages.fallback)
    app.add_exception_handler(auth.SignInRequired, auth.sign_in_required)
