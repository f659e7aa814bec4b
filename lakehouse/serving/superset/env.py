"""What ``scripts/superset_up.sh`` needs from the lakehouse config, as ``KEY=value`` lines.

    python -m lakehouse.serving.superset.env [--env NAME] [--set key=value ...]

prints

    SUPERSET_HOST=127.0.0.1        # serving.superset_host
    SUPERSET_PORT=8088             # serving.superset_port
    THRIFT_HOST=127.0.0.1          # serving.thrift_host
    THRIFT_PORT=10000              # serving.thrift_port
    LAKEHOUSE_WEEK_START=sunday    # week_start (read by superset_config.py)

Runs in the lakehouse virtualenv (the config module is the one every job uses, overlays and
``LAKEHOUSE_ENV`` included). The script lets environment variables of the same name win for the
hosts and ports; the week start always comes from the config, since it must match the data.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lakehouse.config import ConfigError, LakehouseConfig
from lakehouse.serving.options import add_config_args, config_from_args


def settings(config: LakehouseConfig) -> dict[str, str]:
    serving = config.serving
    return {
        "SUPERSET_HOST": serving.superset_host,
        "SUPERSET_PORT": str(serving.superset_port),
        "THRIFT_HOST": serving.thrift_host,
        "THRIFT_PORT": str(serving.thrift_port),
        "LAKEHOUSE_WEEK_START": config.week_start,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lakehouse.serving.superset.env", description=__doc__.splitlines()[0]
    )
    add_config_args(parser)
    args = parser.parse_args(argv)
    try:
        values = settings(config_from_args(args))
    except ConfigError as exc:
        print(f"[superset] ERROR: {exc}", file=sys.stderr)
        return 2
    for key, value in values.items():
        if any(ch.isspace() or ch in "'\"$`\\" for ch in value):
            print(f"[superset] ERROR: {key} {value!r} has characters a host or port cannot have", file=sys.stderr)
            return 2
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
