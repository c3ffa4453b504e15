"""`GET /live`: a page that logs in, starts tasks and shows their state as the
WebSocket pushes it. Plain HTML and JavaScript served from here: no build step,
nothing loaded from another origin."""

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import Response

router = APIRouter(prefix="/live", include_in_schema=False)

# The page's own files and this origin's API and WebSocket, nothing else: no
# inline script or style, no framing, no form posting elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
MEDIA_TYPES = {
    "live.html": "text/html; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "live.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
# Read once: the files do not change while the API runs.
FILES = {name: (Path(__file__).parent / "page" / name).read_bytes() for name in MEDIA_TYPES}


def page_file(name: str) -> Response:
    return Response(
        FILES[name],
        media_type=MEDIA_TYPES[name],
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            # Each file is what its type says, never sniffed into something else.
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("")
async def live_page() -> Response:
    return page_file("live.html")


@router.get("/{name}")
async def live_page_file(name: str) -> Response:
    if name not in FILES:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Not found")
    return page_file(name)
