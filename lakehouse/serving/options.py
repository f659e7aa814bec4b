"""Command-line options shared by the serving commands: which config to load, and how."""

from __future__ import annotations

import argparse

from lakehouse.config import LakehouseConfig, load_config


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", help="base config file (default conf/lakehouse.yaml)")
    parser.add_argument("--env", help="environment overlay conf/env/<ENV>.yaml (or LAKEHOUSE_ENV)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)"
    )
    parser.add_argument("--warehouse", help="shortcut for --set paths.warehouse=DIR")


def asks_for_warehouse(args: argparse.Namespace) -> bool:
    """True when the command line names a warehouse (rather than taking the config's)."""
    return bool(args.warehouse) or any(s.startswith("paths.warehouse=") for s in args.set)


def config_from_args(args: argparse.Namespace) -> LakehouseConfig:
    overrides = list(args.set)
    if args.warehouse:
        overrides.append(f"paths.warehouse={args.warehouse}")
    return load_config(args.conf, args.env, overrides)
