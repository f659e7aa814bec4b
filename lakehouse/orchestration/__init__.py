"""Orchestration: the job DAG of conf under Apache Airflow (see :mod:`lakehouse.orchestration.airflow`)."""
