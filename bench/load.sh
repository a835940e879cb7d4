#!/usr/bin/env bash
# Load benchmark of the HTTP service (issue 6, item 8), and the same workload against MLflow.
#
# 1. Builds `airisk` (release) and starts `airisk serve --dev` on 127.0.0.1 (a free port) on a
#    fresh SQLite file (STORE=sqlite, the default) or in memory (STORE=memory).
# 2. wrk, CONNECTIONS (64) connections for DURATION (20) seconds each:
#    - register+approve pairs: each connection (one per wrk thread) alternates
#      POST /v1/models as admin and POST /v1/models/{name}/versions/1/approve as approver, with a
#      unique name per pair (bench/load_pairs.lua);
#    - audit appends: POST /v1/audit/events as analyst, unique resource ids (bench/load_appends.lua).
#    Reports pairs/s, appends/s, p50/p99 latency (wrk's, per request), the server's RSS (VmRSS
#    after each run, VmHWM peak), and checks the ledger still verifies.
# 3. MLflow (the pinned version scripts/setup-mlflow.sh installs into target/mlflow-venv, or
#    $MLFLOW_VENV; SQLite backend): MLFLOW_CLIENTS (8) clients run
#    create-model-version + set-tag("approval"="approved") pairs for DURATION seconds
#    (bench/mlflow_peer.py), and the ratio of pairs/s is printed. SKIP_MLFLOW=1 skips it.
# With LOAD_OUT=FILE, one `bench=… key=value …` line per figure is appended to FILE, each with
# `load=`, the 1-minute load average just before that run (bench/report.sh reads them).
# The server logs as in production (one JSON line per request, to a file); AIRISK_LOG=warn
# measures without the request log.
#
# Everything runs on this machine, against 127.0.0.1 only, and stops by itself. Client and server
# share the machine's cores: run it when the machine is quiet (the load average is printed).
#
#   bash bench/load.sh                         # defaults
#   CONNECTIONS=64 DURATION=30 STORE=memory bash bench/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-20}
STORE=${STORE:-sqlite}
MLFLOW_CLIENTS=${MLFLOW_CLIENTS:-8}
SKIP_MLFLOW=${SKIP_MLFLOW:-0}
MLFLOW_VENV=${MLFLOW_VENV:-target/mlflow-venv}
LOAD_OUT=${LOAD_OUT:-/dev/null}

command -v wrk >/dev/null || { echo "error: wrk is needed (Debian: apt-get install -y wrk)" >&2; exit 1; }
command -v curl >/dev/null || { echo "error: curl is needed" >&2; exit 1; }

work=$(mktemp -d /tmp/airisk-load.XXXXXX)
server_pid=""
mlflow_pgid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "$mlflow_pgid" ] && kill -- "-$mlflow_pgid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kib() { awk '/^'"$2"':/ {print $2}' "/proc/$1/status"; }
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2" | head -n1; }

echo "== machine: $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== building airisk (release)"
cargo build --release -p airisk --quiet
bin=target/release/airisk

case "$STORE" in
  sqlite) db="sqlite://$work/airisk.db" ;;
  memory) db="memory:" ;;
  *) echo "error: STORE must be sqlite or memory" >&2; exit 2 ;;
esac

echo "== starting airisk serve --dev on $db"
AIRISK_LOG="${AIRISK_LOG:-info}" "$bin" serve --dev --bind 127.0.0.1:0 --database-url "$db" \
  >"$work/dev.env" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q 'listening on' "$work/dev.env" 2>/dev/null && break
  sleep 0.1
done
grep -q 'listening on' "$work/dev.env" || { cat "$work/server.log" >&2; echo "error: the server did not start" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/dev.env"
export ADMIN_TOKEN APPROVER_TOKEN ANALYST_TOKEN
export RUN_ID="$$"
echo "   $AIRISK_URL (pid $server_pid), idle RSS $(kib "$server_pid" VmRSS) KiB"

echo "== warm-up (3 s, 4 connections)"
wrk -t2 -c4 -d3s -s bench/load_appends.lua "$AIRISK_URL" >/dev/null

load1() { cut -d' ' -f1 /proc/loadavg; }

echo "== register+approve pairs: $CONNECTIONS connections, ${DURATION}s"
pairs_load=$(load1)
pairs_out=$(wrk -t"$CONNECTIONS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s bench/load_pairs.lua "$AIRISK_URL")
pairs_line=$(grep '^RESULT' <<<"$pairs_out")
pairs_rss=$(kib "$server_pid" VmRSS)
echo "   $pairs_line"

echo "== audit appends: $CONNECTIONS connections, ${DURATION}s"
appends_load=$(load1)
appends_out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s bench/load_appends.lua "$AIRISK_URL")
appends_line=$(grep '^RESULT' <<<"$appends_out")
appends_rss=$(kib "$server_pid" VmRSS)
peak_rss=$(kib "$server_pid" VmHWM)
echo "   $appends_line"

echo "== verifying tenant demo's ledger after the load"
verify=$(curl -s "$AIRISK_URL/v1/audit/verify" -H "Authorization: Bearer $VIEWER_TOKEN")
echo "   $verify"
grep -q '"intact":true' <<<"$verify" || { echo "error: the ledger does not verify" >&2; exit 1; }

echo "== stopping the server (SIGTERM)"
t0=$(date +%s.%N)
kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=""
stop_s=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')

p_req=$(field requests "$pairs_line"); p_sec=$(field seconds "$pairs_line")
a_req=$(field requests "$appends_line"); a_sec=$(field seconds "$appends_line")
pairs_per_s=$(awk -v r="$p_req" -v s="$p_sec" 'BEGIN { printf "%.1f", r / 2 / s }')
appends_per_s=$(awk -v r="$a_req" -v s="$a_sec" 'BEGIN { printf "%.1f", r / s }')

mlflow_pairs=""
if [ "$SKIP_MLFLOW" != "1" ]; then
  echo "== MLflow: $MLFLOW_CLIENTS clients, ${DURATION}s, SQLite backend"
  AIRISK_MLFLOW_VENV="$MLFLOW_VENV" bash scripts/setup-mlflow.sh
  mlflow_version=$("$MLFLOW_VENV/bin/python" -c 'import mlflow; print(mlflow.__version__)')
  echo "   mlflow $mlflow_version"
  port=$(free_port)
  # `python -m mlflow`, not bin/mlflow: a venv copied with target/ keeps console scripts whose
  # shebang names the original venv.
  setsid "$MLFLOW_VENV/bin/python" -m mlflow server --backend-store-uri "sqlite:///$work/mlflow.db" \
    --host 127.0.0.1 --port "$port" >"$work/mlflow.log" 2>&1 &
  mlflow_pgid=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$port/health" >/dev/null || { tail -20 "$work/mlflow.log" >&2; echo "error: mlflow did not start" >&2; exit 1; }
  mlflow_load=$(load1)
  mlflow_line=$("$MLFLOW_VENV/bin/python" bench/mlflow_peer.py "http://127.0.0.1:$port" "$MLFLOW_CLIENTS" "$DURATION" | grep '^RESULT')
  echo "   $mlflow_line"
  mlflow_pairs=$(field pairs_per_s "$mlflow_line")
  kill -- "-$mlflow_pgid" 2>/dev/null || true
  # MLflow's workers take a few seconds to stop; wait for the whole group before going on.
  for _ in $(seq 1 100); do
    kill -0 -- "-$mlflow_pgid" 2>/dev/null || break
    sleep 0.1
  done
  mlflow_pgid=""
fi

echo
echo "== summary (store: $STORE, $CONNECTIONS connections, ${DURATION}s per run, $(nproc) cores shared by client and server)"
printf '%-34s %s\n' "register+approve pairs/s" "$pairs_per_s"
printf '%-34s p50 %s ms, p99 %s ms, non-2xx %s\n' "  latency per request" "$(field p50_ms "$pairs_line")" "$(field p99_ms "$pairs_line")" "$(field non2xx "$pairs_line")"
printf '%-34s %s\n' "audit appends/s" "$appends_per_s"
printf '%-34s p50 %s ms, p99 %s ms, non-2xx %s\n' "  latency per request" "$(field p50_ms "$appends_line")" "$(field p99_ms "$appends_line")" "$(field non2xx "$appends_line")"
printf '%-34s %s MiB after pairs, %s MiB after appends, %s MiB peak\n' "server RSS" \
  "$((pairs_rss / 1024))" "$((appends_rss / 1024))" "$((peak_rss / 1024))"
printf '%-34s %s s\n' "graceful stop (SIGTERM to exit)" "$stop_s"
{
  echo "bench=http_pairs store=$STORE connections=$CONNECTIONS pairs_per_s=$pairs_per_s p50_ms=$(field p50_ms "$pairs_line") p99_ms=$(field p99_ms "$pairs_line") non2xx=$(field non2xx "$pairs_line") load=$pairs_load"
  echo "bench=http_appends store=$STORE connections=$CONNECTIONS appends_per_s=$appends_per_s p50_ms=$(field p50_ms "$appends_line") p99_ms=$(field p99_ms "$appends_line") non2xx=$(field non2xx "$appends_line") load=$appends_load"
  echo "bench=server_rss after_pairs_mib=$((pairs_rss / 1024)) after_appends_mib=$((appends_rss / 1024)) peak_mib=$((peak_rss / 1024)) load=$appends_load"
  if [ -n "$mlflow_pairs" ]; then
    echo "bench=mlflow_pairs version=$mlflow_version clients=$MLFLOW_CLIENTS pairs_per_s=$mlflow_pairs p99_ms=$(field p99_ms "$mlflow_line") load=$mlflow_load"
  fi
} >>"$LOAD_OUT"
if [ -n "$mlflow_pairs" ]; then
  printf '%-34s %s (%s clients)\n' "MLflow pairs/s" "$mlflow_pairs" "$MLFLOW_CLIENTS"
  printf '%-34s %sx\n' "airisk / MLflow" "$(awk -v a="$pairs_per_s" -v m="$mlflow_pairs" 'BEGIN { printf "%.0f", a / m }')"
fi
