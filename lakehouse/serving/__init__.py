"""Serving: the Spark Thrift Server over the Delta tables, and ad-hoc SQL (``scripts/sql.sh``).

See ``lakehouse.serving.thrift`` (start/stop/status/register) and ``lakehouse.serving.sql``.
Superset, which reads the gold tables through the Thrift server, lives in ``conf/superset``.
"""
