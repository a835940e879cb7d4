#!/usr/bin/env bash
# The API contract, checked from outside: Schemathesis generates requests from the server's own
# /openapi.json (every phase: examples, coverage, fuzzing, and stateful sequences that follow the
# document's OpenAPI links) and runs every check against the answers, once per role (admin,
# analyst, approver, viewer), against a fresh `airisk serve --dev`. Exits non-zero on any failure.
#
#   bash scripts/schemathesis.sh            (after `cargo build -p airisk`)
#
# Environment:
#   AIRISK_BIN                 the binary (default target/debug/airisk)
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 5)
#   SCHEMATHESIS_FULL_ROLES    roles that also run the coverage phase (default "admin"; the
#                              others run fuzzing and stateful: the coverage phase's boundary
#                              values do not depend on the caller, and it is the slow phase)
#   SCHEMATHESIS_SEED          the seed (default: a fixed one, so CI runs are repeatable)
#   SCHEMATHESIS_ROLES         the roles to test (default "admin analyst approver viewer")
#   SCHEMATHESIS_VENV          where Schemathesis is installed (default target/schemathesis-venv)
#
# Schemathesis is installed, pinned, into a virtual environment under target/ the first time.
# Reports (JUnit XML, and the failing cases as a pytest file) go to test-output/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION="4.32.5"
BIN="${AIRISK_BIN:-target/debug/airisk}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-5}"
SEED="${SCHEMATHESIS_SEED:-20261129}"
ROLES="${SCHEMATHESIS_ROLES:-admin analyst approver viewer}"
FULL_ROLES="${SCHEMATHESIS_FULL_ROLES:-admin}"
VENV="${SCHEMATHESIS_VENV:-target/schemathesis-venv}"
OUT="test-output/schemathesis"

say() { printf '==> %s\n' "$*"; }

if [ ! -x "$BIN" ]; then
  echo "error: $BIN not found; build it first: cargo build -p airisk" >&2
  exit 1
fi

if [ "$("$VENV/bin/st" --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]; then
  say "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION"
fi

mkdir -p "$OUT"
workdir="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT

# A fresh dev server per role: in-memory store, a free port chosen by the kernel, tokens printed
# as `export …` lines. Its environment carries no AIRISK_* of the caller's.
start_server() {
  env -u AIRISK_DATABASE_URL -u AIRISK_CONFIG -u AIRISK_BIND \
    "$BIN" serve --dev --bind 127.0.0.1:0 --log warn >"$workdir/stdout" 2>"$workdir/stderr" &
  server_pid=$!
  for _ in $(seq 1 300); do
    if grep -q '^# airisk listening on ' "$workdir/stdout" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "error: airisk serve --dev exited:" >&2
      cat "$workdir/stderr" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "error: airisk serve --dev did not start within 30 s" >&2
  exit 1
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# The bearer token for the document's `bearer` security scheme, read from the environment when
# Schemathesis loads the file (so no token is on a command line).
cat >"$workdir/schemathesis.toml" <<'TOML'
[auth.openapi.bearer]
bearer = "${SCHEMATHESIS_TOKEN}"

# Every check (here rather than `--checks all` on the command line, which would override the
# per-operation settings below).
[checks]
enabled = true

# 413 is the documented answer to a body over the size limit: a correct refusal of a request
# that breaks the schema (a string past maxLength, escaped in JSON, can pass 1 MiB).
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 409, 413, 415, 422, 429]

# A template may hold 262144 bytes. The coverage phase tries the longest pattern-matching string,
# which does not fit Schemathesis' 32 KiB generation buffer, and then sends a placeholder body
# instead (a false "schema-valid request rejected"). These two operations are still fuzzed and
# run in stateful sequences.
[[operations]]
include-operation-id = ["registerPrompt", "updatePrompt"]
phases.coverage.enabled = false

# A kept checkpoint is a signed note: whether its signature is this ledger's cannot be stated in
# a schema, so a schema-valid string that is not such a note gets the documented 422 (a bad note
# says nothing about the ledger). Every other check still runs on this operation.
[[operations]]
include-operation-id = ["verifyAgainstKeptCheckpoint"]
checks.positive_data_acceptance.enabled = false
TOML

failed=()
started=$SECONDS
for role in $ROLES; do
  start_server
  base="$(sed -n 's/^# airisk listening on \(http:[^ ]*\)$/\1/p' "$workdir/stdout" | head -n1)"
  var="$(printf '%s_TOKEN' "$role" | tr '[:lower:]' '[:upper:]')"
  token="$(sed -n "s/^export $var=\(.*\)$/\1/p" "$workdir/stdout" | head -n1)"
  if [ -z "$base" ] || [ -z "$token" ]; then
    echo "error: serve --dev printed no address or no $var" >&2
    exit 1
  fi
  phases="fuzzing,stateful"
  case " $FULL_ROLES " in *" $role "*) phases="examples,coverage,fuzzing,stateful" ;; esac
  say "schemathesis as $role against $base ($phases; max $MAX_EXAMPLES examples, seed $SEED)"
  status=0
  # The token goes through the environment-expanded config, not argv, so `ps` does not show it.
  # `too_slow` is a warning about how fast Hypothesis draws data (the visible-text patterns and the
  # recursive metadata schema are large), not about the API.
  SCHEMATHESIS_TOKEN="$token" "$VENV/bin/st" --config-file "$workdir/schemathesis.toml" run \
    "$base/openapi.json" \
    --phases "$phases" \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --workers 2 \
    --no-shrink \
    --suppress-health-check too_slow \
    --output-truncate true \
    --report junit \
    --report-junit-path "$OUT/$role.junit.xml" \
    || status=$?
  stop_server
  if [ "$status" -ne 0 ]; then
    failed+=("$role")
  fi
done

say "schemathesis finished in $((SECONDS - started)) s"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "error: schemathesis found failures for: ${failed[*]} (reports in $OUT/)" >&2
  exit 1
fi
say "schemathesis: no failures for any role"
