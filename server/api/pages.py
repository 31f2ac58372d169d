"""The web pages: the public town page, a factory page, the officers' console, the operator's
page, the login page, and the API explorer. Each page is a small HTML shell (Jinja2) in Thai or
English; its script reads the API. Everything it loads is served from server/web/static: nothing
comes from the internet.

Language: ``?lang=th`` or ``?lang=en``, else the browser's Accept-Language, else Thai.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

import eit
from eit.confread import load_yaml
from eit.glossary import glossary
from eit.model import ID_PATTERN
from eit.registry import Registry

WEB = Path(__file__).resolve().parent.parent / "web"
STANDARDS = Path(eit.__file__).resolve().parent / "standards"
LANGUAGES = ("th", "en")
DEFAULT_LANGUAGE = "th"

# Pages load scripts, styles and data from this server only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"
    " frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
    "X-Frame-Options": "DENY",
}


@cache
def strings() -> dict[str, dict[str, str]]:
    data = load_yaml(WEB / "i18n.yaml")
    return {lang: {str(k): str(v) for k, v in data[lang].items()} for lang in LANGUAGES}


@cache
def aqi_bands() -> list[dict[str, Any]]:
    """Band names and colours of the Thai AQI, from its data file."""
    data = load_yaml(STANDARDS / "th_aqi.yaml")
    return [
        {
            "id": b["id"],
            "low": b["aqi"][0],
            "high": b["aqi"][1],
            "colour": b["colour"],
            "en": b["en"],
            "th": b["th"],
        }
        for b in data["bands"]
    ]


def choose_language(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return str(asked)
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(request.headers.get("accept-language", "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.split("-")[0].lower()
        if primary in LANGUAGES and q > 0:
            ranked.append((-q, index, primary))
    return sorted(ranked)[0][2] if ranked else DEFAULT_LANGUAGE


def _json_for_script(data: Any) -> str:
    # Inside <script type="application/json">: "<" escaped so no text can close the element.
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")


def mount_pages(app: FastAPI, registry: Registry) -> None:
    env = Environment(
        loader=FileSystemLoader(str(WEB / "templates")),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app.mount("/static", StaticFiles(directory=str(WEB / "static")), name="static")

    def render(request: Request, template: str, page: str, title_key: str, **extra: Any) -> HTMLResponse:
        lang = choose_language(request)
        t = strings()[lang]
        config = {
            "page": page,
            "lang": lang,
            "strings": t,
            "timezone": registry.timezone,
            "town": {
                "id": registry.town_id,
                "name": registry.town_name,
                "outline": [[list(p) for p in ring] for ring in registry.map_outline],
            },
            "aqi_bands": aqi_bands(),
            "glossary": glossary().for_pages(),
            "timezone_label": glossary().timezone_label(registry.timezone, lang),
            **extra,
        }
        html = env.get_template(template).render(
            lang=lang,
            t=t,
            title=t[title_key],
            page=page,
            path=request.url.path,
            town_name=registry.town_name,
            timezone_label=glossary().timezone_label(registry.timezone, lang),
            config_json=_json_for_script(config),
            **extra,
        )
        return HTMLResponse(
            html, headers=PAGE_HEADERS | {"Content-Language": lang, "Vary": "Accept-Language"}
        )

    @app.get("/", include_in_schema=False)
    def town_page(request: Request) -> HTMLResponse:
        return render(request, "town.html", "town", "town_heading")

    @app.get("/factory/{factory_id}", include_in_schema=False)
    def factory_page(request: Request, factory_id: str) -> Response:
        if not ID_PATTERN.fullmatch(factory_id):
            return HTMLResponse("not found", status_code=404)
        return render(request, "factory.html", "factory", "charts_title", factory=factory_id)

    @app.get("/console", include_in_schema=False)
    def console_page(request: Request) -> HTMLResponse:
        return render(request, "console.html", "console", "nav_console")

    @app.get("/operator", include_in_schema=False)
    def operator_page(request: Request) -> HTMLResponse:
        return render(request, "operator.html", "operator", "operator_heading")

    @app.get("/preferences", include_in_schema=False)
    def preferences_page(request: Request) -> HTMLResponse:
        return render(request, "preferences.html", "preferences", "prefs_heading")

    @app.get("/reports", include_in_schema=False)
    def reports_page(request: Request) -> HTMLResponse:
        return render(request, "reports.html", "reports", "reports_heading")

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request) -> HTMLResponse:
        return render(request, "login.html", "login", "login_heading")

    # Town indicators: the town's shared scoreboard (public).
    @app.get("/indicators", include_in_schema=False)
    def indicators_page(request: Request) -> HTMLResponse:
        return render(request, "indicators.html", "indicators", "indicators_heading")

    @app.get("/docs", include_in_schema=False)
    def api_explorer() -> HTMLResponse:
        return HTMLResponse(API_EXPLORER, headers=PAGE_HEADERS | {"Content-Security-Policy": DOCS_CSP})

    redirect_page = bytes(get_swagger_ui_oauth2_redirect_html().body).decode()
    redirect_csp = _csp_for_inline_scripts(redirect_page)

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def api_explorer_redirect() -> HTMLResponse:
        return HTMLResponse(redirect_page, headers=PAGE_HEADERS | {"Content-Security-Policy": redirect_csp})


# The API explorer: Swagger UI, vendored, started by static/docs.js (no inline script). Swagger UI
# sets inline styles; it is framed by nothing.
API_EXPLORER = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css">
<link rel="icon" href="/static/favicon.svg">
<title>EIT Monitor API</title>
</head>
<body>
<div id="swagger-ui"></div>
<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body>
</html>
"""
DOCS_CSP = CSP


def _csp_for_inline_scripts(html: str) -> str:
    """The pages' policy with the inline scripts of ``html`` allowed by their SHA-256 alone."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    )
    return CSP.replace("script-src 'self'", f"script-src 'self' {hashes}")
