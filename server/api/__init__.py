"""The HTTP API app and the web pages it serves (see eit/api/app.py)."""

from server.api.app import ApiSettings, create_app
from server.api.sources import ApiSources

__all__ = ["ApiSettings", "ApiSources", "create_app"]
