"""`GET /live`: a page that logs in, starts tasks and shows their state as the
WebSocket pushes it. Plain HTML and JavaScript served from here: no build step,
nothing loaded from another origin."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

router = APIRouter(prefix="/live", include_in_schema=False)

# The page's own files and this origin's API and WebSocket, nothing else: no
# inline script or style, no framing, no form posting elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Read once: the files do not change while the API runs.
PAGE = {
    name: (Path(__file__).parent / "page" / name).read_bytes()
    for name in ("live.html", "live.js", "live.css")
}


def page_file(name: str, media_type: str) -> Response:
    return Response(
        PAGE[name],
        media_type=media_type,
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


@router.get("")
async def live_page() -> Response:
    return page_file("live.html", "text/html; charset=utf-8")


@router.get("/live.js")
async def live_script() -> Response:
    return page_file("live.js", "text/javascript; charset=utf-8")


@router.get("/live.css")
async def live_style() -> Response:
    return page_file("live.css", "text/css; charset=utf-8")
