"""Superset settings for serving the HeyMax gold tables (Superset 6.1, own virtualenv).

Loaded through ``SUPERSET_CONFIG_PATH`` by ``scripts/superset_up.sh``; every uppercase name here
overrides ``superset/config.py``. The machine has no internet and no Celery/Redis, so everything
that needs either is switched off, and the metadata database is SQLite under ``SUPERSET_HOME``
(``.cache/superset/home``), which is throw-away state: the dashboards are rebuilt from the
bundle in ``conf/superset/bundle`` on every ``superset_up.sh``.
"""

from __future__ import annotations

import os

_SUPERSET_HOME = os.environ.get("SUPERSET_HOME") or os.path.expanduser("~/.superset")

# Superset refuses to start with its built-in placeholder key. There is deliberately no default
# here: superset_up.sh passes the key from the environment or from the generated
# .cache/superset/credentials.env. The key encrypts secrets stored in the metadata DB, so it
# must stay the same for the life of that DB.
SECRET_KEY = os.environ.get("SUPERSET_SECRET_KEY", "")
if not SECRET_KEY:
    raise RuntimeError(
        "SUPERSET_SECRET_KEY is not set; start Superset with scripts/superset_up.sh "
        "(it reads or generates .cache/superset/credentials.env)"
    )

SQLALCHEMY_DATABASE_URI = f"sqlite:///{os.path.join(_SUPERSET_HOME, 'superset.db')}?check_same_thread=false"

# Native dashboard filters are always on in 6.x (the DASHBOARD_NATIVE_FILTERS flag no longer
# exists). Everything below needs Celery workers, a browser on the server or internet access.
FEATURE_FLAGS = {
    "ALERT_REPORTS": False,
    "THUMBNAILS": False,
    "ENABLE_DASHBOARD_SCREENSHOT_ENDPOINTS": False,
    "ENABLE_DASHBOARD_DOWNLOAD_WEBDRIVER_SCREENSHOT": False,
    "PLAYWRIGHT_REPORTS_AND_THUMBNAILS": False,
    "GLOBAL_ASYNC_QUERIES": False,
    # Draw every chart of a dashboard when it opens, not only those scrolled into view: the
    # dashboards have at most four charts, and a full-page screenshot (headless Chromium in
    # tests/serving) must show all of them.
    "DASHBOARD_VIRTUALIZATION": False,
}

# `hive://` URIs always get Superset's Hive engine spec. Its week grains use the
# `from_unixtime(..., 'u')` day-of-week pattern, which Spark 3+ rejects. These replacements use
# Spark's `dayofweek` (1 = Sunday) and follow the project convention that weeks start on Sunday
# (SPEC.md), so "Week" and "Week starting Sunday" both give the Sunday that starts the week.
# The dashboards themselves chart the precomputed Sunday columns (period_start_date,
# cutoff_week, week_start) with a day grain, so they do not depend on this.
_SPARK_WEEK_START_SUNDAY = "date_format(date_sub(CAST({col} AS DATE), dayofweek({col}) - 1), 'yyyy-MM-dd 00:00:00')"
TIME_GRAIN_ADDON_EXPRESSIONS = {
    "hive": {
        "P1W": _SPARK_WEEK_START_SUNDAY,
        "1969-12-28T00:00:00Z/P1W": _SPARK_WEEK_START_SUNDAY,
        "P1W/1970-01-03T00:00:00Z": (
            "date_format(date_add(CAST({col} AS DATE), 7 - dayofweek({col})), 'yyyy-MM-dd 00:00:00')"
        ),
    }
}
# The Hive spec's Monday-based "week ending Sunday" has no Spark-safe expression: hide it.
TIME_GRAIN_DENYLIST = ["P1W/1970-01-04T00:00:00Z"]

# Spark Thrift answers the first query of a session slowly (planning, Delta log replay), so give
# chart requests more than the default 60 s before gunicorn's worker timeout hits.
SUPERSET_WEBSERVER_TIMEOUT = 180
SQLLAB_TIMEOUT = 180

# Talisman stays on, with a Content-Security-Policy that only allows this server itself: the
# stock policy also allows telemetry pixels and map tiles on the internet, which this machine
# cannot reach anyway. Browser tests drive the app as-is (Playwright's bypass_csp is only needed
# for injected scripts).
TALISMAN_ENABLED = True
TALISMAN_CONFIG = {
    "content_security_policy": {
        "base-uri": ["'self'"],
        "default-src": ["'self'"],
        "img-src": ["'self'", "blob:", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": "'none'",
        "style-src": ["'self'", "'unsafe-inline'"],
        "font-src": ["'self'", "data:"],
        "script-src": ["'self'", "'strict-dynamic'"],
    },
    "content_security_policy_nonce_in": ["script-src"],
    "force_https": False,
    "session_cookie_secure": False,
}
CONTENT_SECURITY_POLICY_WARNING = False

# CSRF protection stays on: API clients log in, then fetch /api/v1/security/csrf_token/ in the
# same cookie session and send it as X-CSRFToken (see conf/superset/README.md).
WTF_CSRF_ENABLED = True

# No result caching: gold tables change whenever a job commits, and Delta serves the newest
# snapshot per query, so a cache would only show stale numbers.
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
