"""The web UI, served by the API's own process: one static page (`static/index.html`), its script
and style sheet, and the OpenAPI page at /docs with Swagger UI's files from the
`swagger-ui-bundle-v2` package (no CDN: the service works offline).

Plain HTML and one small script, no JS build and no node at run time: the UI is six forms and
tables over the JSON API, which a framework would not shorten, and it keeps setup to the README's
commands (docs/serve.md, "Why no JS build"). The page holds no data; its script fetches
everything from the API (sending the token when the server has one) and writes every value with
`textContent`, so a text, a generated answer or a file name shows as text, never as markup.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from helpers.serve.security import UI_POLICY

STATIC = Path(__file__).parent / "static"
# Swagger UI's page starts it with an inline script (FastAPI's own page); nothing of a user's is in it.
DOCS_POLICY = UI_POLICY.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")


def install(app: FastAPI) -> None:
    """Add the page, its files and /docs to the app."""
    import swagger_ui_bundle

    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html",
                            headers={"Content-Security-Policy": UI_POLICY, "Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url="/openapi.json", title="SentiCompare API",
                                   swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger/swagger-ui.css",
                                   swagger_favicon_url="/static/swagger/favicon-32x32.png")
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page
