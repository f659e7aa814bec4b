"""The gold tables: one module per table, found, not listed.

Each module here is named after its table and declares ``GOLD``, a :class:`~lakehouse.gold.table.GoldTable`
(the table's spec with its schema and grain, its pure build, the scope an incremental run replaces, its checks).
Adding a gold table is adding its module, its thin ``jobs/gold_<table>.py`` entry point and its line in conf's
``dag``: the gold job (:mod:`lakehouse.gold.refresh`), the job index (:mod:`lakehouse.job_catalog`), the table
index (:mod:`lakehouse.tables`), the docs' catalogue and the SQL endpoint's registrations find it here.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing

if typing.TYPE_CHECKING:
    from lakehouse.gold.table import GoldTable


def table_names() -> list[str]:
    """The gold tables' names, from the modules' file names (nothing imported: the job index reads these)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def discover() -> dict[str, GoldTable]:
    """Every gold table, by full name, in name order: each module's ``GOLD``. A module whose ``GOLD`` names
    another table, or that declares none, is an error (its table would be silently missing)."""
    from lakehouse.gold.table import GoldTable  # imports pyspark: not for the names alone

    found: dict[str, GoldTable] = {}
    for name in table_names():
        module = importlib.import_module(f"{__name__}.{name}")
        gold = getattr(module, "GOLD", None)
        if not isinstance(gold, GoldTable) or gold.spec.layer != "gold" or gold.spec.name != name:
            raise TypeError(f"{module.__name__} must declare GOLD = GoldTable(...) for the table gold.{name}")
        found[gold.full_name] = gold
    return found
