"""The console's routes: the page, its two static files, and the admin-only fragments."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.console import drill, views
from hub.console.render import SECURITY_HEADERS, page
from hub.errors import NotFound

CONSOLE_PATH = "/console"
API = CONSOLE_PATH + "/api"
STATIC_FILES = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}


async def shell(request: Request) -> Response:
    """The console page itself: no data, just the sign-in form and the frame fragments fill."""
    return page("shell.html")


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise NotFound(f"no console file {name}")
    body = resources.files("hub.console").joinpath("static", name).read_bytes()
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


def console_routes() -> list[BaseRoute]:
    return [
        Route(CONSOLE_PATH, shell, methods=["GET"]),
        Route(CONSOLE_PATH + "/static/{name}", static, methods=["GET"]),
        Route(API + "/overview", views.overview, methods=["GET"]),
        Route(API + "/streams", views.streams, methods=["GET"]),
        Route(API + "/streams/{stream_id}", views.stream_detail, methods=["GET"]),
        Route(API + "/streams/{stream_id}/status", views.stream_status, methods=["POST"]),
        Route(API + "/streams/{stream_id}/retry", views.stream_retry, methods=["POST"]),
        Route(API + "/drill", drill.drill_page, methods=["GET"]),
        Route(API + "/drill", drill.start_drill, methods=["POST"]),
        Route(API + "/drill/{txn}/events", drill.watch_drill, methods=["GET"]),
        Route(API + "/trace", views.trace, methods=["GET"]),
        Route(API + "/sources", views.sources, methods=["GET"]),
        Route(API + "/audit", views.audit, methods=["GET"]),
    ]
