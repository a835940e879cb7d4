#!/usr/bin/env bash
# Compares airisk's AES-256-GCM (ring) with Python's `cryptography` and with `openssl speed`.
#
#   bash bench/encryption.sh            # from anywhere in the repository
#   SECONDS_PER_CASE=3 bash bench/encryption.sh
#
# Runs, on one core each (all three are single-threaded):
#   1. cargo bench -p airisk-core --bench encryption   (criterion; median time per call)
#   2. python3 bench/encryption_python.py              (same workload and format)
#   3. openssl speed -evp aes-256-gcm -bytes 16384     (raw AES-GCM, the ceiling)
# and prints the ratios against the targets: ≥ 2.5x Python's 256-byte encryptions per second, and
# ≥ 70% of openssl's AES-256-GCM throughput at 16 KiB. Check `uptime` first: the figures are only
# worth something on a quiet machine. With ENCRYPTION_OUT=FILE, one `bench=… key=value …` line per
# compared figure is appended to FILE, with `load=` (the 1-minute load average before each part;
# bench/report.sh reads them).
set -euo pipefail

cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
seconds="${SECONDS_PER_CASE:-3}"
target_dir="${CARGO_TARGET_DIR:-target}"
load1() { cut -d' ' -f1 /proc/loadavg; }

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load:$(uptime | sed 's/.*load average://')"

echo "== rust (criterion): cargo bench -p airisk-core --bench encryption"
rust_load=$(load1)
cargo bench -p airisk-core --bench encryption -- \
    --warm-up-time 1 --measurement-time "$seconds" 'encryption/' 2>&1 \
    | grep -E '^encryption/|time:' | grep -v '%' || true

echo "== python: python3 bench/encryption_python.py --seconds $seconds"
python_load=$(load1)
python_out="$(python3 bench/encryption_python.py --seconds "$seconds" --json)"
echo "$python_out" | sed '$d'
python_json="$(echo "$python_out" | tail -n 1)"

echo "== openssl: openssl speed -evp aes-256-gcm -bytes 16384 -seconds $seconds"
openssl_load=$(load1)
openssl_kbps="$(openssl speed -evp aes-256-gcm -bytes 16384 -seconds "$seconds" 2>/dev/null \
    | awk '/^AES-256-GCM/ { sub(/k$/, "", $2); print $2 }')"
echo "openssl AES-256-GCM 16384 bytes: ${openssl_kbps}k bytes/s"

echo "== summary"
TARGET_DIR="$target_dir" PYTHON_JSON="$python_json" OPENSSL_KBPS="$openssl_kbps" \
OUT="${ENCRYPTION_OUT:-/dev/null}" LOADS="$rust_load $python_load $openssl_load" python3 - <<'PY'
import json
import os

target = os.environ["TARGET_DIR"]


def rust_median_ns(group, function):
    path = f"{target}/criterion/{group}/{function}/new/estimates.json"
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


python = json.loads(os.environ["PYTHON_JSON"])
openssl_mbps = float(os.environ["OPENSSL_KBPS"]) * 1000 / 1e6
rust = {}
for label, size in (("256B", 256), ("16KiB", 16384)):
    for op in ("encrypt", "decrypt", "encrypt_with_context", "decrypt_with_context",
               "ring_seal_in_place"):
        ns = rust_median_ns(f"encryption_{label}", op)
        ops = 1e9 / ns
        rust[f"{label}/{op}"] = (ops, ops * size / 1e6)
        print(f"rust   {label:>5} {op:<20}: {ops:>12,.0f} ops/s  {ops * size / 1e6:>9,.1f} MB/s")
for key, value in python.items():
    print(f"python {key:<26}: {value['ops_per_s']:>12,.0f} ops/s  {value['mb_per_s']:>9,.1f} MB/s")
with open(f"{target}/criterion/encryption_ring_key_setup/new/estimates.json") as f:
    key_setup_ns = json.load(f)["median"]["point_estimate"]
print(f"rust   ring key expansion (LessSafeKey::new): {key_setup_ns:,.0f} ns per call")
print(f"openssl 16KiB aes-256-gcm     : {openssl_mbps:>31,.1f} MB/s")

enc256 = rust["256B/encrypt"][0]
py256 = python["256B/encrypt"]["ops_per_s"]
print()
print(f"256 B encrypt: rust {enc256:,.0f}/s (target >= 1,000,000: {'met' if enc256 >= 1e6 else 'MISSED'})")
print(f"256 B encrypt: rust / python = {enc256 / py256:.2f}x (target >= 2.5x: {'met' if enc256 / py256 >= 2.5 else 'MISSED'})")
print(f"256 B encrypt: rust / python AESGCM.encrypt alone (no str, no base64) = "
      f"{enc256 / python['256B/encrypt_raw']['ops_per_s']:.2f}x")
print(f"256 B decrypt: rust / python = {rust['256B/decrypt'][0] / python['256B/decrypt']['ops_per_s']:.2f}x")
for op in ("encrypt", "decrypt"):
    ratio = rust[f"16KiB/{op}"][1] / openssl_mbps
    print(f"16 KiB {op}: rust {rust[f'16KiB/{op}'][1]:,.0f} MB/s = {ratio:.0%} of openssl "
          f"(target >= 70%: {'met' if ratio >= 0.7 else 'MISSED'})")

rust_load, python_load, openssl_load = os.environ["LOADS"].split()
with open(os.environ["OUT"], "a") as out:
    print(f"bench=enc_256_encrypt rust_ops_per_s={enc256:.0f} python_ops_per_s={py256:.0f} "
          f"load={rust_load} peer_load={python_load}", file=out)
    for op in ("encrypt", "decrypt"):
        print(f"bench=enc_16k_{op} rust_mb_per_s={rust[f'16KiB/{op}'][1]:.1f} "
              f"openssl_mb_per_s={openssl_mbps:.1f} load={rust_load} peer_load={openssl_load}",
              file=out)
PY
