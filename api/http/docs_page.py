"""``/docs``: Swagger UI from files on this server — a county intranet has no CDN.

FastAPI's own ``/docs`` loads Swagger UI's script and style from a CDN (and its
favicon from FastAPI's site), and ``/redoc`` loads ReDoc from one. Here ``/docs``
serves the Swagger UI files that the ``swagger-ui-bundle-v2`` package ships (Swagger UI
5, which renders the OpenAPI 3.1 that FastAPI writes); ReDoc is not served, as no
package ships it and ``/docs`` covers the same ground.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from domain.errors import NotFound

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
PREFIX = "/docs/assets"


def assets_folder() -> Path:
    from swagger_ui_bundle import swagger_ui_path

    return Path(swagger_ui_path)


def install_docs(app: FastAPI) -> None:
    """``/docs`` and its three files under ``/docs/assets/``."""
    folder = assets_folder()

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — docs",
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/favicon-32x32.png",
        )

    @app.get(f"{PREFIX}/{{name}}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise NotFound(f"no file {name!r}", resource="asset", id=name)
        return FileResponse(
            folder / name,
            media_type=ASSETS[name],
            headers={"Cache-Control": "public, max-age=86400"},
        )
