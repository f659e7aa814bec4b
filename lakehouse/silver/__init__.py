"""Silver layer: one row per event, and daily user snapshots."""
