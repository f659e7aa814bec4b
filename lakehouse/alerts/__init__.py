"""Acting on the numbers: the morning brief (its delivery channels: lakehouse/channels.py)."""
