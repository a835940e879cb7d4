#!/usr/bin/env bash
# A local highly available PostgreSQL cluster for tests and demonstrations, on 127.0.0.1 only:
#
#   * one etcd member (Patroni's consensus store),
#   * two PostgreSQL 15 nodes managed by Patroni: a primary and a SYNCHRONOUS standby
#     (`synchronous_mode: true`, `synchronous_commit: on`: a commit returns only once the standby
#     has flushed it, so a failover to the standby loses no acknowledged commit),
#   * HAProxy routing to whichever node Patroni's REST API reports as primary
#     (`option httpchk GET /primary`), and a second port routing to the standby (reads, backups).
#
#   scripts/ha-cluster.sh start     install what is missing (Debian packages), start, wait until ready
#   scripts/ha-cluster.sh status    which node is primary, which is the synchronous standby
#   scripts/ha-cluster.sh stop      stop everything it started and delete its directory
#   scripts/ha-cluster.sh primary   print the primary's name (node1/node2); exit 1 if none
#   scripts/ha-cluster.sh postmaster-pid NODE   print NODE's postmaster pid (for fault injection)
#   scripts/ha-cluster.sh kill-node NODE        SIGKILL NODE's Patroni, then its postmaster: the
#                                               node dies as if its host lost power
#   scripts/ha-cluster.sh start-node NODE       start NODE's Patroni again (it rejoins as standby,
#                                               rewinding its data directory if it must)
#
# Everything lives in AIRISK_HA_DIR (default: $TMPDIR/airisk-ha). PostgreSQL refuses to run as
# root, so Patroni (and the postgres it starts) runs as the `postgres` user; etcd and HAProxy run
# as the caller. Trust authentication on loopback: this is a throwaway test cluster. What changes
# for production (three hosts, TLS, passwords) is in docs/OPERATIONS.md.
#
# Ports (override with the environment variables named):
#   HAProxy, primary (read-write)  AIRISK_HA_PORT        54330
#   HAProxy, standby (read-only)   AIRISK_HA_RO_PORT     54339
#   node1 / node2 PostgreSQL       AIRISK_HA_PG1/PG2     54331 / 54332
#   node1 / node2 Patroni REST     AIRISK_HA_API1/API2   18081 / 18082
#   etcd client / peer             AIRISK_HA_ETCD/_PEER  23790 / 23800
set -euo pipefail

DIR="${AIRISK_HA_DIR:-${TMPDIR:-/tmp}/airisk-ha}"
HA_PORT="${AIRISK_HA_PORT:-54330}"
RO_PORT="${AIRISK_HA_RO_PORT:-54339}"
PG1="${AIRISK_HA_PG1:-54331}"
PG2="${AIRISK_HA_PG2:-54332}"
API1="${AIRISK_HA_API1:-18081}"
API2="${AIRISK_HA_API2:-18082}"
ETCD="${AIRISK_HA_ETCD:-23790}"
ETCD_PEER="${AIRISK_HA_ETCD_PEER:-23800}"
PGBIN="${AIRISK_HA_PGBIN:-/usr/lib/postgresql/15/bin}"
SCOPE=airisk-ha

say() { printf '==> ha-cluster: %s\n' "$*" >&2; }
die() { printf 'ha-cluster: error: %s\n' "$*" >&2; exit 1; }

api_port() { case "$1" in node1) echo "$API1" ;; node2) echo "$API2" ;; *) die "unknown node $1" ;; esac; }
pg_port() { case "$1" in node1) echo "$PG1" ;; node2) echo "$PG2" ;; *) die "unknown node $1" ;; esac; }

# HTTP status of GET http://127.0.0.1:PORT/PATH, or 000 when nothing answers.
http_status() {
  curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1$2" 2>/dev/null || true
}

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s until it succeeds, or fails loudly.
wait_for() {
  local seconds="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "timed out after ${seconds}s waiting for: $what"
      say "logs are in $DIR (etcd.log, node1/patroni.log, node2/patroni.log, haproxy.log)"
      for log in "$DIR/etcd.log" "$DIR/node1/patroni.log" "$DIR/node2/patroni.log"; do
        [ -f "$log" ] && { say "--- tail of $log"; tail -n 15 "$log" >&2; }
      done
      die "$what did not happen within ${seconds}s"
    fi
    sleep 0.2
  done
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_missing() {
  local missing=()
  command -v patroni >/dev/null 2>&1 || missing+=(patroni)
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client-15)
  [ -x "$PGBIN/postgres" ] || missing+=(postgresql-15)
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}; run as root to install them, or install them"
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  say "installing ${missing[*]} (Debian packages)"
  # The packages' own services must not start: this script runs its own instances.
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  for tool in patroni etcd haproxy curl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is still missing after installing ${missing[*]}"
  done
}

# Runs a command as the postgres user (PostgreSQL refuses root), or as the caller if not root.
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    HOME="$DIR" setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    "$@"
  fi
}

write_patroni_config() {
  local node="$1" pg api
  pg="$(pg_port "$node")"
  api="$(api_port "$node")"
  mkdir -p "$DIR/$node"
  cat >"$DIR/$node/patroni.yml" <<EOF
scope: $SCOPE
namespace: /airisk/
name: $node
log:
  level: INFO
restapi:
  listen: 127.0.0.1:$api
  connect_address: 127.0.0.1:$api
etcd3:
  hosts: 127.0.0.1:$ETCD
bootstrap:
  dcs:
    # Failure detection: the leader key lives ttl seconds; loop_wait + 2 * retry_timeout <= ttl.
    # A dead primary node is replaced about ttl seconds after its last renewal.
    ttl: 12
    loop_wait: 1
    retry_timeout: 5
    # A crashed primary is not restarted in place: fail over to the synchronous standby at once.
    primary_start_timeout: 0
    maximum_lag_on_failover: 1048576
    # A commit is acknowledged only when the synchronous standby has it; only that standby may be
    # promoted, so no acknowledged commit is lost by a failover.
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        synchronous_commit: "on"
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        max_connections: 200
        wal_keep_size: 256MB
  initdb:
    - encoding: UTF8
    - data-checksums
    - auth: trust
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:$pg
  connect_address: 127.0.0.1:$pg
  data_dir: $DIR/$node/data
  bin_dir: $PGBIN
  pgpass: $DIR/$node/pgpass
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
    rewind:
      username: postgres
      password: postgres
  parameters:
    unix_socket_directories: $DIR/$node
    shared_buffers: 64MB
  basebackup:
    - checkpoint: fast
tags:
  nofailover: false
  noloadbalance: false
EOF
}

write_haproxy_config() {
  cat >"$DIR/haproxy.cfg" <<EOF
global
    maxconn 400
    pidfile $DIR/haproxy.pid
    log stdout format raw local0 notice

defaults
    mode tcp
    log global
    retries 2
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout check 1s

# Writes: whichever node Patroni says is the primary. When the primary changes, sessions to the
# old one are cut (on-marked-down shutdown-sessions) so no client keeps talking to a demoted node.
listen primary
    bind 127.0.0.1:$HA_PORT
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 500ms fastinter 250ms fall 2 rise 2 on-marked-down shutdown-sessions
    server node1 127.0.0.1:$PG1 maxconn 180 check port $API1
    server node2 127.0.0.1:$PG2 maxconn 180 check port $API2

# Reads that may lag (reports, backups): the synchronous standby.
listen standby
    bind 127.0.0.1:$RO_PORT
    option httpchk GET /replica
    http-check expect status 200
    default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions
    server node1 127.0.0.1:$PG1 maxconn 180 check port $API1
    server node2 127.0.0.1:$PG2 maxconn 180 check port $API2
EOF
}

primary() {
  for node in node1 node2; do
    if [ "$(http_status "$(api_port "$node")" /primary)" = 200 ]; then
      echo "$node"
      return 0
    fi
  done
  return 1
}

sync_standby() {
  for node in node1 node2; do
    if [ "$(http_status "$(api_port "$node")" /sync)" = 200 ]; then
      echo "$node"
      return 0
    fi
  done
  return 1
}

haproxy_primary_answers() {
  [ "$(psql -X -A -t -q -h 127.0.0.1 -p "$HA_PORT" -U postgres -d postgres \
    -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]
}

start_patroni() {
  local node="$1"
  chown -R postgres:postgres "$DIR/$node" 2>/dev/null || true
  # A simple command in the background, so $! is Patroni's own pid (setpriv execs it).
  if [ "$(id -u)" -eq 0 ]; then
    HOME="$DIR" setpriv --reuid=postgres --regid=postgres --init-groups -- \
      patroni "$DIR/$node/patroni.yml" >>"$DIR/$node/patroni.log" 2>&1 &
  else
    patroni "$DIR/$node/patroni.yml" >>"$DIR/$node/patroni.log" 2>&1 &
  fi
  echo $! >"$DIR/$node/patroni.pid"
}

cmd_start() {
  if alive "$DIR/etcd.pid" && primary >/dev/null; then
    say "already running in $DIR"
    cmd_status
    return 0
  fi
  install_missing
  [ -x "$PGBIN/postgres" ] || die "PostgreSQL 15 binaries not found in $PGBIN (set AIRISK_HA_PGBIN)"
  for port in "$HA_PORT" "$RO_PORT" "$PG1" "$PG2" "$API1" "$API2" "$ETCD" "$ETCD_PEER"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "127.0.0.1:$port is already in use (a cluster left running? try: $0 stop)"
    fi
  done
  rm -rf "$DIR"
  mkdir -p "$DIR/etcd" "$DIR/node1" "$DIR/node2"
  chmod 755 "$DIR"

  say "starting etcd on 127.0.0.1:$ETCD"
  etcd --name ha0 --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD" --advertise-client-urls "http://127.0.0.1:$ETCD" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "ha0=http://127.0.0.1:$ETCD_PEER" --initial-cluster-state new \
    --initial-cluster-token airisk-ha >"$DIR/etcd.log" 2>&1 &
  echo $! >"$DIR/etcd.pid"
  wait_for 30 "etcd to answer on 127.0.0.1:$ETCD" \
    bash -c "curl -s -m 2 http://127.0.0.1:$ETCD/health | grep -q '\"health\":\"true\"'"

  write_patroni_config node1
  write_patroni_config node2
  say "starting Patroni node1 (PostgreSQL 127.0.0.1:$PG1, REST 127.0.0.1:$API1)"
  start_patroni node1
  wait_for 90 "node1 to bootstrap and become primary" bash -c "[ \"\$(curl -s -o /dev/null -m 2 -w '%{http_code}' http://127.0.0.1:$API1/primary)\" = 200 ]"
  say "starting Patroni node2 (PostgreSQL 127.0.0.1:$PG2, REST 127.0.0.1:$API2)"
  start_patroni node2
  wait_for 120 "node2 to clone node1 and become its synchronous standby" bash -c "[ \"\$(curl -s -o /dev/null -m 2 -w '%{http_code}' http://127.0.0.1:$API2/sync)\" = 200 ]"

  write_haproxy_config
  say "starting HAProxy (primary 127.0.0.1:$HA_PORT, standby 127.0.0.1:$RO_PORT)"
  haproxy -f "$DIR/haproxy.cfg" -D -p "$DIR/haproxy.pid" >"$DIR/haproxy.log" 2>&1 \
    || die "HAProxy did not start (see $DIR/haproxy.log)"
  wait_for 30 "HAProxy to route 127.0.0.1:$HA_PORT to the primary" haproxy_primary_answers
  cmd_status
  echo "export AIRISK_HA_DATABASE_URL=postgres://postgres@127.0.0.1:$HA_PORT/postgres"
}

cmd_status() {
  local p s
  if ! alive "$DIR/etcd.pid"; then
    echo "ha-cluster: not running (no etcd in $DIR)"
    return 1
  fi
  p="$(primary || true)"
  s="$(sync_standby || true)"
  for node in node1 node2; do
    local role=down
    if [ "$node" = "$p" ]; then
      role=primary
    elif [ "$node" = "$s" ]; then
      role="synchronous standby"
    elif [ "$(http_status "$(api_port "$node")" /replica)" = 200 ]; then
      role="standby (not synchronous)"
    elif [ "$(http_status "$(api_port "$node")" /health)" != 000 ]; then
      role="Patroni up, PostgreSQL not ready"
    fi
    printf '%s  postgres 127.0.0.1:%s  patroni 127.0.0.1:%s  %s\n' \
      "$node" "$(pg_port "$node")" "$(api_port "$node")" "$role"
  done
  printf 'haproxy  primary 127.0.0.1:%s  standby 127.0.0.1:%s  %s\n' "$HA_PORT" "$RO_PORT" \
    "$(alive "$DIR/haproxy.pid" && echo running || echo down)"
  if [ -n "$p" ]; then
    echo "primary: $p"
  else
    echo "primary: none"
    return 1
  fi
}

# Stops PID (SIGTERM, then SIGKILL after SECONDS), waiting until it is gone.
stop_pid() {
  local file="$1" seconds="$2" pid
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + seconds))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      say "pid $pid ($file) did not stop within ${seconds}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

postmaster_pid() {
  local node="$1"
  [ -f "$DIR/$node/data/postmaster.pid" ] || return 1
  head -n1 "$DIR/$node/data/postmaster.pid"
}

cmd_kill_node() {
  local node="$1" pm
  api_port "$node" >/dev/null
  # Patroni first, so it cannot react; then the postmaster (its backends and walsenders exit on
  # postmaster death).
  if alive "$DIR/$node/patroni.pid"; then
    kill -KILL "$(cat "$DIR/$node/patroni.pid")"
  fi
  if pm="$(postmaster_pid "$node")" && kill -0 "$pm" 2>/dev/null; then
    kill -KILL "$pm"
    echo "killed $node (Patroni and postmaster $pm)"
  else
    echo "killed $node's Patroni; its postmaster was not running"
  fi
}

cmd_start_node() {
  local node="$1"
  api_port "$node" >/dev/null
  alive "$DIR/$node/patroni.pid" && die "$node's Patroni is already running"
  start_patroni "$node"
  wait_for 30 "$node's Patroni REST API" bash -c "[ \"\$(curl -s -o /dev/null -m 2 -w '%{http_code}' http://127.0.0.1:$(api_port "$node")/health)\" != 000 ]"
  echo "started $node's Patroni"
}

cmd_stop() {
  [ -d "$DIR" ] || { say "nothing to stop ($DIR does not exist)"; return 0; }
  stop_pid "$DIR/haproxy.pid" 10
  # Patroni stops its PostgreSQL on SIGTERM; stop the standby first so the primary does not wait
  # on a synchronous standby that is going away.
  local p
  p="$(primary || true)"
  for node in node1 node2; do
    [ "$node" = "$p" ] && continue
    stop_pid "$DIR/$node/patroni.pid" 30
  done
  [ -n "$p" ] && stop_pid "$DIR/$p/patroni.pid" 30
  # A postmaster left behind (Patroni killed) is stopped by its own pid file.
  for node in node1 node2; do
    local pm
    if pm="$(postmaster_pid "$node")" && kill -0 "$pm" 2>/dev/null; then
      say "stopping the postmaster $pm of $node that Patroni left"
      as_postgres "$PGBIN/pg_ctl" -D "$DIR/$node/data" -m immediate -w -t 20 stop >/dev/null 2>&1 \
        || kill -KILL "$pm" 2>/dev/null || true
    fi
  done
  stop_pid "$DIR/etcd.pid" 10
  rm -rf "$DIR"
  say "stopped; $DIR removed"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  primary) primary || { echo "ha-cluster: no primary" >&2; exit 1; } ;;
  postmaster-pid) postmaster_pid "${2:?usage: $0 postmaster-pid node1|node2}" ;;
  kill-node) cmd_kill_node "${2:?usage: $0 kill-node node1|node2}" ;;
  start-node) cmd_start_node "${2:?usage: $0 start-node node1|node2}" ;;
  *)
    echo "usage: $0 start|stop|status|primary|postmaster-pid NODE|kill-node NODE|start-node NODE" >&2
    exit 2
    ;;
esac
