"""The live comparison page: hand-written HTML, CSS and JS shipped in the package.

Nothing is fetched from elsewhere (the lab may run with no internet): the page draws its
charts as SVG and reads its figures from ``GET /api/pools`` on the same origin, which the
Content-Security-Policy below holds it to.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

PAGE = "index.html"
ASSETS = {"live.css": "text/css", "live.js": "text/javascript"}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"}


def read_static(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


def add_page_routes(app: web.Application) -> None:
    """``GET /`` and ``GET /static/<name>``, from files read once, here."""
    page = read_static(PAGE)
    assets = {name: (read_static(name), kind) for name, kind in ASSETS.items()}

    async def index(_request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8",
                            headers=_HEADERS)  # fmt: skip

    async def asset(request: web.Request) -> web.Response:
        found = assets.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, kind = found
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=_HEADERS)

    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", asset)
