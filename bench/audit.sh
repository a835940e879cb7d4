#!/usr/bin/env bash
# Compares the SQLite audit store with a plain Python + sqlite3 hash-chain ledger.
#
#   bash bench/audit.sh                     # from anywhere in the repository
#   SECONDS_PER_CASE=10 ENTRIES=1000000 bash bench/audit.sh
#
# Runs:
#   1. cargo bench -p airisk-store-sqlite --bench audit -- append --callers 1, --callers 1
#      --in-flight 16 (one caller pipelining 16 calls) and --callers 64 (durable appends/s: every
#      call's receipt is on disk; WAL, synchronous=FULL, group commit)
#   2. ... -- verify --entries N   (raw read + rehash, and the whole AuditLogger::verify)
#   3. ... -- proof --entries N    (inclusion proof: tree head + stored nodes + assembly)
#   3b. ... -- wakeup, as is and under `taskset -c 0` (two threads handing a number back and
#      forth: what waking a waiting thread costs here across cores and on one core; no target,
#      it explains the hand-off share of the append figures on a given machine)
#   4. python3 bench/audit_python_peer.py append (1 thread and 64 threads) / verify (WAL,
#      synchronous=FULL, one commit per append, SHA-256 hash chain)
# and prints the ratios against the targets: >= 50,000 durable appends/s with 64 callers,
# 1 caller (pipelined) >= 1.5x Python's 1 thread, verify >= 1,500,000 records/s, inclusion proof <= 1 ms at
# 1M entries. Every result line carries `load=`, the 1-minute load average just before that case;
# with AUDIT_OUT=FILE the result lines are also appended to FILE (bench/report.sh reads them).
#
# Durable appends are bound by the disk's fsync latency, and every figure by the load: check
# `uptime` first. Databases go to $AIRISK_BENCH_DIR (default: the system temp dir); the 1M-entry
# ledgers are built once (a minute or so each) and reused.
set -euo pipefail

cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
seconds="${SECONDS_PER_CASE:-10}"
entries="${ENTRIES:-1000000}"
export AIRISK_BENCH_DIR="${AIRISK_BENCH_DIR:-${TMPDIR:-/tmp}/airisk-bench}"

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load:$(uptime | sed 's/.*load average://')"
echo "== bench dir: $AIRISK_BENCH_DIR ($(df -h "$(dirname "$AIRISK_BENCH_DIR")" | awk 'NR==2 {print $1}'))"

out="$(mktemp)"
trap 'rm -f "$out"' EXIT

# Appends ` load=<1-minute load average before the case>` to each result line.
with_load() {
    local load
    load="$(cut -d' ' -f1 /proc/loadavg)"
    "$@" | grep '^bench=' | sed "s/\$/ load=$load/" | tee -a "$out"
}

bench() {
    with_load cargo bench -q -p airisk-store-sqlite --bench audit -- "$@" 2>/dev/null
}

echo "== rust: cargo bench -p airisk-store-sqlite --bench audit"
bench append --callers 1 --seconds "$seconds"
bench append --callers 1 --in-flight 16 --seconds "$seconds"
bench append --callers 64 --seconds "$seconds"
bench verify --entries "$entries"
bench proof --entries "$entries" --samples 2000
# What a hand-off between threads costs on this machine: across cores, then on one core.
bench wakeup --trips 20000
with_load taskset -c 0 cargo bench -q -p airisk-store-sqlite --bench audit -- wakeup --trips 20000 2>/dev/null

echo "== python: python3 bench/audit_python_peer.py"
with_load python3 bench/audit_python_peer.py append --seconds "$seconds"
with_load python3 bench/audit_python_peer.py append --seconds "$seconds" --threads 64
with_load python3 bench/audit_python_peer.py verify --entries "$entries"
if [ -n "${AUDIT_OUT:-}" ]; then
    cat "$out" >>"$AUDIT_OUT"
fi

echo "== summary"
python3 - "$out" <<'PY'
import sys

rows = []
for line in open(sys.argv[1]):
    fields = dict(kv.split("=", 1) for kv in line.split())
    rows.append(fields)

def pick(bench, **match):
    for r in rows:
        if r["bench"] == bench and all(r.get(k) == v for k, v in match.items()):
            return r
    raise SystemExit(f"missing {bench} {match}")

rust1 = float(pick("append", callers="1", in_flight="1")["appends_per_sec"])
rust1p = float(pick("append", callers="1", in_flight="16")["appends_per_sec"])
rust64 = float(pick("append", callers="64")["appends_per_sec"])
py = float(pick("python_append", threads="1")["appends_per_sec"])
py64 = float(pick("python_append", threads="64")["appends_per_sec"])
raw = float(pick("verify_raw", prefetch="true")["records_per_sec"])
full = float(pick("verify_logger")["records_per_sec"])
py_raw = float(pick("python_verify_raw")["records_per_sec"])
py_full = float(pick("python_verify_decode")["records_per_sec"])
proof = pick("inclusion_proof")

def verdict(ok):
    return "meets" if ok else "MISSES"

print(f"durable appends/s, 1 caller:   {rust1:>10,.0f}  ({rust1 / py:.2f}x python's {py:,.0f}; "
      f"one call at a time: both wait for one fsync per append)")
print(f"  ... 16 calls in flight:        {rust1p:>10,.0f}  ({rust1p / py:.1f}x python's {py:,.0f}; "
      f"{verdict(rust1p >= 1.5 * py)} the 1.5x target)")
print(f"durable appends/s, 64 callers: {rust64:>10,.0f}  ({rust64 / py64:.1f}x python's {py64:,.0f} "
      f"with 64 threads; {verdict(rust64 >= 50_000)} the 50,000 target)")
print(f"verify, read + rehash:         {raw:>10,.0f}  records/s ({raw / py_raw:.1f}x python's chain check)")
print(f"verify, AuditLogger::verify:   {full:>10,.0f}  records/s ({full / py_full:.1f}x python's "
      f"check with JSON decode; {verdict(full >= 1_500_000)} the 1,500,000 target)")
wake = next(r for r in rows if r["bench"] == "wakeup" and r["cpus"] != "1")
wake1 = pick("wakeup", cpus="1")
print(f"thread wake-up round trip:     {float(wake['us_per_round_trip']):>10,.1f}  us across cores "
      f"({wake['cpu_us_per_round_trip']} us of CPU), {wake1['us_per_round_trip']} us on one core")
print(f"inclusion proof at {proof['entries']} entries: p50 {proof['p50_ms']} ms, "
      f"p99 {proof['p99_ms']} ms ({verdict(float(proof['p99_ms']) <= 1.0)} the 1 ms target at p99)")
PY
