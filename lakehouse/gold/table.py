"""The gold-table protocol: each gold module declares one :class:`GoldTable` value, the gold job iterates them.

A gold table is its registry spec, a pure ``build`` from the shared :class:`GoldInputs`, the
``scope`` of rows an incremental run replaces, an optional incremental build from the published
table, the error-level checks its job enforces and, optionally, the warnings its job records after a
publish and the conf parameters its rows depend on beyond the shared gold ones. Everything about one
table is in its module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame

from lakehouse.config import LakehouseConfig
from lakehouse.gold.activity import GoldInputs
from lakehouse.gold.checks import Check
from lakehouse.quality import DqResult
from lakehouse.registry import TableSpec

if TYPE_CHECKING:
    from lakehouse.job_runtime import JobContext


@dataclass(frozen=True)
class GoldTable:
    """One gold table: what it is, how it is computed, what an incremental run replaces, how it is checked."""

    spec: TableSpec
    #: Rows of the table's scope from the inputs (every row when ``inputs.since`` is None).
    build: Callable[[GoldInputs], DataFrame]
    #: The SQL predicate of the rows an incremental run recomputes (``replaceWhere``); None = every row.
    scope: Callable[[GoldInputs], str | None]
    #: Error-level checks attributed to this table (its grain is always checked too).
    checks: tuple[Check, ...] = ()
    #: Incremental build from the published table, for tables whose every row can change (retention).
    build_from_previous: Callable[[GoldInputs, DataFrame], DataFrame] | None = None
    #: Warning-level findings recorded after each publish (never failing the job), e.g. the anomaly alerts.
    warnings: Callable[[JobContext, GoldInputs], list[DqResult]] | None = None
    #: The table's own conf parameters, as they appear in its bookkeeping name: changing one rebuilds it whole.
    parameters: Callable[[LakehouseConfig], str] | None = None
    #: Reminders of a run with nothing to do, from the bookkeeping alone (``Job.idle_reminders``).
    idle_reminders: Callable[[LakehouseConfig], list[str]] | None = None

    @property
    def full_name(self) -> str:
        return self.spec.full_name

    def compute(self, inputs: GoldInputs, previous: Callable[[], DataFrame]) -> DataFrame:
        """The rows to publish: incremental from the published table where the table has such a build."""
        if inputs.since is not None and self.build_from_previous is not None:
            return self.build_from_previous(inputs, previous())
        return self.build(inputs)
