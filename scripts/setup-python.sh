#!/usr/bin/env bash
# One set-up command for the Python package (python/, module `airisk`) and its tests:
#
#     bash scripts/setup-python.sh
#
# Creates .venv/ at the repository root (Python 3.11+), installs the pinned build and test tools,
# and builds the extension into the venv with `maturin develop` (a debug build sharing the
# workspace's target/ directory, so it reuses what `cargo build` compiled), and builds the
# `airisk` CLI the ledger cross-check runs (target/debug/airisk). Afterwards, from the
# repository root:
#
#     .venv/bin/pytest tests/unit/governance
#     .venv/bin/pytest tests/unit/security
#
# (or `source .venv/bin/activate` first and type `pytest …`). Re-run it after changing the Rust code.
# Set AIRISK_PY_RELEASE=1 for an optimised build (what the benchmark in docs/PYTHON.md used).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "error: $python is older than 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi

say "installing the pinned build and test tools into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r python/requirements-dev.txt

say "building the extension into .venv (maturin develop${AIRISK_PY_RELEASE:+ --release})"
# The workspace's target/ directory is shared with cargo: no second copy of the dependencies.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
(
  cd python
  VIRTUAL_ENV="$PWD/../.venv" ../.venv/bin/maturin develop --locked ${AIRISK_PY_RELEASE:+--release} --quiet
)
say "building the airisk CLI (the tests cross-check the ledger with \`airisk audit verify\`)"
cargo build -p airisk --locked --quiet

.venv/bin/python -c 'import airisk; print("airisk", airisk.__version__, "imported from", airisk.__file__)'
