"""Bronze layer: validated raw events and their quarantine."""
