"""docker-compose.yml cannot run here, so it is checked against the code it starts.

Each service on the project image runs a `headwater` command that the real CLI parses (subcommands,
arguments, options and their types); every HEADWATER_* variable it sets is a field of a settings class
or the envvar of one of the command's options, and every settings class validates under the service's
environment; images are pinned; Prometheus scrapes each `run` process on the metrics port it really
opens; clients point at servers, ports and versions that the rest of the file and the code agree on.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import typer.main
import yaml  # type: ignore[import-untyped]
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from typer.core import TyperGroup

from headwater.cli import app
from headwater.config import HeadwaterSettings, KafkaSettings
from headwater.kernel.model_files import MINILM
from headwater.stack.connect import DEBEZIUM_VERSION
from headwater.stack.connectors import connector_files
from headwater.stack.kafka import KAFKA_VERSION
from services.embedder.config import EmbedderSettings

ROOT = Path(__file__).resolve().parents[2]
PROJECT_IMAGE = "headwater"


def _load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


COMPOSE = _load_yaml(ROOT / "docker-compose.yml")
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROMETHEUS = _load_yaml(ROOT / "infra" / "prometheus" / "prometheus.yml")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _image_name(service: dict[str, Any]) -> str:
    return str(service.get("image", "")).rsplit(":", 1)[0]


PROJECT_SERVICES = sorted(name for name, s in SERVICES.items() if _image_name(s) == PROJECT_IMAGE)
TEI_SERVICES = sorted(name for name, s in SERVICES.items() if "text-embeddings-inference" in _image_name(s))

# Compose's variable substitution: $$, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, $NAME.
_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


def _interpolate(value: object) -> str:
    """A value as Compose passes it on, with a made-up value for each variable the user sets in .env."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("op") in (":-", "-"):
            return match.group("arg")
        name = match.group("name") or match.group("bare")
        return "test-" + name.lower().replace("_", "-")

    return _VARIABLE.sub(substitute, str(value))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(key): _interpolate(value) for key, value in raw.items()}


def _argv(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    parts = shlex.split(command) if isinstance(command, str) else [str(part) for part in command]
    return [_interpolate(part) for part in parts]


def _option_value(argv: list[str], option: str) -> str | None:
    return argv[argv.index(option) + 1] if option in argv else None


@pytest.fixture
def service_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Put a service's environment in place of this process's HEADWATER_* variables."""

    def apply(service: str) -> dict[str, str]:
        for key in list(os.environ):
            if key.startswith("HEADWATER_"):
                monkeypatch.delenv(key)
        env = _environment(SERVICES[service])
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return env

    return apply


def _parse(argv: list[str]) -> tuple[Any, Any]:
    """Resolve `headwater <group>... <command> [args]` in the real CLI and parse it as click would.

    Returns the command and its parsed context: `ctx.params` holds values after options, envvars, defaults.
    """
    assert argv[0] == "headwater", f"{argv} does not run the headwater CLI"
    command: Any = typer.main.get_command(app)
    path, rest = ["headwater"], argv[1:]
    while isinstance(command, TyperGroup):
        assert rest, f"`{' '.join(path)}` needs a subcommand"
        name, *rest = rest
        sub = command.commands.get(name)
        assert sub is not None, (
            f"`{' '.join(path)}` has no command {name!r}; it has {sorted(command.commands)}"
        )
        command, path = sub, [*path, name]
    try:
        return command, command.make_context(" ".join(path), list(rest))
    except Exception as exc:  # click's usage errors: unknown option, bad value, missing argument
        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
        pytest.fail(f"`{' '.join(argv)}`: {message}")


def _settings_classes() -> list[type[BaseSettings]]:
    """Every settings class of the project: the BaseSettings subclasses defined in any config.py."""
    found: list[type[BaseSettings]] = []
    for path in sorted([*(ROOT / "headwater").rglob("config.py"), *(ROOT / "services").rglob("config.py")]):
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        found += [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj.__module__ == module.__name__
        ]
    return found


def _env_names(settings: type[BaseSettings]) -> set[str]:
    """The variables pydantic-settings reads for a class: its prefix + field name, or the field's alias."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
        names.add((alias or prefix + name).upper())
    return names


SETTINGS = _settings_classes()
SETTINGS_ENV = set().union(*(_env_names(settings) for settings in SETTINGS))


def _option_envvars(command: Any) -> set[str]:
    found: set[str] = set()
    for param in command.params:
        envvar = param.envvar
        found |= {envvar} if isinstance(envvar, str) else set(envvar or ())
    return found


def _all_option_envvars(command: Any) -> set[str]:
    found = _option_envvars(command)
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            found |= _all_option_envvars(sub)
    return found


def _targets() -> set[str]:
    return {
        str(target)
        for job in PROMETHEUS["scrape_configs"]
        for group in job.get("static_configs", [])
        for target in group["targets"]
    }


def _hostnames() -> set[str]:
    """Names that resolve on the compose network: services and their network aliases."""
    names = set(SERVICES)
    for service in SERVICES.values():
        networks = service.get("networks") or {}
        if isinstance(networks, dict):
            for network in networks.values():
                names |= set((network or {}).get("aliases", []))
    return names


def _container_ports(service: dict[str, Any]) -> set[int]:
    """Container ports a service publishes ("127.0.0.1:8080:8080", "8080:8080", "8080/tcp")."""
    return {int(str(entry).split("/")[0].rsplit(":", 1)[-1]) for entry in service.get("ports", [])}


def test_the_settings_discovery_finds_the_settings_the_services_read() -> None:
    # Guards the derivation itself: a discovery that found nothing would let every variable fail open.
    assert {HeadwaterSettings, KafkaSettings, EmbedderSettings} <= set(SETTINGS)
    assert {"HEADWATER_PII_SECRET", "HEADWATER_KAFKA_BOOTSTRAP_SERVERS", "HEADWATER_EMBEDDER_TEI_URL"} <= (
        SETTINGS_ENV
    )


def test_the_compose_file_runs_the_six_services_and_provisions_topics() -> None:
    run_services = {
        name: _argv(SERVICES[name])[2] for name in PROJECT_SERVICES if _argv(SERVICES[name])[1] == "run"
    }
    assert sorted(run_services.values()) == sorted(
        ["ingest", "chunker", "embedder", "graph-builder", "indexer", "query"]
    )
    assert any(_argv(SERVICES[name])[1:3] == ["stack", "provision"] for name in PROJECT_SERVICES)


@pytest.mark.parametrize("name", PROJECT_SERVICES)
def test_the_service_command_parses_in_the_real_cli(name: str, service_env: Any) -> None:
    service_env(name)
    _parse(_argv(SERVICES[name]))


@pytest.mark.parametrize("name", PROJECT_SERVICES)
def test_every_headwater_variable_is_read_by_a_setting_or_an_option(name: str, service_env: Any) -> None:
    env = service_env(name)
    command, _ctx = _parse(_argv(SERVICES[name]))
    known = SETTINGS_ENV | _option_envvars(command)
    unknown = sorted(key for key in env if key.startswith("HEADWATER_") and key.upper() not in known)
    assert not unknown, f"{name} sets variables nothing reads: {unknown}"


@pytest.mark.parametrize("name", PROJECT_SERVICES)
def test_every_settings_class_accepts_the_service_environment(name: str, service_env: Any) -> None:
    service_env(name)
    for settings in SETTINGS:
        try:
            settings()
        except ValidationError as exc:
            pytest.fail(f"{name}: {settings.__name__} refuses the compose environment:\n{exc}")


def test_the_image_sets_only_variables_that_something_reads() -> None:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    names = {
        match
        for line in text.splitlines()
        if line.strip().startswith("ENV ")
        for match in re.findall(r"\b(HEADWATER_\w+)=", line)
    }
    assert names, "the Dockerfile sets no HEADWATER_* variable: the parsing above is broken"
    known = SETTINGS_ENV | _all_option_envvars(typer.main.get_command(app))
    assert names <= known, sorted(names - known)


def test_every_image_is_pinned_and_the_project_image_carries_the_project_version() -> None:
    for name, service in SERVICES.items():
        image = str(service.get("image", ""))
        assert ":" in image.rsplit("/", 1)[-1], f"{name}: image {image!r} has no tag"
        tag = image.rsplit(":", 1)[1]
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: image {image!r} is not pinned"
        if _image_name(service) == PROJECT_IMAGE:
            assert tag == VERSION, f"{name}: {image} but pyproject.toml says {VERSION}"
            assert service.get("build") in (".", {"context": "."}), f"{name}: builds from elsewhere"
    assert (ROOT / "Dockerfile").is_file()


def test_prometheus_scrapes_every_run_process_on_the_port_it_opens(service_env: Any) -> None:
    targets = _targets()
    expected = set()
    for name in PROJECT_SERVICES:
        service_env(name)
        _command, ctx = _parse(_argv(SERVICES[name]))
        if "metrics_port" in ctx.params:
            expected.add(f"{name}:{ctx.params['metrics_port']}")
    assert expected, "no service opens a metrics port"
    project_targets = {t for t in targets if t.split(":")[0] in PROJECT_SERVICES}
    assert project_targets == expected
    unknown_hosts = {t for t in targets if t.split(":")[0] not in _hostnames() | {"localhost"}}
    assert not unknown_hosts, f"Prometheus scrapes hosts that no service answers as: {unknown_hosts}"


def test_tei_serves_metrics_where_prometheus_scrapes_them() -> None:
    assert TEI_SERVICES
    for name in TEI_SERVICES:
        port = _option_value(_argv(SERVICES[name]), "--prometheus-port")
        assert f"tei:{port}" in _targets(), f"{name} serves metrics on {port}"


@pytest.mark.parametrize("name", PROJECT_SERVICES)
def test_http_services_publish_the_port_they_listen_on(name: str, service_env: Any) -> None:
    service_env(name)
    argv = _argv(SERVICES[name])
    _command, ctx = _parse(argv)
    if "--port" in argv:
        assert ctx.params["port"] in _container_ports(SERVICES[name])
        assert ctx.params["host"] == "0.0.0.0"  # noqa: S104 - reachable from outside its container


def test_embedding_clients_use_the_tei_server_and_its_model(service_env: Any) -> None:
    clients = [
        name for name in PROJECT_SERVICES if _environment(SERVICES[name]).get("HEADWATER_EMBEDDER_BACKEND")
    ]
    assert {"embedder", "query"} <= set(clients), "index-time and query-time embeddings must match"
    for name in clients:
        service_env(name)
        embedder = EmbedderSettings()
        assert embedder.backend == "tei"
        url = urlparse(embedder.tei_url)
        assert url.hostname in _hostnames()
        for tei in TEI_SERVICES:
            argv = _argv(SERVICES[tei])
            assert url.port == int(_option_value(argv, "--port") or 80)  # the TEI image listens on 80
            assert (
                int(_option_value(argv, "--max-client-batch-size") or 32)
                == embedder.tei_max_client_batch_size
            )
            assert (_option_value(argv, "--model-id") or "").endswith("/" + MINILM)
    gpu = [SERVICES[name] for name in TEI_SERVICES if "gpu" in SERVICES[name].get("profiles", [])]
    assert gpu and gpu[0]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


@pytest.mark.parametrize("name", PROJECT_SERVICES)
def test_kafka_clients_use_an_advertised_listener(name: str, service_env: Any) -> None:
    service_env(name)
    kafka_env = _environment(SERVICES["kafka"])
    advertised = {entry.split("://", 1)[1] for entry in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for server in KafkaSettings().bootstrap_servers.split(","):
        assert server in advertised
    assert _environment(SERVICES["connect"])["BOOTSTRAP_SERVERS"] in advertised


# Without HEADWATER_DATABASE_URL these would start an embedded Postgres inside their own container.
STATEFUL_SERVICES = ["embedder", "graph-builder"]


@pytest.mark.parametrize("name", STATEFUL_SERVICES)
def test_services_with_state_use_the_postgres_service_and_its_role(name: str, service_env: Any) -> None:
    service_env(name)
    postgres = _environment(SERVICES["postgres"])
    database_url = HeadwaterSettings().database_url
    assert database_url is not None, f"{name} has no HEADWATER_DATABASE_URL"
    url = urlparse(database_url)
    assert (url.hostname, url.username, url.password, url.path.lstrip("/")) == (
        "postgres",
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )


def test_postgres_decodes_its_log_for_debezium() -> None:
    assert "wal_level=logical" in _argv(SERVICES["postgres"])


def test_servers_match_the_client_versions_in_the_code() -> None:
    qdrant_tag = str(SERVICES["qdrant"]["image"]).rsplit(":", 1)[1].lstrip("v")
    client = importlib.metadata.version("qdrant-client")
    assert qdrant_tag.split(".")[:2] == client.split(".")[:2], (qdrant_tag, client)
    assert str(SERVICES["kafka"]["image"]) == f"apache/kafka:{KAFKA_VERSION}"  # the local stack's broker


def test_references_resolve() -> None:
    for name, service in SERVICES.items():
        depends = service.get("depends_on") or {}
        assert set(depends) <= set(SERVICES), f"{name} depends on {set(depends) - set(SERVICES)}"
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in (COMPOSE.get("volumes") or {}), f"{name} uses undeclared volume {source}"


def test_connect_runs_the_local_stacks_debezium_and_can_resolve_the_connector_secrets() -> None:
    connect = SERVICES["connect"]
    assert str(connect["image"]) == f"quay.io/debezium/connect:{DEBEZIUM_VERSION}"
    env = _environment(connect)
    allowed = re.compile(env["CONNECT_CONFIG_PROVIDERS_ENV_PARAM_ALLOWLIST_PATTERN"])
    for file in connector_files(ROOT / "infra" / "connectors"):
        for name in re.findall(r"\$\{env:([A-Za-z_]\w*)\}", json.dumps(file.template)):
            assert allowed.fullmatch(name), f"{file.name}: the worker may not read {name}"
            assert name in env, f"{file.name}: the connect service does not set {name}"


def _otel_variables() -> set[str]:
    """The variables the OpenTelemetry API and SDK (its OTLP exporter included) read, by their own lists."""
    import opentelemetry.environment_variables as api_variables
    import opentelemetry.sdk.environment_variables as sdk_variables

    return {
        getattr(module, name)
        for module in (api_variables, sdk_variables)
        for name in dir(module)
        if name.startswith("OTEL_")
    }


@pytest.mark.parametrize("name", PROJECT_SERVICES)
def test_every_otel_variable_is_one_the_sdk_reads(name: str) -> None:
    known = _otel_variables()
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in known  # the lists were found
    unknown = sorted(
        key for key in _environment(SERVICES[name]) if key.startswith("OTEL_") and key not in known
    )
    assert not unknown, f"{name} sets OpenTelemetry variables the SDK does not read: {unknown}"


def test_every_run_service_sends_its_spans_to_the_collector(service_env: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider, sampling

    runs = [name for name in PROJECT_SERVICES if _argv(SERVICES[name])[1] == "run"]
    assert runs
    for name in runs:
        env = service_env(name)
        endpoint = urlparse(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""))
        assert endpoint.hostname in _hostnames(), f"{name} exports traces to no compose service"
        collector = SERVICES[str(endpoint.hostname)]
        assert _image_name(collector).endswith("jaeger") and endpoint.port == 4318  # its OTLP/HTTP port
        # Parent-based: a hop keeps the decision its document's first span made, so traces stay whole.
        assert isinstance(TracerProvider().sampler, sampling.ParentBased), name
