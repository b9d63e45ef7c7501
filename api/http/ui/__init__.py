"""The supervisor dashboard (``/ui/``): server-rendered pages over the API's auth and read models.

See docs/dashboard.md. :data:`router` is included through :mod:`api.http.routers`.
"""

from api.http.ui.pages import router

__all__ = ["router"]
