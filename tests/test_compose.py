"""The production stack (docker-compose.yml + Dockerfile), checked without Docker.

No Docker engine runs here, so these tests check what can go wrong before ``docker compose up``:
the file parses, every command exists in the project, every ``TETHER_*`` variable is a setting,
ports do not clash, dependencies and health checks line up, and the search attributes
registered are the ones the code uses.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from tether.devstack.temporal import search_attribute_flags
from tether.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PREFIX = Settings.model_config.get("env_prefix", "")


# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _interpolate(value: str) -> str:
    """Compose's interpolation with nothing set: ``${VAR:-default}`` gives the default, a
    required ``${VAR:?message}`` stands for the value the operator must set (``required-VAR``),
    ``${VAR}`` gives ""."""

    def value_of(match: re.Match[str]) -> str:
        name, operator, rest = match.groups()
        if operator and operator.endswith("?"):
            return f"required-{name}"
        return rest or ""

    return _VARIABLE.sub(value_of, value)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: _interpolate(str(value)) for key, value in env.items()}


def _argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else list(command)


def _built(name: str) -> bool:
    return "build" in SERVICES[name]


def _depends(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {target: spec.get("condition", "service_started") for target, spec in deps.items()}


def _one_shot() -> set[str]:
    """Services another one waits to complete: jobs that exit, not servers."""
    return {
        target
        for service in SERVICES.values()
        for target, condition in _depends(service).items()
        if condition == "service_completed_successfully"
    }


def _distributed_modules() -> list[str]:
    """Top-level modules and package patterns the installed (non-editable) project contains."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    return setuptools.get("py-modules", []) + setuptools["packages"]["find"]["include"]


def _distributed(module: str) -> bool:
    top = module.split(".")[0]
    return any(fnmatch(top, pattern) for pattern in _distributed_modules())


# ---- the compose file ---------------------------------------------------------------------


def test_services_have_an_image_or_a_build() -> None:
    assert SERVICES
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            build = service["build"]
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert (context / (dockerfile or "Dockerfile")).is_file(), name


def test_the_production_shape_is_all_there() -> None:
    assert {"postgresql", "temporal", "temporal-ui", "api", "worker", "runner"} <= set(SERVICES)
    assert SERVICES["postgresql"]["image"].startswith("postgres:")
    assert SERVICES["temporal"]["environment"]["DB"] == "postgres12"
    assert {"api", "worker", "runner", "migrate"} <= {name for name in SERVICES if _built(name)}


def _check_command(argv: list[str]) -> None:
    """The program of a built service's command exists in the installed project."""
    program, args = argv[0], argv[1:]
    if program in ("python", "python3"):
        assert args[0] == "-m", argv
        module = args[1]
        assert _distributed(module), f"{module} is not installed by pyproject.toml"
        spec = importlib.util.find_spec(module)
        assert spec is not None, argv
        if spec.submodule_search_locations is not None:  # a package runs its __main__
            assert importlib.util.find_spec(f"{module}.__main__") is not None, argv
        else:
            assert spec.origin and "__main__" in Path(spec.origin).read_text(), argv
    elif program == "uvicorn":
        assert any(dep.startswith("uvicorn") for dep in PYPROJECT["project"]["dependencies"])
        target = next(arg for arg in args if ":" in arg and not arg.startswith("-"))
        module, _, attr = target.partition(":")
        assert _distributed(module), target
        app = getattr(importlib.import_module(module), attr)
        if "--factory" in args:
            assert callable(app), target
    elif program in PYPROJECT["project"]["scripts"]:
        entry = PYPROJECT["project"]["scripts"][program]
        module, _, attr = entry.partition(":")
        main = getattr(importlib.import_module(module), attr)
        with pytest.raises(SystemExit) as exited:  # --help: the subcommand parses, runs nothing
            main([*args, "--help"])
        assert exited.value.code == 0, f"`{program} {' '.join(args)}` is not a command"
    else:
        raise AssertionError(f"unknown program in {argv}")


@pytest.mark.parametrize("name", sorted(n for n in SERVICES if "build" in SERVICES[n]))
def test_built_service_commands_exist_in_the_project(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _argv(SERVICES[name])
    assert argv, f"{name} has no command"
    _check_command(argv)


def test_the_dockerfile_default_command_exists() -> None:
    match = re.search(r"^CMD\s+(\[.*\])\s*$", DOCKERFILE, re.MULTILINE)
    assert match, "the Dockerfile has no exec-form CMD"
    _check_command(yaml.safe_load(match.group(1)))


def test_tether_environment_variables_are_settings() -> None:
    fields = set(Settings.model_fields)
    named = {
        (service_name, key)
        for service_name, service in SERVICES.items()
        for key in _environment(service)
        if key.startswith(PREFIX)
    }
    named |= {("Dockerfile", key) for key in re.findall(rf"\b({PREFIX}[A-Z0-9_]+)=", DOCKERFILE)}
    assert named
    unknown = sorted(
        (where, key) for where, key in named if key[len(PREFIX) :].lower() not in fields
    )
    assert not unknown, f"not fields of tether.settings.Settings: {unknown}"


@pytest.mark.parametrize("name", sorted(n for n in SERVICES if "build" in SERVICES[n]))
def test_each_tether_service_environment_makes_valid_settings(name: str) -> None:
    values = {
        key[len(PREFIX) :].lower(): value
        for key, value in _environment(SERVICES[name]).items()
        if key.startswith(PREFIX)
    }
    settings = Settings.model_validate(values)  # these win over any TETHER_* of this process
    # Production talks to PostgreSQL and the Temporal service, never the embedded defaults.
    url = make_url(settings.database_url)
    assert url.drivername == "postgresql+asyncpg"
    assert url.host in SERVICES
    temporal_host, _, temporal_port = settings.temporal_address.rpartition(":")
    assert temporal_host in SERVICES and temporal_port == "7233"


def test_the_runner_is_reachable_where_workers_look_for_it() -> None:
    worker = _environment(SERVICES["worker"])
    runner = _environment(SERVICES["runner"])
    url = urlsplit(worker["TETHER_RUNNER_URL"])
    assert url.hostname == "runner"
    default_port = Settings.model_fields["runner_port"].default
    assert url.port == int(runner.get("TETHER_RUNNER_PORT", default_port))
    assert runner["TETHER_RUNNER_HOST"] == "0.0.0.0"  # reachable from other containers
    # Both sides must share the token: from the same variable.
    assert worker["TETHER_RUNNER_TOKEN"] == runner["TETHER_RUNNER_TOKEN"]
    raw = SERVICES["runner"]["environment"]["TETHER_RUNNER_TOKEN"]
    assert raw.startswith("${TETHER_RUNNER_TOKEN"), "the token must be configurable"


def test_published_host_ports_do_not_clash() -> None:
    published: dict[str, str] = {}
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            parts = _interpolate(str(mapping)).split(":")
            assert len(parts) >= 2, f"{name}: publish as HOST:CONTAINER, not {mapping}"
            host = ":".join(parts[:-1])  # "8000" or "127.0.0.1:8000"
            assert host not in published, f"{name} and {published[host]} both publish {host}"
            published[host] = name
    assert {p.rsplit(":", 1)[-1] for p in published} == {"8000", "8080"}


def _published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """``(host address, host port)`` of each port the service publishes, defaults applied."""
    found = []
    for mapping in service.get("ports", []):
        if isinstance(mapping, dict):  # the long syntax
            found.append((str(mapping.get("host_ip", "")), str(mapping.get("published", ""))))
            continue
        parts = _interpolate(str(mapping)).split(":")
        found.append((":".join(parts[:-2]), parts[-2] if len(parts) > 1 else parts[0]))
    return found


def test_only_the_api_and_the_temporal_ui_are_published() -> None:
    publishing = {name for name, service in SERVICES.items() if service.get("ports")}
    assert publishing == {"api", "temporal-ui"}
    # Temporal's frontend, the runner and PostgreSQL are reached over the compose network.
    assert "7233" in [str(p) for p in SERVICES["temporal"].get("expose", [])]


def test_no_port_is_published_beyond_loopback_by_default() -> None:
    for name, service in SERVICES.items():
        for address, port in _published(service):
            # No address means every interface (0.0.0.0), as does "0.0.0.0" or "::".
            assert address == "127.0.0.1", f"{name} publishes {port} on {address or '0.0.0.0'}"


SECRET_NAME = re.compile(r"PASSWORD|PWD|TOKEN|SECRET|_KEY", re.IGNORECASE)


def _raw_environments() -> list[tuple[str, str, str]]:
    found = []
    for name, service in SERVICES.items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        found += [(name, key, str(value)) for key, value in env.items()]
    return found


def test_no_secret_has_a_default() -> None:
    secrets_seen = set()
    for service, key, raw in _raw_environments():
        for variable, operator, default in _VARIABLE.findall(raw):
            if SECRET_NAME.search(variable) and "PREVIOUS" not in variable:
                secrets_seen.add(variable)
                assert operator in (":?", "?"), f"{service}.{key}: ${{{variable}}} has a default"
            elif SECRET_NAME.search(variable):  # previous tokens/keys: optional, empty default
                assert default == "", f"{service}.{key}: {variable} defaults to {default!r}"
        if SECRET_NAME.search(key) and not _VARIABLE.search(raw):
            raise AssertionError(f"{service}.{key} is written in the file: {raw!r}")
    assert secrets_seen == {
        "POSTGRES_PASSWORD",
        "TETHER_RUNNER_TOKEN",
        "TETHER_SECRETS_KEY",
        "TETHER_PAYLOAD_KEYS",
    }


def test_the_secrets_reach_the_processes_that_need_them() -> None:
    def env(name: str) -> dict[str, str]:
        return _environment(SERVICES[name])

    for name in ("api", "migrate"):
        assert env(name)["TETHER_SECRETS_KEY"] == "required-TETHER_SECRETS_KEY", name
    for name in ("runner", "worker"):
        assert env(name)["TETHER_RUNNER_TOKEN"] == "required-TETHER_RUNNER_TOKEN", name
    assert "TETHER_SECRETS_KEY" not in env("runner")  # only what each process needs


def test_dependencies_exist_and_health_conditions_have_health_checks() -> None:
    for name, service in SERVICES.items():
        for target, condition in _depends(service).items():
            assert target in SERVICES, f"{name} depends on unknown {target}"
            assert target != name
            assert condition in (
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            ), condition
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{target} has no health check"


def test_long_running_services_have_health_checks_and_jobs_stop() -> None:
    jobs = _one_shot()
    assert {"migrate", "temporal-setup"} <= jobs
    for name, service in SERVICES.items():
        if name in jobs:
            # A job must not be restarted forever once it succeeded.
            assert str(service.get("restart", "no")).startswith(("no", "on-failure")), name
        else:
            check = service.get("healthcheck")
            assert check and check.get("test"), f"{name} has no health check"


def test_health_checks_probe_the_ports_the_services_use() -> None:
    def probe(name: str) -> str:
        return " ".join(SERVICES[name]["healthcheck"]["test"])

    assert "8000/healthz" in probe("api")
    runner_port = _environment(SERVICES["runner"])["TETHER_RUNNER_PORT"]
    assert f"{runner_port}/healthz" in probe("runner")
    worker_env = _environment(SERVICES["worker"])
    assert f"{worker_env['TETHER_WORKER_METRICS_PORT']}/metrics" in probe("worker")
    assert worker_env["TETHER_WORKER_METRICS_HOST"] == "0.0.0.0"  # scrapeable from outside


def test_the_migration_runs_before_api_and_worker() -> None:
    assert _argv(SERVICES["migrate"]) == ["tether", "migrate"]
    for name in ("api", "worker"):
        deps = _depends(SERVICES[name])
        assert deps.get("migrate") == "service_completed_successfully", name
        assert deps.get("temporal-setup") == "service_completed_successfully", name


def test_the_custom_search_attributes_are_the_codes() -> None:
    registered = _environment(SERVICES["temporal-setup"])["SEARCH_ATTRIBUTES"].split()
    expected = search_attribute_flags()[1::2]  # ["--search-attribute", "Name=Type", ...]
    assert sorted(registered) == sorted(expected)
    assert "/deploy/setup.sh" in _argv(SERVICES["temporal-setup"])


def test_mounted_files_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_temporal_versions_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service.get("image", "")
        if image.startswith("temporalio/"):
            assert re.search(r":\d+\.\d+\.\d+$", image), f"{name}: pin {image}"
    ui_version = SERVICES["temporal-ui"]["image"].rsplit(":", 1)[1]
    # Activity summaries (user metadata) appear in the UI from 2.34 on.
    assert tuple(map(int, ui_version.split("."))) >= (2, 34, 0)


# ---- the Dockerfile -----------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfile_builds_from_python_and_installs_the_project() -> None:
    instructions = _instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert froms and all(rest.startswith("python:3.11") for rest in froms)
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert re.search(r"pip (wheel|install)\b[^&]*\s\.(\s|$)", runs), "the project is not built"
    assert re.search(r"pip install\b[^&]*\btether\b", runs), "the project is not installed"
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    assert any(keyword == "CMD" for keyword, _ in instructions)


def test_dockerfile_copies_files_that_exist_and_everything_installed() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied: set[str] = set()
    for keyword, rest in _instructions():
        if keyword != "COPY" or "--from=" in rest:
            continue
        *sources, _ = [part for part in rest.split() if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY of missing {source}"
            assert not any(fnmatch(source, pattern) for pattern in ignored), (
                f"{source} is excluded by .dockerignore"
            )
            copied.add(source.rstrip("/"))
    assert {"pyproject.toml", PYPROJECT["project"]["readme"]} <= copied
    for module in PYPROJECT["tool"]["setuptools"].get("py-modules", []):
        assert f"{module}.py" in copied, module
    packages = [p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()]
    for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]:
        for package in packages:
            if fnmatch(package, pattern):
                assert package in copied, f"package {package} is installed but not copied"


def test_api_and_worker_share_a_required_payload_key_and_the_ui_decodes_through_the_api() -> None:
    for name in ("api", "worker"):
        raw = SERVICES[name]["environment"]["TETHER_PAYLOAD_KEYS"]
        assert raw.startswith("${TETHER_PAYLOAD_KEYS:?"), f"{name}: required, no default"
    assert "TETHER_PAYLOAD_KEYS" not in _environment(SERVICES["runner"])  # never talks to Temporal
    ui = _environment(SERVICES["temporal-ui"])
    # The browser calls the codec at the API's public URL, the one the API is reached at.
    api_url = _environment(SERVICES["api"])["TETHER_PUBLIC_API_URL"]
    api_port = next(str(p).split(":")[-2] for p in SERVICES["api"]["ports"])
    assert api_url.endswith(f":{api_port}")
    assert ui["TEMPORAL_CODEC_ENDPOINT"] == f"{api_url}/codec"
    ui_port = next(str(p).split(":")[-2] for p in SERVICES["temporal-ui"]["ports"])
    origins = _environment(SERVICES["api"])["TETHER_CODEC_CORS_ORIGINS"].split(",")
    assert f"http://localhost:{ui_port}" in origins
