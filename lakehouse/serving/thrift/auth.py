"""Who may connect to the Thrift server: a users file of salted password hashes, and the passwords
of the project's own clients.

Both live in ``<state dir>/auth/`` (``.cache/thrift/auth/`` by default; ``.cache`` is gitignored),
folder mode 700, files mode 600, created on the server's first start:

- ``users``: one line per user, ``name:pbkdf2_sha256:iterations:salt:hash`` (base64). The server
  reads it through ``PasswordFileAuthenticator`` (``hive.server2.authentication=CUSTOM``) and reads
  it again when it changes: adding or removing a user needs no restart. No password is stored.
- ``clients.json``: the generated passwords of the service users the project's own programs
  connect as: ``lakehouse`` (``scripts/sql.sh``, ``lakehouse thrift``, the health probe) and
  ``superset`` (Superset's database connection). Random, never defaults, never in git.

An analyst is added with ``lakehouse thrift add-user NAME``: the password is generated (or read
from the ``THRIFT_NEW_PASSWORD`` environment variable), printed once, and only its hash is kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from lakehouse.config import PROJECT_ROOT

#: The project's own clients; their passwords are kept (mode 600) so the programs can connect.
SERVICE_USERS = ("lakehouse", "superset")
SCHEME = "pbkdf2_sha256"
ITERATIONS = 120_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


#: Where the server keeps its pid, log, users and client passwords unless told otherwise.
DEFAULT_STATE_DIR = PROJECT_ROOT / ".cache" / "thrift"


def state_dir_from(value: str | os.PathLike[str] | None) -> Path:
    """The state directory: ``value``, else ``THRIFT_STATE_DIR``, else :data:`DEFAULT_STATE_DIR`."""
    return Path(value or os.environ.get("THRIFT_STATE_DIR") or DEFAULT_STATE_DIR).resolve()


class AuthError(RuntimeError):
    """A users file or client password that cannot be used; the message says why."""


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str


def auth_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "auth"


def users_file(state_dir: Path) -> Path:
    return auth_dir(state_dir) / "users"


def clients_file(state_dir: Path) -> Path:
    return auth_dir(state_dir) / "clients.json"


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """``pbkdf2_sha256:iterations:salt:hash`` as the server checks it (PBKDF2WithHmacSHA256)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, dklen=32)
    return f"{SCHEME}:{iterations}:{base64.b64encode(salt).decode()}:{base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """The Python twin of the server's check (tests and ``lakehouse thrift users --check``)."""
    try:
        scheme, iterations, salt, expected = encoded.split(":")
        if scheme != SCHEME:
            return False
        digest = hashlib.pbkdf2_hmac(
            "sha256", password.encode("utf-8"), base64.b64decode(salt), int(iterations), dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest, base64.b64decode(expected))


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 600, atomically (temp file + rename)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


def read_users(state_dir: Path) -> dict[str, str]:
    """User name -> encoded hash, in file order."""
    path = users_file(state_dir)
    if not path.exists():
        return {}
    users: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, encoded = line.partition(":")
            users[name] = encoded
    return users


def _write_users(state_dir: Path, users: dict[str, str]) -> None:
    lines = [
        "# Thrift server users: name:pbkdf2_sha256:iterations:salt:hash. Managed by",
        "# `lakehouse thrift add-user / remove-user`; the server rereads this file when it changes.",
        *(f"{name}:{encoded}" for name, encoded in users.items()),
    ]
    write_private(users_file(state_dir), "\n".join(lines) + "\n")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise AuthError(f"invalid user name {name!r}: letters, digits, '.', '_', '-' (up to 64, not first)")
    return name


def add_user(state_dir: Path, name: str, password: str | None = None) -> Credentials:
    """Add (or reset) a user; returns the password, generated unless given."""
    check_name(name)
    password = password or secrets.token_urlsafe(18)
    users = read_users(state_dir)
    users[name] = hash_password(password)
    _write_users(state_dir, users)
    return Credentials(name, password)


def remove_user(state_dir: Path, name: str) -> bool:
    users = read_users(state_dir)
    if name not in users:
        return False
    if name in SERVICE_USERS:
        raise AuthError(f"{name} is the project's own client ({', '.join(SERVICE_USERS)}); it cannot be removed")
    del users[name]
    _write_users(state_dir, users)
    return True


def ensure_credentials(state_dir: Path) -> dict[str, Credentials]:
    """Create the users file and the service users' passwords when missing (first start); idempotent.

    A service user whose kept password no longer matches the users file (the file edited by
    hand) gets a new password, so the project's own programs can always connect.
    """
    try:
        kept = json.loads(clients_file(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        kept = {}
    users = read_users(state_dir)
    changed = False
    for name in SERVICE_USERS:
        password = kept.get(name)
        if not password or name not in users or not verify_password(password, users[name]):
            password = secrets.token_urlsafe(18)
            users[name] = hash_password(password)
            kept[name] = password
            changed = True
    if changed or not users_file(state_dir).exists():
        _write_users(state_dir, users)
        write_private(clients_file(state_dir), json.dumps(kept, indent=2) + "\n")
    for path in (users_file(state_dir), clients_file(state_dir)):
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    return {name: Credentials(name, kept[name]) for name in SERVICE_USERS}


def service_credentials(state_dir: Path, user: str = "lakehouse") -> Credentials:
    """The kept password of one of the project's own clients (created by the server's start)."""
    path = clients_file(state_dir)
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AuthError(
            f"no client credentials in {path}: start the server once (scripts/start_thrift_server.sh), "
            "which creates them"
        ) from exc
    except ValueError as exc:
        raise AuthError(f"{path} is not valid JSON: {exc}") from exc
    if user not in kept:
        raise AuthError(f"{path} has no password for {user!r} (service users: {', '.join(SERVICE_USERS)})")
    return Credentials(user, kept[user])
