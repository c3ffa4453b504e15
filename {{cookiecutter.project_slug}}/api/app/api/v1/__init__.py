"""Version 1 of the HTTP API.

Public routes need no credentials. Every private route needs a valid bearer
token: the dependency is given where the private routers are included, so a
new route of theirs cannot forget it.
{%- if cookiecutter.use_websockets | enabled %}
The WebSocket authenticates on its own (a socket carries no bearer header).
{%- endif %}
"""

from fastapi import Depends, FastAPI

from app.api.deps import get_current_user
from app.api.responses import ANY_REQUEST, PRIVATE
{%- if cookiecutter.use_examples | enabled %}
from app.api.v1.private import example_tasks, notes, tasks, users
{%- else %}
from app.api.v1.private import tasks, users
{%- endif %}
from app.api.v1.public import auth, health
{%- if cookiecutter.use_websockets | enabled %}
from app.api.v1.sockets import {% if cookiecutter.use_examples | enabled %}live_page, {% endif %}task_socket
{%- endif %}

# The description /docs shows above the routes.
API_DESCRIPTION = (
    "Log in with **Authorize** (the first superuser's e-mail and password from `.env`), "
    "then try the private routes."
{%- if cookiecutter.use_websockets | enabled and cookiecutter.use_examples | enabled %}
    " [/live](/live) starts tasks and shows their state as the WebSocket "
    "`/api/v1/ws/tasks/{task_id}` pushes it."
{%- endif %}
)

# Every router is included in the app itself, not in a router of routers:
# FastAPI matches a request level by level, and each level of nesting cost
# about 80 us of CPU per request to the deepest routes (`make bench`).
PUBLIC_ROUTERS = [health.router, auth.router]
{%- if cookiecutter.use_examples | enabled %}
PRIVATE_ROUTERS = [users.router, tasks.router, notes.router, example_tasks.router]
{%- else %}
PRIVATE_ROUTERS = [users.router, tasks.router]
{%- endif %}
{%- if cookiecutter.use_websockets | enabled %}
# The socket authenticates on its own; the live page is public.
OTHER_ROUTERS = [task_socket.router{% if cookiecutter.use_examples | enabled %}, live_page.router{% endif %}]
{%- endif %}


def include_api_routes(app: FastAPI) -> None:
    for router in PUBLIC_ROUTERS:
        app.include_router(router, tags=["public"], responses=ANY_REQUEST)
    for router in PRIVATE_ROUTERS:
        app.include_router(
            router,
            tags=["private"],
            dependencies=[Depends(get_current_user)],
            responses={**ANY_REQUEST, **PRIVATE},
        )
{%- if cookiecutter.use_websockets | enabled %}
    for router in OTHER_ROUTERS:
        app.include_router(router, responses=ANY_REQUEST)
{%- endif %}
