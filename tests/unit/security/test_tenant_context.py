"""TenantContext.validate_access and the tenant wall across every service."""

from __future__ import annotations

import pytest

import airisk
from support import ARTIFACT_SHA256, entries, principal, register


def test_the_same_tenant_passes():
    assert airisk.TenantContext.validate_access("acme", "acme") is None
    assert airisk.TenantContext().validate_access(resource_tenant="acme", request_tenant="acme") is None


@pytest.mark.parametrize(
    "resource, request_",
    [("acme", "globex"), ("globex", "acme"), ("acme", "acme-eu"), ("acme-eu", "acme"), ("acme", "acm"), ("a_b", "a-b")],
)
def test_a_mismatched_tenant_raises_tenant_isolation_error_in_both_directions(resource, request_):
    with pytest.raises(airisk.TenantIsolationError) as raised:
        airisk.TenantContext.validate_access(resource, request_)
    assert raised.value.kind == "tenant_mismatch"
    assert isinstance(raised.value, airisk.AiriskError)


@pytest.mark.parametrize("bad", ["Acme", "", " acme", "acme/..", "a" * 65, "ac me"])
def test_a_string_that_is_no_tenant_id_is_refused_not_folded(bad):
    with pytest.raises(airisk.ValidationError):
        airisk.TenantContext.validate_access(bad, "acme")
    with pytest.raises(airisk.ValidationError):
        airisk.TenantContext.validate_access("acme", bad)


async def test_another_tenants_resources_are_not_found_on_every_method(kernel, admin, analyst, approver, globex_admin):
    await register(kernel, admin)
    await kernel.prompt_registry.register_prompt(actor=analyst, name="p", template="t")
    opened = await kernel.approval_workflow.request_approval(
        actor=analyst, prompt_name="p", prompt_version=1, label="production", justification="j",
    )
    await kernel.audit_logger.log_action(
        actor=admin, tenant_id="acme", action="risk.score", resource_type="loan", resource_id="1", correlation_id="c",
    )
    mallory = globex_admin
    models = kernel.model_registry
    with pytest.raises(airisk.ModelRegistryError) as raised:
        await models.get_model(actor=mallory, name="credit-scoring", version="1.4.0")
    assert raised.value.kind == "not_found"
    for call in (models.approve_model, models.reject_model):
        with pytest.raises(airisk.ModelRegistryError):
            await call(actor=mallory, name="credit-scoring", version="1.4.0", reason="x")
    gate = models.authorize_deployment(actor=mallory, name="credit-scoring", version="1.4.0", artifact_sha256=ARTIFACT_SHA256)
    with pytest.raises(airisk.ModelRegistryError):
        await gate
    with pytest.raises(airisk.PromptRegistryError):
        await kernel.prompt_registry.get_prompt(actor=mallory, name="p")
    with pytest.raises(airisk.PromptRegistryError):
        await kernel.prompt_registry.update_prompt(actor=mallory, name="p", template="changed", change_reason="x")
    for decide in (kernel.approval_workflow.approve, kernel.approval_workflow.reject):
        with pytest.raises(airisk.ApprovalError) as raised:
            await decide(actor=mallory, request_id=opened.request.id, reason="x")
        assert raised.value.kind == "not_found"
    with pytest.raises(airisk.ApprovalError):
        await kernel.approval_workflow.get(actor=mallory, request_id=opened.request.id)
    # globex's ledger holds only globex's own (denied) attempts; acme's is untouched by them.
    assert all(e.tenant_id == "globex" for e in await entries(kernel, mallory))
    assert all(e.actor != mallory.actor for e in await entries(kernel, admin))
    # And acme's state is unchanged.
    assert (await models.get_model(actor=admin, name="credit-scoring", version="1.4.0")).status == "PENDING"
    assert (await kernel.approval_workflow.get(actor=approver, request_id=opened.request.id)).status == "PENDING"


async def test_two_kernels_coexist_without_sharing_anything(tmp_path, keys, admin):
    # Dependency injection, no global state: two kernels, two stores, two keyrings.
    a = airisk.open(database_url=f"sqlite://{tmp_path / 'a.db'}", ledger_signing_key=keys.signing_key, encryption_keys=keys.encryption_keys)
    other_signing, _ = airisk.generate_ledger_key("bank.example/ledger")
    b = airisk.open(database_url="memory:", ledger_signing_key=other_signing, encryption_keys=airisk.generate_encryption_key("k9"))
    await register(a, admin)
    with pytest.raises(airisk.ModelRegistryError):
        await b.model_registry.get_model(actor=admin, name="credit-scoring", version="1.4.0")
    assert a.verifier_key != b.verifier_key and b.verifier_key.startswith("bank.example/ledger+")
    with pytest.raises(airisk.EncryptionError):
        b.encryption.decrypt(a.encryption.encrypt("secret"))
    assert len(await entries(a, admin)) == 2 and await entries(b, admin) == ()


def test_the_principal_keeps_its_tenant_and_validates_it():
    p = principal("alice@bank.example", airisk.Role.ADMIN)
    assert (p.actor, p.tenant_id) == ("alice@bank.example", "acme")
    for bad in ("Acme", "", "acme corp"):
        with pytest.raises(airisk.ValidationError):
            airisk.Principal(actor="alice@bank.example", tenant_id=bad, role=airisk.Role.ADMIN)
    with pytest.raises(airisk.ValidationError):
        airisk.Principal(actor="alice smith", tenant_id="acme", role=airisk.Role.ADMIN)
