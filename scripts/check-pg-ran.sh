#!/usr/bin/env bash
# Checks that every PostgreSQL test really ran against PostgreSQL in the run named by
# AIRISK_TEST_RUN_ID: each such test (every `#[ignore = "PostgreSQL: ..."]` test of the store suite
# and of the API suite) records its name in `airisk_test_pg_runs` after connecting to the server
# (see crates/airisk-store-postgres/tests/postgres/support.rs and
# crates/airisk-server/tests/api/pg.rs). Fails if the database cannot be read, if no PostgreSQL
# test is listed, or if any listed test left no row.
#
#   scripts/check-pg-ran.sh prepare   # create the table (before the tests)
#   scripts/check-pg-ran.sh check     # compare (after the tests)
set -euo pipefail
cd "$(dirname "$0")/.."

: "${AIRISK_TEST_DATABASE_URL:?set AIRISK_TEST_DATABASE_URL}"
: "${AIRISK_TEST_RUN_ID:?set AIRISK_TEST_RUN_ID}"

psql_q() { psql "$AIRISK_TEST_DATABASE_URL" -X -v ON_ERROR_STOP=1 -Atq "$@"; }

case "${1:-check}" in
  prepare)
    psql_q -c "CREATE TABLE IF NOT EXISTS airisk_test_pg_runs (
                 run_id text NOT NULL, suite text NOT NULL, test text NOT NULL,
                 at timestamptz NOT NULL DEFAULT now())" \
      || { echo "error: cannot create airisk_test_pg_runs through AIRISK_TEST_DATABASE_URL" >&2; exit 1; }
    ;;
  check)
    expected="$(mktemp)"; recorded="$(mktemp)"
    trap 'rm -f "$expected" "$recorded"' EXIT
    for target in "airisk-store-postgres postgres" "airisk-server api"; do
      set -- $target
      # The ignored tests of the binary are exactly its PostgreSQL tests.
      cargo test --locked -q -p "$1" --test "$2" -- --list --ignored 2>/dev/null \
        | sed -n 's/^\(.*\): test$/\1/p' | sed "s|^|$1 |" >> "$expected"
    done
    sort -u -o "$expected" "$expected"
    n_expected="$(wc -l < "$expected")"
    if [ "$n_expected" -eq 0 ]; then
      echo "error: no PostgreSQL tests are listed (expected the #[ignore]d PostgreSQL tests)" >&2
      exit 1
    fi
    if ! psql_q -c "SELECT DISTINCT suite || ' ' || test FROM airisk_test_pg_runs
                    WHERE run_id = '${AIRISK_TEST_RUN_ID//\'/}'" > "$recorded"; then
      echo "error: cannot read airisk_test_pg_runs: the PostgreSQL tests cannot have run" >&2
      exit 1
    fi
    sort -u -o "$recorded" "$recorded"
    missing="$(comm -23 "$expected" "$recorded")"
    echo "PostgreSQL tests: $n_expected listed, $(wc -l < "$recorded") recorded in the database for run $AIRISK_TEST_RUN_ID"
    if [ -n "$missing" ]; then
      echo "error: these PostgreSQL tests did not run against PostgreSQL:" >&2
      echo "$missing" >&2
      exit 1
    fi
    ;;
  *) echo "usage: $0 prepare|check" >&2; exit 2 ;;
esac
