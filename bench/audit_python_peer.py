#!/usr/bin/env python3
"""The plain peer the SQLite audit store is measured against: Python's sqlite3, a hash chain.

What a careful team would write in an afternoon: one table, WAL, synchronous=FULL, every record
canonical JSON (sorted keys, no spaces) chained as hash = SHA-256(prev_hash || leaf), one commit
(one fsync) per append. Then a verify pass that reads every row, recomputes the chain, and (like
AuditLogger::verify) decodes each record and checks it is canonical.

    python3 bench/audit_python_peer.py append --seconds 10 [--threads 64]
    python3 bench/audit_python_peer.py verify --entries 1000000

`--threads N` appends from N threads through one connection behind a lock (what a naive service
does); it cannot beat one thread, since every commit is its own fsync. Output lines are
`key=value` pairs, like the Rust bench's, for bench/audit.sh.
"""

import argparse
import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_entries (
    tenant_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    leaf BLOB NOT NULL,
    chain_hash BLOB NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
"""


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record(tenant, seq, n):
    """The same ~420-byte record the Rust bench appends."""
    return {
        "v": 1,
        "id": str(uuid.uuid4()),
        "tenant_id": tenant,
        "seq": seq,
        "recorded_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": "alice@bank.example",
        "action": "model.approve",
        "outcome": "success",
        "resource_type": "model",
        "resource_id": f"credit-risk-pd-{n}",
        "reason": "four-eyes approval after the validation review",
        "correlation_id": str(uuid.uuid4()),
        "metadata": {"model_version": f"2.{n % 7}.0", "risk_tier": "high", "ticket": "RISK-4711"},
    }


class Ledger:
    def __init__(self, path, synchronous="FULL"):
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
        self.conn.executescript(SCHEMA)
        self.lock = threading.Lock()
        self.heads = {}

    def head(self, tenant):
        if tenant not in self.heads:
            row = self.conn.execute(
                "SELECT seq, chain_hash FROM audit_entries WHERE tenant_id = ? "
                "ORDER BY seq DESC LIMIT 1",
                (tenant,),
            ).fetchone()
            self.heads[tenant] = (row[0] + 1, row[1]) if row else (0, b"\0" * 32)
        return self.heads[tenant]

    def append(self, tenant, n, commit=True):
        with self.lock:
            seq, prev = self.head(tenant)
            leaf = canonical(record(tenant, seq, n))
            chain = hashlib.sha256(prev + leaf).digest()
            if commit:
                self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "INSERT INTO audit_entries (tenant_id, seq, leaf, chain_hash) VALUES (?, ?, ?, ?)",
                (tenant, seq, leaf, chain),
            )
            if commit:
                self.conn.execute("COMMIT")
            self.heads[tenant] = (seq + 1, chain)
            return seq


def fresh_path(name):
    directory = os.environ.get("AIRISK_BENCH_DIR") or os.path.join(tempfile.gettempdir(), "airisk-bench")
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, name)


def remove_db(path):
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass


def bench_append(seconds, threads):
    path = fresh_path(f"python-append-{os.getpid()}.db")
    remove_db(path)
    ledger = Ledger(path)
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def run(i):
        n = i << 32
        while time.monotonic() < stop:
            ledger.append("acme", n)
            n += 1
            counts[i] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    total = sum(counts)
    print(
        f"bench=python_append threads={threads} records={total} seconds={elapsed:.2f} "
        f"appends_per_sec={total / elapsed:.0f}"
    )
    ledger.conn.close()
    remove_db(path)


def build(entries):
    path = fresh_path(f"python-ledger-{entries}.db")
    if os.path.exists(path):
        ledger = Ledger(path)
        if ledger.head("acme")[0] >= entries:
            return path
        ledger.conn.close()
        remove_db(path)
    ledger = Ledger(path, synchronous="OFF")
    ledger.conn.execute("BEGIN")
    for n in range(entries):
        ledger.append("acme", n, commit=False)
    ledger.conn.execute("COMMIT")
    ledger.conn.close()
    return path


def bench_verify(entries):
    path = build(entries)
    conn = sqlite3.connect(path)
    for decode in (False, True):
        started = time.monotonic()
        prev = b"\0" * 32
        expected = 0
        for seq, leaf, chain in conn.execute(
            "SELECT seq, leaf, chain_hash FROM audit_entries WHERE tenant_id = 'acme' ORDER BY seq"
        ):
            if seq != expected:
                raise SystemExit(f"gap at {expected}")
            prev = hashlib.sha256(prev + leaf).digest()
            if prev != chain:
                raise SystemExit(f"chain broken at {seq}")
            if decode:
                value = json.loads(leaf)
                if canonical(value) != leaf or value["seq"] != seq or value["tenant_id"] != "acme":
                    raise SystemExit(f"record {seq} is not canonical or misplaced")
            expected += 1
        elapsed = time.monotonic() - started
        kind = "python_verify_decode" if decode else "python_verify_raw"
        print(
            f"bench={kind} entries={expected} seconds={elapsed:.2f} "
            f"records_per_sec={expected / elapsed:.0f}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["append", "verify"])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.mode == "append":
        bench_append(args.seconds, args.threads)
    else:
        bench_verify(args.entries)


if __name__ == "__main__":
    main()
