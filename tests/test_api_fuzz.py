"""Schemathesis against the API's own OpenAPI document: generated requests (valid and invalid)
for every operation, as the public and as each role, on the example town's data. No answer may
be a server error, and every answer must be one the document declares, of its declared content
type and shape.

The number of examples per operation is bounded (EIT_FUZZ_EXAMPLES, default 30) so the run stays
short; raise it for a deeper search.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from eit.timeutil import now_ns
from server.accounts import User
from testbed.town import USERS, TownApp, build_town

EXAMPLES = int(os.environ.get("EIT_FUZZ_EXAMPLES", "30"))
CALLERS = ("public", *USERS)


class LateApp:
    """An ASGI app that hands each request to ``target``: the schema is read when this module is
    imported (from an app on an empty town), the requests go to the loaded town's app."""

    def __init__(self, target: Any) -> None:
        self.target = target

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.target(scope, receive, send)


def _spec_app() -> Any:
    from prometheus_client import CollectorRegistry

    from alerts.state import open_alert_store
    from eit.registry import load_registry
    from server.accounts import open_accounts
    from server.api import ApiSources, create_app
    from testbed.services import REPO

    registry = load_registry(REPO / "examples" / "town" / "site.yaml")
    sources = ApiSources(
        registry=registry,
        store=None,  # type: ignore[arg-type]  # the document is read, nothing is queried
        alerts=open_alert_store(None, Path(":memory:")),
        accounts=open_accounts(None, Path(":memory:")),
        report=lambda first, last, factory: {},
        render_report=lambda report, fmt: "",
        alert_text=lambda alert, lang: "",
    )
    return create_app(lambda: (True, {}), CollectorRegistry(), sources)


APP = LateApp(_spec_app())
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def town_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TownApp]:
    app = TownApp(build_town(tmp_path_factory.mktemp("fuzz")))
    spec_app = APP.target
    APP.target = app.app
    yield app
    APP.target = spec_app
    app.close()


def _token(app: TownApp, name: str) -> str:
    # Tokens straight from the accounts store: a password login per example would spend the
    # test's time in Argon2. The fuzzer may have disabled the account or revoked its tokens.
    accounts = app.accounts
    user = accounts.get_user(name)
    assert user is not None
    if user.disabled:
        user = accounts.set_disabled(name, False)
    token, _ = accounts.issue_token(User(user.name, user.role, user.factory, user.created_ns), now_ns(), 600)
    return token


@schema.parametrize()
@schema.given(caller=st.sampled_from(CALLERS))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
    derandomize=True,
)
def test_no_request_makes_a_server_error(case: Any, caller: str, town_app: TownApp) -> None:
    headers = {} if caller == "public" else {"Authorization": f"Bearer {_token(town_app, caller)}"}
    case.call_and_validate(
        headers=headers,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
