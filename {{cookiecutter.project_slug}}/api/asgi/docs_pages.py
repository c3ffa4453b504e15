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
from importlib.resources import files

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

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
def served_files() -> dict[str, bytes]:
    """The package's files as the API serves them, read once per process."""
    static = files("fastapi_offline") / "static"
    served = {name: (static / name).read_bytes() for name in MEDIA_TYPES}
    served["redoc.standalone.js"] = served["redoc.standalone.js"].replace(*REDOCLY_LOGO)
    return served


@cache
def assets_path() -> str:
    """Where the files are served: under a digest of their content, so that a
    browser may keep them for good; another package version changes it."""
    digest = hashlib.sha256()
    for name, content in sorted(served_files().items()):
        digest.update(name.encode() + hashlib.sha256(content).digest())
    return f"/docs/assets/{digest.hexdigest()[:16]}"


@cache
def compressed(name: str) -> bytes:
    return gzip.compress(served_files()[name])


# A plain function: FastAPI runs it in its thread pool, so compressing a file on
# its first request (about 80 ms for Swagger UI's script) does not hold up the
# event loop. Text only: 2.8 MB of scripts and styles become 0.8 MB.
def docs_asset(name: str, request: Request) -> Response:
    if name not in MEDIA_TYPES:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Not found")
    content = served_files()[name]
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if MEDIA_TYPES[name].startswith("text/") and "gzip" in request.headers.get(
        "Accept-Encoding", ""
    ):
        content = compressed(name)
        headers["Content-Encoding"] = "gzip"
    return Response(content, media_type=MEDIA_TYPES[name], headers=headers)


def inline_script_hashes(page: HTMLResponse) -> list[str]:
    """CSP sources that allow exactly the page's own inline scripts: Swagger
    UI's page starts it from one, written with the app's settings."""
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in INLINE_SCRIPT.findall(bytes(page.body).decode())
    ]


def with_policy(page: HTMLResponse, *, style_src: str, worker_src: str) -> HTMLResponse:
    """Scripts from this origin and the page's own inline ones, data: images
    (Swagger UI's stylesheet holds its icons so), requests to this origin."""
    script_src = " ".join(["'self'", *inline_script_hashes(page)])
    page.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src {script_src}; style-src {style_src}; "
        f"img-src 'self' data:; connect-src 'self'; worker-src {worker_src}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


def add_docs_pages(app: FastAPI) -> None:
    """Serve the pages and their assets. Create the app with `docs_url=None`
    and `redoc_url=None`, so that FastAPI's own pages are not served."""
    assert app.openapi_url is not None, "the pages show the OpenAPI document"
    openapi_path = app.openapi_url
    assets = assets_path()
    app.add_api_route(assets + "/{name}", docs_asset, include_in_schema=False)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_path}",
            # The app's settings for Swagger UI. The password flow posts to
            # the token route: no redirect page.
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
            oauth2_redirect_url=None,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{assets}/swagger-ui.css",
            swagger_favicon_url=f"{root}{assets}/favicon.png",
        )
        return with_policy(page, style_src="'self'", worker_src="'none'")

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_redoc_html(
            openapi_url=f"{root}{openapi_path}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{assets}/favicon.png",
            with_google_fonts=False,
        )
        # ReDoc writes its styles into <style> elements while it loads, before
        # a nonce could reach it (styled-components): inline styles, but
        # scripts still only from here. It builds its search index in a worker
        # made from a blob of its own code: a blob: URL of this origin.
        return with_policy(page, style_src="'self' 'unsafe-inline'", worker_src="blob:")
