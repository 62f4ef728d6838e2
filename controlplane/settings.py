"""Settings, read from the environment (see docs/OPERATIONS.md for every variable).

The defaults are the embedded ones: a SQLite file and a broker in files under var/
(localfs://, controlplane/broker.py), and the local sandbox for AWS. Production sets
CONTROLPLANE_PRODUCTION=true and the URLs; SECRET_KEY and ALLOWED_HOSTS are then required.
"""

import base64
import os
import re
import secrets
import tomllib
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from controlplane import auditkeys
from controlplane.env import env_bool, env_choice, env_float, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CONTROLPLANE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

PRODUCTION = env_bool("CONTROLPLANE_PRODUCTION", False)
DEBUG = env_bool("DEBUG", False)


def _secret_key():
    key = env_str("SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when CONTROLPLANE_PRODUCTION is true.")
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()


def _audit_keys():
    """(AUDIT_KEY, AUDIT_KEY_FILE): where the audit log's signing keys come from
    (controlplane/auditkeys.py). Never the database."""
    raw = env_str(auditkeys.ENV_VAR)
    path = env_str(auditkeys.FILE_VAR)
    if raw and path:
        raise ImproperlyConfigured(
            f"Set {auditkeys.ENV_VAR} or {auditkeys.FILE_VAR}, not both: the audit keys come from one place."
        )
    if raw:
        auditkeys.parse_env(raw)  # a malformed value stops the process here, named
        return raw, None
    if path:
        auditkeys.read_file(path)
        return None, Path(path)
    if PRODUCTION:
        raise ImproperlyConfigured(
            f"{auditkeys.ENV_VAR} or {auditkeys.FILE_VAR} must be set when CONTROLPLANE_PRODUCTION is "
            "true: the audit log is signed with a key kept outside the database (docs/OPERATIONS.md)."
        )
    path = VAR_DIR / "audit_keys.json"
    auditkeys.create_file(path)
    return None, path


AUDIT_KEY, AUDIT_KEY_FILE = _audit_keys()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when CONTROLPLANE_PRODUCTION is true.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "controlplane",
    "regions",
    "experiments",
    "notifications",
    "sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "controlplane.middleware.RequestIdMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"

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
                "controlplane.context_processors.console",
                "experiments.context_processors.halt",
                "experiments.context_processors.approvals",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'controlplane.sqlite3'}",
    schemes={"sqlite", "postgres", "postgresql", "pgsql"},
)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # Writers queue instead of failing with "database is locked"; IMMEDIATE
        # takes the write lock at BEGIN so the audit chain head is read under it.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so that worker processes started by tests see it (they get
    # its path in DATABASE_URL); one per test run so that runs side by side don't clash.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: sessions, signed-in users and their permissions (controlplane/authcache.py) -
# Shared by every process, so that signing out or losing a role holds in all of them at
# once: Redis in production (CONTROLPLANE_CACHE_URL, e.g. redis://host:6379/1), a folder
# under the var directory in the embedded default (one machine). Never a per-process
# memory cache: it would keep a signed-out session alive in the other workers.
CACHE_URL = env_url("CONTROLPLANE_CACHE_URL", "", schemes={"redis", "rediss"})
if PRODUCTION and not CACHE_URL:
    raise ImproperlyConfigured(
        "CONTROLPLANE_CACHE_URL (redis://...) must be set when CONTROLPLANE_PRODUCTION is true: "
        "sessions and roles are cached, and every web process on every machine must share the cache."
    )
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            # Culling (a third of the entries, at random) past this: one entry per
            # signed-in session, per active user and per active user's permissions.
            "OPTIONS": {"MAX_ENTRIES": 10000},
        }
    }
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out username or address before the password is
# checked (every credential check: the console's and the admin's login forms).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # ModelBackend with the user and its permissions read through the cache (below).
    "controlplane.authcache.CachedModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "regions:overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# collectstatic's target, used in production only; the embedded default serves the
# source folders through WhiteNoise's finders.
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles"))) if PRODUCTION else None
# Serve straight from the source folders unless collectstatic was run (production).
WHITENOISE_USE_FINDERS = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Security -------------------------------------------------------------------
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", PRODUCTION)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Health probes from load balancers must not be redirected to HTTPS.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# --- Sign-in throttling (django-axes; controlplane/login.py, docs/OPERATIONS.md) -------
# After CONTROLPLANE_LOGIN_FAILURE_LIMIT failed sign-ins for one username (from any
# address), or from one address (for any usernames), that username or address is refused,
# right password or not, for CONTROLPLANE_LOGIN_COOLOFF_MINUTES; `manage.py unlock_login`
# lifts it sooner.
AXES_FAILURE_LIMIT = env_int("CONTROLPLANE_LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("CONTROLPLANE_LOGIN_COOLOFF_MINUTES", 15.0, minimum=0.1))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
# The cool-off runs from the lockout: attempts while locked out are refused, not counted.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Attempts expire with the cool-off; a success does not reset them (else an attacker
# with an account of their own could clear their address's count between guesses).
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "controlplane.login.lockout_response"
AXES_CLIENT_IP_CALLABLE = "controlplane.login.client_ip"
# Sign-ins and lockouts are in the audit log; axes keeps only its attempt counters, and
# its admin pages stay off (unlocking is `manage.py unlock_login`, audited).
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ADMIN = False
# Proxies in front of the console that append the client's address to X-Forwarded-For
# (0: REMOTE_ADDR is the client). Used for per-address sign-in throttling.
CONTROLPLANE_TRUSTED_PROXY_COUNT = env_int("CONTROLPLANE_TRUSTED_PROXY_COUNT", 0, minimum=0)

# --- Celery ---------------------------------------------------------------------
if (env_str("CONTROLPLANE_BROKER_URL") or "").startswith("filesystem:"):
    raise ImproperlyConfigured(
        "CONTROLPLANE_BROKER_URL=filesystem:// is kombu's stock filesystem transport, which "
        "crashes consumers and loses or duplicates messages when several processes share it "
        "(kombu issue #1551). Use localfs:// (controlplane/broker.py): the same folders, safe."
    )
# Seconds a broker connect or command may take before it counts as failed (Redis).
CONTROLPLANE_BROKER_TIMEOUT = env_float("CONTROLPLANE_BROKER_TIMEOUT", 2.0, minimum=1.5)
# Not BROKER_URL: the celery command reads that name itself and it would override.
CELERY_BROKER_URL = env_url(
    "CONTROLPLANE_BROKER_URL",
    "localfs://",
    schemes={"localfs", "redis", "rediss"},
)
BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("localfs:"):
    # controlplane/broker.py: claimed/ must be on the filesystem of queue/ (claims are
    # renames); undecodable message files are moved to bad/.
    for sub in ("queue", "processed", "control", "claimed", "bad"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "claimed_folder": str(BROKER_DIR / "claimed"),
        "bad_folder": str(BROKER_DIR / "bad"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Above the longest drill, so a slow acks_late task is not handed out twice.
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 7200, minimum=60),
        # Without these a Redis that accepts connections but never answers (a hung
        # server, a half-open connection after a failover) blocks a publish, and the
        # console request that makes it, until the OS gives up (minutes). The read
        # timeout stays above kombu's 1 s BRPOP timeout, so idle consumers do not time out.
        "socket_timeout": CONTROLPLANE_BROKER_TIMEOUT,
        "socket_connect_timeout": CONTROLPLANE_BROKER_TIMEOUT,
        "socket_keepalive": True,
    }
# The database row is the truth the console reads; results are never stored.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A down or silent broker must not hang a console request: a publish makes at most two
# attempts (the second on a fresh connection, which is what a restarted Redis needs),
# each bounded by CONTROLPLANE_BROKER_TIMEOUT, so it gives up within ~2x that (4 s by
# default). Work that must not be lost, like a queued drill, is kept in the database and
# sent again by the reaper (experiments/services.py dispatch).
CELERY_BROKER_CONNECTION_TIMEOUT = CONTROLPLANE_BROKER_TIMEOUT
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# The persistent scheduler, which also writes beat's own heartbeat row.
CELERY_BEAT_SCHEDULER = "controlplane.heartbeats:HeartbeatScheduler"
# CELERY_BEAT_SCHEDULE is at the end of this file, after the intervals it uses.

# --- Background processes (controlplane/heartbeats.py, controlplane/background.py) -----
# Every worker and beat writes its own heartbeat row this often; the console counts a
# process not seen for CONTROLPLANE_HEARTBEAT_TIMEOUT_SECONDS as dead.
CONTROLPLANE_HEARTBEAT_SECONDS = env_float("CONTROLPLANE_HEARTBEAT_SECONDS", 5.0, minimum=0.1)
CONTROLPLANE_HEARTBEAT_TIMEOUT_SECONDS = env_float(
    "CONTROLPLANE_HEARTBEAT_TIMEOUT_SECONDS", 30.0, minimum=1.0
)
if CONTROLPLANE_HEARTBEAT_TIMEOUT_SECONDS <= 2 * CONTROLPLANE_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        f"CONTROLPLANE_HEARTBEAT_TIMEOUT_SECONDS={CONTROLPLANE_HEARTBEAT_TIMEOUT_SECONDS} must be more "
        f"than twice CONTROLPLANE_HEARTBEAT_SECONDS={CONTROLPLANE_HEARTBEAT_SECONDS}: a live process "
        "would be shown dead between two of its heartbeats."
    )

# --- Evidence packs and reports (experiments/evidence.py, controlplane/pdf.py) ------------
# The software version a pack names: pyproject's, unless the deployment says more (a tag, a commit).
CONTROLPLANE_VERSION = env_str(
    "CONTROLPLANE_VERSION", tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["project"]["version"]
)
# Chromium prints the PDFs (a path or a name on PATH); "off": no PDFs, the HTML still works.
CONTROLPLANE_PDF_CHROMIUM = env_str("CONTROLPLANE_PDF_CHROMIUM", "chromium")
if CONTROLPLANE_PDF_CHROMIUM.lower() == "off":
    CONTROLPLANE_PDF_CHROMIUM = ""

# --- Audit log anchors (controlplane/anchors.py, docs/OPERATIONS.md) -----------------
# Beat appends the chain's head to AUDIT_ANCHOR_DIR/audit-anchors.jsonl this often and,
# when a bucket is set, puts it to S3 under Object Lock for the retention below.
AUDIT_ANCHOR_INTERVAL = env_float("CONTROLPLANE_AUDIT_ANCHOR_INTERVAL", 3600.0, minimum=1.0)
AUDIT_ANCHOR_DIR = Path(env_str("CONTROLPLANE_AUDIT_ANCHOR_DIR", str(VAR_DIR / "anchors")))
AUDIT_ANCHOR_S3_BUCKET = env_str("CONTROLPLANE_AUDIT_ANCHOR_S3_BUCKET", "")
AUDIT_ANCHOR_S3_REGION = env_str("CONTROLPLANE_AUDIT_ANCHOR_S3_REGION", "us-east-1")
AUDIT_ANCHOR_S3_PREFIX = env_str("CONTROLPLANE_AUDIT_ANCHOR_S3_PREFIX", "audit-anchors/")
AUDIT_ANCHOR_S3_LOCK_MODE = env_choice(
    "CONTROLPLANE_AUDIT_ANCHOR_S3_LOCK_MODE", "COMPLIANCE", choices={"COMPLIANCE", "GOVERNANCE"}
)
AUDIT_ANCHOR_S3_RETENTION_DAYS = env_int("CONTROLPLANE_AUDIT_ANCHOR_S3_RETENTION_DAYS", 400, minimum=1)

# --- Drills (docs/DRILLS.md) -------------------------------------------------------
# The queue drill runs and the reaper go to (tests give each run its own).
DRILL_QUEUE = env_str("CONTROLPLANE_DRILL_QUEUE", "celery")
# How often beat sends the reaper.
DRILL_REAPER_INTERVAL = env_float("DRILL_REAPER_INTERVAL", 2.0, minimum=0.5)
# The runner beats every DRILL_HEARTBEAT_SECONDS; the reaper takes over a drill whose
# heartbeat is older than DRILL_HEARTBEAT_TIMEOUT_SECONDS and reverts its ledger.
# No scenario may set a max duration longer than this.
DRILL_MAX_DURATION = timedelta(seconds=env_float("DRILL_MAX_DURATION_SECONDS", 3600.0, minimum=60.0))
DRILL_HEARTBEAT_SECONDS = env_float("DRILL_HEARTBEAT_SECONDS", 1.0, minimum=0.1)
DRILL_HEARTBEAT_TIMEOUT_SECONDS = env_float("DRILL_HEARTBEAT_TIMEOUT_SECONDS", 10.0, minimum=1.0)
DRILL_REDISPATCH_AFTER_SECONDS = env_float("DRILL_REDISPATCH_AFTER_SECONDS", 15.0, minimum=1.0)
DRILL_STEADY_STATE_SECONDS = env_float("DRILL_STEADY_STATE_SECONDS", 2.0, minimum=0.0)
DRILL_HOLD_SECONDS = env_float("DRILL_HOLD_SECONDS", 3.0, minimum=0.0)
DRILL_OBSERVER_PERIOD = env_float("DRILL_OBSERVER_PERIOD", 0.1, minimum=0.01)
DRILL_RECOVERY_TIMEOUT_SECONDS = env_float("DRILL_RECOVERY_TIMEOUT_SECONDS", 60.0, minimum=1.0)
DRILL_REVERT_GRACE_SECONDS = env_float("DRILL_REVERT_GRACE_SECONDS", 60.0, minimum=0.0)
# How often beat moves running game days on (a step starts at most this late).
GAMEDAY_TICK_SECONDS = env_float("GAMEDAY_TICK_SECONDS", 2.0, minimum=0.5)

# --- Monitoring (docs/MONITORING.md) ----------------------------------------------
# The region label of this worker: it consumes the queue probes.<label> and stamps it
# on the samples it records.
CONTROLPLANE_VANTAGE = env_str("CONTROLPLANE_VANTAGE", "local")
# The vantages each probe cycle dispatches to (one probes.<label> queue each). A drill
# observes the global endpoint from each of them (docs/DRILLS.md "Observers").
CONTROLPLANE_PROBE_VANTAGES = env_list("CONTROLPLANE_PROBE_VANTAGES", [CONTROLPLANE_VANTAGE])
# The vantages this worker process acts for (it consumes their probes.<label> queues and
# stamps their label). One, its own, in a real deployment; several only where locations
# are simulated on one host (the sandbox routes by the vantage each request names).
CONTROLPLANE_WORKER_VANTAGES = env_list("CONTROLPLANE_WORKER_VANTAGES", [CONTROLPLANE_VANTAGE])
# Default seconds between probes of one application (Application.probe_interval overrides).
CONTROLPLANE_PROBE_INTERVAL = env_float("CONTROLPLANE_PROBE_INTERVAL", 2.0, minimum=1.0)
CONTROLPLANE_PROBE_CONNECT_TIMEOUT = env_float("CONTROLPLANE_PROBE_CONNECT_TIMEOUT", 1.0, minimum=0.05)
CONTROLPLANE_PROBE_READ_TIMEOUT = env_float("CONTROLPLANE_PROBE_READ_TIMEOUT", 2.0, minimum=0.05)
CONTROLPLANE_PROBE_CONCURRENCY = env_int("CONTROLPLANE_PROBE_CONCURRENCY", 500, minimum=1)
CONTROLPLANE_PROBE_BATCH_SIZE = env_int("CONTROLPLANE_PROBE_BATCH_SIZE", 2000, minimum=1)
# Hysteresis: consecutive failures to go down, successes to come back.
CONTROLPLANE_STATUS_FAILURES = env_int("CONTROLPLANE_STATUS_FAILURES", 2, minimum=1)
CONTROLPLANE_STATUS_SUCCESSES = env_int("CONTROLPLANE_STATUS_SUCCESSES", 2, minimum=1)
# "unknown" after this many intervals without a sample.
CONTROLPLANE_STATUS_STALE_INTERVALS = env_float("CONTROLPLANE_STATUS_STALE_INTERVALS", 3.0, minimum=1.0)
# Replication: degraded above this lag; canaries count as lost after the canary timeout.
CONTROLPLANE_LAG_DEGRADED_SECONDS = env_float("CONTROLPLANE_LAG_DEGRADED_SECONDS", 2.0, minimum=0.0)
CONTROLPLANE_LAG_STALE_SECONDS = env_float("CONTROLPLANE_LAG_STALE_SECONDS", 300.0, minimum=1.0)
# A region whose last passed drill is older than this (or that never passed one) is shown
# red: failover proven that long ago proves little (regions.monitoring.Freshness).
CONTROLPLANE_DRILL_FRESH_DAYS = env_int("CONTROLPLANE_DRILL_FRESH_DAYS", 90, minimum=1)
# Retention: raw samples, then per-minute rollups.
CONTROLPLANE_RAW_RETENTION_HOURS = env_float("CONTROLPLANE_RAW_RETENTION_HOURS", 48.0, minimum=1.0)
CONTROLPLANE_ROLLUP_RETENTION_DAYS = env_float("CONTROLPLANE_ROLLUP_RETENTION_DAYS", 30.0, minimum=1.0)
# AWS's own view (regions/aws_health.py): how often beat polls it, and the minimum age of
# a cached Route 53 GetHealthCheckStatus answer before that check is asked again (AWS:
# the call is not meant for high query rates).
CONTROLPLANE_AWS_HEALTH_INTERVAL = env_float("CONTROLPLANE_AWS_HEALTH_INTERVAL", 10.0, minimum=1.0)
CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL = env_float(
    "CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL", 30.0, minimum=0.0
)
# ... and its minimum age when the clients' routing has just changed (a probe of the
# global endpoint served from another region: regions.tasks.follow_routing_change).
CONTROLPLANE_ROUTE53_STATUS_CHANGE_INTERVAL = env_float(
    "CONTROLPLANE_ROUTE53_STATUS_CHANGE_INTERVAL", 5.0, minimum=0.0
)
# Live configuration refresh for routing and drift (regions/drift.py).
CONTROLPLANE_LIVE_CONFIG_INTERVAL = env_float("CONTROLPLANE_LIVE_CONFIG_INTERVAL", 10.0, minimum=1.0)
# Replication lag (regions/lag.py): CloudWatch ReplicationLatency sampling, and the canary.
CONTROLPLANE_LAG_METRIC_INTERVAL = env_float("CONTROLPLANE_LAG_METRIC_INTERVAL", 60.0, minimum=1.0)
CONTROLPLANE_LAG_METRIC_MINUTES = env_int("CONTROLPLANE_LAG_METRIC_MINUTES", 5, minimum=1)
CONTROLPLANE_LAG_METRIC_PERIOD = env_int("CONTROLPLANE_LAG_METRIC_PERIOD", 60, minimum=1)
CONTROLPLANE_CANARY_INTERVAL = env_float("CONTROLPLANE_CANARY_INTERVAL", 30.0, minimum=1.0)
CONTROLPLANE_CANARY_TIMEOUT = env_float("CONTROLPLANE_CANARY_TIMEOUT", 10.0, minimum=0.1)
CONTROLPLANE_CANARY_POLL_INTERVAL = env_float("CONTROLPLANE_CANARY_POLL_INTERVAL", 0.05, minimum=0.01)
CONTROLPLANE_CANARY_TTL_ATTRIBUTE = env_str("CONTROLPLANE_CANARY_TTL_ATTRIBUTE", "expires_at")
CONTROLPLANE_CANARY_TTL_SECONDS = env_int("CONTROLPLANE_CANARY_TTL_SECONDS", 3600, minimum=60)

# --- Notifications (notifications/, docs/OPERATIONS.md "Notifications") --------------


def _notify_key():
    """CONTROLPLANE_NOTIFY_KEY: the Fernet key webhook URLs are encrypted with; unset,
    one is derived from SECRET_KEY (notifications/secrets.py)."""
    key = env_str("CONTROLPLANE_NOTIFY_KEY", "")
    if key:
        try:
            decoded = base64.urlsafe_b64decode(key.encode())
        except ValueError:
            decoded = b""
        if len(decoded) != 32:
            raise ImproperlyConfigured(
                "CONTROLPLANE_NOTIFY_KEY must be a Fernet key: 32 bytes in URL-safe base64 "
                "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
            )
    return key


NOTIFY_KEY = _notify_key()
NOTIFY_QUEUE = env_str("CONTROLPLANE_NOTIFY_QUEUE", "celery")
# A delivery is tried 1 + NOTIFY_MAX_RETRIES times, waiting about BACKOFF, 2 x BACKOFF, 4 x
# BACKOFF ... seconds (at most 10 minutes) between tries (Celery's retry_backoff, with jitter).
NOTIFY_MAX_RETRIES = env_int("CONTROLPLANE_NOTIFY_MAX_RETRIES", 5, minimum=0, maximum=20)
NOTIFY_RETRY_BACKOFF = env_int("CONTROLPLANE_NOTIFY_RETRY_BACKOFF", 10, minimum=1)
NOTIFY_TIMEOUT = env_float("CONTROLPLANE_NOTIFY_TIMEOUT", 5.0, minimum=0.1)
# A delivery no worker has tried this long after it was made (the broker refused or lost
# its message) is sent again by beat (notifications.tasks.redispatch, every 30 s).
NOTIFY_REDISPATCH_AFTER_SECONDS = env_float("CONTROLPLANE_NOTIFY_REDISPATCH_AFTER_SECONDS", 60.0, minimum=5.0)
# Email: Django's mailers (MAILERS, Django 6.1), from EMAIL_BACKEND and, for SMTP,
# EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS; unless set,
# SMTP in production and the console backend (the worker's output) in the embedded default.
_email_backend = env_str(
    "EMAIL_BACKEND", f"django.core.mail.backends.{'smtp' if PRODUCTION else 'console'}.EmailBackend"
)
MAILERS = {"default": {"BACKEND": _email_backend}}
if _email_backend.endswith(".smtp.EmailBackend"):
    MAILERS["default"]["OPTIONS"] = {
        "host": env_str("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 25, minimum=1, maximum=65535),
        "username": env_str("EMAIL_HOST_USER", ""),
        "password": env_str("EMAIL_HOST_PASSWORD", ""),
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        "timeout": NOTIFY_TIMEOUT,
    }
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "controlplane@localhost")

# --- AWS ------------------------------------------------------------------------
# Sends every boto3 call to this endpoint (the sandbox, or a test's moto server).
AWS_ENDPOINT_URL = env_url("CONTROLPLANE_AWS_ENDPOINT_URL", schemes={"http", "https"})
AWS_MAX_ATTEMPTS = env_int("CONTROLPLANE_AWS_MAX_ATTEMPTS", 5, minimum=1)
AWS_CONNECT_TIMEOUT = env_float("CONTROLPLANE_AWS_CONNECT_TIMEOUT", 3.0, minimum=0.1)
AWS_READ_TIMEOUT = env_float("CONTROLPLANE_AWS_READ_TIMEOUT", 10.0, minimum=0.1)
# Region codes accepted although the installed botocore does not know them (a region AWS
# opened after that release); every other code must be one of botocore's
# (regions.models.region_code_validator). Comma-separated, e.g. "xx-newplace-1".
CONTROLPLANE_EXTRA_REGIONS = env_list("CONTROLPLANE_EXTRA_REGIONS")
for _code in CONTROLPLANE_EXTRA_REGIONS:
    if not re.fullmatch(r"[a-z]{2,4}(-[a-z]+)?-[a-z]+-\d{1,2}", _code):
        raise ImproperlyConfigured(
            f"CONTROLPLANE_EXTRA_REGIONS: {_code!r} is not a region code such as us-east-1."
        )
# Inventory files larger than this are refused before they are parsed (docs/INVENTORY.md).
CONTROLPLANE_INVENTORY_MAX_BYTES = env_int("CONTROLPLANE_INVENTORY_MAX_BYTES", 5 * 1024 * 1024, minimum=1024)
# Tag keys that mark a resource as part of an application's regional stack.
DISCOVERY_TAG_KEY = env_str("CONTROLPLANE_DISCOVERY_TAG", "controlplane:application")
SANDBOX_STATE_FILE = VAR_DIR / "sandbox.json"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        # django-axes says "BEGIN version ..." at INFO in every process; failures stay WARNING.
        "axes.apps": {"level": "WARNING"},
    },
}

# --- Beat schedule ------------------------------------------------------------------


def _every(task, seconds, *, expires=None, queue=None):
    """A beat entry: `task` every `seconds`. A run still unstarted after `expires` seconds
    (default: one interval) is dropped: the next one supersedes it."""
    options = {"expires": float(seconds if expires is None else expires)}
    if queue:
        options["queue"] = queue
    return {"task": task, "schedule": timedelta(seconds=seconds), "options": options}


CELERY_BEAT_SCHEDULE = {
    # Every second; each cycle probes the applications whose interval is due.
    "monitoring-probe-cycle": _every("regions.tasks.probe_cycle", 1, expires=2),
    "monitoring-rollup": _every("regions.tasks.rollup_samples", 60),
    "monitoring-prune": _every("regions.tasks.prune_samples", 15 * 60),
    # AWS's own view: Route 53 check status (cached 30 s per check), GA endpoint
    # health, alarm states, replica status, routing control states.
    "monitoring-aws-health": _every("regions.tasks.poll_aws_health", CONTROLPLANE_AWS_HEALTH_INTERVAL),
    "monitoring-live-config": _every("regions.tasks.refresh_live_config", CONTROLPLANE_LIVE_CONFIG_INTERVAL),
    "monitoring-lag-metrics": _every(
        "regions.tasks.sample_replication_metrics", CONTROLPLANE_LAG_METRIC_INTERVAL
    ),
    "monitoring-lag-canary": _every("regions.tasks.lag_canary_cycle", CONTROLPLANE_CANARY_INTERVAL),
    # Reverts the ledger of drills whose worker stopped beating; resends queued drills.
    "drills-reaper": _every(
        "experiments.tasks.reap_drills", DRILL_REAPER_INTERVAL, expires=10, queue=DRILL_QUEUE
    ),
    # Queues approved drills when their window opens; expires what waited too long.
    "drills-scheduler": _every("experiments.tasks.expire_drills", 5, expires=10, queue=DRILL_QUEUE),
    # Turns the schedules' due times into drills (or skipped occurrences, with the reason).
    # Every 10 s, so that a time starts within seconds of it, well inside even a run
    # window of one minute (a pass reads the running schedules and each one's last time).
    "drills-schedules": _every("experiments.tasks.run_schedules", 10, expires=9, queue=DRILL_QUEUE),
    # Moves running game days on: the next step after a drill's end and its pause
    # (experiments/gamedays.py; the database holds where each is).
    "drills-gamedays": _every(
        "experiments.tasks.advance_gamedays", GAMEDAY_TICK_SECONDS, expires=10, queue=DRILL_QUEUE
    ),
    # Sends again the deliveries whose task message the broker refused or lost.
    "notifications-redispatch": _every("notifications.tasks.redispatch", 30, expires=25, queue=NOTIFY_QUEUE),
    # Writes the audit chain's head to an anchor file (and S3 with Object Lock when set),
    # so that verify_audit --anchor notices rows removed from the end.
    "audit-anchor": _every("controlplane.tasks.anchor_audit_chain", AUDIT_ANCHOR_INTERVAL),
}
