"""AuditLogger.log_action: field completeness, immutability, the tenant wall, denials as records,
awaitables that do not block the loop, and a ledger that the `airisk` CLI verifies."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import subprocess

import pytest

import airisk
from support import airisk_binary, entries, principal, register

FIELDS = dict(
    tenant_id="acme",
    action="risk.score",
    resource_type="loan_application",
    resource_id="LA-2026-0042",
    reason="monthly portfolio review",
    correlation_id="req-7f3a:score.1",
    metadata={"score": 712, "model": "credit-scoring@1.4.0", "flags": ["thin-file"], "ok": True},
)


async def test_log_action_records_every_field_exactly(kernel, admin):
    receipt = await kernel.audit_logger.log_action(actor=admin, **FIELDS)

    [entry] = await entries(kernel, admin)
    assert entry.seq == receipt.seq == 0
    assert entry.id == receipt.id
    assert entry.tenant_id == receipt.tenant_id == "acme"
    assert entry.actor == "alice@bank.example"
    assert entry.action == "risk.score"
    assert entry.outcome == "success"
    assert entry.resource_type == "loan_application"
    assert entry.resource_id == "LA-2026-0042"
    assert entry.reason == "monthly portfolio review"
    assert entry.correlation_id == "req-7f3a:score.1"
    assert entry.metadata == FIELDS["metadata"]
    assert entry.recorded_at == receipt.recorded_at
    assert entry.recorded_at.utcoffset() is not None and entry.recorded_at.utcoffset().total_seconds() == 0

    # The leaf is canonical JSON carrying the same fields, and its hash is RFC 6962's leaf hash,
    # recomputed here with hashlib, not read from the kernel.
    leaf = json.loads(entry.leaf)
    for field in ("tenant_id", "actor", "action", "resource_type", "resource_id", "reason", "correlation_id", "metadata"):
        assert leaf[field] == getattr(entry, field), field
    assert entry.leaf == json.dumps(leaf, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert hashlib.sha256(b"\x00" + entry.leaf).hexdigest() == entry.leaf_hash == receipt.leaf_hash


async def test_optional_fields_may_be_omitted_and_are_recorded_as_absent(kernel, admin):
    await kernel.audit_logger.log_action(
        actor=admin, tenant_id="acme", action="risk.view", resource_type="report",
        resource_id="r1", correlation_id="c-1",
    )
    [entry] = await entries(kernel, admin)
    assert entry.reason is None and entry.metadata is None


async def test_every_argument_is_keyword_only(kernel, admin):
    with pytest.raises(TypeError):
        kernel.audit_logger.log_action(admin, "acme", "a.b", "t", "id", None, "c", None)  # type: ignore[misc]


async def test_results_are_immutable(kernel, admin):
    receipt = await kernel.audit_logger.log_action(actor=admin, **FIELDS)
    [entry] = await entries(kernel, admin)
    for obj, attr in ((receipt, "seq"), (receipt, "leaf_hash"), (entry, "actor"), (entry, "reason"), (admin, "role")):
        with pytest.raises(AttributeError):
            setattr(obj, attr, "forged")
    # A dict handed out is a copy: changing it changes nothing recorded.
    entry.metadata["score"] = 850
    assert entry.metadata["score"] == 712
    assert (await entries(kernel, admin))[0].metadata["score"] == 712


async def test_the_sqlite_ledger_refuses_update_and_delete(sqlite_opened, admin):
    opened = sqlite_opened
    logger = opened.kernel.audit_logger
    await logger.log_action(actor=admin, **FIELDS)
    con = sqlite3.connect(opened.db_path)
    try:
        for statement in (
            "UPDATE audit_entries SET leaf = x'00'",
            "DELETE FROM audit_entries",
        ):
            with pytest.raises(sqlite3.DatabaseError):
                con.execute(statement)
                con.commit()
        con.rollback()
    finally:
        con.close()
    report = await logger.verify(actor=admin)
    assert report.intact and report.entries == 1


async def test_a_record_for_another_tenant_is_refused_and_the_denial_is_recorded(kernel, admin, globex_admin):
    with pytest.raises(airisk.TenantIsolationError) as raised:
        await kernel.audit_logger.log_action(actor=admin, **{**FIELDS, "tenant_id": "globex"})
    assert raised.value.kind == "tenant_mismatch"
    [denial] = await entries(kernel, admin)
    assert (denial.tenant_id, denial.actor, denial.outcome) == ("acme", "alice@bank.example", "denied")
    assert await entries(kernel, globex_admin) == ()


async def test_a_viewer_cannot_append_and_the_denial_is_recorded(kernel, viewer):
    with pytest.raises(airisk.AuthorizationError) as raised:
        await kernel.audit_logger.log_action(actor=viewer, **FIELDS)
    assert raised.value.kind == "denied"
    [denial] = await entries(kernel, viewer)
    # The refused kernel action is what the denial names.
    assert (denial.actor, denial.action, denial.outcome) == ("dave@bank.example", "audit.append", "denied")


@pytest.mark.parametrize("action", ["approval.approve", "Model.register", "ａudit.append", "keys.rotate"])
async def test_no_one_writes_a_record_in_a_kernel_namespace(kernel, admin, action):
    # Only the kernel writes its own decisions; the refusal is itself recorded.
    with pytest.raises(airisk.AuthorizationError) as raised:
        await kernel.audit_logger.log_action(actor=admin, **{**FIELDS, "action": action})
    assert raised.value.kind == "kernel_namespace"
    [denial] = await entries(kernel, admin)
    assert (denial.action, denial.outcome) == ("audit.append", "denied")


@pytest.mark.parametrize(
    "field, value",
    [
        ("action", ""),
        ("resource_type", "x" * 65),
        ("correlation_id", "has spaces"),
        ("metadata", ["not", "an", "object"]),
        ("metadata", {"nan": float("nan")}),
    ],
)
async def test_an_invalid_field_is_a_validation_error_and_writes_nothing(kernel, admin, field, value):
    with pytest.raises(airisk.ValidationError):
        await kernel.audit_logger.log_action(actor=admin, **{**FIELDS, field: value})
    assert await entries(kernel, admin) == ()


async def test_log_action_returns_a_pending_future_and_never_blocks_the_loop(kernel, admin):
    # The result is set by a callback the kernel schedules on this loop, which cannot run before
    # this coroutine yields: if the call did its work on the loop's thread, it would come back done.
    pending = kernel.audit_logger.log_action(actor=admin, **FIELDS)
    assert isinstance(pending, asyncio.Future)
    assert not pending.done()
    receipt = await pending
    assert receipt.seq == 0


async def test_concurrent_calls_from_one_loop_get_distinct_gapless_positions(kernel, admin):
    receipts = await asyncio.gather(
        *(kernel.audit_logger.log_action(actor=admin, **{**FIELDS, "resource_id": f"LA-{i}"}) for i in range(40))
    )
    assert sorted(r.seq for r in receipts) == list(range(40))
    report = await kernel.audit_logger.verify(actor=admin)
    assert report.intact and report.entries == 40


async def test_a_call_outside_a_running_loop_is_refused(kernel, admin):
    await asyncio.sleep(0)  # (inside a loop here; the refusal is checked in a worker thread)

    def outside():
        kernel.audit_logger.log_action(actor=admin, **FIELDS)

    with pytest.raises(RuntimeError):
        await asyncio.to_thread(outside)


async def test_a_ledger_written_from_python_verifies_with_the_airisk_cli(sqlite_opened, admin, approver):
    # The CLI reads the SQLite file (the in-memory store lives in this process only).
    opened = sqlite_opened
    binary = airisk_binary()
    assert binary.exists(), f"{binary} is missing: run `bash scripts/setup-python.sh` (it builds the airisk CLI)"
    kernel = opened.kernel
    for i in range(5):
        await kernel.audit_logger.log_action(actor=admin, **{**FIELDS, "resource_id": f"LA-{i}"})
    await register(kernel, admin)
    await kernel.model_registry.approve_model(actor=approver, name="credit-scoring", version="1.4.0", reason="validated")
    await kernel.audit_logger.checkpoint(actor=admin)
    ours = await kernel.audit_logger.verify(actor=admin)
    assert ours.intact and ours.checkpoints_verified >= 1

    def cli(verifier_key: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "AIRISK_DATABASE_URL": opened.database_url,
            "AIRISK_LEDGER_VERIFIER_KEY": verifier_key,
        }
        return subprocess.run(
            [str(binary), "audit", "verify", "--tenant", "acme"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )

    good = cli(kernel.verifier_key)
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith(f"acme: intact: {ours.entries} entries, root {ours.root}"), good.stdout

    # The same check with somebody else's key must fail: the CLI really checks the signatures.
    _, stranger = airisk.generate_ledger_key()
    bad = cli(stranger)
    assert bad.returncode != 0, bad.stdout


async def test_checkpoints_are_signed_at_the_cadence_open_was_given(tmp_path, keys, admin):
    kernel = airisk.open(
        database_url=f"sqlite://{tmp_path / 'cadence.db'}",
        ledger_signing_key=keys.signing_key,
        encryption_keys=keys.encryption_keys,
        checkpoint_every_entries=2,
    )
    for i in range(6):
        await kernel.audit_logger.log_action(actor=admin, **{**FIELDS, "resource_id": f"LA-{i}"})
    report = await kernel.audit_logger.verify(actor=admin)
    assert report.intact and report.entries == 6 and report.checkpoints_verified == 3
    assert kernel.verifier_key == keys.verifier_key
