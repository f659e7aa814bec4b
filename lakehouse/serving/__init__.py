"""Serving: the gold tables to SQL clients and dashboards.

- :mod:`lakehouse.serving.catalog`: the one table registration (``<layer>.<name>`` from the
  registry) for the Thrift server and local Spark sessions;
- :mod:`lakehouse.serving.thrift`: the Spark Thrift Server (start/stop/status/register);
- :mod:`lakehouse.serving.sql`: ad-hoc SQL (``scripts/sql.sh``);
- :mod:`lakehouse.serving.superset`: Superset's asset bundle builder, bootstrap and settings
  (the generated bundle itself is YAML in ``conf/superset/bundle``).
"""
