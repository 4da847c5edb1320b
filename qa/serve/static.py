"""Files the server hands out as they are: the chat widget, its demo page, and /docs with local assets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import metadata, resources

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response

DEMO_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)
# /docs assets from the fastapi-offline package (Swagger UI 5.32.6 in 1.7.7), never a CDN. ReDoc is off: the
# package's ReDoc 2.5.3 bundle still loads its footer logo from cdn.redoc.ly on every view, with no option to stop it.
DOCS_PACKAGE = "fastapi-offline"
DOCS_ASSETS: dict[str, tuple[str, str]] = {  # URL path -> (file in fastapi_offline/static, media type)
    "/docs/swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "/docs/swagger-ui.css": ("swagger-ui.css", "text/css; charset=utf-8"),
    "/docs/favicon.png": ("favicon.png", "image/png"),
}


def install_widget(app: FastAPI) -> None:
    files = resources.files("qa") / "widget"

    def static(name: str, media_type: str, csp: bool = False) -> Callable[[], Awaitable[Response]]:
        async def handler() -> Response:
            headers = {"Cache-Control": "no-cache"}
            if csp:
                headers["Content-Security-Policy"] = DEMO_CSP
            return Response((files / name).read_bytes(), media_type=media_type, headers=headers)

        return handler

    app.add_api_route("/widget.js", static("widget.js", "text/javascript; charset=utf-8"), include_in_schema=False)
    app.add_api_route("/widget.css", static("widget.css", "text/css; charset=utf-8"), include_in_schema=False)
    app.add_api_route("/", static("demo.html", "text/html; charset=utf-8", csp=True), include_in_schema=False)


def install_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) with every asset served from this server: FastAPI's own page loads them from a CDN,
    so on an offline network it is blank. Swagger's validator badge (an online service) is off."""
    files = resources.files(DOCS_PACKAGE.replace("-", "_")) / "static"
    stamp = f"?v={metadata.version(DOCS_PACKAGE)}"  # a new package version is a new URL: caches may keep a day
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    def asset(name: str, media_type: str) -> Callable[[], Awaitable[Response]]:
        loaded: list[bytes] = []  # read on first use, then kept (the Swagger bundle is 1.5 MB)

        async def handler() -> Response:
            if not loaded:
                loaded.append((files / name).read_bytes())
            return Response(loaded[0], media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})

        return handler

    for path, (name, media_type) in DOCS_ASSETS.items():
        app.add_api_route(path, asset(name, media_type), include_in_schema=False)

    def local(request: Request, path: str) -> str:
        root: str = request.scope.get("root_path", "")
        return root.rstrip("/") + path  # behind a proxy's path prefix too

    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=local(request, openapi_url),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=local(request, "/docs/swagger-ui-bundle.js") + stamp,
            swagger_css_url=local(request, "/docs/swagger-ui.css") + stamp,
            swagger_favicon_url=local(request, "/docs/favicon.png") + stamp,
            oauth2_redirect_url=local(request, oauth2_redirect_url),
            swagger_ui_parameters={"validatorUrl": None},
        )

    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_api_route("/docs", swagger_ui, include_in_schema=False)
    app.add_api_route(oauth2_redirect_url, swagger_ui_redirect, include_in_schema=False)
