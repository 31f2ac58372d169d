"""The one YAML loader (eit/confread.py) and the typed configuration built on it: duplicate keys,
bounds, every problem at once with file, line and key path; store and notifier kinds chosen by
name, a kind registered from outside, secrets that never show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from alerts.model import Alert, AlertEvent
from alerts.notifiers import NOTIFIER_KINDS, build_notifier
from edge.config import load_edge_config
from eit.confread import MAX_DEPTH, Section, load_yaml, parse_yaml, read_yaml
from eit.errors import ConfigError
from eit.registry import load_registry
from ingest.store import STORE_KINDS
from server.config import load_serve_config
from testbed.services import REPO
from tests.conftest import EXAMPLE_SITE
from tests.notifier_kind_memo import MemoNotifier, MemoSettings

EXAMPLE_AGENT = REPO / "examples" / "town" / "edge" / "kaeng-khoi-biomass.yaml"


def line_of(path: Path, text: str, occurrence: int = 1) -> int:
    """The number of the line of ``path`` that reads ``text`` (stripped), its n-th occurrence."""
    found = [n for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip() == text]
    return found[occurrence - 1]


def site_with(tmp_path: Path, after: str, insert: str) -> Path:
    """The example site with ``insert`` (lines, indented like ``after``) after the first line
    that reads ``after``."""
    lines = EXAMPLE_SITE.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip() == after)
    indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
    lines[index + 1 : index + 1] = [indent + extra for extra in insert.splitlines()]
    path = tmp_path / "site.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def serve_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(f"site: {EXAMPLE_SITE}\ndata_dir: {tmp_path / 'data'}\n" + body)
    return path


# -- the loader ------------------------------------------------------------------------------------
def test_a_key_given_twice_in_the_registry_is_refused_with_both_lines(tmp_path: Path) -> None:
    # A hidden factory made public by a second `public:` further down must not pass silently.
    path = site_with(tmp_path, "estate: Map Ta Phut Industrial Estate", "public: false\npublic: true")
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    first, second = line_of(path, "public: false"), line_of(path, "public: true")
    assert (err.value.source, err.value.key, err.value.line) == (
        str(path),
        "factories[kaeng-khoi-biomass].public",
        second,
    )
    assert err.value.problem == f"key 'public' is given twice (lines {first} and {second})"
    assert str(err.value) == (
        f"{path}:{second}: factories[kaeng-khoi-biomass].public: key 'public' is given twice"
        f" (lines {first} and {second})"
    )


def test_a_key_given_twice_in_the_server_configuration_is_refused(tmp_path: Path) -> None:
    path = serve_file(tmp_path, "mqtt:\n  port: 1883\n  host: localhost\n  port: 1884\n")
    with pytest.raises(ConfigError) as err:
        load_serve_config(path, environ={})
    assert (err.value.source, err.value.key, err.value.line) == (str(path), "mqtt.port", 6)
    assert err.value.problem == "key 'port' is given twice (lines 4 and 6)"


def test_nesting_deeper_than_the_bound_is_refused_with_file_and_line(tmp_path: Path) -> None:
    block = tmp_path / "block.yaml"
    block.write_text("top:\n" + "".join("  " * depth + f"k{depth}:\n" for depth in range(1, 200)))
    with pytest.raises(ConfigError) as err:
        read_yaml(block)
    assert err.value.source == str(block) and err.value.line == MAX_DEPTH
    assert (
        err.value.key.startswith("top.k1.k2")
        and err.value.problem == f"nested deeper than {MAX_DEPTH} levels"
    )

    flow = tmp_path / "flow.yaml"
    flow.write_text("a: 1\nb: " + "[" * 100 + "]" * 100 + "\n")
    with pytest.raises(ConfigError) as err:
        read_yaml(flow)
    assert (err.value.source, err.value.line) == (str(flow), 2)
    assert err.value.key.startswith("b[0][0]") and "nested deeper than" in err.value.problem


def test_a_5000_digit_number_is_refused_with_file_and_line(tmp_path: Path) -> None:
    path = serve_file(tmp_path, "http:\n  port: " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError) as err:
        load_serve_config(path, environ={})
    assert (err.value.source, err.value.key, err.value.line) == (str(path), "http.port", 4)
    assert err.value.problem == "a number of 5000 digits (at most 100)"
    # The same number from the environment names the variable.
    with pytest.raises(ConfigError) as err:
        load_serve_config(serve_file(tmp_path, ""), environ={"EIT_HTTP__PORT": "9" * 5000})
    assert err.value.source == "environment variable EIT_HTTP__PORT"
    assert "5000 digits" in err.value.problem


def test_numbers_that_are_not_finite_are_refused(tmp_path: Path) -> None:
    path = serve_file(tmp_path, "rules:\n  stale_after_s: .inf\n  spike_z: .nan\n  flatline_s: 1.0e+999\n")
    with pytest.raises(ConfigError) as err:
        load_serve_config(path, environ={})
    assert [(p.key, p.line, p.problem) for p in err.value.problems] == [
        ("rules.stale_after_s", 4, "'.inf' is not a finite number"),
        ("rules.spike_z", 5, "'.nan' is not a finite number"),
        ("rules.flatline_s", 6, "'1.0e+999' is not a finite number"),
    ]


def test_aliases_cannot_turn_a_few_lines_into_millions_of_values() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 9):
        prev, name = chr(ord("a") + n - 1), chr(ord("a") + n)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(ConfigError, match="values repeated through aliases"):
        parse_yaml("\n".join(lines), "bomb.yaml")
    with pytest.raises(ConfigError, match=r"bomb.yaml:1: .*nested deeper than 64 levels"):
        parse_yaml("a: &a [*a]\n", "bomb.yaml")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: !!python/object/apply:os.system [true]\n", "unsupported tag !!python/object/apply:os.system"),
        ("<<: {a: 1}\nb: 2\n", "merge keys (<<) are not supported"),
        ("a: 2026-02-30\n", "'2026-02-30' cannot be read"),
        ("a: [1, 2\n", "invalid YAML"),
        ("a: b\n---\nc: d\n", "expected a single document"),
    ],
)
def test_what_the_loader_refuses_is_a_config_error(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_yaml(text, "x.yaml")
    assert err.value.source == "x.yaml" and err.value.line is not None and problem in err.value.problem


def test_every_yaml_file_of_the_project_loads() -> None:
    files = [
        p
        for p in [*REPO.rglob("*.yaml"), *REPO.rglob("*.yml")]
        if not {".venv", "node_modules", ".git"} & set(p.relative_to(REPO).parts)
    ]
    assert len(files) >= 15
    for path in files:
        assert read_yaml(path).data is not None, path


# -- every problem at once -----------------------------------------------------------------------
def test_the_registry_reports_every_problem_at_once(tmp_path: Path) -> None:
    text = EXAMPLE_SITE.read_text()
    text = text.replace("        kind: stack\n", "        kind: chimney\n", 1)
    text = text.replace("{id: cod, unit: mg/L,", "{id: cod, unit: ppm,", 1)
    text = text.replace("    escalate_to: supervisor-rayong\n", "    escalate_to: nobody\n    pager: 1\n", 1)
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    found = [(p.source, p.line, p.key, p.problem) for p in err.value.problems]
    assert found == [
        (
            str(path),
            line_of(path, "kind: chimney"),
            "factories[kaeng-khoi-biomass].devices[boiler-1].kind",
            "'chimney' is not one of stack, effluent, ambient, energy",
        ),
        (
            str(path),
            line_of(path, "- {id: cod, unit: ppm, range: [0, 1000]}"),
            "factories[siam-cassava-starch].devices[outfall-1].channels[cod].unit",
            "'ppm' is not a unit of cod (mg/L)",
        ),
        (
            str(path),
            line_of(path, "pager: 1"),
            "officers[duty-rayong].pager",
            found[2][3],
        ),
        (
            str(path),
            line_of(path, "escalate_to: nobody"),
            "officers[duty-rayong].escalate_to",
            "no officer 'nobody'",
        ),
    ]
    assert found[2][3].startswith("unknown key (known keys here:")
    assert str(err.value).splitlines() == [
        f"{source}:{line}: {key}: {problem}" for source, line, key, problem in found
    ]


def test_the_server_configuration_reports_every_problem_at_once(tmp_path: Path) -> None:
    path = serve_file(
        tmp_path,
        "mqtt:\n"
        "  port: 70000\n"
        "  hots: broker\n"
        "store:\n"
        "  kind: influxdb2\n"
        "  org: town\n"
        "rules:\n"
        "  completeness: 1.5\n"
        "notifiers:\n"
        "  - kind: webhook\n"
        "    url: ftp://hooks\n"
        "  - kind: sms\n",
    )
    with pytest.raises(ConfigError) as err:
        load_serve_config(path, environ={"EIT_INGEST__BATCH_MAX_READINGS": "0"})
    assert [(p.source, p.line, p.key, p.problem) for p in err.value.problems] == [
        (str(path), 4, "mqtt.port", "70000 is above the maximum 65535"),
        (
            str(path),
            5,
            "mqtt.hots",
            "unknown key (known keys here: client_id, host, keepalive_s, password, port, protocol, tls,"
            " username)",
        ),
        (str(path), 6, "store.bucket", "required key is missing"),
        (str(path), 6, "store.token", "required key is missing (give token, token_file or token_env)"),
        (str(path), 10, "rules.completeness", "1.5 is above the maximum 1"),
        (str(path), 13, "notifiers[0].url", "'ftp://hooks' is not an http(s) URL"),
        (str(path), 14, "notifiers[1].kind", "'sms' is not one of log, webhook, email, mqtt, apprise"),
        (
            "environment variable EIT_INGEST__BATCH_MAX_READINGS",
            None,
            "ingest.batch_max_readings",
            "0 is below the minimum 1",
        ),
    ]
    assert len(str(err.value).splitlines()) == 8


def test_the_agent_configuration_reports_every_problem_at_once(tmp_path: Path) -> None:
    text = EXAMPLE_AGENT.read_text().replace("profile: exceeding", "profile: wobbly", 1)
    text = text.replace("mean: 1250000,", "mean: ten,", 1)
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_edge_config(path, environ={"EIT_OUTBOX__PATH": str(tmp_path / "o.db")})
    assert [(p.key, p.line) for p in err.value.problems] == [
        ("devices[boiler-1].sim.profile", line_of(path, "profile: wobbly")),
        (
            "devices[meter-1].sim.channels.energy.mean",
            line_of(
                path,
                "energy: {mean: ten, counter_per_h: 4200, max: 1000000000}  # a kWh register: only climbs",
            ),
        ),
    ]


def test_the_cli_prints_every_problem_on_its_own_line(tmp_path: Path) -> None:
    path = serve_file(tmp_path, "http:\n  port: -1\n  host: [a]\n")
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "api", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"eit: configuration error: {path}:4: http.port: -1 is below the minimum 0",
        f"eit: configuration error: {path}:5: http.host: expected text, got a list",
    ]


# -- typed sections ------------------------------------------------------------------------------
def test_section_getters_give_typed_values_and_name_every_unknown_key() -> None:
    doc = parse_yaml("name: boiler\nport: 502\nscale: 2\non: true\nextra: 1\nmore: 2\n", "meter.yaml")
    sec = Section.of(doc)
    assert sec.text("name") == "boiler" and sec.text("absent", None) is None
    assert (
        sec.integer("port") == 502 and sec.number("scale") == 2.0 and isinstance(sec.number("scale"), float)
    )
    assert sec.str_list("tags", []) == []
    with pytest.raises(ConfigError) as err:
        sec.boolean("name")
    assert (err.value.key, err.value.line, err.value.problem) == (
        "name",
        1,
        "expected true or false, got text ('boiler')",
    )
    with pytest.raises(ConfigError) as err:
        sec.finish()
    # YAML 1.1 reads `on` as true: the key is the boolean, reported as it was parsed.
    assert [(p.key, p.line) for p in err.value.problems] == [("True", 4), ("extra", 5), ("more", 6)]


def test_paths_are_taken_from_the_configuration_files_folder(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("not read here\n")
    config = load_serve_config(serve_file(tmp_path, "mqtt: {tls: {ca_file: certs/ca.pem}}\n"), environ={})
    assert config.mqtt.tls is not None and config.mqtt.tls.ca_file == tmp_path / "certs" / "ca.pem"
    assert config.mqtt.port == 8883 and config.state_path == tmp_path / "data" / "state.db"
    path = serve_file(tmp_path, "mqtt: {tls: {ca_file: certs/none.pem}}\n")
    with pytest.raises(ConfigError) as err:
        load_serve_config(path, environ={})
    assert (err.value.key, err.value.line) == ("mqtt.tls.ca_file", 3)
    assert err.value.problem == f"file {tmp_path / 'certs' / 'none.pem'} not found"


# -- kinds chosen by name ------------------------------------------------------------------------
def test_unknown_kinds_list_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_serve_config(
            serve_file(tmp_path, "store: {kind: postgres}\nnotifiers: [{kind: line}, {kind: [log]}]\n"),
            environ={},
        )
    assert [(p.key, p.problem) for p in err.value.problems] == [
        ("store.kind", "'postgres' is not one of sqlite, influxdb, influxdb2"),
        ("notifiers[0].kind", "'line' is not one of log, webhook, email, mqtt, apprise"),
        ("notifiers[1].kind", "['log'] is not one of log, webhook, email, mqtt, apprise"),
    ]


def test_a_notifier_kind_registered_by_a_test_module_is_configured_and_delivers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMO_TOKEN", "memo-s3cret")
    path = serve_file(
        tmp_path,
        "notifiers:\n"
        "  - {kind: memo, label: duty desk, token_env: MEMO_TOKEN, factories: kaeng-khoi-biomass}\n",
    )
    with NOTIFIER_KINDS.registered("memo", "tests.notifier_kind_memo"):
        assert NOTIFIER_KINDS.names()[-1] == "memo"
        config = load_serve_config(path, environ={})
        [settings] = config.notifiers
        assert isinstance(settings, MemoSettings)
        assert (settings.label, settings.keep, settings.factories) == (
            "duty desk",
            10,
            ("kaeng-khoi-biomass",),
        )
        assert settings.token.get_secret_value() == "memo-s3cret" and "memo-s3cret" not in repr(config)
        notifier = build_notifier(settings)
        assert isinstance(notifier, MemoNotifier)
        alert = Alert(
            7, "kaeng-khoi-biomass", "boiler-1", "so2", "limit", "critical", "open", 1, 1, "so2 above"
        )
        notifier.send(AlertEvent("opened", alert))
        assert notifier.sent == [("duty desk", "opened", 7)]
        with pytest.raises(ConfigError, match=r"notifiers\[0\].keep: 0 is below the minimum 1"):
            load_serve_config(
                serve_file(tmp_path, "notifiers: [{kind: memo, label: x, token: t, keep: 0}]\n")
            )
    with pytest.raises(ConfigError, match="'memo' is not one of log, webhook, email, mqtt, apprise"):
        load_serve_config(path, environ={})


def test_kinds_nobody_configured_are_never_imported(tmp_path: Path) -> None:
    path = serve_file(
        tmp_path, "store: {kind: sqlite}\nnotifiers: [{kind: log}, {kind: webhook, url: 'https://x'}]\n"
    )
    script = (
        "import sys\n"
        "from server.config import load_serve_config\n"
        "from ingest.store import open_store\n"
        f"config = load_serve_config({str(path)!r}, environ={{}})\n"
        "open_store(config.store).close()\n"
        "unused = ('apprise', 'influxdb_client', 'ingest.store.influx2', 'alerts.notifiers.email')\n"
        "used = ('ingest.store.sqlite', 'alerts.notifiers.webhook')\n"
        "print(sorted(m for m in unused if m in sys.modules), all(m in sys.modules for m in used))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] True"


def test_store_kinds_have_their_own_typed_settings() -> None:
    assert STORE_KINDS.names() == ("sqlite", "influxdb", "influxdb2")
    for name in STORE_KINDS.names():
        kind = STORE_KINDS.get(name)
        assert kind.settings.model_fields["kind"].default == name


# -- secrets ---------------------------------------------------------------------------------------
def test_secrets_in_all_three_forms_never_show_in_reprs_or_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "influx-password").write_text("influx-s3cret\n")
    monkeypatch.setenv("HOOK_SECRET", "hook-s3cret")
    body = (
        "mqtt: {username: ingest, password: mqtt-s3cret}\n"
        "store: {kind: influxdb, url: 'http://db:8086', username: ingest, password_file: influx-password}\n"
        "state: {url: 'postgresql://eit:pg-s3cret@db/eit'}\n"
        "notifiers:\n"
        "  - {kind: webhook, url: 'https://x/h', secret_env: HOOK_SECRET}\n"
        "  - {kind: email, from: eit@example.org, username: eit, password: mail-s3cret}\n"
    )
    config = load_serve_config(serve_file(tmp_path, body), environ={})
    secrets = ("mqtt-s3cret", "influx-s3cret", "pg-s3cret", "hook-s3cret", "mail-s3cret")
    shown = repr(config) + str(config) + "".join(repr(n) for n in config.notifiers)
    assert [s for s in secrets if s in shown] == []
    assert config.mqtt.password == "mqtt-s3cret" and config.state_url == "postgresql://eit:pg-s3cret@db/eit"
    # A configuration with problems next to the secrets: the messages name keys, never values.
    broken = body.replace("url: 'https://x/h'", "url: 'ftp://x/h'").replace(
        "password: mqtt-s3cret", "password: [mqtt-s3cret]"
    )
    with pytest.raises(ConfigError) as err:
        load_serve_config(serve_file(tmp_path, broken + "http: {port: x}\n"), environ={})
    assert len(err.value.problems) == 3
    assert [s for s in secrets if s in str(err.value)] == []


def test_data_files_read_without_sections_go_through_the_same_loader(tmp_path: Path) -> None:
    path = tmp_path / "texts.yaml"
    path.write_text("en:\n  title: Town\n  title: Town again\n")
    with pytest.raises(ConfigError, match="key 'title' is given twice"):
        load_yaml(path)
