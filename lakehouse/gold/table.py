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
from datetime import date
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame

from lakehouse.config import LakehouseConfig
from lakehouse.gold.activity import GoldInputs
from lakehouse.gold.checks import Check
from lakehouse.quality import DqResult
from lakehouse.registry import TableSpec

if TYPE_CHECKING:
    from lakehouse.job_runtime import JobContext


#: Inputs of :class:`GoldInputs` a gold job computes only for the tables that read them: the user-week grid
#: (``grid_df``), the miles inputs (``miles_events_df``, ``miles_base_df``), the users' weekly statuses
#: (``status_df``) and the week-end ``silver.dim_users`` snapshots (``week_ends_df``).
OPTIONAL_INPUTS = ("grid", "miles", "status", "week_ends")


def reading(*inputs: str, full_rebuild: tuple[str, ...] = ()) -> Callable[[date | None], frozenset[str]]:
    """A table's ``reads``: ``inputs`` in every run, ``full_rebuild`` in a full rebuild only."""
    unknown = set(inputs + full_rebuild) - set(OPTIONAL_INPUTS)
    if unknown:
        raise ValueError(f"unknown gold inputs {sorted(unknown)}: one of {OPTIONAL_INPUTS}")
    return lambda since: frozenset(inputs + (full_rebuild if since is None else ()))


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
    #: The optional shared inputs the table's build and checks read in a run from ``since`` (None: a full
    #: rebuild), of :data:`OPTIONAL_INPUTS`. The gold job computes only those for it and leaves the
    #: others None, so a table that reads one it did not declare fails instead of reading nothing.
    reads: Callable[[date | None], frozenset[str]] = lambda since: frozenset()

    @property
    def full_name(self) -> str:
        return self.spec.full_name

    def compute(self, inputs: GoldInputs, previous: Callable[[], DataFrame]) -> DataFrame:
        """The rows to publish: incremental from the published table where the table has such a build."""
        if inputs.since is not None and self.build_from_previous is not None:
            return self.build_from_previous(inputs, previous())
        return self.build(inputs)
