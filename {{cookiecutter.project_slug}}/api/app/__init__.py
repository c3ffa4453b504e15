"""The HTTP API: the FastAPI application, its routes, models and settings."""
