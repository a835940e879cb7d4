"""The type stubs say what the compiled module does (mypy's stubtest compares them with the
runtime signatures), and the FastAPI example type-checks under `mypy --strict` against them."""

from __future__ import annotations

import subprocess
import sys

from support import REPO_ROOT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )


def test_the_stubs_match_the_compiled_module():
    done = run("mypy.stubtest", "airisk._airisk")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_example_passes_mypy_strict():
    done = run("mypy", "--strict", "--no-incremental", "python/examples/fastapi_app.py")
    assert done.returncode == 0, done.stdout + done.stderr
