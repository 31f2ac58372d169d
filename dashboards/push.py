"""`eit dashboards push`: the folders, the data source, the dashboards and the public access, put
into a running Grafana through its HTTP API (grafana-client).

Each object is read first and written only when it differs from what the code builds, so a second
run sends no change. What is made:

- the folders ``eit-public`` and ``eit-officers`` (by uid);
- the InfluxDB data source (by uid ``eit-influxdb``);
- every dashboard (by uid, overwriting), in its folder;
- folder permissions: the Viewer role may view the public folder and not the officers' folder;
  officers need the Editor role or a grant of their own;
- a public dashboard (Grafana's "shared dashboard" link) for every dashboard of the public folder,
  with the time picker on. The public reads the town through these links with anonymous access
  off: a public dashboard runs only its own queries (each filtered to the public factories),
  while an anonymous Viewer could query the data source directly.

Objects Grafana holds from provisioning files (docker-compose.yml provisions the data source and
the dashboards) cannot be changed through the API: when they equal the code they count as
unchanged, otherwise they are reported as skipped (run `eit dashboards build` and restart Grafana).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

from dashboards.build import (
    FOLDER_TITLES,
    OFFICERS_FOLDER_UID,
    PUBLIC_FOLDER_UID,
    DashboardSpec,
)
from dashboards.datasource import InfluxSource

log = logging.getLogger("eit.dashboards")

VIEW = 1  # Grafana's permission levels: 1 View, 2 Edit, 4 Admin
PUBLIC_DASHBOARD = {
    "isEnabled": True,
    "share": "public",
    "timeSelectionEnabled": True,
    "annotationsEnabled": False,
}
DASHBOARD_VOLATILE = ("id", "version")


@dataclass
class PushReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # dashboard uid -> path of its public link on the Grafana server (/public-dashboards/<token>)
    public_links: dict[str, str] = field(default_factory=dict)

    @property
    def changes(self) -> int:
        return len(self.created) + len(self.updated)

    def lines(self) -> list[str]:
        out = [f"created   {x}" for x in self.created]
        out += [f"updated   {x}" for x in self.updated]
        out += [f"unchanged {x}" for x in self.unchanged]
        out += [f"skipped   {x}" for x in self.skipped]
        out += [f"public    {uid}: {path}" for uid, path in sorted(self.public_links.items())]
        return out


def connect(
    url: str, token: str | None = None, user: str | None = None, password: str | None = None
) -> GrafanaApi:
    """A client for ``url`` with a service-account token, or a user and password."""
    credential: str | tuple[str, str] | None = token
    if token is None and user is not None:
        credential = (user, password or "")
    return GrafanaApi.from_url(url.rstrip("/"), credential=credential, timeout=30.0)


def _missing(exc: GrafanaClientError) -> bool:
    return int(exc.status_code) == 404


def _subset_differs(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """True when a key of ``desired`` has another value in ``current`` (nested mappings too)."""
    for key, want in desired.items():
        have = current.get(key)
        if isinstance(want, dict) and isinstance(have, dict):
            if _subset_differs(have, want):
                return True
        elif have != want:
            return True
    return False


class Pusher:
    def __init__(self, api: GrafanaApi) -> None:
        self.api = api
        self.report = PushReport()

    def push(self, specs: list[DashboardSpec], source: InfluxSource) -> PushReport:
        for uid, title in FOLDER_TITLES.items():
            self.folder(uid, title)
        self.datasource(source)
        for spec in specs:
            self.dashboard(spec)
        self.folder_viewers(PUBLIC_FOLDER_UID, viewers_may_view=True)
        self.folder_viewers(OFFICERS_FOLDER_UID, viewers_may_view=False)
        for spec in specs:
            if spec.public:
                self.public_dashboard(spec.uid)
        return self.report

    def folder(self, uid: str, title: str) -> None:
        name = f"folder {uid}"
        try:
            current = self.api.folder.get_folder(uid)
        except GrafanaClientError as exc:
            if not _missing(exc):
                raise
            self.api.folder.create_folder(title, uid=uid)
            self.report.created.append(name)
            return
        if current.get("title") == title:
            self.report.unchanged.append(name)
            return
        self.api.folder.update_folder(uid, title=title, overwrite=True)
        self.report.updated.append(name)

    def datasource(self, source: InfluxSource) -> None:
        desired = source.model()
        name = f"datasource {desired['uid']}"
        try:
            current = self.api.datasource.get_datasource_by_uid(desired["uid"])
        except GrafanaClientError as exc:
            if not _missing(exc):
                raise
            self.api.datasource.create_datasource({**desired, "secureJsonData": source.secure()})
            self.report.created.append(name)
            return
        if not _subset_differs(current, desired):
            self.report.unchanged.append(name)
        elif current.get("readOnly"):
            log.warning("%s is provisioned from a file and differs from the code: not changed", name)
            self.report.skipped.append(name)
        else:
            body = {**current, **desired, "secureJsonData": source.secure()}
            self.api.datasource.update_datasource_by_uid(desired["uid"], body)
            self.report.updated.append(name)

    def dashboard(self, spec: DashboardSpec) -> None:
        name = f"dashboard {spec.uid}"
        try:
            current = self.api.dashboard.get_dashboard(spec.uid)
        except GrafanaClientError as exc:
            if not _missing(exc):
                raise
            current = None
        if current is not None:
            model = {k: v for k, v in current.get("dashboard", {}).items() if k not in DASHBOARD_VOLATILE}
            meta = current.get("meta", {})
            if model == spec.model and meta.get("folderUid") == spec.folder_uid:
                self.report.unchanged.append(name)
                return
            if meta.get("provisioned"):
                log.warning("%s is provisioned from a file and differs from the code: not changed", name)
                self.report.skipped.append(name)
                return
        self.api.dashboard.update_dashboard(
            {
                "dashboard": {**spec.model, "id": None},
                "folderUid": spec.folder_uid,
                "overwrite": True,
                "message": "eit dashboards push",
            }
        )
        (self.report.created if current is None else self.report.updated).append(name)

    def folder_viewers(self, uid: str, *, viewers_may_view: bool) -> None:
        """Grant the Viewer role View on the folder, or take every Viewer-role grant away."""
        name = f"permissions of folder {uid}"
        items = [i for i in self.api.folder.get_folder_permissions(uid) if not i.get("inherited")]
        viewer = [i for i in items if i.get("role") == "Viewer"]
        if viewers_may_view and any(i.get("permission", 0) >= VIEW for i in viewer):
            self.report.unchanged.append(name)
            return
        if not viewers_may_view and not viewer:
            self.report.unchanged.append(name)
            return
        kept = [_grant(i) for i in items if i.get("role") != "Viewer"]
        if viewers_may_view:
            kept.append({"role": "Viewer", "permission": VIEW})
        self.api.folder.update_folder_permissions(uid, {"items": kept})
        self.report.updated.append(name)

    def public_dashboard(self, dashboard_uid: str) -> None:
        name = f"public dashboard of {dashboard_uid}"
        path = f"/dashboards/uid/{dashboard_uid}/public-dashboards"
        try:
            current = self.api.client.GET(path)
        except GrafanaClientError as exc:
            if not _missing(exc):
                raise
            current = None
        if not current or not current.get("uid"):
            current = self.api.client.POST(path + "/", json=PUBLIC_DASHBOARD)
            self.report.created.append(name)
        elif _subset_differs(current, PUBLIC_DASHBOARD):
            self.api.client.PATCH(f"{path}/{current['uid']}", json=PUBLIC_DASHBOARD)
            self.report.updated.append(name)
        else:
            self.report.unchanged.append(name)
        token = (current or {}).get("accessToken")
        if token:
            self.report.public_links[dashboard_uid] = f"/public-dashboards/{token}"


def _grant(item: dict[str, Any]) -> dict[str, Any]:
    """A permission item as the update call takes it (who, and the level)."""
    out = {k: item[k] for k in ("role", "userId", "teamId") if item.get(k)}
    out["permission"] = item.get("permission", VIEW)
    return out
