#!/usr/bin/env bash
# Mutation testing with cargo-mutants over the code that carries the guarantees. Too slow for every
# CI run (see docs/TESTING.md for the measured time); run it before a release or after touching
# these files. Installs cargo-mutants (crates.io) when missing.
#
#   bash scripts/mutants.sh                 # every file in scope (slow: hours on 2 cores)
#   bash scripts/mutants.sh FILE...         # only these files, e.g. crates/airisk-core/src/security/rbac.rs
#   JOBS=2 bash scripts/mutants.sh ...      # parallel builds (each needs its own copy of target/)
#   IN_PLACE=1 bash scripts/mutants.sh ...  # mutate this tree (reuses target/; do not edit meanwhile,
#                                           # and check `git status` if the run is killed)
#
# Each mutant is tested by the core, testkit and SQLite suites (the shared conformance cases live
# in airisk-testkit and run in the stores' binaries, so a mutation of ports.rs is caught there),
# plus the PostgreSQL store's when AIRISK_TEST_DATABASE_URL is set.
#
# PostgreSQL tests run only if AIRISK_TEST_DATABASE_URL is set (then with --ignored included, so
# the store's PostgreSQL suite counts); results land in mutants.out/ (caught.txt, missed.txt,
# unviable.txt, timeout.txt, outcomes.json).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null 2>&1; then
  echo "==> installing cargo-mutants (crates.io)"
  cargo install cargo-mutants --locked
fi

# The files whose guarantees the suite must defend (issue 12): core security, governance, ledger,
# the ports, and the stores' write paths and migrations' Rust side.
default_files=(
  crates/airisk-core/src/security/rbac.rs
  crates/airisk-core/src/security/tenant_context.rs
  crates/airisk-core/src/security/encryption.rs
  crates/airisk-core/src/governance/approval_workflow.rs
  crates/airisk-core/src/governance/audit_logger.rs
  crates/airisk-core/src/governance/audit_record.rs
  crates/airisk-core/src/governance/model_registry.rs
  crates/airisk-core/src/governance/prompt_registry.rs
  crates/airisk-core/src/ledger/canonical_json.rs
  crates/airisk-core/src/ledger/checkpoint.rs
  crates/airisk-core/src/ledger/merkle.rs
  crates/airisk-core/src/ledger/proof.rs
  crates/airisk-core/src/ports.rs
  crates/airisk-store-sqlite/src/writer.rs
  crates/airisk-store-sqlite/src/governance.rs
  crates/airisk-store-sqlite/src/connection.rs
  crates/airisk-store-postgres/src/lib.rs
)
files=("$@")
[ ${#files[@]} -eq 0 ] && files=("${default_files[@]}")

args=()
for f in "${files[@]}"; do args+=(--file "$f"); done

packages=(--test-package airisk-core --test-package airisk-testkit --test-package airisk-store-sqlite)
test_args=()
if [ -n "${AIRISK_TEST_DATABASE_URL:-}" ]; then
  packages+=(--test-package airisk-store-postgres)
  test_args=(-- --include-ignored)
fi
mode=(--copy-target true)
[ -n "${IN_PLACE:-}" ] && mode=(--in-place)

start=$(date +%s)
set +e
cargo mutants --no-shuffle --jobs "${JOBS:-1}" --timeout-multiplier 3 "${mode[@]}" \
  "${packages[@]}" "${args[@]}" "${test_args[@]}"
status=$?
set -e
echo "==> cargo-mutants finished in $(( $(date +%s) - start )) s (exit $status)"
for kind in caught missed unviable timeout; do
  [ -f "mutants.out/$kind.txt" ] && echo "$kind: $(wc -l < "mutants.out/$kind.txt")"
done
# exit 2 = some mutants survived (listed in mutants.out/missed.txt): document or kill each.
exit "$status"
