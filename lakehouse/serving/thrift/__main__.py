from __future__ import annotations

import sys

from lakehouse.serving.thrift.cli import main

sys.exit(main())
