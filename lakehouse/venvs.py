"""Virtualenvs of the services that must not share the project's (Superset, Airflow).

Each is built from the Python 3.11 the project's virtualenv was made from, with pinned requirements,
and stamped with a hash of what it was built from (Python version, requirements, constraints file):
a later call with the same inputs returns at once, a changed pin rebuilds it.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

STAMP = ".requirements.sha256"


def base_python() -> str:
    """The Python 3.11 the project's virtualenv was made from."""
    candidate = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(candidate) if candidate.exists() else sys.executable


def requirements_hash(requirements: Sequence[str], constraints: Path | None = None) -> str:
    text = sys.version + "\n".join(requirements) + (constraints.read_text() if constraints else "")
    return hashlib.sha256(text.encode()).hexdigest()


def ensure_venv(
    venv: Path,
    requirements: Sequence[str],
    *,
    what: str,
    log: Callable[[str], None],
    constraints: Path | None = None,
    entry_point: str = "python",
    pip_log: Path | None = None,
) -> str:
    """Build ``venv`` with ``requirements`` unless its stamp says it is up to date; the stamp's hash.

    ``entry_point``: a file of ``bin/`` that a complete install has. ``pip_log``: pip's output goes
    there (appended) instead of the terminal."""
    want = requirements_hash(requirements, constraints)
    stamp = venv / STAMP
    if (venv / "bin" / entry_point).exists() and stamp.exists() and stamp.read_text().strip() == want:
        return want
    started = time.monotonic()
    log(f"installing {what} into {venv} (first time: about a minute)")
    subprocess.run([base_python(), "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
           "--progress-bar", "off", *(["-c", str(constraints)] if constraints else [])]  # fmt: skip
    if pip_log is None:
        subprocess.run([*pip, "--quiet", *requirements], check=True)
    else:
        with pip_log.open("a") as out:
            proc = subprocess.run([*pip, *requirements], stdout=out, stderr=subprocess.STDOUT, check=False)
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, f"pip failed; its output: {pip_log}")
    stamp.write_text(want + "\n")
    log(f"{what} installed in {time.monotonic() - started:.0f} s")
    return want
