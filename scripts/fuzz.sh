#!/usr/bin/env bash
# Runs every coverage-guided fuzz target in fuzz/ for a bounded time (default 60 s each), with the
# seed corpus in fuzz/corpus/<target>/. cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP=1
# enables them on the stable toolchain. Installs cargo-fuzz (crates.io) when missing.
#
#   bash scripts/fuzz.sh              # every target, 60 s each
#   bash scripts/fuzz.sh 300 jwt leaf # these targets, 300 s each
#
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the script; reproduce it with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>`, fix the code, and
# add the input as a regression test (see docs/TESTING.md).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi

summary="$(mktemp)"
trap 'rm -f "$summary"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "==> fuzz $t for ${seconds}s"
  log="fuzz/$t.log"
  # Work on a copy of the committed seeds, so new corpus entries do not pile up in git.
  work="$(mktemp -d)"
  cp -r "fuzz/corpus/$t/." "$work/" 2>/dev/null || true
  set +e
  (cd fuzz && cargo fuzz run --sanitizer none "$t" "$work" -- \
      -max_total_time="$seconds" -max_len=4096 -print_final_stats=1) >"$log" 2>&1
  status=$?
  set -e
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)"
  ft="$(grep -o 'ft: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)"
  printf '%-16s exit=%s executions=%s coverage(edges)=%s features=%s corpus=%s\n' \
    "$t" "$status" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$(ls "$work" | wc -l)" | tee -a "$summary"
  rm -rf "$work"
  if [ "$status" -ne 0 ]; then
    echo "error: $t failed (crash input in fuzz/artifacts/$t/); log: $log" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
done
echo "==> summary"
cat "$summary"
