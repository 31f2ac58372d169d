"""FAKE Grafana: a local contract server for `eit dashboards push`, because Grafana cannot run on
this machine. It implements the parts of Grafana's HTTP API that the push uses, as Grafana's API
reference describes them, and records every call:

- ``GET /api/health``
- folders: ``GET /api/folders/:uid``, ``POST /api/folders`` (uid and title; 409 when the uid or the
  title is taken), ``PUT /api/folders/:uid``; permissions: ``GET`` / ``POST
  /api/folders/:uid/permissions`` (``{"items": [...]}`` replaces the folder's grants)
- data sources: ``GET /api/datasources/uid/:uid``, ``POST /api/datasources`` (409 when the name or
  uid is taken), ``PUT /api/datasources/uid/:uid`` (refused for provisioned, read-only ones)
- dashboards: ``GET /api/dashboards/uid/:uid`` (``{"dashboard", "meta"}``), ``POST
  /api/dashboards/db`` (``{"dashboard", "folderUid", "overwrite"}``; 412 when the uid exists and
  overwrite is false; 400 for a provisioned dashboard; 400 for an unknown folder)
- public dashboards: ``GET / POST /api/dashboards/uid/:uid/public-dashboards[/]`` and ``PATCH
  /api/dashboards/uid/:uid/public-dashboards/:publicUid``

Requests need ``Authorization: Bearer <token>`` (a service-account token) or basic auth of the
admin user; anything else gets 401.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Grafana gives a new folder these grants (Grafana 11: Editor edits, Viewer views; the creator
# gets Admin).
DEFAULT_FOLDER_GRANTS = [
    {"role": "Editor", "permission": 2, "permissionName": "Edit", "inherited": False},
    {"role": "Viewer", "permission": 1, "permissionName": "View", "inherited": False},
    {"userId": 1, "userLogin": "admin", "permission": 4, "permissionName": "Admin", "inherited": False},
]


@dataclass
class Call:
    method: str
    path: str
    body: Any

    @property
    def writes(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class GrafanaState:
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    folder_grants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasource_secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> {"dashboard", "meta"}
    public_dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # by dashboard uid
    next_id: int = 1


class FakeGrafana:
    def __init__(self, token: str = "glsa_test_token", admin_password: str = "admin-secret") -> None:
        self.token = token
        self.admin_password = admin_password
        self.state = GrafanaState()
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeGrafana:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.writes]

    def provision_dashboard(self, model: dict[str, Any], folder_uid: str, folder_title: str) -> None:
        """What Grafana holds after reading a dashboard from a provisioning file."""
        self.state.folders.setdefault(folder_uid, {"uid": folder_uid, "title": folder_title, "version": 1})
        self.state.folder_grants.setdefault(folder_uid, copy.deepcopy(DEFAULT_FOLDER_GRANTS))
        self._save_dashboard(model, folder_uid, provisioned=True)

    # -- the API ------------------------------------------------------------------------------
    def _authorised(self, header: str | None) -> bool:
        if header == f"Bearer {self.token}":
            return True
        if header and header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return (user, password) == ("admin", self.admin_password)
        return False

    def _save_dashboard(
        self, model: dict[str, Any], folder_uid: str, provisioned: bool = False
    ) -> dict[str, Any]:
        st = self.state
        uid = model["uid"]
        old = st.dashboards.get(uid)
        stored = copy.deepcopy(model)
        stored["id"] = old["dashboard"]["id"] if old else st.next_id
        stored["version"] = old["dashboard"]["version"] + 1 if old else 1
        st.next_id += 1
        st.dashboards[uid] = {
            "dashboard": stored,
            "meta": {"folderUid": folder_uid, "provisioned": provisioned, "canSave": not provisioned},
        }
        return {"id": stored["id"], "uid": uid, "version": stored["version"], "status": "success"}

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        st = self.state
        if method == "GET" and path == "/api/health":
            return 200, {"database": "ok", "version": "11.6.0"}

        if m := re.fullmatch(r"/api/folders/([^/]+)/permissions", path):
            uid = m.group(1)
            if uid not in st.folders:
                return 404, {"message": "folder not found"}
            if method == "GET":
                return 200, [{**g, "uid": uid} for g in st.folder_grants[uid]]
            if method == "POST":
                items = body.get("items") if isinstance(body, dict) else None
                if not isinstance(items, list):
                    return 400, {"message": "bad request data: items"}
                for item in items:
                    who = [k for k in ("role", "userId", "teamId") if k in item]
                    if len(who) != 1 or item.get("permission") not in (1, 2, 4):
                        return 400, {"message": f"invalid permission item {item}"}
                st.folder_grants[uid] = [{**i, "inherited": False} for i in items]
                return 200, {"message": "Folder permissions updated"}
        if m := re.fullmatch(r"/api/folders/([^/]+)", path):
            uid = m.group(1)
            if method == "GET":
                return (200, st.folders[uid]) if uid in st.folders else (404, {"message": "folder not found"})
            if method == "PUT":
                if uid not in st.folders:
                    return 404, {"message": "folder not found"}
                st.folders[uid] = {
                    **st.folders[uid],
                    "title": body["title"],
                    "version": st.folders[uid]["version"] + 1,
                }
                return 200, st.folders[uid]
        if path == "/api/folders" and method == "POST":
            uid, title = body.get("uid"), body.get("title")
            if not title:
                return 400, {"message": "folder title cannot be empty"}
            if uid in st.folders or any(f["title"] == title for f in st.folders.values()):
                return 409, {"message": "a folder with the same name or uid already exists"}
            uid = uid or uuid.uuid4().hex[:14]
            st.folders[uid] = {"uid": uid, "title": title, "version": 1}
            st.folder_grants[uid] = copy.deepcopy(DEFAULT_FOLDER_GRANTS)
            return 200, st.folders[uid]

        if m := re.fullmatch(r"/api/datasources/uid/([^/]+)", path):
            uid = m.group(1)
            if uid not in st.datasources:
                return 404, {"message": "Data source not found"}
            if method == "GET":
                return 200, st.datasources[uid]
            if method == "PUT":
                if st.datasources[uid].get("readOnly"):
                    return 403, {"message": "Cannot update read-only data source"}
                secure = body.pop("secureJsonData", None)
                st.datasources[uid] = {**body, "id": st.datasources[uid]["id"], "uid": uid}
                if secure:
                    st.datasource_secrets[uid] = secure
                return 200, {"message": "Datasource updated", "datasource": st.datasources[uid]}
        if path == "/api/datasources" and method == "POST":
            if not body.get("name") or not body.get("type"):
                return 400, {"message": "name and type are required"}
            if body.get("uid") in st.datasources or any(
                d["name"] == body["name"] for d in st.datasources.values()
            ):
                return 409, {"message": "data source with the same name already exists"}
            secure = body.pop("secureJsonData", None)
            uid = body.get("uid") or uuid.uuid4().hex[:14]
            st.datasources[uid] = {**body, "uid": uid, "id": st.next_id, "readOnly": False}
            st.next_id += 1
            if secure:
                st.datasource_secrets[uid] = secure
            return 200, {"message": "Datasource added", "datasource": st.datasources[uid]}

        if m := re.fullmatch(r"/api/dashboards/uid/([^/]+)/public-dashboards/?([^/]*)", path):
            uid, public_uid = m.group(1), m.group(2)
            if uid not in st.dashboards:
                return 404, {"message": "dashboard not found"}
            current = st.public_dashboards.get(uid)
            if method == "GET" and not public_uid:
                return (200, current) if current else (404, {"message": "public dashboard not found"})
            if method == "POST" and not public_uid:
                if current:
                    return 400, {"message": "dashboard is already public"}
                st.public_dashboards[uid] = {
                    "uid": uuid.uuid4().hex,
                    "dashboardUid": uid,
                    "accessToken": uuid.uuid4().hex,
                    "isEnabled": bool(body.get("isEnabled")),
                    "share": body.get("share", "public"),
                    "timeSelectionEnabled": bool(body.get("timeSelectionEnabled")),
                    "annotationsEnabled": bool(body.get("annotationsEnabled")),
                }
                return 200, st.public_dashboards[uid]
            if method == "PATCH" and current and public_uid == current["uid"]:
                current.update(
                    {
                        k: body[k]
                        for k in ("isEnabled", "share", "timeSelectionEnabled", "annotationsEnabled")
                        if k in body
                    }
                )
                return 200, current
            return 404, {"message": "public dashboard not found"}
        if m := re.fullmatch(r"/api/dashboards/uid/([^/]+)", path):
            uid = m.group(1)
            if method == "GET":
                return (
                    (200, st.dashboards[uid])
                    if uid in st.dashboards
                    else (404, {"message": "Dashboard not found"})
                )
        if path == "/api/dashboards/db" and method == "POST":
            model, folder_uid = body.get("dashboard"), body.get("folderUid", "")
            if not isinstance(model, dict) or not model.get("title") or not model.get("uid"):
                return 400, {"message": "Dashboard title and uid are required"}
            if folder_uid and folder_uid not in st.folders:
                return 400, {"message": "folder not found"}
            old = st.dashboards.get(model["uid"])
            if old and old["meta"]["provisioned"]:
                return 400, {"message": "Cannot save provisioned dashboard"}
            if old and not body.get("overwrite"):
                return 412, {
                    "message": "A dashboard with the same uid already exists",
                    "status": "name-exists",
                }
            return 200, self._save_dashboard({k: v for k, v in model.items() if k != "id"}, folder_uid)
        return 404, {"message": f"no route {method} {path} in the fake"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = self.path.split("?", 1)[0]
                with fake._lock:
                    fake.calls.append(Call(self.command, path, copy.deepcopy(body)))
                    if not fake._authorised(self.headers.get("Authorization")):
                        status, answer = 401, {"message": "Unauthorized"}
                    else:
                        status, answer = fake.handle(self.command, path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
