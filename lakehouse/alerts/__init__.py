"""Acting on the numbers: the morning brief and its delivery."""
