#!/usr/bin/env bash
# The whole test suite, on a fresh machine: checks (and where it can, provides) what the tests
# need, then runs `cargo test --workspace`. Exits non-zero if anything fails.
#
#   * PostgreSQL for the PostgreSQL store's tests: AIRISK_TEST_DATABASE_URL (default: the local
#     server, postgres://postgres@127.0.0.1:5432/postgres). If no server answers, the local cluster
#     is started when one is installed; without any, those tests print a loud SKIPPED line.
#   * Python 3 with the `cryptography` package, for the auditor's independent verifier
#     (tools/verify_export.py), installed with pip if missing.
#   * Headless Chromium and the e2e/ node modules for the console's browser tests, installed by
#     scripts/setup-browser-tests.sh if missing (when that script exists).
#   * Schemathesis (pinned, in a virtual environment under target/) for the API contract check,
#     run after cargo test by scripts/schemathesis.sh against the debug `airisk serve --dev`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

export AIRISK_TEST_DATABASE_URL="${AIRISK_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if command -v pg_isready >/dev/null 2>&1; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    say "PostgreSQL is not answering on 127.0.0.1:5432; trying to start the local cluster"
    if [ -d /etc/postgresql ]; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
      for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
  fi
  if pg_isready -q -h 127.0.0.1 -p 5432; then
    say "PostgreSQL answers at 127.0.0.1:5432"
  else
    say "PostgreSQL is unavailable: the PostgreSQL store tests will print SKIPPED"
    unset AIRISK_TEST_DATABASE_URL
  fi
else
  say "no PostgreSQL client tools: the PostgreSQL store tests will print SKIPPED"
  unset AIRISK_TEST_DATABASE_URL
fi

if ! python3 -c 'import cryptography' 2>/dev/null; then
  say "installing the Python 'cryptography' package for tools/verify_export.py"
  python3 -m pip install --quiet cryptography
fi

if [ -f scripts/setup-browser-tests.sh ]; then
  bash scripts/setup-browser-tests.sh
fi

say "cargo test --workspace"
cargo test --workspace --locked

say "the API contract: schemathesis, every check, one run per role"
bash scripts/schemathesis.sh
