"""ModelRegistry: registration, four eyes, approve-once, the deployment gate, RBAC first."""

from __future__ import annotations

import hashlib

import pytest

import airisk
from support import ARTIFACT_SHA256, entries, register

NAME, VERSION = "credit-scoring", "1.4.0"


async def test_a_registered_model_is_pending_with_its_approval_request(kernel, admin):
    registration = await register(kernel, admin)
    model = registration.model
    assert (model.name, model.version, model.status, model.approved) == (NAME, VERSION, "PENDING", False)
    assert model.checksum == ARTIFACT_SHA256
    assert model.registered_by == "alice@bank.example"
    assert registration.request.status == "PENDING"
    assert registration.request.id == model.approval_request_id
    assert registration.request.resource_id == f"{NAME}@{VERSION}"
    # State and records were committed together: the receipts are in the ledger.
    ledger = await entries(kernel, admin)
    assert [e.seq for e in ledger] == [r.seq for r in registration.receipts]
    assert [e.action for e in ledger] == ["model.register", "approval.request"]

    fetched = await kernel.model_registry.get_model(actor=admin, name=NAME, version=VERSION)
    assert (fetched.status, fetched.approval_request_id) == ("PENDING", model.approval_request_id)


async def test_a_model_cannot_be_approved_twice(kernel, admin, approver, second_approver):
    await register(kernel, admin)
    approved = await kernel.model_registry.approve_model(actor=approver, name=NAME, version=VERSION, reason="validated")
    assert approved.status == "APPROVED"
    for who in (approver, second_approver):
        with pytest.raises(airisk.ApprovalError) as raised:
            await kernel.model_registry.approve_model(actor=who, name=NAME, version=VERSION, reason="again")
        assert raised.value.kind == "not_pending"
    model = await kernel.model_registry.get_model(actor=admin, name=NAME, version=VERSION)
    assert (model.status, model.approved_by) == ("APPROVED", ("bob@bank.example",))


async def test_the_registrant_cannot_approve_their_own_model_and_the_refusal_is_recorded(kernel, admin):
    await register(kernel, admin)
    with pytest.raises(airisk.ApprovalError) as raised:
        await kernel.model_registry.approve_model(actor=admin, name=NAME, version=VERSION, reason="mine")
    assert raised.value.kind == "self_approval"
    assert (await kernel.model_registry.get_model(actor=admin, name=NAME, version=VERSION)).status == "PENDING"
    assert [(e.action, e.outcome) for e in await entries(kernel, admin)][-1] == ("approval.approve", "denied")


async def test_a_service_principal_never_approves(kernel, admin, pipeline):
    await register(kernel, admin)
    with pytest.raises(airisk.ApprovalError) as raised:
        await kernel.model_registry.approve_model(actor=pipeline, name=NAME, version=VERSION, reason="auto")
    assert raised.value.kind == "not_human"


async def test_an_unapproved_model_cannot_be_deployed(kernel, admin, approver):
    await register(kernel, admin)
    gate = kernel.model_registry.authorize_deployment
    pending = await gate(actor=admin, name=NAME, version=VERSION, artifact_sha256=ARTIFACT_SHA256)
    assert (pending.authorized, pending.receipt) == (False, None)
    assert "PENDING" in pending.reason

    await kernel.model_registry.approve_model(actor=approver, name=NAME, version=VERSION, reason="validated")
    tampered = await gate(actor=admin, name=NAME, version=VERSION, artifact_sha256=hashlib.sha256(b"other").hexdigest())
    assert tampered.authorized is False and "SHA-256" in tampered.reason

    ok = await gate(actor=admin, name=NAME, version=VERSION, artifact_sha256=ARTIFACT_SHA256)
    assert ok.authorized is True and ok.reason is None
    outcomes = [(e.action, e.outcome) for e in await entries(kernel, admin) if e.action == "model.authorize_deployment"]
    assert outcomes == [("model.authorize_deployment", "denied")] * 2 + [("model.authorize_deployment", "success")]
    assert ok.receipt.seq == (await entries(kernel, admin))[-1].seq


async def test_a_rejected_model_cannot_be_deployed_or_approved(kernel, admin, approver, second_approver):
    await register(kernel, admin)
    rejected = await kernel.model_registry.reject_model(actor=approver, name=NAME, version=VERSION, reason="drift")
    assert rejected.status == "REJECTED"
    model = await kernel.model_registry.get_model(actor=admin, name=NAME, version=VERSION)
    assert (model.status, model.rejected_by) == ("REJECTED", "bob@bank.example")
    with pytest.raises(airisk.ApprovalError):
        await kernel.model_registry.approve_model(actor=second_approver, name=NAME, version=VERSION, reason="no")
    gate = await kernel.model_registry.authorize_deployment(actor=admin, name=NAME, version=VERSION, artifact_sha256=ARTIFACT_SHA256)
    assert gate.authorized is False


async def test_only_admins_register_models_and_refusals_are_audited(kernel, analyst, approver, viewer):
    for who in (analyst, approver, viewer):
        with pytest.raises(airisk.AuthorizationError):
            await register(kernel, who)
    ledger = await entries(kernel, analyst)
    assert [(e.actor, e.action, e.outcome) for e in ledger] == [
        (who.actor, "model.register", "denied") for who in (analyst, approver, viewer)
    ]


async def test_rbac_is_checked_before_anything_else(kernel, analyst):
    # A missing model and an invalid checksum: the role refusal still comes first.
    with pytest.raises(airisk.AuthorizationError):
        await kernel.model_registry.approve_model(actor=analyst, name="nope", version="0", reason="x")
    with pytest.raises(airisk.AuthorizationError):
        await kernel.model_registry.register_model(
            actor=analyst, name="bad name!", version="", checksum="zz", artifact_uri="", justification="",
        )


async def test_registering_the_same_version_twice_is_refused_and_writes_nothing(kernel, admin):
    await register(kernel, admin)
    before = len(await entries(kernel, admin))
    with pytest.raises(airisk.ModelRegistryError) as raised:
        await register(kernel, admin)
    assert raised.value.kind == "already_registered"
    assert len(await entries(kernel, admin)) == before


async def test_a_quorum_needs_distinct_approvers(kernel, admin, approver, second_approver):
    await kernel.model_registry.register_model(
        actor=admin, name=NAME, version=VERSION, checksum=ARTIFACT_SHA256,
        artifact_uri="s3://m", justification="tier-1 model", required_approvals=2,
    )
    first = await kernel.model_registry.approve_model(actor=approver, name=NAME, version=VERSION, reason="ok")
    assert first.status == "PENDING"
    with pytest.raises(airisk.ApprovalError) as raised:
        await kernel.model_registry.approve_model(actor=approver, name=NAME, version=VERSION, reason="ok again")
    assert raised.value.kind == "already_approved"
    second = await kernel.model_registry.approve_model(actor=second_approver, name=NAME, version=VERSION, reason="ok")
    assert second.status == "APPROVED" and second.approved_by == ("bob@bank.example", "erin@bank.example")
