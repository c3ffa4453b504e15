"""ASGI pieces the app plugs in, independent of it (nothing here imports `app`):
Prometheus metrics, the request body limit, the offline documentation pages."""
