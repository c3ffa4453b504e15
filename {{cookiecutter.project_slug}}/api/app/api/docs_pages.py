"""The documentation pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), with
everything they load served from here.

FastAPI's own pages load their scripts and styles from a public CDN: on a
network that reaches nothing public they stay blank. These are the same pages,
written by the same FastAPI functions, pointed at the copies of Swagger UI and
ReDoc that the fastapi-offline package ships, and sent with a
Content-Security-Policy that lets them load nothing from another origin.
"""

import base64
import gzip
import hashlib
import re
from functools import cache
from importlib.metadata import version
from importlib.resources import files

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

ASSETS_PACKAGE = "fastapi_offline"
# The package's version is in the path, so a browser may keep the files for
# good: an upgrade changes their URLs.
ASSETS_PATH = f"/docs/assets/{version(ASSETS_PACKAGE)}"
MEDIA_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# ReDoc's sidebar shows Redocly's logo from Redocly's CDN, with no option to
# turn it off (redoc issue 2141). An empty data URL fails to load at once, and
# ReDoc then leaves the logo out; its "API docs by Redocly" link stays.
REDOCLY_LOGO = (b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"data:,")
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


@cache
def asset(name: str) -> tuple[bytes, bytes | None]:
    """One of the package's files, and gzipped if it is text (2.8 MB of
    scripts and styles become 0.8 MB), read once per process."""
    content = (files(ASSETS_PACKAGE) / "static" / name).read_bytes()
    if name == "redoc.standalone.js":
        content = content.replace(*REDOCLY_LOGO)
    compressed = gzip.compress(content) if MEDIA_TYPES[name].startswith("text/") else None
    return content, compressed


# A plain function: FastAPI runs it in its thread pool, so the first read and
# compression (about 80 ms for Swagger UI's script) does not hold up the event loop.
def docs_asset(name: str, request: Request) -> Response:
    if name not in MEDIA_TYPES:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Not found")
    content, compressed = asset(name)
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if compressed and "gzip" in request.headers.get("Accept-Encoding", ""):
        content = compressed
        headers["Content-Encoding"] = "gzip"
    return Response(content, media_type=MEDIA_TYPES[name], headers=headers)


def inline_script_hashes(page: HTMLResponse) -> str:
    """CSP sources that allow exactly the page's own inline scripts: Swagger
    UI's page starts it from one, written with the app's settings."""
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in INLINE_SCRIPT.findall(bytes(page.body).decode())
    )


def with_policy(page: HTMLResponse, *, style_src: str, worker_src: str) -> HTMLResponse:
    """Scripts from this origin and the page's own inline ones, data: images
    (Swagger UI's stylesheet holds its icons so), requests to this origin."""
    page.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'self' {inline_script_hashes(page)}; "
        f"style-src {style_src}; img-src 'self' data:; connect-src 'self'; "
        f"worker-src {worker_src}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


def add_docs_pages(app: FastAPI) -> None:
    """Serve the pages and their assets. Create the app with `docs_url=None`
    and `redoc_url=None`, so that FastAPI's own pages are not served."""
    assert app.openapi_url is not None, "the pages show the OpenAPI document"
    openapi_path = app.openapi_url
    app.add_api_route(ASSETS_PATH + "/{name}", docs_asset, include_in_schema=False)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_path}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            # The password flow posts to the token route: no redirect page.
            oauth2_redirect_url=None,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        return with_policy(page, style_src="'self'", worker_src="'none'")

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_redoc_html(
            openapi_url=f"{root}{openapi_path}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
        # ReDoc writes its styles into <style> elements while it loads, before
        # a nonce could reach it (styled-components): inline styles, but
        # scripts still only from here. It builds its search index in a worker
        # made from a blob of its own code: a blob: URL of this origin.
        return with_policy(page, style_src="'self' 'unsafe-inline'", worker_src="blob:")
