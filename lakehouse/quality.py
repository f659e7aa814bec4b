"""Data-quality results: what a rule or check found, before anything is written.

Checks and rules return :class:`DqResult` values; a job hands them to its run
(:meth:`lakehouse.ops.JobRun.record_dq`), which writes ``ops.dq_results``. Keeping the value type
here (no Spark, no I/O) lets pure check modules return results without importing the writer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DqResult:
    table_name: str
    check_name: str
    severity: str
    rows_checked: int
    failed_rows: int
    details: str | None = None
    batch_id: str | None = None
    #: What a failure means when it is not a failed check: bronze rules send rows to quarantine.
    failure_status: str = "fail"

    @property
    def status(self) -> str:
        """pass | fail (error-level check failed) | warn | quarantined (rows set aside, job goes on)."""
        if self.failed_rows == 0:
            return "pass"
        return self.failure_status if self.severity == "error" else "warn"
