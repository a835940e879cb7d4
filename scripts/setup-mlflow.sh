#!/usr/bin/env bash
# Installs the MLflow tracking server the MLflow integration's tests run against
# (crates/airisk-server/tests/mlflow.rs): a virtualenv at target/mlflow-venv (or
# $AIRISK_MLFLOW_VENV) with a pinned MLflow 3.x from PyPI. The pin is the newest stable 3.x whose
# packages all resolve on PyPI and whose webhooks cover the Prompt Registry
# (prompt_version.created, prompt_alias.created/deleted: mlflow/webhooks/types.py). Idempotent: does nothing when the
# pinned version is already there. Large (about 400 MB); first install takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

MLFLOW_VERSION="3.17.2"
# SQLAlchemy 2.1 removed a pool class MLflow 3.4 imported; the 2.0 line is the one tested.
SQLALCHEMY_SPEC="sqlalchemy>=2.0,<2.1"
VENV="${AIRISK_MLFLOW_VENV:-target/mlflow-venv}"

say() { printf '==> %s\n' "$*"; }

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$MLFLOW_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("mlflow") == sys.argv[1] and version("sqlalchemy").startswith("2.0.") else 1)
PY
then
  say "MLflow $MLFLOW_VERSION is installed in $VENV"
  exit 0
fi

say "installing MLflow $MLFLOW_VERSION into $VENV (a few minutes the first time)"
mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV"
# `python -m pip`, not `bin/pip`: a venv copied from elsewhere (a warm target/ copied between
# worktrees) keeps console scripts whose shebang names the original venv, and its `bin/pip` would
# install there. Its `bin/python` is the venv's own wherever the directory is.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "mlflow==$MLFLOW_VERSION" "$SQLALCHEMY_SPEC"
say "MLflow $("$VENV/bin/python" -m mlflow --version 2>/dev/null | tail -n1) ready in $VENV"
