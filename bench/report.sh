#!/usr/bin/env bash
# One benchmark report (issue 18): every figure the issue's table names, each with its peer in the
# same run, printed as ONE table (figure, peer, ratio, target, met or not, the load average before
# each), with the machine and the date.
#
#   bash bench/report.sh            # full run: about 5 minutes of measuring once built
#   bash bench/report.sh --quick    # smoke run, short durations and a 100,000-entry verify: 2-3 min
#
# It reuses the existing scripts and only reads their `bench=… key=value …` lines:
#   bench/audit.sh       durable SQLite appends (64 callers, 1 caller) vs the Python sqlite3
#                        hash chain (64 threads, 1 thread); AuditLogger::verify over ENTRIES
#                        entries vs Python's raw chain check; inclusion proof latency
#   bench/load.sh        `airisk serve` (release, SQLite) under wrk, 64 connections:
#                        register+approve pairs/s and audit appends/s with p99, server RSS; and
#                        MLflow (scripts/setup-mlflow.sh's pinned version, SQLite) with 8 clients
#   bench/encryption.sh  AES-256-GCM vs `openssl speed` (16 KiB) and Python `cryptography` (256 B)
#
# Before measuring it builds everything (release) and installs what is missing: wrk (apt-get, as
# root) and MLflow (scripts/setup-mlflow.sh, a few minutes the first time). Builds and installs
# are not timed. Everything listens on 127.0.0.1 only; every process it starts is stopped and its
# temp dir removed on exit, also on Ctrl-C or SIGTERM. The 1M-entry ledgers audit.sh verifies are
# built once (a minute or two each) in $AIRISK_BENCH_DIR (default: /tmp/airisk-bench) and kept
# for the next run, as audit.sh does.
#
# Environment: SKIP_MLFLOW=1 leaves the MLflow row out; SECONDS_PER_CASE, DURATION, ENTRIES and
# ENC_SECONDS override the durations the mode picks. The machine's other work shows in every
# figure: read the load column, and run it when the machine is quiet.
set -euo pipefail
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"

mode=full
case "${1:-}" in
  "") ;;
  --quick) mode=quick ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: bash bench/report.sh [--quick]" >&2; exit 2 ;;
esac
if [ "$mode" = quick ]; then
  SECONDS_PER_CASE=${SECONDS_PER_CASE:-3} DURATION=${DURATION:-5} ENTRIES=${ENTRIES:-100000}
  ENC_SECONDS=${ENC_SECONDS:-1}
else
  SECONDS_PER_CASE=${SECONDS_PER_CASE:-10} DURATION=${DURATION:-20} ENTRIES=${ENTRIES:-1000000}
  ENC_SECONDS=${ENC_SECONDS:-3}
fi
SKIP_MLFLOW=${SKIP_MLFLOW:-0}

work=$(mktemp -d /tmp/airisk-report.XXXXXX)
part_pgid=""
cleanup() {
  # Each part runs in its own process group (setsid): stopping the group stops the part's
  # children too (cargo, wrk, the server); the part's own EXIT trap stops MLflow.
  if [ -n "$part_pgid" ]; then
    kill -TERM -- "-$part_pgid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 -- "-$part_pgid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$part_pgid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '\n#### %s\n' "$*"; }

# Runs one part in its own process group and waits for it, so that cleanup can stop it whole.
part() {
  local started=$SECONDS
  setsid "$@" &
  part_pgid=$!
  wait "$part_pgid"
  part_pgid=""
  echo "   (took $((SECONDS - started)) s)"
}

say "checking and installing what the report needs"
for tool in cargo python3 curl openssl git taskset; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed" >&2; exit 1; }
done
python3 -c 'import cryptography' 2>/dev/null ||
  { echo "error: bench/encryption_python.py needs Python's cryptography (Debian: apt-get install -y python3-cryptography)" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing wrk (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "error: wrk is needed (Debian: apt-get install -y wrk)" >&2
    exit 1
  fi
fi
if [ "$SKIP_MLFLOW" != 1 ]; then
  bash scripts/setup-mlflow.sh
fi

say "building (release; not timed)"
cargo build --release --quiet -p airisk
cargo bench --quiet --no-run -p airisk-store-sqlite --bench audit 2>/dev/null
cargo bench --quiet --no-run -p airisk-core --bench encryption 2>/dev/null

machine="$(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) cores ($(lscpu | sed -n 's/^Flags:.*\(sha_ni\).*/SHA-NI/p')), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
# How idle virtual CPUs wait (KVM guests with cpuidle-haltpoll): with a poll time of 0 an idle
# vCPU halts at once, and waking a thread there costs a trip through the hypervisor.
idle_driver=$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo unknown)
if [ -r /sys/module/haltpoll/parameters/guest_halt_poll_ns ]; then
  idle_driver="$idle_driver, guest_halt_poll_ns=$(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns)"
fi
machine="$machine; cpuidle: $idle_driver"
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
run_started=$SECONDS
results="$work/results.txt"
: >"$results"

say "1/3 audit store: bench/audit.sh (SECONDS_PER_CASE=$SECONDS_PER_CASE ENTRIES=$ENTRIES)"
part env AUDIT_OUT="$results" SECONDS_PER_CASE="$SECONDS_PER_CASE" ENTRIES="$ENTRIES" bash bench/audit.sh

say "2/3 HTTP service and MLflow: bench/load.sh (DURATION=$DURATION)"
part env LOAD_OUT="$results" DURATION="$DURATION" SKIP_MLFLOW="$SKIP_MLFLOW" bash bench/load.sh

say "3/3 encryption: bench/encryption.sh (SECONDS_PER_CASE=$ENC_SECONDS)"
part env ENCRYPTION_OUT="$results" SECONDS_PER_CASE="$ENC_SECONDS" bash bench/encryption.sh

elapsed=$((SECONDS - run_started))
say "report"
MACHINE="$machine" STARTED_AT="$started_at" ELAPSED="$elapsed" MODE="$mode" \
  SKIP_MLFLOW="$SKIP_MLFLOW" python3 - "$results" <<'PY'
import os
import sys

rows = []
for line in open(sys.argv[1]):
    if line.startswith("bench="):
        rows.append(dict(kv.split("=", 1) for kv in line.split()))


def pick(bench, **match):
    for r in rows:
        if r["bench"] == bench and all(r.get(k) == v for k, v in match.items()):
            return r
    raise SystemExit(f"error: no result for {bench} {match}")


def n(value, digits=0):
    return f"{float(value):,.{digits}f}"


table = []  # (figure, measured, peer, ratio, target, met, load)


def row(figure, measured, peer, ratio, target, met, load):
    verdict = "-" if met is None else "met" if met else "MISSED"
    table.append((figure, measured, peer, ratio, target, verdict, load))


a64 = pick("append", callers="64")
a1, a1p = pick("append", callers="1", in_flight="1"), pick("append", callers="1", in_flight="16")
p64, p1 = pick("python_append", threads="64"), pick("python_append", threads="1")
r64 = float(a64["appends_per_sec"]) / float(p64["appends_per_sec"])
r1 = float(a1["appends_per_sec"]) / float(p1["appends_per_sec"])
r1p = float(a1p["appends_per_sec"]) / float(p1["appends_per_sec"])
row("durable appends, SQLite, 64 callers",
    f"{n(a64['appends_per_sec'])}/s (p99 {a64['latency_p99_ms']} ms)",
    f"Python sqlite3 chain, 64 threads: {n(p64['appends_per_sec'])}/s",
    f"{r64:,.1f}x", ">= 50,000/s", float(a64["appends_per_sec"]) >= 50_000,
    f"{a64['load']} / {p64['load']}")
row("durable appends, SQLite, 1 caller, 16 calls in flight",
    f"{n(a1p['appends_per_sec'])}/s (p99 {a1p['latency_p99_ms']} ms)",
    f"Python, 1 thread: {n(p1['appends_per_sec'])}/s",
    f"{r1p:,.2f}x", ">= 1.5x Python", r1p >= 1.5, f"{a1p['load']} / {p1['load']}")
# One call at a time, each waits for its own fsync, as each Python commit does: no target.
row("durable appends, SQLite, 1 caller, one call at a time",
    f"{n(a1['appends_per_sec'])}/s", f"Python, 1 thread: {n(p1['appends_per_sec'])}/s",
    f"{r1:,.2f}x", "- (one fsync per append on both sides)", None, f"{a1['load']} / {p1['load']}")

v = pick("verify_logger")
pv = pick("python_verify_raw")
rv = float(v["records_per_sec"]) / float(pv["records_per_sec"])
row(f"AuditLogger::verify, SQLite, {n(v['entries'])} entries",
    f"{n(v['records_per_sec'])} records/s",
    f"Python raw chain check: {n(pv['records_per_sec'])}/s", f"{rv:,.1f}x",
    ">= 1,500,000/s", float(v["records_per_sec"]) >= 1_500_000, f"{v['load']} / {pv['load']}")
proof = pick("inclusion_proof")
# No target: what waking a waiting thread costs on this machine, the price of every hand-off
# between a caller and the writer (and between the service's threads). On a virtual machine whose
# idle cores halt, waking a thread on another core means waking that virtual CPU.
wakes = [r for r in rows if r["bench"] == "wakeup"]
wx = next(r for r in wakes if r["cpus"] != "1")
w1 = next(r for r in wakes if r["cpus"] == "1")
row("thread wake-up round trip, across cores (machine)",
    f"{wx['us_per_round_trip']} us ({wx['cpu_us_per_round_trip']} us CPU)",
    f"same, on one core: {w1['us_per_round_trip']} us",
    f"{float(wx['us_per_round_trip']) / float(w1['us_per_round_trip']):,.0f}x", "-", None,
    f"{wx['load']} / {w1['load']}")
row(f"inclusion proof at {n(proof['entries'])} entries",
    f"p50 {proof['p50_ms']} ms, p99 {proof['p99_ms']} ms", "-", "-", "p99 <= 1 ms",
    float(proof["p99_ms"]) <= 1.0, proof["load"])

hp = pick("http_pairs")
if os.environ["SKIP_MLFLOW"] != "1":
    ml = pick("mlflow_pairs")
    rp = float(hp["pairs_per_s"]) / float(ml["pairs_per_s"])
    row(f"HTTP register+approve pairs, SQLite, {hp['connections']} connections",
        f"{n(hp['pairs_per_s'], 1)} pairs/s",
        f"MLflow {ml['version']}, SQLite, {ml['clients']} clients: {n(ml['pairs_per_s'], 1)} pairs/s",
        f"{rp:,.0f}x", ">= 150x MLflow", rp >= 150, f"{hp['load']} / {ml['load']}")
else:
    row(f"HTTP register+approve pairs, SQLite, {hp['connections']} connections",
        f"{n(hp['pairs_per_s'], 1)} pairs/s", "MLflow skipped (SKIP_MLFLOW=1)", "-",
        ">= 150x MLflow", False, hp["load"])
row("  latency per request (pairs)", f"p50 {hp['p50_ms']} ms, p99 {hp['p99_ms']} ms", "-", "-",
    "p99 < 20 ms", float(hp["p99_ms"]) < 20, hp["load"])
ha = pick("http_appends")
row(f"HTTP audit appends, SQLite, {ha['connections']} connections",
    f"{n(ha['appends_per_s'])}/s", "-", "-", ">= 20,000/s", float(ha["appends_per_s"]) >= 20_000,
    ha["load"])
row("  latency per request (appends)", f"p50 {ha['p50_ms']} ms, p99 {ha['p99_ms']} ms", "-", "-",
    "p99 < 15 ms", float(ha["p99_ms"]) < 15, ha["load"])
rss = pick("server_rss")
row("server RSS under that load", f"{rss['peak_mib']} MiB peak", "-", "-", "< 64 MiB",
    int(rss["peak_mib"]) < 64, rss["load"])

for op in ("encrypt", "decrypt"):
    e = pick(f"enc_16k_{op}")
    re_ = float(e["rust_mb_per_s"]) / float(e["openssl_mb_per_s"])
    row(f"AES-256-GCM {op}, 16 KiB", f"{n(e['rust_mb_per_s'])} MB/s",
        f"openssl speed: {n(e['openssl_mb_per_s'])} MB/s", f"{re_:.0%}", ">= 70% of openssl",
        re_ >= 0.7, f"{e['load']} / {e['peer_load']}")
e = pick("enc_256_encrypt")
re_ = float(e["rust_ops_per_s"]) / float(e["python_ops_per_s"])
row("AES-256-GCM encrypt, 256 B", f"{n(e['rust_ops_per_s'])}/s",
    f"Python cryptography: {n(e['python_ops_per_s'])}/s", f"{re_:.1f}x", ">= 2.5x Python",
    re_ >= 2.5, f"{e['load']} / {e['peer_load']}")

print(f"machine: {os.environ['MACHINE']}")
print(f"date:    {os.environ['STARTED_AT']}; mode {os.environ['MODE']}; "
      f"measuring took {int(os.environ['ELAPSED']) // 60} min {int(os.environ['ELAPSED']) % 60} s")
print("load:    the 1-minute load average just before the figure / before its peer")
print()
head = ("figure", "measured", "peer, same run", "ratio", "target", "met", "load")
widths = [max(len(str(r[i])) for r in table + [head]) for i in range(len(head))]
print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in table:
    print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
targets = [r for r in table if r[5] != "-"]
met = sum(1 for r in targets if r[5] == "met")
print()
print(f"{met} of {len(targets)} targets met")
PY
