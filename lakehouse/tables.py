"""Every table, found from the modules that declare them.

The platform's own tables are specs in :mod:`lakehouse.registry` (bronze, silver, the bookkeeping, the
data-quality report); each gold table is declared by its module in ``lakehouse/gold/tables/``
(:func:`lakehouse.gold.tables.discover`). This is the one list of them all: the docs' catalogue, the SQL
endpoint's registrations and grants, maintenance, ``lakehouse diff`` and the summary read it.
"""

from __future__ import annotations

from lakehouse.gold.tables import discover
from lakehouse.registry import CORE_TABLES, TableSpec

#: Bronze and silver, the gold tables (by name), the report, then the bookkeeping.
TABLES: tuple[TableSpec, ...] = (
    *[t for t in CORE_TABLES if t.layer in ("bronze", "silver")],
    *[g.spec for g in discover().values()],
    *[t for t in CORE_TABLES if t.layer == "gold"],
    *[t for t in CORE_TABLES if t.layer == "ops"],
)


def table(full_name: str) -> TableSpec:
    for spec in TABLES:
        if spec.full_name == full_name:
            return spec
    raise KeyError(f"unknown table {full_name!r}; known: {', '.join(t.full_name for t in TABLES)}")
