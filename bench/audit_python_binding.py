#!/usr/bin/env python3
"""Per-call cost of `AuditLogger.log_action` from Python (the airisk extension) against the plain
peer (bench/audit_python_peer.py: Python's sqlite3, a hash chain, one commit per append), in the
same run, on the same disk, with the same ~420-byte record.

    python3 bench/audit_python_binding.py [--seconds 5] [--concurrency 64]

Needs the extension installed (`bash scripts/setup-python.sh`; build it with
AIRISK_PY_RELEASE=1 for meaningful figures). Prints `key=value` lines like the other benches:

* peer_append: the peer, one append after another (each commit is an fsync);
* airisk_sqlite_sequential: `await log_action(...)` one after another on a SQLite file (each
  awaits its durable commit);
* airisk_memory_sequential: the same on the in-memory store: what the binding and the kernel cost
  without the disk (the Python -> tokio -> asyncio round trip, validation, canonical JSON,
  the Merkle append);
* airisk_sqlite_concurrent: `--concurrency` calls in flight from one event loop (the SQLite
  store commits them in groups);
* airisk_roundtrip_floor: `await audit_logger.entries(actor=..., limit=0)` on the in-memory store,
  a call that does almost nothing in the kernel: the floor of any awaited call (argument
  conversion, a spawn on the kernel's runtime, the hand-back through `call_soon_threadsafe`).
"""

import argparse
import asyncio
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit_python_peer as peer  # noqa: E402  (the peer, reused as is)

import airisk  # noqa: E402


def fields(n):
    """The peer's record, as log_action keyword arguments."""
    return dict(
        tenant_id="acme",
        action="risk.approval",  # the peer's model.approve, outside the kernel's namespaces
        resource_type="model",
        resource_id=f"credit-risk-pd-{n}",
        reason="four-eyes approval after the validation review",
        correlation_id=str(uuid.uuid4()),
        metadata={"model_version": f"2.{n % 7}.0", "risk_tier": "high", "ticket": "RISK-4711"},
    )


def report(name, calls, elapsed, **extra):
    extras = "".join(f" {k}={v}" for k, v in extra.items())
    print(
        f"bench={name} calls={calls} seconds={elapsed:.2f} calls_per_sec={calls / elapsed:.0f} "
        f"us_per_call={elapsed / calls * 1e6:.1f}{extras}",
        flush=True,
    )


def bench_peer(seconds):
    path = peer.fresh_path(f"peer-{os.getpid()}.db")
    peer.remove_db(path)
    ledger = peer.Ledger(path)
    n = 0
    started = time.perf_counter()
    stop = started + seconds
    while time.perf_counter() < stop:
        ledger.append("acme", n)
        n += 1
    report("peer_append", n, time.perf_counter() - started)
    ledger.conn.close()
    peer.remove_db(path)


async def bench_airisk(url, seconds, concurrency, name):
    signing, _ = airisk.generate_ledger_key()
    kernel = airisk.open(
        database_url=url, ledger_signing_key=signing, encryption_keys=airisk.generate_encryption_key("k1")
    )
    alice = airisk.Principal(actor="alice@bank.example", tenant_id="acme", role=airisk.Role.ADMIN, human=True)
    log = kernel.audit_logger.log_action
    await log(actor=alice, **fields(0))  # warm up (first append creates the tenant's head)
    n = 0
    started = time.perf_counter()
    stop = started + seconds
    if concurrency == 1:
        while time.perf_counter() < stop:
            await log(actor=alice, **fields(n))
            n += 1
    else:
        while time.perf_counter() < stop:
            await asyncio.gather(*(log(actor=alice, **fields(n + i)) for i in range(concurrency)))
            n += concurrency
    elapsed = time.perf_counter() - started
    report(name, n, elapsed, **({"in_flight": concurrency} if concurrency > 1 else {}))
    reader = airisk.Principal(actor="auditor@bank.example", tenant_id="acme", role=airisk.Role.VIEWER)
    verified = await kernel.audit_logger.verify(actor=reader)
    assert verified.intact and verified.entries == n + 1, verified.problem


async def bench_floor(seconds):
    signing, _ = airisk.generate_ledger_key()
    kernel = airisk.open(
        database_url="memory:", ledger_signing_key=signing, encryption_keys=airisk.generate_encryption_key("k1")
    )
    reader = airisk.Principal(actor="auditor@bank.example", tenant_id="acme", role=airisk.Role.VIEWER)
    entries = kernel.audit_logger.entries
    n = 0
    started = time.perf_counter()
    stop = started + seconds
    while time.perf_counter() < stop:
        await entries(actor=reader, limit=0)
        n += 1
    report("airisk_roundtrip_floor", n, time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(f"loadavg_before={' '.join(f'{x:.2f}' for x in os.getloadavg())} cpus={os.cpu_count()}", flush=True)
    path = peer.fresh_path(f"airisk-{os.getpid()}.db")
    for variant in ("sequential", "concurrent"):
        peer.remove_db(path)
        concurrency = 1 if variant == "sequential" else args.concurrency
        asyncio.run(bench_airisk(f"sqlite://{path}", args.seconds, concurrency, f"airisk_sqlite_{variant}"))
    peer.remove_db(path)
    bench_peer(args.seconds)
    asyncio.run(bench_airisk("memory:", args.seconds, 1, "airisk_memory_sequential"))
    asyncio.run(bench_floor(args.seconds))
    print(f"loadavg_after={' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
