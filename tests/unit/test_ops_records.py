"""The ops tables' row types and the ledger's view of intents and undone batches (no Spark)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from lakehouse import batches, ops
from lakehouse.tables import TABLES

NOW = datetime(2025, 7, 5, 12, 0)


def test_every_ops_table_has_one_row_type_with_its_columns_in_order() -> None:
    bound = {cls.SPEC.full_name: cls for cls in ops.OpsRecord.__subclasses__()}
    assert sorted(bound) == sorted(s.full_name for s in TABLES if s.layer == "ops")
    for cls in bound.values():
        assert [f.name for f in cls.SPEC.schema.fields] == list(cls.__dataclass_fields__)


def test_a_row_type_refuses_fields_that_are_not_its_tables_columns() -> None:
    from dataclasses import dataclass

    with pytest.raises(TypeError, match=r"are not the columns of ops\.job_runs"):

        @ops._columns_of(ops.OPS_JOB_RUNS)
        @dataclass(frozen=True)
        class Wrong(ops.OpsRecord):
            run_id: str
            job: str


def _file(batch: str, run: str, status: str, lo: date | None = None, hi: date | None = None) -> ops.FileRecord:
    return ops.FileRecord(batch, run, f"/in/{batch}.csv", f"{batch}.csv", "sha", 10, 3, 3, 0, status, NOW,
                          min_event_date=lo, max_event_date=hi)  # fmt: skip


def test_rows_round_trip_and_an_older_table_without_a_column_reads_none() -> None:
    record = _file("b1", "r1", "committed", date(2025, 7, 1), date(2025, 7, 2))
    names = [f.name for f in ops.FileRecord.SPEC.schema.fields]
    assert ops.FileRecord.from_row(dict(zip(names, record.as_row(), strict=True))) == record
    older = {k: v for k, v in zip(names, record.as_row(), strict=True) if k != "status_reason"}
    assert ops.FileRecord.from_row(older).status_reason is None


def test_an_intent_without_a_record_of_its_run_is_unrecorded_and_an_undone_batch_is_pending_work() -> None:
    book = batches.Ledger()
    book.intents = [
        ops.IntentRecord("b1", "r1", "a.csv", "sha", date(2025, 7, 1), date(2025, 7, 2), NOW),  # recorded
        ops.IntentRecord("b2", "r2", "b.csv", "sha", date(2025, 7, 3), date(2025, 7, 4), NOW),  # r2 stopped
        ops.IntentRecord("b3", "r2", "c.csv", "sha", date(2025, 7, 5), date(2025, 7, 5), NOW),  # r2 stopped
    ]
    book.files = [_file("b1", "r1", "committed", date(2025, 7, 1), date(2025, 7, 2))]
    assert [i.batch_id for i in book.unrecorded()] == ["b2", "b3"]

    # The next run undoes both; b3's file was unchanged and is committed again by that run.
    book.files += [_file("b2", "r2", batches.UNDONE, date(2025, 7, 3), date(2025, 7, 4)),
                   _file("b3", "r2", batches.UNDONE, date(2025, 7, 5), date(2025, 7, 5)),
                   _file("b3", "r3", "committed", date(2025, 7, 5), date(2025, 7, 5))]  # fmt: skip
    assert book.unrecorded() == []
    assert sorted(book.undone()) == ["b2"]
    bronze = book.consumed(batches.BRONZE)
    assert bronze["b2"] == batches.Consumption("b2", 0, 0, date(2025, 7, 3), date(2025, 7, 4))
    assert bronze["b3"].rows_in == 3  # committed wins over its earlier undo
