"""Version 1 of the HTTP API; public routes need no credentials."""

from fastapi import APIRouter

from app.api.v1.public import health

api_router = APIRouter()
api_router.include_router(health.router, tags=["public"])
