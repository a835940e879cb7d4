#!/usr/bin/env bash
# The table of a scripts/mutants.sh run: per group, caught / missed / timeout / unviable /
# untested and the score (caught over caught + missed + timeout), then every survivor.
#
#   bash scripts/mutants-summary.sh [mutants.out]
#   RECORD=1 bash scripts/mutants-summary.sh     # also write docs/mutation-record/<group>/
#
# A group's mutants.out/ holds its last pass; mutants.out.old/ (and any other mutants.out.* kept)
# the earlier ones. Across them: a mutant caught in any pass is caught; one missed or timed out in
# a pass and caught in none stays missed or timed out, even if a later pass was interrupted before
# re-testing it; one in the group's list with no outcome at all is "untested" (the run was stopped
# first) and counts in no score. The list is <group>/listed.txt when scripts/mutants.sh wrote it
# (every mutant of the code as run; outcomes recorded for other names, lines that have moved since
# a resumed record, are dropped), else the mutants.json files. `--iterate` lists earlier unviable
# mutants among "previously caught": those named in <group>/resumed-unviable.txt count as
# unviable.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-mutants.out}

python3 - "$root" "${RECORD:-}" <<'PY'
import glob, json, os, sys

root, record = sys.argv[1], sys.argv[2]


def read(paths):
    out = set()
    for p in paths:
        if os.path.isfile(p):
            out |= {line.rstrip("\n") for line in open(p) if line.strip()}
    return out


rows, survivors, timeouts = [], [], []
totals = [0, 0, 0, 0, 0]
for group_dir in sorted(glob.glob(os.path.join(root, "*", "mutants.out"))):
    name = os.path.basename(os.path.dirname(group_dir))
    dirs = glob.glob(group_dir + "*")
    listed = set()
    for d in dirs:
        p = os.path.join(d, "mutants.json")
        if os.path.isfile(p):
            listed |= {m["name"] for m in json.load(open(p))}
    group_root = os.path.dirname(group_dir)
    unviable = read(os.path.join(d, "unviable.txt") for d in dirs)
    unviable |= read([os.path.join(group_root, "resumed-unviable.txt")])
    caught = read(os.path.join(d, f) for d in dirs for f in ("caught.txt", "previously_caught.txt"))
    caught -= unviable
    missed = read(os.path.join(d, "missed.txt") for d in dirs) - caught
    timeout = read(os.path.join(d, "timeout.txt") for d in dirs) - caught - missed
    # listed.txt (scripts/mutants.sh): the group's mutants in the code as run. Names outside it
    # are of lines a resumed record knew before they moved; they count nowhere.
    current = read([os.path.join(group_root, "listed.txt")])
    if current:
        listed = current
        caught, missed, timeout, unviable = (s & current for s in (caught, missed, timeout, unviable))
    untested = listed - caught - unviable - missed - timeout
    viable = len(caught) + len(missed) + len(timeout)
    score = f"{100 * len(caught) / viable:.1f}%" if viable else "-"
    rows.append((name, len(caught), len(missed), len(timeout), len(unviable), len(untested), score))
    for i, n in enumerate((caught, missed, timeout, unviable, untested)):
        totals[i] += len(n)
    survivors += sorted(missed)
    timeouts += sorted(timeout)
    if record:
        out = os.path.join("docs", "mutation-record", name)
        os.makedirs(out, exist_ok=True)
        for fname, items in (("caught", caught), ("missed", missed), ("timeout", timeout),
                             ("unviable", unviable), ("untested", untested)):
            with open(os.path.join(out, fname + ".txt"), "w") as f:
                f.writelines(line + "\n" for line in sorted(items))

viable = totals[0] + totals[1] + totals[2]
rows.append(("all", *totals, f"{100 * totals[0] / viable:.1f}%" if viable else "-"))
print(f"{'group':<11} {'caught':>7} {'missed':>7} {'timeout':>7} {'unviable':>8} {'untested':>8} {'score':>7}")
for r in rows:
    print(f"{r[0]:<11} {r[1]:>7} {r[2]:>7} {r[3]:>7} {r[4]:>8} {r[5]:>8} {r[6]:>7}")
print("\nmissed:")
print("\n".join(survivors))
print("timeout:")
print("\n".join(timeouts))
PY
