#!/usr/bin/env bash
# Instance scaling over HTTP (issue 14, docs/SCALE_OUT.md): the same wrk load against
#   1. one `airisk serve` on a SQLite file (the peer),
#   2. one `airisk serve` on PostgreSQL,
#   3. two `airisk serve` processes on the same PostgreSQL database (as behind a load balancer:
#      half the connections to each),
# one after the other in one run, each on a fresh database, with the load average before each.
#
# Workloads (one tenant, `bank`; CONNECTIONS (64) connections for DURATION (10) seconds each):
#   - register+approve pairs: POST /v1/models (admin), then POST …/approve (approver)
#     (bench/load_pairs.lua);
#   - audit appends: POST /v1/audit/events (analyst) (bench/load_appends.lua).
# After each configuration the tenant's ledger is verified through the service.
#
# The services run as in production (EdDSA tokens from a generated key, encryption and ledger
# keys, request log at `warn`), with the admission limits opened to the load
# (AIRISK_MAX_IN_FLIGHT=CONNECTIONS, AIRISK_MAX_IN_FLIGHT_PER_TENANT=0: the defaults, 16 and 8,
# would measure the limiter). Everything listens on 127.0.0.1 and stops by itself; the databases
# are dropped at the end. wrk, both instances and PostgreSQL share this machine's cores: the load
# average printed with each figure says how much else was running.
#
#   AIRISK_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres bash bench/scale_out.sh
#   CONNECTIONS=64 DURATION=10 ONLY="pg1 pg2" bash bench/scale_out.sh   # a subset: sqlite pg1 pg2
#   AIRISK_BIN=target/release/airisk bash bench/scale_out.sh             # a binary already built
set -euo pipefail
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
cd "$(dirname "$0")/.."

ADMIN_URL=${AIRISK_BENCH_DATABASE_URL:?set AIRISK_BENCH_DATABASE_URL to a superuser URL of the PostgreSQL server to measure}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
ONLY=${ONLY:-sqlite pg1 pg2}

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing wrk (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "error: wrk is needed (Debian: apt-get install -y wrk)" >&2
    exit 1
  fi
fi
command -v curl >/dev/null || { echo "error: curl is needed" >&2; exit 1; }
command -v psql >/dev/null || { echo "error: psql is needed" >&2; exit 1; }

work=$(mktemp -d /tmp/airisk-scale.XXXXXX)
pids=()
dbs=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for db in "${dbs[@]}"; do
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  [ -n "${KEEP_WORK:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2" | head -n1; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

echo "== machine: $(nproc) cores; load average: $(load)"
if [ -n "${AIRISK_BIN:-}" ]; then
  bin=$AIRISK_BIN
else
  echo "== building airisk (release)"
  cargo build --release -p airisk --quiet
  bin=$PWD/target/release/airisk
fi

"$bin" token keygen --private-key "$work/jwt.pem" >"$work/jwks.json"
encryption=$("$bin" keys generate)
ledger_keys=$("$bin" keys generate --ledger)
signing=${ledger_keys%%$'\n'*}
token() {
  AIRISK_JWT_PRIVATE_KEY_FILE="$work/jwt.pem" "$bin" token issue --sub "$1" --tenant bank --role "$2"
}
ADMIN_TOKEN=$(token ada admin)
APPROVER_TOKEN=$(token bob approver)
ANALYST_TOKEN=$(token ann analyst)
VIEWER_TOKEN=$(token vic viewer)
export ADMIN_TOKEN APPROVER_TOKEN ANALYST_TOKEN

# A fresh migrated PostgreSQL database and a service login in airisk_app; sets `url` to the
# service URL (not printed: a command substitution's subshell would lose the name in `dbs`).
pg_database() {
  local db server host
  db="airisk_scale_$(date +%s)_$$_$RANDOM"
  dbs+=("$db")
  server=${ADMIN_URL%/*}
  psql -q "$ADMIN_URL" -c "CREATE DATABASE $db" >/dev/null
  "$bin" migrate --database-url "$server/$db" >/dev/null
  psql -q "$server/$db" -c "DO \$\$ BEGIN CREATE ROLE airisk_scale_svc LOGIN NOSUPERUSER NOBYPASSRLS; \
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END \$\$; \
    GRANT airisk_app TO airisk_scale_svc" >/dev/null
  host=${server#*://}
  host=${host#*@}
  url="postgres://airisk_scale_svc@$host/$db"
}

# Starts one instance on $1 (a database URL); appends its base URL to the array `bases`.
start_instance() {
  local n=${#pids[@]} out
  out="$work/serve-$n.out"
  printf 'database_url = "%s"\njwks_file = "%s"\n' "$1" "$work/jwks.json" >"$work/airisk-$n.toml"
  AIRISK_ENCRYPTION_KEYS="$encryption" AIRISK_LEDGER_SIGNING_KEY="$signing" AIRISK_LOG=warn \
    AIRISK_MAX_IN_FLIGHT="$CONNECTIONS" AIRISK_MAX_IN_FLIGHT_PER_TENANT=0 \
    "$bin" serve --config "$work/airisk-$n.toml" --bind 127.0.0.1:0 >"$out" 2>"$work/serve-$n.err" &
  pids+=($!)
  for _ in $(seq 1 300); do
    grep -q 'listening on' "$out" 2>/dev/null && break
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  grep -q 'listening on' "$out" || { cat "$work/serve-$n.err" >&2; echo "error: airisk serve did not start" >&2; exit 1; }
  bases+=("$(sed -n 's/.*listening on \(http[^[:space:]]*\).*/\1/p' "$out" | head -n1)")
}

stop_instances() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}

# Runs wrk with $1 (a Lua script), the connections split evenly over the instances, all at once;
# prints "requests seconds non2xx p50 p99" summed (requests, non-2xx) or worst (latency).
run_wrk() {
  local script=$1 per=$((CONNECTIONS / ${#bases[@]})) i=0 outs=()
  for base in "${bases[@]}"; do
    local threads=$per
    [ "$script" = bench/load_appends.lua ] && threads=2
    RUN_ID="$$-$i-$RANDOM" wrk -t"$threads" -c"$per" -d"${DURATION}s" --timeout 10s -s "$script" "$base" \
      >"$work/wrk-$i.out" 2>&1 &
    outs+=($!)
    i=$((i + 1))
  done
  for pid in "${outs[@]}"; do wait "$pid"; done
  local req=0 non2xx=0 secs=0 p50=0 p99=0 line
  for j in $(seq 0 $((i - 1))); do
    line=$(grep '^RESULT' "$work/wrk-$j.out") || { cat "$work/wrk-$j.out" >&2; exit 1; }
    req=$((req + $(field requests "$line")))
    non2xx=$((non2xx + $(field non2xx "$line")))
    secs=$(awk -v a="$secs" -v b="$(field seconds "$line")" 'BEGIN { print (b > a) ? b : a }')
    p50=$(awk -v a="$p50" -v b="$(field p50_ms "$line")" 'BEGIN { print (b > a) ? b : a }')
    p99=$(awk -v a="$p99" -v b="$(field p99_ms "$line")" 'BEGIN { print (b > a) ? b : a }')
  done
  echo "$req $secs $non2xx $p50 $p99"
}

results=()
for config in $ONLY; do
  bases=()
  case "$config" in
    sqlite) start_instance "sqlite://$work/sqlite-$RANDOM.db" ;;
    pg1) pg_database; start_instance "$url" ;;
    pg2) pg_database; start_instance "$url"; start_instance "$url" ;;
    *) echo "error: unknown configuration $config (sqlite pg1 pg2)" >&2; exit 2 ;;
  esac
  echo "== $config: ${#bases[@]} instance(s) ${bases[*]}"
  # Warm-up: connections opened, statements prepared.
  for base in "${bases[@]}"; do
    RUN_ID="warm-$RANDOM" wrk -t2 -c4 -d2s -s bench/load_appends.lua "$base" >/dev/null
  done
  before=$(load)
  read -r req secs non2xx p50 p99 < <(run_wrk bench/load_pairs.lua)
  pairs=$(awk -v r="$req" -v s="$secs" 'BEGIN { printf "%.0f", r / 2 / s }')
  line="$config pairs/s=$pairs non2xx=$non2xx p50_ms=$p50 p99_ms=$p99 load_before=\"$before\""
  echo "   $line"
  results+=("$line")
  before=$(load)
  read -r req secs non2xx p50 p99 < <(run_wrk bench/load_appends.lua)
  appends=$(awk -v r="$req" -v s="$secs" 'BEGIN { printf "%.0f", r / s }')
  line="$config appends/s=$appends non2xx=$non2xx p50_ms=$p50 p99_ms=$p99 load_before=\"$before\""
  echo "   $line"
  results+=("$line")
  verify=$(curl -s "${bases[0]}/v1/audit/verify" -H "Authorization: Bearer $VIEWER_TOKEN")
  grep -q '"intact":true' <<<"$verify" || { echo "error: the ledger of $config does not verify: $verify" >&2; exit 1; }
  echo "   ledger verified: $(grep -o "\"entries\":[0-9]*" <<<"$verify" | head -n1)"
  stop_instances
done

echo
echo "== summary ($CONNECTIONS connections, ${DURATION}s per run, $(nproc) cores shared by wrk, the instances and PostgreSQL)"
printf '%s\n' "${results[@]}"
