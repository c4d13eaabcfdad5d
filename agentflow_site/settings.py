"""AgentFlow settings, read from the environment (see .env.example for every variable).

With nothing set it runs on embedded defaults: SQLite (WAL), the django-q2 ORM broker and a
database cache. DATABASE_URL and REDIS_URL move it to PostgreSQL and Redis with no code change.
"""

import dataclasses
import ipaddress
import re
import sys
from pathlib import Path
from typing import Any, cast

import environ
from django.core.exceptions import ImproperlyConfigured

from agentflow_site import __version__
from agentflow_site.config import CheckedEnv
from runtime.databases.limits import DBLimits
from runtime.egress.trust import entry_problem
from runtime.grants import GrantError, grant_entries
from runtime.limits import RunLimits
from runtime.sandbox.limits import SandboxLimits, setting_name

BASE_DIR = Path(__file__).resolve().parent.parent
INSECURE_DEV_SECRET_KEY = "django-insecure-agentflow-development-key-do-not-deploy"

# Every variable is read through `env` (agentflow_site/config.py): a bad value is recorded as a
# problem naming it, and the start stops with all of them (system check agentflow.E100).
env = CheckedEnv()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
if env.refused("DEBUG"):
    DEBUG = False  # a misspelt DEBUG never turns the debug pages on
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=INSECURE_DEV_SECRET_KEY)
_debug_said = not env.refused("DEBUG")  # a misspelt DEBUG is its own problem, not the key's
if _debug_said and not DEBUG and (SECRET_KEY == INSECURE_DEV_SECRET_KEY or len(SECRET_KEY) < 50):
    env.refuse(
        "DJANGO_SECRET_KEY",
        "must be a random value of 50+ characters when DEBUG is off",
        "$(python -c 'import secrets; print(secrets.token_urlsafe(64))')",
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
AGENTFLOW_VERSION = __version__
DATA_DIR = Path(env.str("AGENTFLOW_DATA_DIR", default=str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "django_structlog",
    "agentflow_site.apps.AgentflowSiteConfig",
    "tenants",
    "workflows",
    "sources",
    "executions",
    "schedules",
]

MIDDLEWARE = [
    "agentflow_site.observability.middleware.MetricsMiddleware",  # outermost: times everything
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "agentflow_site.middleware.RequestIdHeaderMiddleware",  # inside: the id is still bound
    "agentflow_site.middleware.UnstorableTextMiddleware",  # a NUL in a query: 400, not a query
    "agentflow_site.middleware.ProblemErrorsMiddleware",  # a 500 is problem+json, DEBUG or not
]

ROOT_URLCONF = "agentflow_site.urls"
WSGI_APPLICATION = "agentflow_site.wsgi.application"
ASGI_APPLICATION = "agentflow_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", default="")
# django-q2 forks its worker processes: a pool's connections would be shared by parent and
# children over one socket, and their queries would interleave (seen: rows of one query
# returned to another). Workers open plain connections instead.
_FORKING_WORKER = "qcluster" in sys.argv or not env.bool("DATABASE_POOL", default=True)
if not DATABASE_URL:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
try:
    DATABASES = {
        "default": environ.Env.db_url_config(DATABASE_URL or f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
    }
except (ValueError, TypeError, KeyError):
    DATABASES = {"default": {}}
if not DATABASES["default"].get("ENGINE"):
    env.refuse(
        "DATABASE_URL",
        "is not a database URL AgentFlow knows (postgres://, mysql://, sqlite:///)",
        "postgres://agentflow:PASSWORD@127.0.0.1:5432/agentflow (or unset for SQLite)",
    )
    # only so that Django loads and the checks can say so; nothing runs on it
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while a worker writes; IMMEDIATE avoids upgrade deadlocks.
    _db.setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
elif _db["ENGINE"] == "django.db.backends.postgresql" and not _FORKING_WORKER:
    # Django's native psycopg pool; it requires persistent connections to be off.
    _db["CONN_MAX_AGE"] = 0
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=1),
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Redis --------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL and not re.match(r"(rediss?|unix)://[^/\s]*", REDIS_URL):
    env.refuse(
        "REDIS_URL", "is not a Redis URL (redis://, rediss://, unix://)", "redis://127.0.0.1:6379/0"
    )
    REDIS_URL = ""
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="agentflow"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # Redis down or stalled: the cache's reads miss and its writes are dropped (the
                # API throttles fail open) within a second, logged, instead of every request
                # failing with a 500. /health says Redis is down.
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
else:
    # A database cache, not a local-memory one: throttles and worker heartbeats must be seen
    # by every process (web and django-q2 workers), and it needs no server.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "agentflow_cache",
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="agentflow"),
        }
    }

# --- Background work (django-q2) ---------------------------------------------------------------
Q_CLUSTER = {
    "name": env.str("Q_CLUSTER_NAME", default="agentflow"),
    "orm": "default",  # ORM broker: a task a dead worker held is re-delivered (see STACK.md)
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TASK_TIMEOUT", default=900),
    "retry": env.int("Q_TASK_RETRY", default=960),
    "max_attempts": env.int("Q_MAX_ATTEMPTS", default=3),
    "ack_failures": True,
    "catch_up": False,
    "poll": env.float("Q_POLL", default=0.2),
    "save_limit": 1000,
}
if Q_CLUSTER["timeout"] >= Q_CLUSTER["retry"]:
    env.refuse("Q_TASK_TIMEOUT", "must be smaller than Q_TASK_RETRY", "900 (with Q_TASK_RETRY=960)")

# --- Auth and passwords ------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
MEDIA_ROOT = DATA_DIR / "media"
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise serves from finders in DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security (manage.py check --deploy passes with DEBUG off) ----------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^health"]  # probes speak plain HTTP inside the cluster
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- API ------------------------------------------------------------------------------------------
API_THROTTLE_RATE = env.str("API_THROTTLE_RATE", default="600/min")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "agentflow_site.auth.StaffSessionAuthentication",  # steps aside unless staff, no key
        "agentflow_site.auth.ApiKeyAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["agentflow_site.auth.HasRole"],
    "DEFAULT_THROTTLE_CLASSES": ["agentflow_site.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": API_THROTTLE_RATE},
    "DEFAULT_PAGINATION_CLASS": "agentflow_site.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["agentflow_site.parsers.JSONParser"],  # bounded, storable
    "EXCEPTION_HANDLER": "agentflow_site.errors.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "agentflow_site.schema.AgentFlowAutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AgentFlow API",
    "DESCRIPTION": "Validate, store and run multi-agent LLM workflows.",
    "VERSION": __version__,
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "OAS_VERSION": "3.1.0",  # the WorkflowSpec JSON Schema (2020-12) is referenced as it is
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "agentflow_site.schema.postprocess",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "tenants.models.Role",
        "ExecutionStatusEnum": "executions.models.Status",
        "WorkflowStatusEnum": "workflows.models.Workflow.Status",
    },
}

# --- Workflows -----------------------------------------------------------------------------------
AGENTFLOW_MAX_SPEC_BYTES = env.int("AGENTFLOW_MAX_SPEC_BYTES", default=1024 * 1024)
AGENTFLOW_MAX_SPEC_NODES = env.int("AGENTFLOW_MAX_SPEC_NODES", default=1000)
# The most a spec's limits.max_steps may ask for (node executions per run).
AGENTFLOW_MAX_STEPS = env.int("AGENTFLOW_MAX_STEPS", default=1000)
# How deep workflows may call stored workflows (`workflow` nodes): 1 lets a workflow call others
# that call none; more is a validation error (`workflow_depth`).
AGENTFLOW_MAX_WORKFLOW_DEPTH = env.number("AGENTFLOW_MAX_WORKFLOW_DEPTH", 3)
if AGENTFLOW_MAX_WORKFLOW_DEPTH < 0:
    env.refuse("AGENTFLOW_MAX_WORKFLOW_DEPTH", "is negative; 0 turns sub-workflows off", "3")
    AGENTFLOW_MAX_WORKFLOW_DEPTH = 3
# Environment variables every tenant's sources may name, each bound to where its value may go
# (runtime/grants.py): NAME, PREFIX_*, NAME@openai|openai_image, NAME@http:api.example.com, comma-
# separated or as a JSON list. A plain name goes only where the operator fixes the destination.
# Each tenant can be granted more. The platform's own (DJANGO_*, DATABASE_URL, …) never are.
try:
    AGENTFLOW_ALLOWED_ENV = grant_entries(env.str("AGENTFLOW_ALLOWED_ENV", default=""))
except GrantError as exc:
    env.refuse(
        "AGENTFLOW_ALLOWED_ENV", str(exc), "OPENAI_API_KEY@openai,CRM_TOKEN@http:crm.example.com"
    )
    AGENTFLOW_ALLOWED_ENV = []
# A body a little over the spec limit still reaches the validator (which names the limit); far
# over it is refused before it is read.
DATA_UPLOAD_MAX_MEMORY_SIZE = AGENTFLOW_MAX_SPEC_BYTES * 2 + 64 * 1024

# USD per million tokens, merged over runtime/pricing.py's table:
# {"my-model": [0.5, 1.5]} (input, output). Names match exactly or as a prefix.
_prices = env.json("AGENTFLOW_PRICES", default={}, example='{"my-model": [0.5, 1.5]}')
if not isinstance(_prices, dict) or not all(
    isinstance(v, list) and len(v) == 2 and all(isinstance(n, int | float) for n in v)
    for v in _prices.values()
):
    env.refuse(
        "AGENTFLOW_PRICES",
        "must map model names to [input, output] USD per million tokens",
        '{"my-model": [0.5, 1.5]}',
    )
    _prices = {}
AGENTFLOW_PRICES = {k: tuple(v) for k, v in _prices.items()}
# Extra aggregation functions: {"name": "package.module.function"} (operator code only).
AGENTFLOW_AGGREGATIONS = env.json(
    "AGENTFLOW_AGGREGATIONS", default={}, example='{"name": "package.module.function"}'
)
if not isinstance(AGENTFLOW_AGGREGATIONS, dict):
    env.refuse(
        "AGENTFLOW_AGGREGATIONS",
        "must map names to import paths",
        '{"name": "package.module.function"}',
    )
    AGENTFLOW_AGGREGATIONS = {}
# Node plugins enabled (docs/plugins.md): names in the `agentflow.nodes` entry-point group of the
# packages installed here, comma-separated; `*` for every installed one; empty: none.
AGENTFLOW_NODE_PLUGINS: list[str] = env.list("AGENTFLOW_NODE_PLUGINS", default=[])
for _plugin in AGENTFLOW_NODE_PLUGINS:
    if _plugin != "*" and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", _plugin):
        env.refuse(
            "AGENTFLOW_NODE_PLUGINS",
            f"{_plugin!r} is not a plugin name (an entry point's name: a letter, then letters, "
            "digits, _ . -)",
            "text_stats,my_plugin",
        )
# Base URLs for sources that name none, by kind: {"openai": "https://gateway.internal/v1"}.
AGENTFLOW_PROVIDER_BASE_URLS = env.json(
    "AGENTFLOW_PROVIDER_BASE_URLS", default={}, example='{"openai": "https://gateway.internal/v1"}'
)
if not isinstance(AGENTFLOW_PROVIDER_BASE_URLS, dict) or not all(
    isinstance(v, str) for v in AGENTFLOW_PROVIDER_BASE_URLS.values()
):
    env.refuse(
        "AGENTFLOW_PROVIDER_BASE_URLS",
        "must map source kinds to base URLs",
        '{"openai": "https://gateway.internal/v1"}',
    )
    AGENTFLOW_PROVIDER_BASE_URLS = {}


# Private or loopback hosts every tenant's sources (http and provider) may reach: `host` (any
# port) or `host:port`, names (`*.corp` for a domain), IPs or CIDRs (`[fd12::5]:8000` for IPv6
# with a port). Each tenant's admin-set trusted_hosts adds to it; a source's allowed_hosts only
# narrows it. Cloud metadata addresses stay refused whatever this says (runtime/egress/trust.py).
def _trusted_hosts(name: str) -> list[str]:
    """A trusted-hosts list; an entry that is not one is a problem naming it."""
    entries: list[str] = env.list(name, default=[])
    for entry in entries:
        problem = entry_problem(entry)
        if problem:
            env.refuse(name, problem, "db.internal:5432,*.corp,10.0.0.0/8")
            return []
    return entries


AGENTFLOW_TRUSTED_HOSTS = _trusted_hosts("AGENTFLOW_TRUSTED_HOSTS")
# The same, for provider base_url/endpoint only (an in-house vLLM); the older, narrower setting.
AGENTFLOW_TRUSTED_PROVIDER_HOSTS = _trusted_hosts("AGENTFLOW_TRUSTED_PROVIDER_HOSTS")
# sqlite sources name files under this directory and nowhere else: each tenant only its own
# subdirectory, t<tenant id>/ (runtime/databases/sqlite.py).
AGENTFLOW_SQLITE_ROOT = Path(env.str("AGENTFLOW_SQLITE_ROOT", default=str(DATA_DIR / "sqlite")))
# db nodes call only the functions of runtime/databases/functions.py's allow-lists and these:
# PostgreSQL `name` or `schema.name`, every function of a schema, MySQL `name` or `db.name`.
AGENTFLOW_PG_ALLOWED_FUNCTIONS = env.list("AGENTFLOW_PG_ALLOWED_FUNCTIONS", default=[])
AGENTFLOW_PG_ALLOWED_SCHEMAS = env.list("AGENTFLOW_PG_ALLOWED_SCHEMAS", default=[])
AGENTFLOW_MYSQL_ALLOWED_FUNCTIONS = env.list("AGENTFLOW_MYSQL_ALLOWED_FUNCTIONS", default=[])
# db nodes (and source tests) refuse a PostgreSQL superuser or server-file role, and a MySQL
# user with FILE, SUPER or ALL PRIVILEGES on *.*, unless this is true.
AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES = env.bool("AGENTFLOW_ALLOW_PRIVILEGED_DB_ROLES", default=False)
# A running execution whose worker has not beaten its heart for this long is taken over (s).
AGENTFLOW_HEARTBEAT_STALE = env.float("AGENTFLOW_HEARTBEAT_STALE", default=20.0)
# Longest a run waits for a queue's rate limit before its node fails with rate_limited (s).
AGENTFLOW_MAX_RATE_WAIT = env.float("AGENTFLOW_MAX_RATE_WAIT", default=30.0)
# Longest a synchronous execute may run, whatever the spec or request asks (seconds).
AGENTFLOW_SYNC_TIMEOUT = env.float("AGENTFLOW_SYNC_TIMEOUT", default=300.0)


# --- What one run, and one process, may take: operator caps a spec cannot raise ----------------
# (runtime/limits.py and runtime/databases/limits.py say what each one bounds and which error a
# run gets when it is reached.)
def _number(name: str, default: float) -> Any:
    """The variable as a number of the default's type (a problem naming it if it is not)."""
    return env.number(name, default)


def _limits(factory: Any, values: dict[str, Any]) -> Any:
    """The limits, or the defaults with a problem naming the variable that is out of range."""
    try:
        return factory(**values)
    except ValueError as exc:
        name, _, problem = str(exc).partition(" ")
        env.refuse(name, problem.split(": ")[0], "")
        return factory()


AGENTFLOW_RUN_LIMITS = _limits(
    RunLimits,
    {
        "max_state_bytes": _number("AGENTFLOW_MAX_STATE_BYTES", 32 * 1024 * 1024),
        "max_result_bytes": _number("AGENTFLOW_MAX_RESULT_BYTES", 8 * 1024 * 1024),
        "max_final_state_bytes": _number("AGENTFLOW_MAX_FINAL_STATE_BYTES", 16 * 1024 * 1024),
        "max_parallel_nodes": _number("AGENTFLOW_MAX_PARALLEL_NODES", 16),
        "max_recorded_input_chars": _number("AGENTFLOW_MAX_RECORDED_INPUT_CHARS", 1_000_000),
    },
)
# Templates (Jinja) and router rules (CEL): AGENTFLOW_<field> for each SandboxLimits field.
AGENTFLOW_SANDBOX_LIMITS = _limits(
    SandboxLimits,
    {
        field.name: _number(setting_name(field.name), cast(float, field.default))
        for field in dataclasses.fields(SandboxLimits)
    },
)
AGENTFLOW_DB_LIMITS = _limits(
    DBLimits,
    {
        "max_per_source": _number("AGENTFLOW_DB_POOL_MAX_PER_SOURCE", 10),
        "max_total": _number("AGENTFLOW_DB_POOL_MAX_TOTAL", 20),
        "pool_timeout": _number("AGENTFLOW_DB_POOL_TIMEOUT", 10.0),
        "idle_timeout": _number("AGENTFLOW_DB_POOL_IDLE_TIMEOUT", 300.0),
        "max_rows": _number("AGENTFLOW_DB_MAX_ROWS", 10_000),
        "max_bytes": _number("AGENTFLOW_DB_MAX_BYTES", 5_000_000),
    },
)

# Event streams read on a shared thread with a connection given back after each read. In-process
# tests set this: their database transaction lives on the test's own thread (not an env var).
EVENTS_READ_ON_CALLER_THREAD = False

# --- The run worker (`manage.py runworker`, executions/worker.py) -------------------------------
# Runs one worker process drives at once (they mostly wait on providers), how often it looks for
# queued runs besides being woken by NOTIFY (s), how long a stopping worker lets its runs go on
# before handing them to another worker (s), and the connections its checkpoints share.
AGENTFLOW_WORKER_CONCURRENCY = _number("AGENTFLOW_WORKER_CONCURRENCY", 50)
AGENTFLOW_WORKER_POLL = _number("AGENTFLOW_WORKER_POLL", 2.0)
AGENTFLOW_WORKER_GRACE = _number("AGENTFLOW_WORKER_GRACE", 10.0)
AGENTFLOW_CHECKPOINT_POOL_SIZE = _number("AGENTFLOW_CHECKPOINT_POOL_SIZE", 4)
for _name in ("AGENTFLOW_WORKER_CONCURRENCY", "AGENTFLOW_CHECKPOINT_POOL_SIZE"):
    if globals()[_name] < 1:
        env.refuse(_name, "must be at least 1", "4")
if AGENTFLOW_WORKER_POLL <= 0:
    env.refuse("AGENTFLOW_WORKER_POLL", "must be a positive number of seconds", "2")

# --- Schedules (schedules/) and completion webhooks (executions/webhooks.py) -------------------
# The shortest gap a schedule's cron may leave between two runs (s), and how many schedules one
# tenant may keep. A webhook: how long one POST may take (s), how many attempts it gets, and the
# first retry's delay (s; each next one doubles, up to an hour).
AGENTFLOW_SCHEDULE_MIN_INTERVAL_SECONDS = _number("AGENTFLOW_SCHEDULE_MIN_INTERVAL_SECONDS", 60)
AGENTFLOW_SCHEDULE_MAX_PER_TENANT = _number("AGENTFLOW_SCHEDULE_MAX_PER_TENANT", 100)
AGENTFLOW_WEBHOOK_TIMEOUT = _number("AGENTFLOW_WEBHOOK_TIMEOUT", 10.0)
AGENTFLOW_WEBHOOK_MAX_ATTEMPTS = _number("AGENTFLOW_WEBHOOK_MAX_ATTEMPTS", 6)
AGENTFLOW_WEBHOOK_RETRY_SECONDS = _number("AGENTFLOW_WEBHOOK_RETRY_SECONDS", 30)
for _name in (
    "AGENTFLOW_SCHEDULE_MIN_INTERVAL_SECONDS",
    "AGENTFLOW_SCHEDULE_MAX_PER_TENANT",
    "AGENTFLOW_WEBHOOK_MAX_ATTEMPTS",
    "AGENTFLOW_WEBHOOK_RETRY_SECONDS",
):
    if globals()[_name] < 1:
        env.refuse(_name, "must be at least 1", "60")
if not 0 < AGENTFLOW_WEBHOOK_TIMEOUT <= 60:
    env.refuse("AGENTFLOW_WEBHOOK_TIMEOUT", "must be a number of seconds, 0-60", "10")

# --- Retention (executions/retention.py, `manage.py prune`, the daily agentflow-prune) -----------
# Days an ended run (its trace, events, profiles, webhook, files, checkpoints) and an audit event
# are kept; 0 keeps them for ever. A tenant's retention_days / audit_retention_days override them.
AGENTFLOW_RETENTION_DAYS = _number("AGENTFLOW_RETENTION_DAYS", 30)
AGENTFLOW_AUDIT_RETENTION_DAYS = _number("AGENTFLOW_AUDIT_RETENTION_DAYS", 365)
for _name, _default in (("AGENTFLOW_RETENTION_DAYS", 30), ("AGENTFLOW_AUDIT_RETENTION_DAYS", 365)):
    if globals()[_name] < 0:
        env.refuse(_name, "must be 0 (keep for ever) or more days", str(_default))
        globals()[_name] = _default

# --- Logging: JSON lines with the request id and the tenant; secrets scrubbed -------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
if LOG_FORMAT not in ("json", "console"):
    env.refuse("LOG_FORMAT", "must be json or console", "json")
    LOG_FORMAT = "json"
if LOG_LEVEL.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    env.refuse("LOG_LEVEL", "must be DEBUG, INFO, WARNING, ERROR or CRITICAL", "INFO")
    LOG_LEVEL = "INFO"
DJANGO_STRUCTLOG_CELERY_ENABLED = False
DJANGO_STRUCTLOG_TRUST_UPSTREAM_REQUEST_ID = True  # an incoming X-Request-ID is kept
DJANGO_STRUCTLOG_USER_ID_FIELD = None  # callers are keys, bound as tenant/key_prefix/role
from agentflow_site.logging import configure_logging  # noqa: E402

LOGGING = configure_logging(level=LOG_LEVEL, fmt=LOG_FORMAT)
# django-q2's own lines (a task enqueued and processed every minute by the periodic sweeps)
Q_LOG_LEVEL = env.str("Q_LOG_LEVEL", default="INFO").upper()
if Q_LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    env.refuse("Q_LOG_LEVEL", "must be DEBUG, INFO, WARNING, ERROR or CRITICAL", "WARNING")
    Q_LOG_LEVEL = "INFO"
LOGGING["loggers"]["django-q"] = {"level": Q_LOG_LEVEL}

# --- Validation cache (workflows/cache.py) -----------------------------------------------------
# Seconds a process keeps a spec's validation result for a tenant (keyed by the spec, the
# tenant's grants and trusted hosts, these settings, and re-checked against its stored sources);
# 0 turns the cache off.
AGENTFLOW_VALIDATION_CACHE_SECONDS = _number("AGENTFLOW_VALIDATION_CACHE_SECONDS", 300.0)
if AGENTFLOW_VALIDATION_CACHE_SECONDS < 0:
    env.refuse("AGENTFLOW_VALIDATION_CACHE_SECONDS", "must be 0 or more seconds", "300")

# --- Error tracking (Sentry; agentflow_site/observability/errors.py): off unless SENTRY_DSN ------
# Events are scrubbed like the logs; local variables (SENTRY_INCLUDE_LOCALS) and Sentry's own
# tracing (SENTRY_TRACES_SAMPLE_RATE, unset: off) stay off unless asked for.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="development" if DEBUG else "production")
SENTRY_RELEASE = env.str("SENTRY_RELEASE", default=f"agentflow@{__version__}")
SENTRY_INCLUDE_LOCALS = env.bool("SENTRY_INCLUDE_LOCALS", default=False)
SENTRY_TRACES_SAMPLE_RATE = _number("SENTRY_TRACES_SAMPLE_RATE", 0.0) or None  # 0: off
if SENTRY_TRACES_SAMPLE_RATE is not None and not 0 < SENTRY_TRACES_SAMPLE_RATE <= 1:
    env.refuse("SENTRY_TRACES_SAMPLE_RATE", "must be between 0 and 1", "0.1")
    SENTRY_TRACES_SAMPLE_RATE = None
if SENTRY_DSN:
    from agentflow_site.observability.errors import SentryConfig, init_sentry

    init_sentry(
        SentryConfig(
            dsn=SENTRY_DSN,
            environment=SENTRY_ENVIRONMENT,
            release=SENTRY_RELEASE,
            traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
            include_local_variables=SENTRY_INCLUDE_LOCALS,
        )
    )

# --- Profiling (agentflow_site/observability/profiling.py) ---------------------------------------
# Runs of these workflows (spec names or wf_ ids; `*` for all) are profiled with pyinstrument,
# sync and async alike, the HTML kept beside the execution (staff-only, in the admin). Costs the
# profiled runs some speed; `manage.py profile_run` profiles one run on demand instead.
AGENTFLOW_PROFILE_EXECUTIONS = frozenset(env.list("AGENTFLOW_PROFILE_EXECUTIONS", default=[]))

# --- Metrics (`/metrics`, agentflow_site/observability/) ----------------------------------------
# Off: nothing is recorded and /metrics answers 404. A scrape must carry `Authorization: Bearer
# <AGENTFLOW_METRICS_TOKEN>` or come from AGENTFLOW_METRICS_ALLOWED_NETWORKS (CIDRs, matched
# against the connecting address); with neither set, only loopback with DEBUG on. Every process
# of a host keeps its samples in PROMETHEUS_MULTIPROC_DIR (default <AGENTFLOW_DATA_DIR>/metrics).
AGENTFLOW_METRICS = env.bool("AGENTFLOW_METRICS", default=True)
AGENTFLOW_METRICS_TOKEN = env.str("AGENTFLOW_METRICS_TOKEN", default="")
if AGENTFLOW_METRICS_TOKEN and len(AGENTFLOW_METRICS_TOKEN) < 16:
    env.refuse("AGENTFLOW_METRICS_TOKEN", "must be 16 characters or more", "<32 random characters>")
AGENTFLOW_METRICS_ALLOWED_NETWORKS = env.list("AGENTFLOW_METRICS_ALLOWED_NETWORKS", default=[])
for _network in AGENTFLOW_METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        env.refuse(
            "AGENTFLOW_METRICS_ALLOWED_NETWORKS",
            f"{_network!r} is not an address or CIDR network",
            "10.0.0.0/8,127.0.0.1",
        )
AGENTFLOW_METRICS_MAX_WORKFLOWS = int(_number("AGENTFLOW_METRICS_MAX_WORKFLOWS", 500))
# The admin's health dashboard reads snapshots of these metrics kept in the database, one per
# host every AGENTFLOW_HEALTH_SAMPLE_SECONDS (taken by `runworker`, or `manage.py sample_metrics`).
AGENTFLOW_HEALTH_SAMPLE_SECONDS = _number("AGENTFLOW_HEALTH_SAMPLE_SECONDS", 15.0)
if not 1 <= AGENTFLOW_HEALTH_SAMPLE_SECONDS <= 300:
    env.refuse("AGENTFLOW_HEALTH_SAMPLE_SECONDS", "must be between 1 and 300", "15")

# --- Tracing (OpenTelemetry; agentflow_site/observability/tracing.py) ---------------------------
# Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_TRACES_EXPORTER=otlp|console) is set; the SDK
# reads the other standard OTEL_* variables (service name, sampler, headers). Each process (web,
# runworker) builds its tracer at start. Prompts and answers stay out of spans unless
# OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true.
from agentflow_site.observability.tracing import tracing_config  # noqa: E402

try:
    AGENTFLOW_TRACING = tracing_config(environ.Env.ENVIRON)
except ImproperlyConfigured as exc:
    _name, _, _problem = str(exc).partition(" ")
    env.refuse(_name.rstrip(":"), _problem, "")
    AGENTFLOW_TRACING = tracing_config({})

# Every problem found above (agentflow_site/config.py): reported by system check agentflow.E100
# and by the web server at start, which then stop.
CONFIG_PROBLEMS = env.problems
