"""Version 1 of the HTTP API.

Public routes need no credentials. Every private route needs a valid bearer
token: the dependency sits on the router, so a new route cannot forget it.
{%- if cookiecutter.use_websockets | enabled %}
The WebSocket authenticates on its own (a socket carries no bearer header).
{%- endif %}
"""

from fastapi import APIRouter, Depends

from app.api.deps import get_current_user
from app.api.responses import ANY_REQUEST, PRIVATE
from app.api.v1.private import notes, task_endpoints, tasks, users
from app.api.v1.public import auth, health
{%- if cookiecutter.use_websockets | enabled %}
from app.api.v1.sockets import router as sockets_router
{%- endif %}

# The description /docs shows above the routes.
API_DESCRIPTION = (
    "Log in with **Authorize** (the first superuser's e-mail and password from `.env`), "
    "then try the private routes."
{%- if cookiecutter.use_websockets | enabled %}
    " [/live](/live) starts tasks and shows their state as the WebSocket "
    "`/api/v1/ws/tasks/{task_id}` pushes it."
{%- endif %}
)

public_router = APIRouter(tags=["public"])
public_router.include_router(health.router)
public_router.include_router(auth.router)

private_router = APIRouter(
    tags=["private"], dependencies=[Depends(get_current_user)], responses=PRIVATE
)
private_router.include_router(users.router)
private_router.include_router(notes.router)
private_router.include_router(tasks.router)
private_router.include_router(task_endpoints.router)

api_router = APIRouter(responses=ANY_REQUEST)
api_router.include_router(public_router)
api_router.include_router(private_router)
{%- if cookiecutter.use_websockets | enabled %}
api_router.include_router(sockets_router)
{%- endif %}
