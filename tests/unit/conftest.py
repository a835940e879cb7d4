"""Fixtures shared by tests/unit/governance and tests/unit/security.

Every kernel-backed test runs twice: on a fresh SQLite file and on the in-memory store, the two
stores `airisk.open` builds without a server (the same ones `airisk serve --database-url` opens).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

import airisk
from support import principal




@dataclass(frozen=True)
class Keys:
    signing_key: str
    verifier_key: str
    encryption_keys: str


@pytest.fixture(scope="session")
def keys() -> Keys:
    signing, verifier = airisk.generate_ledger_key()
    return Keys(signing, verifier, airisk.generate_encryption_key("k1"))


@dataclass(frozen=True)
class Opened:
    kernel: airisk.Kernel
    store: str
    database_url: str
    db_path: Path | None


def open_kernel(store: str, tmp_path: Path, keys: Keys) -> Opened:
    if store == "sqlite":
        db_path: Path | None = tmp_path / "airisk.db"
        url = f"sqlite://{db_path}"
    else:
        db_path = None
        url = "memory:"
    kernel = airisk.open(
        database_url=url,
        ledger_signing_key=keys.signing_key,
        encryption_keys=keys.encryption_keys,
    )
    return Opened(kernel, store, url, db_path)


@pytest.fixture(params=["sqlite", "memory"])
def opened(request: pytest.FixtureRequest, tmp_path: Path, keys: Keys) -> Opened:
    return open_kernel(request.param, tmp_path, keys)


@pytest.fixture
def sqlite_opened(tmp_path: Path, keys: Keys) -> Opened:
    """For the checks that need the database file itself (triggers, the CLI)."""
    return open_kernel("sqlite", tmp_path, keys)


@pytest.fixture
def kernel(opened: Opened) -> airisk.Kernel:
    return opened.kernel


@pytest.fixture
def admin() -> airisk.Principal:
    return principal("alice@bank.example", airisk.Role.ADMIN)


@pytest.fixture
def approver() -> airisk.Principal:
    return principal("bob@bank.example", airisk.Role.APPROVER)


@pytest.fixture
def second_approver() -> airisk.Principal:
    return principal("erin@bank.example", airisk.Role.APPROVER)


@pytest.fixture
def analyst() -> airisk.Principal:
    return principal("carol@bank.example", airisk.Role.ANALYST)


@pytest.fixture
def viewer() -> airisk.Principal:
    return principal("dave@bank.example", airisk.Role.VIEWER)


@pytest.fixture
def pipeline() -> airisk.Principal:
    """An automated caller with every permission, which is still never a second pair of eyes."""
    return principal("svc:pipeline", airisk.Role.ADMIN, human=False)


@pytest.fixture
def globex_admin() -> airisk.Principal:
    return principal("mallory@globex.example", airisk.Role.ADMIN, tenant="globex")


