"""Command-line options of the serving commands: the jobs' config options, plus one question."""

from __future__ import annotations

import argparse

from lakehouse.job_runtime import add_config_args, config_from_args

__all__ = ["add_config_args", "asks_for_warehouse", "config_from_args"]


def asks_for_warehouse(args: argparse.Namespace) -> bool:
    """True when the command line names a warehouse (rather than taking the config's)."""
    return bool(args.warehouse) or any(s.startswith("paths.warehouse=") for s in args.set)
