"""Superset settings for serving the HeyMax gold tables (Superset 6.1, own virtualenv).

Loaded by file path through ``SUPERSET_CONFIG_PATH`` (set by :mod:`lakehouse.serving.superset.service`) in
Superset's virtualenv: standard library only, never ``lakehouse`` (its registry needs pyspark).
What it needs from the lakehouse config comes from the environment that ``lakehouse superset up``
fills from the config: ``LAKEHOUSE_WEEK_START``.

Every uppercase name here overrides ``superset/config.py``. The machine has no internet and no
Celery/Redis, so everything that needs either is switched off, and the metadata database is
SQLite under ``SUPERSET_HOME`` (``.cache/superset/home``), which is throw-away state: the
dashboards are rebuilt from the bundle in ``conf/superset/bundle`` on every ``lakehouse superset up``.
"""

from __future__ import annotations

import os

_SUPERSET_HOME = os.environ.get("SUPERSET_HOME") or os.path.expanduser("~/.superset")

# Superset refuses to start with its built-in placeholder key. There is deliberately no default
# here: lakehouse superset up passes the key from the environment or from the generated
# .cache/superset/credentials.env. The key encrypts secrets stored in the metadata DB, so it
# must stay the same for the life of that DB.
SECRET_KEY = os.environ.get("SUPERSET_SECRET_KEY", "")
if not SECRET_KEY:
    raise RuntimeError(
        "SUPERSET_SECRET_KEY is not set; start Superset with lakehouse superset up "
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

# The lakehouse's week start (config `week_start`), so that Explore's plain "Week" grain gives the
# same weeks as the gold tables' week columns.
WEEK_START = os.environ.get("LAKEHOUSE_WEEK_START", "")
if WEEK_START not in ("sunday", "monday"):
    raise RuntimeError(
        f"LAKEHOUSE_WEEK_START must be sunday or monday, got {WEEK_START!r}; start Superset with "
        "lakehouse superset up (it reads week_start from the lakehouse config)"
    )


def _week_grain(first: bool, day: str) -> str:
    """Spark SQL for the first (or last) day of the {col}'s week, weeks starting on ``day``.

    Spark's dayofweek is 1 = Sunday .. 7 = Saturday; ``back`` is how many days {col} lies after
    the week's first day.
    """
    back = "dayofweek({col}) - 1" if day == "sunday" else "(dayofweek({col}) + 5) % 7"
    shift = f"date_sub(CAST({{col}} AS DATE), {back})" if first else f"date_add(CAST({{col}} AS DATE), 6 - ({back}))"
    return f"date_format({shift}, 'yyyy-MM-dd 00:00:00')"


# `hive://` URIs always get Superset's Hive engine spec. Its week grains use the
# `from_unixtime(..., 'u')` day-of-week pattern, which Spark 3+ rejects; these replace them with
# Spark's `dayofweek`. The dashboards themselves chart the precomputed week-start columns
# (period_start_date, cutoff_week, week_start) with a day grain, so they do not depend on this;
# charts made by hand in Explore do.
TIME_GRAIN_ADDON_EXPRESSIONS = {
    "hive": {
        "P1W": _week_grain(True, WEEK_START),
        "1969-12-28T00:00:00Z/P1W": _week_grain(True, "sunday"),
        "1969-12-29T00:00:00Z/P1W": _week_grain(True, "monday"),
        "P1W/1970-01-03T00:00:00Z": _week_grain(False, "sunday"),
        "P1W/1970-01-04T00:00:00Z": _week_grain(False, "monday"),
    }
}

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
# same cookie session and send it as X-CSRFToken (see docs/superset.md).
WTF_CSRF_ENABLED = True

# No result caching: gold tables change whenever a job commits, and Delta serves the newest
# snapshot per query, so a cache would only show stale numbers.
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
