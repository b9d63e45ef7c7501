"""The HTTP API v1 (FastAPI): see api.http.app.create_app."""
