"""Apache Superset over the gold tables: dashboards as code.

Two Python environments meet here, and each module says which one it runs in:

- the lakehouse virtualenv (``.venv``): :mod:`.bundle` writes the asset bundle
  ``conf/superset/bundle/`` from the table registry and the config; :mod:`.service` installs,
  starts and stops Superset (``lakehouse superset up|down|status``);
- Superset's own virtualenv (``.cache/superset-venv``, built by :mod:`.service`; it pins
  SQLAlchemy < 2, pandas < 2.2 and has no pyspark): :mod:`.bootstrap` (admin user, bundle import)
  and :mod:`.superset_config` (loaded through ``SUPERSET_CONFIG_PATH``). Both are run by file
  path, never imported as part of this package, and import nothing from ``lakehouse``
  (``tests/serving/test_superset_bundle.py`` checks it).
"""
