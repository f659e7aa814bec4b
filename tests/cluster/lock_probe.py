"""Run by test_cluster_s3: the warehouse lock's put-if-absent on the S3 server, from a client (no JVM).

Checks, against the real S3 server, with the store the jobs use (:mod:`lakehouse.storage`, boto3): a first
create of a fresh object succeeds; a second create of the same object is refused by the server itself (a
conditional PUT, ``If-None-Match: *``, with no existence check before it); six contenders racing for a
fresh lock: exactly one wins. Writes the findings as JSON.
"""

from __future__ import annotations

import argparse
import json
import threading

from lakehouse.config import load_config
from lakehouse.lock import LockHeld, WarehouseLock
from lakehouse.storage import storage_for


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--conf")
    p.add_argument("--env")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    base = load_config(args.conf, args.env)
    found: dict = {}

    probe = f"{base.paths.warehouse}/_probe/conditional.json"
    store = storage_for(probe, base)
    store.delete(probe)
    found["first_create"] = store.create_if_absent(probe, b"{}")
    found["second_create"] = store.create_if_absent(probe, b"{}")  # the server's 412 is the only check
    store.delete(probe)

    config = base.with_overrides(paths__warehouse=f"{base.paths.warehouse}/_probe/race")
    barrier = threading.Barrier(6)
    racers: list[str] = []
    locks = [WarehouseLock(config, "probe") for _ in range(6)]

    def race(lock: WarehouseLock) -> None:
        barrier.wait()
        try:
            lock.acquire()
            racers.append("won")
        except LockHeld:
            racers.append("held")

    threads = [threading.Thread(target=race, args=(lock,)) for lock in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found["racers"] = racers
    for lock in locks:
        lock.release()
    with open(args.out, "w") as f:
        json.dump(found, f)


if __name__ == "__main__":
    main()
