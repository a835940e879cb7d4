"""ApprovalWorkflow: RBAC on every command, transitions only from PENDING, four eyes, denials
recorded."""

from __future__ import annotations

import pytest

import airisk
from support import entries

PROMPT = "aml/alert-triage"


@pytest.fixture
async def prompt(kernel, analyst):
    await kernel.prompt_registry.register_prompt(actor=analyst, name=PROMPT, template="Triage the alert.")
    return PROMPT


async def open_request(kernel, who, prompt_name=PROMPT):
    decision = await kernel.approval_workflow.request_approval(
        actor=who, prompt_name=prompt_name, prompt_version=1, label="production", justification="go live",
    )
    return decision.request


async def test_the_workflow_enforces_rbac_on_every_command(kernel, prompt, analyst, approver, viewer):
    workflow = kernel.approval_workflow
    # Opening needs `create`: approvers and viewers may not.
    for who in (approver, viewer):
        with pytest.raises(airisk.AuthorizationError):
            await open_request(kernel, who)
    request = await open_request(kernel, analyst)
    # Deciding needs `approve`: analysts and viewers may not, whoever opened the request.
    for who in (viewer,):
        for decide in (workflow.approve, workflow.reject):
            with pytest.raises(airisk.AuthorizationError):
                await decide(actor=who, request_id=request.id, reason="no")
    other_analyst = airisk.Principal(actor="frank@bank.example", tenant_id="acme", role=airisk.Role.ANALYST, human=True)
    with pytest.raises(airisk.AuthorizationError):
        await workflow.approve(actor=other_analyst, request_id=request.id, reason="no")
    assert (await workflow.get(actor=viewer, request_id=request.id)).status == "PENDING"
    # Every refusal is a record.
    denied = [(e.actor, e.action) for e in await entries(kernel, analyst) if e.outcome == "denied"]
    assert denied == [
        ("bob@bank.example", "approval.request"),
        ("dave@bank.example", "approval.request"),
        ("dave@bank.example", "approval.approve"),
        ("dave@bank.example", "approval.reject"),
        ("frank@bank.example", "approval.approve"),
    ]


async def test_approval_moves_pending_to_approved_and_approved_is_final(kernel, prompt, analyst, approver, second_approver):
    workflow = kernel.approval_workflow
    request = await open_request(kernel, analyst)
    assert (request.status, request.version, request.requested_by) == ("PENDING", 1, "carol@bank.example")
    decided = await workflow.approve(actor=approver, request_id=request.id, reason="reviewed")
    assert (decided.request.status, decided.request.approved_by) == ("APPROVED", ("bob@bank.example",))
    assert len(decided.receipts) >= 1
    for decide in (workflow.approve, workflow.reject):
        with pytest.raises(airisk.ApprovalError) as raised:
            await decide(actor=second_approver, request_id=request.id, reason="late")
        assert raised.value.kind == "not_pending"
    with pytest.raises(airisk.ApprovalError) as raised:
        await workflow.cancel(actor=analyst, request_id=request.id, reason="too late")
    assert raised.value.kind == "not_pending"
    assert (await workflow.get(actor=analyst, request_id=request.id)).status == "APPROVED"


async def test_rejection_is_final(kernel, prompt, analyst, approver, second_approver):
    workflow = kernel.approval_workflow
    request = await open_request(kernel, analyst)
    rejected = await workflow.reject(actor=approver, request_id=request.id, reason="wording")
    assert (rejected.request.status, rejected.request.rejected_by) == ("REJECTED", "bob@bank.example")
    with pytest.raises(airisk.ApprovalError) as raised:
        await workflow.approve(actor=second_approver, request_id=request.id, reason="overrule")
    assert raised.value.kind == "not_pending"


async def test_only_the_requester_cancels_and_cancelled_is_final(kernel, prompt, analyst, approver):
    workflow = kernel.approval_workflow
    request = await open_request(kernel, analyst)
    other = airisk.Principal(actor="frank@bank.example", tenant_id="acme", role=airisk.Role.ANALYST, human=True)
    with pytest.raises(airisk.ApprovalError) as raised:
        await workflow.cancel(actor=other, request_id=request.id, reason="not mine")
    assert raised.value.kind == "not_requester"
    cancelled = await workflow.cancel(actor=analyst, request_id=request.id, reason="withdrawn")
    assert cancelled.request.status == "CANCELLED"
    with pytest.raises(airisk.ApprovalError):
        await workflow.approve(actor=approver, request_id=request.id, reason="late")


async def test_nobody_decides_their_own_request(kernel, prompt, admin):
    # An admin holds both `create` and `approve`; four eyes still forbids deciding one's own.
    workflow = kernel.approval_workflow
    request = await open_request(kernel, admin)
    for decide in (workflow.approve, workflow.reject):
        with pytest.raises(airisk.ApprovalError) as raised:
            await decide(actor=admin, request_id=request.id, reason="mine")
        assert raised.value.kind == "self_approval"
    assert (await workflow.get(actor=admin, request_id=request.id)).status == "PENDING"


@pytest.mark.parametrize("variant", ["ALICE@BANK.EXAMPLE", "Alice@Bank.Example", "ａｌｉｃｅ@bank.example"])
async def test_a_case_or_full_width_variant_of_the_requester_is_the_same_person(kernel, prompt, admin, variant):
    # One canonical identity (NFKC, lower case) where identities enter, as for a token's `sub`.
    workflow = kernel.approval_workflow
    request = await open_request(kernel, admin)
    same = airisk.Principal(actor=variant, tenant_id="acme", role=airisk.Role.ADMIN, human=True)
    assert same.actor == "alice@bank.example"
    for decide in (workflow.approve, workflow.reject):
        with pytest.raises(airisk.ApprovalError) as raised:
            await decide(actor=same, request_id=request.id, reason="a second pair of eyes?")
        assert raised.value.kind == "self_approval"
    assert (await workflow.get(actor=admin, request_id=request.id)).status == "PENDING"


async def test_a_request_for_a_missing_prompt_version_or_a_bad_id_is_refused(kernel, prompt, analyst, approver):
    workflow = kernel.approval_workflow
    with pytest.raises(airisk.ApprovalError) as raised:
        await open_request(kernel, analyst, prompt_name="no-such-prompt")
    assert raised.value.kind == "not_found"
    with pytest.raises(airisk.ValidationError):
        await workflow.approve(actor=approver, request_id="not-a-uuid", reason="x")
    with pytest.raises(airisk.ValidationError):
        await workflow.request_approval(
            actor=analyst, prompt_name=PROMPT, prompt_version=1, label="production", justification="x",
            required_approvals=0,
        )
