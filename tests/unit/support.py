"""Helpers shared by the Python suites (on sys.path through tests/pytest.ini)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import airisk

REPO_ROOT = Path(__file__).resolve().parents[2]


def principal(actor: str, role: airisk.Role, tenant: str = "acme", human: bool = True) -> airisk.Principal:
    return airisk.Principal(actor=actor, tenant_id=tenant, role=role, human=human)


ARTIFACT = b"credit-scoring model weights v1.4.0"
ARTIFACT_SHA256 = hashlib.sha256(ARTIFACT).hexdigest()


async def register(kernel: airisk.Kernel, who: airisk.Principal, name: str = "credit-scoring", version: str = "1.4.0") -> airisk.Registration:
    return await kernel.model_registry.register_model(
        actor=who,
        name=name,
        version=version,
        checksum=ARTIFACT_SHA256,
        artifact_uri=f"s3://models/{name}/{version}",
        justification="quarterly recalibration, validated by model risk",
    )


async def entries(kernel: airisk.Kernel, who: airisk.Principal) -> tuple[airisk.AuditEntry, ...]:
    reader = principal("auditor@bank.example", airisk.Role.VIEWER, tenant=who.tenant_id)
    return await kernel.audit_logger.entries(actor=reader, limit=1000)


def airisk_binary() -> Path:
    """The `airisk` CLI built by `cargo build -p airisk` (scripts/setup-python.sh builds it)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    return Path(os.environ.get("AIRISK_BIN", target / "debug" / "airisk"))
