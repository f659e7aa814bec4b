"""HeyMax loyalty lakehouse: PySpark + Delta Lake jobs for bronze, silver and gold tables."""
