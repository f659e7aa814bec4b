"""The table docs (docs/tables.md, the README catalogue) are what lakehouse/registry.py generates."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import types as T

from lakehouse import docs
from lakehouse.registry import RatioMetric, TableSpec
from lakehouse.tables import TABLES
from tests.conftest import REPO_ROOT

TINY = TableSpec(
    "gold",
    "agg_tiny",
    T.StructType(
        [
            T.StructField("day", T.DateType(), False, {"comment": "first day of the period"}),
            T.StructField("kind", T.StringType(), False, {"comment": "daily | weekly"}),
            T.StructField("tags", T.ArrayType(T.StringType()), True, {"comment": "labels"}),
            T.StructField("amount", T.DecimalType(20, 2), True, {"comment": "miles, may be negative"}),
        ]
    ),
    "One row per (day, kind).",
    ("day",),
)
RATED = TableSpec(
    "gold",
    "agg_rated",
    T.StructType(
        [
            T.StructField("hits", T.LongType(), False, {"comment": "successes"}),
            T.StructField("bonus", T.LongType(), False, {"comment": "extra successes"}),
            T.StructField("tries", T.LongType(), False, {"comment": "attempts"}),
        ]
    ),
    "One row per day.",
    metrics=(
        RatioMetric("hit_rate", ("hits",), ("tries",), "successes per attempt"),
        RatioMetric("gain_rate", ("hits", "bonus"), ("tries",), "all successes | per attempt <x>"),
    ),
)


def test_committed_docs_match_the_registry():
    stale = [str(p.relative_to(REPO_ROOT)) for p in docs.stale_files(REPO_ROOT)]
    assert stale == [], f"stale generated docs {stale}: run `python -m lakehouse.docs`"


def test_every_registry_table_and_column_is_in_tables_md():
    text = (REPO_ROOT / "docs" / "tables.md").read_text(encoding="utf-8")
    for spec in TABLES:
        assert f"### `{spec.full_name}`" in text
        assert all(docs.column_line(f) in text for f in spec.schema.fields), spec.full_name


def test_column_lines_carry_name_type_nullable_and_escaped_description():
    lines = [docs.column_line(f) for f in TINY.schema.fields]
    assert lines == [
        "| `day` | `date` | no | first day of the period |",
        "| `kind` | `string` | no | daily \\| weekly |",
        "| `tags` | `array<string>` | yes | labels |",
        "| `amount` | `decimal(20,2)` | yes | miles, may be negative |",
    ]


def test_rendered_table_has_grain_partitioning_and_every_column():
    assert docs.render_table(TINY) == (
        "### `gold.agg_tiny`\n\nOne row per (day, kind).\n\nPartitioned by `day`.\n\n"
        "| column | type | nullable | description |\n|---|---|---|---|\n"
        + "\n".join(docs.column_line(f) for f in TINY.schema.fields)
        + "\n"
    )
    assert "Not partitioned." in docs.render_table(TableSpec("ops", "t", T.StructType([]), "One row per x."))


def test_rendered_table_lists_its_metrics_with_their_registry_sql():
    """After the column table: each metric's name, RatioMetric.sql() and escaped description."""
    without_metrics = docs.render_table(TableSpec(RATED.layer, RATED.name, RATED.schema, RATED.grain))
    assert docs.render_table(RATED) == without_metrics + (
        "\nMetrics (re-aggregated over several rows, e.g. segments or periods: ratios of sums, never averages "
        "of the per-row rate; for one row each equals the column of the same name):\n\n"
        "- `hit_rate` = `SUM(hits) / NULLIF(SUM(tries), 0)`: successes per attempt\n"
        "- `gain_rate` = `(SUM(hits) + SUM(bonus)) / NULLIF(SUM(tries), 0)`: all successes | per attempt &lt;x>\n"
    )
    assert (
        docs.metric_line(RATED.metric("hit_rate"))
        == f"- `hit_rate` = `{RATED.metric('hit_rate').sql()}`: successes per attempt"
    )
    assert "Metrics" not in docs.render_table(TINY)


def test_every_registry_metric_is_in_tables_md():
    text = (REPO_ROOT / "docs" / "tables.md").read_text(encoding="utf-8")
    metrics = [m for spec in TABLES for m in spec.metrics]
    assert metrics, "the registry declares gold metrics"
    assert all(docs.metric_line(m) in text for m in metrics)


def test_catalogue_section_links_each_table_to_its_heading_in_tables_md():
    section = docs.render_catalogue_section([TINY])
    assert "- [`gold.agg_tiny`](docs/tables.md#goldagg_tiny): One row per (day, kind)." in section.splitlines()
    tables_md = docs.render_tables_md([TINY])
    assert "## gold\n" in tables_md and "### `gold.agg_tiny`" in tables_md


def test_splice_replaces_only_the_text_between_the_markers():
    readme = f"# T\n\nintro\n\n{docs.START_MARKER}\nold list\n{docs.END_MARKER}\n\nafter\n"
    assert docs.splice_catalogue(readme, "new\n") == (
        f"# T\n\nintro\n\n{docs.START_MARKER}\nnew\n{docs.END_MARKER}\n\nafter\n"
    )
    with pytest.raises(docs.CatalogueMarkersMissing):
        docs.splice_catalogue("# no markers\n", "new\n")


def test_main_check_fails_on_stale_files_and_write_fixes_them(tmp_path: Path, capsys):
    (tmp_path / "README.md").write_text(f"# R\n\n{docs.START_MARKER}\nhand-written\n{docs.END_MARKER}\n")
    assert docs.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "README.md" in err and "tables.md" in err

    assert docs.main(["--root", str(tmp_path)]) == 0
    assert docs.main(["--check", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "docs" / "tables.md").read_text() == docs.render_tables_md()
    assert "hand-written" not in (tmp_path / "README.md").read_text()
