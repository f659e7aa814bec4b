"""Gold layer: active users, weekly lifecycle, cohort retention, growth accounting, daily engagement
(stickiness), their checks, and the data-quality report."""
