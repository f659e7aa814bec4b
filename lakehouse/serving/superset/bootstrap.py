"""Makes Superset's metadata DB match the repo: the admin user, then the asset bundle.

Runs in Superset's virtualenv (standard library, PyYAML and Superset only; it never imports
``lakehouse``, whose registry needs pyspark), by file path, after ``superset db upgrade`` and
``superset init``, in one process (one app start instead of one per CLI call):

    SUPERSET_ADMIN_USER=.. SUPERSET_ADMIN_PASSWORD=.. .cache/superset-venv/bin/python \
        lakehouse/serving/superset/bootstrap.py \
        --bundle conf/superset/bundle --sqlalchemy-uri 'hive+https://user@host:port/gold?ssl_cert=required&check_hostname=true'

(``hive://user@host:port/gold?auth=CUSTOM`` when the Thrift server runs without TLS.)

(``lakehouse superset up`` does this.) The passwords come from the environment, not argv, so they
never show in ``ps``: the admin's, and the Thrift server's password for the connection's user
(``THRIFT_PASSWORD``), which is set into the database URI; Superset keeps it encrypted with its
secret key and shows the URI masked.

Admin: created when missing; when it exists, its password is reset to the given one (so the
credentials in the environment or in .cache/superset/credentials.env always log in) and the
Admin role is restored.

Bundle: imported with ImportAssetsCommand, the command behind ``POST /api/v1/assets/import/``.
It overwrites databases, datasets, charts and dashboards by UUID. ``superset import-dashboards``
and the dashboard import API (even with overwrite=true) only overwrite the dashboards and keep
existing charts and datasets as they are, so edits to a chart in the repo would never arrive.
The database URI in the bundle is a placeholder; the real one is substituted here. The importer
checks each dataset's table over that connection; with no Thrift server up, that check fails,
is logged as a warning, and the import goes on. Objects the bundle no longer has (a renamed
chart, a dropped dataset) stay in the metadata DB until deleted in the UI.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger("superset_bootstrap")


def read_bundle(bundle_dir: Path, sqlalchemy_uri: str) -> dict[str, str]:
    """Bundle files keyed by their path inside the bundle, database URIs replaced."""
    if not (bundle_dir / "metadata.yaml").is_file():
        raise SystemExit(f"not a bundle (no metadata.yaml): {bundle_dir}")
    contents: dict[str, str] = {}
    for path in sorted(bundle_dir.rglob("*.yaml")):
        key = path.relative_to(bundle_dir).as_posix()
        text = path.read_text(encoding="utf-8")
        if key.startswith("databases/"):
            config: dict[str, Any] = yaml.safe_load(text)
            config["sqlalchemy_uri"] = sqlalchemy_uri
            text = yaml.safe_dump(config, sort_keys=False)
        contents[key] = text
    return contents


def with_password(uri: str, password: str) -> str:
    """The URI with the Thrift password set (Superset stores it encrypted and masks the URI)."""
    if not password:
        return uri
    from sqlalchemy.engine.url import make_url

    return make_url(uri).set(password=password).render_as_string(hide_password=False)


def ensure_admin(username: str, password: str) -> Any:
    from superset import security_manager
    from werkzeug.security import check_password_hash

    admin_role = security_manager.find_role(security_manager.auth_role_admin)
    if admin_role is None:
        raise SystemExit("role Admin missing: run `superset init` first")
    user = security_manager.find_user(username=username)
    if user is None:
        user = security_manager.add_user(
            username, "Superset", "Admin", f"{username}@localhost", admin_role, password=password
        )
        if not user:
            raise SystemExit(f"could not create admin user {username!r}")
        logger.info("admin user %s created", username)
        return user
    changed = False
    if not check_password_hash(user.password or "", password):
        security_manager.reset_password(user.id, password)
        changed = True
    if admin_role not in user.roles or not user.active:
        user.roles = [*user.roles, admin_role] if admin_role not in user.roles else user.roles
        user.active = True
        security_manager.update_user(user)
        changed = True
    logger.info("admin user %s %s", username, "updated" if changed else "unchanged")
    return security_manager.find_user(username=username)


def import_bundle(contents: dict[str, str]) -> None:
    from superset.commands.exceptions import CommandInvalidError
    from superset.commands.importers.v1.assets import ImportAssetsCommand

    try:
        ImportAssetsCommand(contents).run()
    except CommandInvalidError as exc:
        # The message alone says "Error importing assets"; the details are per file.
        raise SystemExit(f"bundle rejected: {exc.normalized_messages()}") from exc


def summary() -> list[str]:
    from superset import db
    from superset.connectors.sqla.models import SqlaTable
    from superset.models.core import Database
    from superset.models.dashboard import Dashboard
    from superset.models.slice import Slice

    lines = []
    for dashboard in db.session.query(Dashboard).order_by(Dashboard.id):
        lines.append(
            f"dashboard {dashboard.id} {dashboard.dashboard_title!r} (/superset/dashboard/"
            f"{dashboard.slug or dashboard.id}/): {len(dashboard.slices)} charts"
        )
    lines.append(
        f"{db.session.query(Database).count()} database(s), "
        f"{db.session.query(SqlaTable).count()} dataset(s), {db.session.query(Slice).count()} chart(s)"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create/update the admin, import the bundle.")
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--sqlalchemy-uri", required=True)
    args = parser.parse_args(argv)

    username = os.environ.get("SUPERSET_ADMIN_USER", "")
    password = os.environ.get("SUPERSET_ADMIN_PASSWORD", "")
    if not username or not password:
        raise SystemExit("SUPERSET_ADMIN_USER and SUPERSET_ADMIN_PASSWORD must be set")
    contents = read_bundle(args.bundle, with_password(args.sqlalchemy_uri, os.environ.get("THRIFT_PASSWORD", "")))

    from flask import g
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        logging.getLogger().setLevel(logging.WARNING)
        logger.setLevel(logging.INFO)
        g.user = ensure_admin(username, password)
        import_bundle(contents)
        for line in summary():
            logger.info("%s", line)
    return 0


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, format="[superset] %(message)s")
    raise SystemExit(main())
