#!/usr/bin/env bash
# The table of a scripts/mutants.sh run: per group, caught / missed / timeout / unviable and the
# score (caught over viable = caught + missed + timeout), then every missed mutant.
#
#   bash scripts/mutants-summary.sh [mutants.out]
#   RECORD=1 bash scripts/mutants-summary.sh     # also write docs/mutation-record/<group>/
#
# After a pass with `--iterate` a group's mutants.out/ holds that pass and mutants.out.old/ (and
# any other mutants.out.* kept) the earlier ones; a mutant caught or unviable in any counts once,
# missed and timed-out are the last pass's.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-mutants.out}

lines() { # files that may not exist -> their non-empty lines, once each
  local f
  for f in "$@"; do [ -f "$f" ] && grep -v '^$' "$f" || true; done | sort -u
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
total_caught=0 total_missed=0 total_timeout=0 total_unviable=0
printf '%-11s %7s %7s %7s %8s %7s\n' group caught missed timeout unviable score
for dir in "$root"/*/mutants.out; do
  [ -d "$dir" ] || continue
  name=$(basename "$(dirname "$dir")")
  # previously_caught.txt (written by --iterate) lists the unviable mutants of earlier passes too.
  lines "$dir"*/unviable.txt >"$tmp/unviable"
  lines "$dir"*/caught.txt "$dir"*/previously_caught.txt | comm -23 - "$tmp/unviable" >"$tmp/caught"
  caught=$(wc -l <"$tmp/caught")
  unviable=$(wc -l <"$tmp/unviable")
  missed=$(lines "$dir/missed.txt" | wc -l)
  timeout=$(lines "$dir/timeout.txt" | wc -l)
  if [ -n "${RECORD:-}" ]; then
    record=docs/mutation-record/$name
    mkdir -p "$record"
    cp "$tmp/caught" "$record/caught.txt"
    cp "$tmp/unviable" "$record/unviable.txt"
    lines "$dir/missed.txt" >"$record/missed.txt"
    lines "$dir/timeout.txt" >"$record/timeout.txt"
  fi
  viable=$((caught + missed + timeout))
  score=$(awk -v c="$caught" -v v="$viable" 'BEGIN { if (v) printf "%.1f%%", 100 * c / v; else print "-" }')
  printf '%-11s %7d %7d %7d %8d %7s\n' "$name" "$caught" "$missed" "$timeout" "$unviable" "$score"
  total_caught=$((total_caught + caught)) total_missed=$((total_missed + missed))
  total_timeout=$((total_timeout + timeout)) total_unviable=$((total_unviable + unviable))
done
viable=$((total_caught + total_missed + total_timeout))
score=$(awk -v c="$total_caught" -v v="$viable" 'BEGIN { if (v) printf "%.1f%%", 100 * c / v; else print "-" }')
printf '%-11s %7d %7d %7d %8d %7s\n' all "$total_caught" "$total_missed" "$total_timeout" "$total_unviable" "$score"

echo
echo "missed:"
for dir in "$root"/*/mutants.out; do
  [ -f "$dir/missed.txt" ] && cat "$dir/missed.txt"
done
echo "timeout:"
for dir in "$root"/*/mutants.out; do
  [ -f "$dir/timeout.txt" ] && cat "$dir/timeout.txt"
done
exit 0
