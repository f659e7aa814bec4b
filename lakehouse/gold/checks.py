"""Metric validation of the gold tables (docs/contract.md, "Checks on the gold tables"): the machinery.

Error-level checks run on freshly computed gold DataFrames *before* they are published: a failure
stops the job and leaves the published table as it was. Each check belongs to one table (the one
whose job enforces it, declared in that table's module as part of its :class:`GoldTable` value) and
may compare it with other gold tables of the same computation; it returns :class:`Measure` values
whose results count the offending rows (0 = pass). Checks count; they never write (the job records
the results). Each check is one aggregation (rows checked and rows failing counted together), and
all the checks of a table are measured in one Spark action (:func:`measure`: their one-row
aggregates unioned), not one action each. On an incremental run the tables are the recomputed
slices (see :mod:`lakehouse.gold.activity`), so the checks cover what changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Protocol

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.quality import DqResult
from lakehouse.registry import TableSpec

if TYPE_CHECKING:
    from lakehouse.gold.activity import GoldInputs

#: A gold table by full name (the job computes it from the same inputs on first use).
Tables = Callable[[str], DataFrame]
#: One check of a table: its measures over the tables of a computation and the inputs they came from.
Check = Callable[[Tables, "GoldInputs"], list["Measure"]]


@dataclass(frozen=True)
class Measure:
    """One check's aggregation: a one-row DataFrame of three counts ``a, b, c`` (longs), and how
    those become its results. Measured with the table's other checks in one action."""

    df: DataFrame
    results: Callable[[int, int, int], list[DqResult]]


def measure(measures: Sequence[Measure]) -> list[DqResult]:
    """Every measure's results, from one Spark action over the union of their aggregates."""
    if not measures:
        return []
    frames = [
        m.df.select(F.lit(i).alias("i"), *[F.coalesce(F.col(c).cast("long"), F.lit(0)).alias(c) for c in "abc"])
        for i, m in enumerate(measures)
    ]
    rows = {r["i"]: (int(r["a"]), int(r["b"]), int(r["c"])) for r in reduce(DataFrame.unionByName, frames).collect()}
    return [result for i, m in enumerate(measures) for result in m.results(*rows[i])]


def rows_where(table: str, name: str, df: DataFrame, bad: Column, details: str) -> Measure:
    """The error-level check ``name`` of ``table``: rows of ``df``, and rows where ``bad`` holds, in one aggregation."""
    counts = df.agg(F.count(F.lit(1)).alias("a"), F.count(F.when(bad, 1)).alias("b"), F.lit(0).alias("c"))
    return Measure(counts, lambda n, failed, _: [DqResult(table, name, "error", n, failed, details)])


def grain_checks(name: str, keys: Sequence[str], df: DataFrame) -> list[Measure]:
    """The grain of table ``name``: its ``keys`` are unique and never null."""
    keys = list(keys)
    any_null = F.lit(False)
    for k in keys:
        any_null = any_null | F.col(k).isNull()
    groups = df.groupBy(*keys).count()
    counts = groups.agg(
        F.coalesce(F.sum("count"), F.lit(0)).alias("a"),
        F.coalesce(F.sum(F.when(F.col("count") > 1, F.col("count"))), F.lit(0)).alias("b"),
        F.coalesce(F.sum(F.when(any_null, F.col("count"))), F.lit(0)).alias("c"),
    )

    def results(rows: int, duplicates: int, nulls: int) -> list[DqResult]:
        return [
            DqResult(name, "unique_grain_keys", "error", rows, duplicates, f"keys {keys}"),
            DqResult(name, "no_null_keys", "error", rows, nulls, f"keys {keys}"),
        ]

    return [Measure(counts, results)]


class Checked(Protocol):
    """A table with declared checks (a :class:`lakehouse.gold.table.GoldTable`)."""

    @property
    def spec(self) -> TableSpec: ...

    @property
    def checks(self) -> tuple[Check, ...]: ...


def run_checks(table: Checked, tables: Tables, inputs: GoldInputs) -> list[DqResult]:
    """Every error-level check of ``table``: its grain, then the checks its value declares (one action)."""
    name = table.spec.full_name
    measures = grain_checks(name, table.spec.keys, tables(name))
    for check in table.checks:
        measures += check(tables, inputs)
    return measure(measures)
