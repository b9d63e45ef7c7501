"""The supervisor dashboard (``/ui/``): server-rendered pages over the API's auth and read models.

See docs/dashboard.md. :data:`router` (the pages) and :data:`actions_router` (the forms
that act) are included through :mod:`api.http.routers`.
"""

from api.http.ui.actions import router as actions_router
from api.http.ui.pages import router

__all__ = ["actions_router", "router"]
