#!/usr/bin/env bash
# Mutation testing with cargo-mutants over the code that carries the guarantees (issue 12): core
# security/, governance/, ledger/ and ports.rs, and the SQLite and PostgreSQL stores' write paths,
# governance SQL and migrations. Too slow for every CI run (docs/TESTING.md gives the measured
# time); run it before a release or after touching these files. Installs cargo-mutants (crates.io)
# when missing.
#
#   bash scripts/mutants.sh                      # every group, both passes
#   bash scripts/mutants.sh ledger security      # only these groups
#   JOBS=1 bash scripts/mutants.sh ...           # one build at a time (default 2)
#   PASSES=1 bash scripts/mutants.sh ...         # only the fast first pass
#   PASSES=2 bash scripts/mutants.sh ...         # only the second, over a kept first pass's results
#   RESUME=1 bash scripts/mutants.sh ...         # skip what docs/mutation-record/ says was caught
#   IN_PLACE=1 bash scripts/mutants.sh ...       # mutate this tree, one job, reusing target/ (do
#                                                # not edit meanwhile; `git status` if killed)
#
# Two passes per group, so that the run fits in an afternoon on two cores:
#   1. every mutant of the group against the tests nearest to it (the core's ledger mutants against
#      the core's unit tests and `ledger` suite, a SQLite mutant against the SQLite store's suite;
#      governance against the core's and the test kit's whole suites, since what the registries
#      promise is asserted mostly in the shared conformance cases);
#   2. `--iterate`: only the mutants pass 1 missed or timed out, against the core, testkit and
#      SQLite suites together (plus the PostgreSQL store's when AIRISK_TEST_DATABASE_URL is set).
# A mutant caught in pass 1 is caught by the whole suite too (pass 1 runs a subset of it), so the
# score after pass 2 is the whole suite's score. Results: mutants.out/<group>/mutants.out/
# (caught.txt, missed.txt, unviable.txt, timeout.txt, outcomes.json).
#
# docs/mutation-record/<group>/ keeps the lists of the last run (TESTING.md says how far it got),
# committed, so that a later
# run can resume (RESUME=1: mutants recorded as caught or unviable at the same file:line:column are
# skipped). That is sound only while the files in scope are unchanged since the record; after
# editing them, run without RESUME.
#
# Tests run under nextest (fail-fast, one process per test) with the `mutants` profile: the
# dependencies optimised once, the workspace without debug info (Cargo.toml). The PostgreSQL group
# needs AIRISK_TEST_DATABASE_URL (every one of its tests is a PostgreSQL test); without it the
# group is reported as not run, never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null 2>&1; then
  echo "==> installing cargo-mutants (crates.io)"
  cargo install cargo-mutants --locked
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest (crates.io)"
  cargo install cargo-nextest --locked
fi

core=crates/airisk-core/src
sqlite=crates/airisk-store-sqlite/src
pg=crates/airisk-store-postgres/src

# group | files (space-separated globs) | pass-1 test packages | pass-1 nextest target filter
group_table=(
  "ledger|$core/ledger/*.rs|airisk-core|--lib --test ledger"
  "security|$core/security/*.rs|airisk-core|--lib --test security"
  "governance|$core/governance/*.rs|airisk-core airisk-testkit|"
  "ports|$core/ports.rs|airisk-core airisk-testkit|"
  "sqlite|$sqlite/write.rs $sqlite/governance.rs $sqlite/connection.rs $sqlite/lib.rs|airisk-store-sqlite|"
  "postgres|$pg/write.rs $pg/batch.rs $pg/governance.rs $pg/schema.rs $pg/lib.rs|airisk-store-postgres|--run-ignored all"
)

wanted=("$@")
passes=" ${PASSES:-1 2} "
pass2_packages=(airisk-core airisk-testkit airisk-store-sqlite)
pass2_filter=()
if [ -n "${AIRISK_TEST_DATABASE_URL:-}" ]; then
  pass2_packages+=(airisk-store-postgres)
  pass2_filter=(--run-ignored all)
fi

run_pass() { # out_dir, files, packages, filter, extra cargo-mutants args...
  local out=$1 files=$2 packages=$3 filter=$4
  shift 4
  local args=() f p w
  for f in $files; do args+=(--file "$f"); done
  for p in $packages; do args+=(--test-package "$p"); done
  # The filter goes to the build as well as the test run, so only those test binaries are built.
  for w in $filter; do args+=("--cargo-arg=$w"); done
  local mode=(--jobs "${JOBS:-2}")
  [ -n "${IN_PLACE:-}" ] && mode=(--in-place)
  # The first failing test ends the test run at once (`--max-fail 1:immediate`): by default
  # nextest waits for the tests still running, so a mutant that fails one test and hangs another
  # would be reported as a timeout instead of caught.
  cargo mutants --test-tool nextest --profile mutants "${mode[@]}" --timeout-multiplier 3 \
    --cargo-test-arg=--max-fail=1:immediate --output "$out" "${args[@]}" "$@" && return 0
  local status=$?
  # 2: some mutants missed, 3: some timed out; anything else (a failing baseline, a usage error)
  # means the results cannot be trusted.
  case $status in 2 | 3) return 0 ;; *) echo "==> cargo-mutants failed (exit $status)" >&2; exit "$status" ;; esac
}

started=$(date +%s)
for row in "${group_table[@]}"; do
  IFS='|' read -r name files packages filter <<<"$row"
  if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " == *" $name "* ]]; then continue; fi
  out=mutants.out/$name
  if [ "$name" = postgres ] && [ -z "${AIRISK_TEST_DATABASE_URL:-}" ]; then
    echo "==> $name: NOT RUN (AIRISK_TEST_DATABASE_URL is not set)"
    continue
  fi
  mkdir -p "$out"
  if [[ " $passes " == *" 1 "* ]]; then
    echo "==> $name, pass 1: $packages ${filter:-(all tests)}"
    t=$(date +%s)
    resume=()
    if [ -n "${RESUME:-}" ] && [ -d "docs/mutation-record/$name" ]; then
      mkdir -p "$out/mutants.out"
      cp docs/mutation-record/"$name"/{caught,unviable}.txt "$out/mutants.out/" 2>/dev/null || true
      # --iterate reports both as "previously caught"; keep which were unviable for the summary.
      cp "docs/mutation-record/$name/unviable.txt" "$out/resumed-unviable.txt" 2>/dev/null || true
      resume=(--iterate)
      echo "==> $name: resuming from docs/mutation-record/$name"
    fi
    run_pass "$out" "$files" "$packages" "$filter" "${resume[@]}"
    echo "==> $name, pass 1 took $(( $(date +%s) - t )) s"
  fi
  # Every mutant of the group in the code as it is now: the summary counts only these (a
  # resumed record may name mutants of lines that have since moved) and calls the rest untested.
  list_args=()
  for f in $files; do list_args+=(--file "$f"); done
  cargo mutants --list "${list_args[@]}" >"$out/listed.txt"
  if [[ " $passes " == *" 2 "* ]] && [ -s "$out/mutants.out/missed.txt" -o -s "$out/mutants.out/timeout.txt" ]; then
    echo "==> $name, pass 2 (missed and timed out only): ${pass2_packages[*]}"
    t=$(date +%s)
    run_pass "$out" "$files" "${pass2_packages[*]}" "${pass2_filter[*]:-}" --iterate
    echo "==> $name, pass 2 took $(( $(date +%s) - t )) s"
  fi
done

echo "==> cargo-mutants finished in $(( $(date +%s) - started )) s"
bash "$(dirname "$0")/mutants-summary.sh"
