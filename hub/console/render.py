"""Rendering console pages: one Jinja2 environment (autoescaped) and the security headers."""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse

if TYPE_CHECKING:
    from jinja2 import Environment

# Scripts, styles and fetches from this origin only; nothing inline, no framing, no plugins.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def when(at: object) -> str:
    """A Unix time as UTC with milliseconds ("-" for none, or anything not a time)."""
    if not isinstance(at, int | float) or isinstance(at, bool) or not 0 < at < 1e11:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"


def ms(seconds: object) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    return f"{seconds * 1000:.0f} ms"


def method_name(uri: str) -> str:
    return {"urn:ietf:rfc:8935": "push", "urn:ietf:rfc:8936": "poll"}.get(uri, uri)


@functools.cache
def environment() -> Environment:
    """Built on the first console request, so ``ssf-hub serve`` starts without Jinja2."""
    from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("hub.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=ChainableUndefined,  # an optional field left out renders empty, never a 500
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, ms=ms, method=method_name)
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(template, **context), status_code=status_code, headers=SECURITY_HEADERS)
