"""The settings every store kind shares (section ``store`` of the server configuration).

Each kind subclasses :class:`StoreSettings` in its own module (ingest/store/sqlite.py,
influx.py, influx2.py) with the keys it reads; the server validates the section with the class
of the kind it names. Secrets are :class:`pydantic.SecretStr` (given in the file as ``key``,
``key_file`` or ``key_env``), so they never show in a repr or an error.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    kind: str
