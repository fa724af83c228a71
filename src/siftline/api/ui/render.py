"""Rendering the inspector's pages: one Jinja2 environment over the packaged templates, the number and
time formats every page shares, and the headers every page carries (no caching, a strict CSP)."""

from __future__ import annotations

import gzip
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, Response

from siftline import __version__

HERE = Path(__file__).parent
NONE = "\u2013"  # an en dash: what a missing value shows
MINUS = "\u2212"  # a true minus sign, for signed differences
STATIC_DIR = HERE / "static"

# Only this server's own files: no inline script, no other host. Bars are placed with style attributes.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def as_dict(value: Any) -> dict[str, Any]:
    """A record's value when it is an object, else an empty one (records are read leniently)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def ms(value: Any) -> str:
    """12.3 ms, 0.41 ms, 1.24 s, 2 min 3 s."""
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        return NONE
    if value >= 60_000:
        return f"{int(value // 60_000)} min {round(value % 60_000 / 1000)} s"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NONE
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def credits(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NONE
    return f"{value:.4f}".rstrip("0").rstrip(".") if value else "0"


def score(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NONE
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e4:
        return f"{value:.4g}"
    return f"{value:.4f}".rstrip("0").rstrip(".")


def signed(value: float, fmt: Any = num) -> str:
    """+1.2 ms, \u22123, \u00b10: a plus, a true minus sign (U+2212), or plus-minus for zero."""
    if value == 0:
        return "\u00b10"
    text = str(fmt(abs(value)))
    if not any(c in "123456789" for c in text):  # rounds to zero: 0.00 ms
        return "\u00b1" + text
    return ("+" if value > 0 else MINUS) + text


def pct(value: Any, digits: int = 0) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NONE
    return f"{value * 100:.{digits}f} %"


def when(value: Any) -> str:
    """An ISO time as 2026-01-31 12:00:05 UTC."""
    if not value:
        return NONE
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return str(value)
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC")


def to_json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(
        ms=ms, num=num, credits=credits, score=score, pct=pct, when=when, tojson_compact=to_json
    )
    env.globals.update(version=__version__)
    return env


ENV = _environment()


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page with the security headers; ``context`` goes to the template."""
    html = ENV.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


GZIP_FROM = 32 * 1024  # bytes: smaller bodies go as they are


def gzipped(response: Response, accept_encoding: str | None) -> Response:
    """The response gzip-compressed (level 1: ~10x on these pages, a few ms) when it is large and the client
    takes gzip; the execution page of 500 documents with lineage is ~1.7 MB of very repetitive HTML."""
    body = bytes(response.body)
    if len(body) < GZIP_FROM or "gzip" not in (accept_encoding or "").lower():
        return response
    packed = gzip.compress(body, compresslevel=1)
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    headers.update({"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    return Response(packed, status_code=response.status_code, headers=headers, media_type=response.media_type)
