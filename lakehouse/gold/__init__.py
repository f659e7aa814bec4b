"""Gold layer: active users, weekly lifecycle, cohort retention, growth accounting, and their checks."""
