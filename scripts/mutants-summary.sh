#!/usr/bin/env bash
# The table of a scripts/mutants.sh run: per group, caught / missed / timeout / unviable and the
# score (caught over viable = caught + missed + timeout), then every missed mutant.
#
#   bash scripts/mutants-summary.sh [mutants.out]
#
# After a pass with `--iterate` a group's mutants.out/ holds that pass and mutants.out.old/ (and
# any other mutants.out.* kept) the earlier ones; a mutant caught or unviable in any counts once,
# missed and timed-out are the last pass's.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-mutants.out}

lines() { # files that may not exist -> their non-empty lines, once each
  local f
  for f in "$@"; do [ -f "$f" ] && grep -v '^$' "$f"; done | sort -u
}

total_caught=0 total_missed=0 total_timeout=0 total_unviable=0
printf '%-11s %7s %7s %7s %8s %7s\n' group caught missed timeout unviable score
for dir in "$root"/*/mutants.out; do
  [ -d "$dir" ] || continue
  name=$(basename "$(dirname "$dir")")
  caught=$(lines "$dir"*/caught.txt "$dir"*/previously_caught.txt | wc -l)
  unviable=$(lines "$dir"*/unviable.txt | wc -l)
  missed=$(lines "$dir/missed.txt" | wc -l)
  timeout=$(lines "$dir/timeout.txt" | wc -l)
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
