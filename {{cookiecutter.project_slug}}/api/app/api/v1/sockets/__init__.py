"""WebSockets: a task's state pushed to its owner as it changes (task_socket.py),
and a page that shows it (page.py)."""

from fastapi import APIRouter

from app.api.v1.sockets import page, task_socket

router = APIRouter()
router.include_router(task_socket.router)
router.include_router(page.router)
