"""Submitted to the cluster by test_cluster_s3: the warehouse lock's put-if-absent on the S3 server.

Checks, against the real S3 server through s3a: the store declares conditional create; a second
conditional create of an existing object is refused by the server itself (the exists() pre-check
skipped); six contenders racing for a fresh lock: exactly one wins. Writes the findings as JSON.
"""

from __future__ import annotations

import argparse
import json
import threading

from lakehouse.config import load_config
from lakehouse.lock import CONDITIONAL_CREATE, LockHeld, WarehouseLock, _HadoopStore
from lakehouse.session import get_spark


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--conf")
    p.add_argument("--env")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    base = load_config(args.conf, args.env)
    spark = get_spark(base, app_name="lock-probe")
    found: dict = {}

    probe = f"{base.paths.warehouse}/_probe/conditional.json"
    store = _HadoopStore(probe, spark)
    store.delete()
    found["conditional_create_capability"] = bool(store.fs.hasPathCapability(store.jpath, CONDITIONAL_CREATE))
    found["first_create"] = store.create("{}")
    try:  # straight to the conditional PUT, without the exists() pre-check
        out = store.fs.createFile(store.jpath).overwrite(False).must(CONDITIONAL_CREATE, True).build()
        out.write(bytearray(b"{}"))
        out.close()
        found["second_conditional_create"] = True
    except Exception as exc:  # the refusal is the finding
        found["second_conditional_create"] = False
        found["second_conditional_create_error"] = str(exc)[:300]
    store.delete()

    config = base.with_overrides(paths__warehouse=f"{base.paths.warehouse}/_probe/race")
    barrier = threading.Barrier(6)
    racers: list[str] = []
    locks = [WarehouseLock(config, spark, "probe") for _ in range(6)]

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
    spark.stop()


if __name__ == "__main__":
    main()
