"""Who reads what through the Thrift server: grants per user, table, column and row.

Kept in ``<state dir>/auth/grants.json`` beside the users file (mode 600), written by ``lakehouse thrift
grant / revoke`` and read by the server's guard (``Grants.java``) again whenever it changes: a grant or a
revoke counts from the next statement, without a restart. A malformed file (a hand edit gone wrong) is
reported in the server's log and the grants loaded before stay in force; the commands here refuse to
write one. The format::

    {"users": {"maria": [{"object": "gold.*"},
                         {"object": "silver.dim_users", "columns": ["user_id", "country"],
                          "where": "country = 'SG'"}]}}

Resolution (the same rules as ``Grants.java``; ``tests/serving/test_serving_units.py`` runs both on the same
cases): a table ``layer.name`` is granted by the user's entry for it, else by the entry ``layer.*``; the
table's own entry wins, so a layer can be granted whole and one table narrowed. A restricted table (it holds
user ids: ``gold.user_status_weekly``, ``gold.rpt_negative_balance_users``; ``TableSpec.restricted``) is granted
by its own entry only: ``gold.*`` does not include it. ``columns`` (absent: all)
are the columns the user may read; ``where`` (absent: all rows) is a Spark SQL condition on the table's
unqualified columns, added by the guard as a filter on that table for that user (``current_user()`` is the
logged-in user). A layer wildcard takes neither. A user without an entry reads nothing.

Defaults: ``add-user`` grants ``gold.*``; the project's client ``lakehouse`` (``sql.sh``, registration)
reads every layer; Superset's ``superset`` is granted the tables its dashboards read by ``lakehouse
superset up``, narrowed to the columns they read where the bundle says so (``SERVED_COLUMNS`` of
:mod:`lakehouse.serving.superset.bundle`). Groups are not supported: a grant names one user (an entry
per user is explicit and each user's grants are resolved from their own entries only).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakehouse.serving.thrift.auth import AuthError, auth_dir, check_name, read_users, write_private

#: What a user added with ``add-user`` reads until told otherwise.
NEW_USER_GRANTS = ("gold.*",)
#: The project's own client ``lakehouse`` reads every layer (it is the engineers' tool and registers tables).
ALL_LAYERS = ("bronze.*", "silver.*", "gold.*", "ops.*")


def service_grants() -> tuple[str, ...]:
    """What the project's own client ``lakehouse`` reads: every layer, and the restricted tables by name (it is
    the tool of the engineers who run the jobs, who read the Delta files anyway, and it checks that the server
    has registered every table, which only a user who may list a table sees)."""
    return (*ALL_LAYERS, *sorted(restricted_tables()))


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OBJECT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*|\*)")
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class GrantsError(AuthError):
    """A grants file or a grant that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Grant:
    """One user's grant of one table (``layer.name``) or layer (``layer.*``)."""

    object: str
    columns: tuple[str, ...] | None = None
    where: str | None = None

    @property
    def is_wildcard(self) -> bool:
        return self.object.endswith(".*")

    def may_read(self, column: str) -> bool:
        return self.columns is None or column.lower() in self.columns

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"object": self.object}
        if self.columns is not None:
            entry["columns"] = list(self.columns)
        if self.where is not None:
            entry["where"] = self.where
        return entry

    def describe(self) -> str:
        columns = "all columns" if self.columns is None else "columns " + ", ".join(self.columns)
        rows = "all rows" if self.where is None else f"rows where {self.where}"
        return f"{self.object}: {columns}, {rows}"


#: user -> object -> grant
Grants = dict[str, dict[str, Grant]]


def grants_file(state_dir: Path) -> Path:
    return auth_dir(state_dir) / "grants.json"


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise GrantsError(f"not valid JSON: duplicate key {duplicates[0]!r}")
    return dict(pairs)


def _entry(value: Any, where: str) -> Grant:
    if not isinstance(value, Mapping):
        raise GrantsError(f'{where}: must be an object with "object" (and "columns", "where")')
    unknown = sorted(set(value) - {"object", "columns", "where"})
    if unknown:
        raise GrantsError(f'{where}: unknown key "{unknown[0]}" (known: object, columns, where)')
    obj = value.get("object")
    if not isinstance(obj, str) or not _OBJECT.fullmatch(obj):
        raise GrantsError(f'{where}.object: must be "layer.table" or "layer.*"')
    obj = obj.lower()
    wildcard = obj.endswith(".*")
    columns = None
    if "columns" in value:
        if wildcard:
            raise GrantsError(f"{where}.columns: a layer.* grant takes no columns (grant the table)")
        raw = value["columns"]
        if not isinstance(raw, list) or not raw:
            raise GrantsError(f"{where}.columns: must be a non-empty list of column names")
        seen: list[str] = []
        for column in raw:
            if not isinstance(column, str) or not _IDENTIFIER.fullmatch(column):
                raise GrantsError(f"{where}.columns: {json.dumps(column)} is not a column name")
            if column.lower() in seen:
                raise GrantsError(f"{where}.columns: {json.dumps(column)} is listed twice")
            seen.append(column.lower())
        columns = tuple(seen)
    condition = None
    if "where" in value:
        if wildcard:
            raise GrantsError(f"{where}.where: a layer.* grant takes no row filter (grant the table)")
        condition = value["where"]
        if not isinstance(condition, str) or not condition.strip():
            raise GrantsError(f"{where}.where: must be a non-empty SQL condition")
    return Grant(obj, columns, condition)


def parse_grants(text: str) -> Grants:
    """The grants of a file's text; :class:`GrantsError` says what is wrong (the server's rules)."""
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as exc:
        raise GrantsError(f"not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise GrantsError('the file must hold a JSON object with a "users" key')
    unknown = sorted(set(data) - {"version", "users"})
    if unknown:
        raise GrantsError(f'unknown key "{unknown[0]}" (known: users, version)')
    if "version" in data and (type(data["version"]) is not int or data["version"] != 1):
        raise GrantsError("version: must be 1")
    users = data.get("users")
    if not isinstance(users, dict):
        raise GrantsError("users: must be an object of user name -> list of grants")
    grants: Grants = {}
    for user, entries in users.items():
        where = f"users.{user}"
        if not _USER.fullmatch(user):
            raise GrantsError(f"{where}: not a valid user name")
        if not isinstance(entries, list):
            raise GrantsError(f"{where}: must be a list of grants")
        by_object: dict[str, Grant] = {}
        for i, value in enumerate(entries):
            grant = _entry(value, f"{where}[{i}]")
            if grant.object in by_object:
                raise GrantsError(f"{where}[{i}]: {grant.object} is granted twice")
            by_object[grant.object] = grant
        grants[user] = by_object
    return grants


def restricted_tables() -> frozenset[str]:
    """The tables that hold user ids (``TableSpec.restricted``): granted by name only, never by a layer's ``*``."""
    from lakehouse.tables import TABLES

    return frozenset(spec.full_name for spec in TABLES if spec.restricted)


def resolve(grants: Grants, user: str, table: str, restricted: frozenset[str] | None = None) -> Grant | None:
    """The grant that lets ``user`` read ``table`` (``layer.name``): the table's own, else its layer's, unless the
    table is restricted (``restricted``: default :func:`restricted_tables`)."""
    entries = grants.get(user)
    if not entries:
        return None
    name = table.lower()
    layer = name.partition(".")[0]
    if name in (restricted_tables() if restricted is None else restricted):
        return entries.get(name)
    return entries.get(name) or entries.get(f"{layer}.*")


def read_grants(state_dir: Path) -> Grants:
    """The grants file's grants; none when it does not exist; :class:`GrantsError` when malformed."""
    path = grants_file(state_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        return parse_grants(text)
    except GrantsError as exc:
        raise GrantsError(
            f"{path} is malformed: {exc} (the running server keeps the grants it loaded before)"
        ) from None


def write_grants(state_dir: Path, grants: Grants) -> None:
    users = {user: [g.to_json() for g in entries.values()] for user, entries in sorted(grants.items())}
    text = json.dumps({"version": 1, "users": users}, indent=2) + "\n"
    parse_grants(text)  # never write what the server would refuse
    write_private(grants_file(state_dir), text)


# ------------------------------------------------------------------------------------------
# Changes (the command line's)
# ------------------------------------------------------------------------------------------


def _layers() -> dict[str, dict[str, Sequence[str]]]:
    """layer -> table -> column names, from the registry (what the server serves)."""
    from lakehouse.tables import TABLES

    layers: dict[str, dict[str, Sequence[str]]] = {}
    for spec in TABLES:
        layers.setdefault(spec.layer, {})[spec.name] = [f.name.lower() for f in spec.schema.fields]
    return layers


def check_grant(grant: Grant) -> Grant:
    """A grant of an object the registry serves, naming columns the table has."""
    layer, _, table = grant.object.partition(".")
    layers = _layers()
    if layer not in layers:
        raise GrantsError(f"{grant.object}: no layer {layer!r} (layers: {', '.join(layers)})")
    if table != "*" and table not in layers[layer]:
        raise GrantsError(f"{grant.object}: no table {table!r} in {layer} (tables: {', '.join(sorted(layers[layer]))})")
    if grant.columns is not None:
        unknown = [c for c in grant.columns if c not in layers[layer][table]]
        if unknown:
            raise GrantsError(f"{grant.object} has no column {', '.join(unknown)} "
                              f"(columns: {', '.join(layers[layer][table])})")  # fmt: skip
    return grant


def make_grant(obj: str, columns: Iterable[str] | None = None, where: str | None = None) -> Grant:
    """A validated grant from the command line's words (``--columns a,b``, ``--where SQL``)."""
    entry: dict[str, Any] = {"object": obj}
    if columns is not None:
        entry["columns"] = [c.strip() for c in columns if c.strip()]
    if where is not None:
        entry["where"] = where
    return check_grant(_entry(entry, obj))


def grant(state_dir: Path, user: str, new: Grant) -> Grant | None:
    """Grant ``new`` to ``user`` (replacing their grant of the same object); the grant it replaced."""
    check_name(user)
    if user not in read_users(state_dir):
        raise GrantsError(
            f"no user {user!r} in {auth_dir(state_dir) / 'users'}: add it first (lakehouse thrift add-user)"
        )
    grants = read_grants(state_dir)
    entries = grants.setdefault(user, {})
    previous = entries.get(new.object)
    entries[new.object] = new
    write_grants(state_dir, grants)
    return previous


def revoke(state_dir: Path, user: str, obj: str) -> bool:
    """Remove ``user``'s grant of exactly ``obj``; False when there was none."""
    grants = read_grants(state_dir)
    entries = grants.get(user, {})
    if obj.lower() not in entries:
        return False
    del entries[obj.lower()]
    write_grants(state_dir, grants)
    return True


def revoke_all(state_dir: Path, user: str) -> None:
    """Forget every grant of ``user`` (a removed user who is added again starts from the defaults)."""
    grants = read_grants(state_dir)
    if grants.pop(user, None) is not None:
        write_grants(state_dir, grants)


def ensure_grants(state_dir: Path, user: str, objects: Iterable[str | Grant]) -> list[str]:
    """Grant each of ``objects`` that ``user`` cannot read yet: a name is granted whole, a :class:`Grant`
    as it is (its columns, its rows; checked against the registry). Never narrows, widens or removes a
    grant the user has. The objects granted now."""
    grants = read_grants(state_dir)
    entries = grants.setdefault(user, {})
    added = []
    for obj in objects:
        wanted = check_grant(obj) if isinstance(obj, Grant) else Grant(obj.lower())
        name = wanted.object
        if name not in entries and (name.endswith(".*") or resolve(grants, user, name) is None):
            entries[name] = wanted
            added.append(name)
    if added or not grants_file(state_dir).exists():
        write_grants(state_dir, grants)
    return added


def user_grants(state_dir: Path, user: str) -> list[Grant]:
    return sorted(read_grants(state_dir).get(user, {}).values(), key=lambda g: g.object)
