"""PromptRegistry: versions increment and never change; labels move only with an approval."""

from __future__ import annotations

import pytest

import airisk
from support import entries

NAME = "kyc/summary"
V1 = "Summarise the customer's KYC file.\nBe factual."
V2 = "Summarise the customer's KYC file.\nBe factual and cite sources."
V3 = "Summarise the KYC file in three bullet points."


async def test_prompt_version_increments_correctly_and_earlier_versions_never_change(kernel, analyst):
    prompts = kernel.prompt_registry
    first = await prompts.register_prompt(actor=analyst, name=NAME, template=V1)
    second = await prompts.update_prompt(actor=analyst, name=NAME, template=V2, change_reason="cite sources")
    third = await prompts.update_prompt(actor=analyst, name=NAME, template=V3, change_reason="shorter")
    assert [c.version.version for c in (first, second, third)] == [1, 2, 3]

    for number, template in ((1, V1), (2, V2), (3, V3)):
        got = await prompts.get_prompt(actor=analyst, name=NAME, version=number)
        assert (got.version, got.template, got.author) == (number, template, "carol@bank.example")
    latest = await prompts.get_prompt(actor=analyst, name=NAME)
    assert latest.version == 3
    assert second.version.change_reason == "cite sources"
    assert [e.action for e in await entries(kernel, analyst)] == ["prompt.register", "prompt.update", "prompt.update"]


async def test_an_identical_template_makes_no_new_version(kernel, analyst):
    await kernel.prompt_registry.register_prompt(actor=analyst, name=NAME, template=V1)
    with pytest.raises(airisk.PromptRegistryError) as raised:
        await kernel.prompt_registry.update_prompt(actor=analyst, name=NAME, template=V1, change_reason="same")
    assert raised.value.kind == "no_change"
    assert (await kernel.prompt_registry.get_prompt(actor=analyst, name=NAME)).version == 1


async def test_registering_an_existing_name_is_refused(kernel, analyst):
    await kernel.prompt_registry.register_prompt(actor=analyst, name=NAME, template=V1)
    with pytest.raises(airisk.PromptRegistryError) as raised:
        await kernel.prompt_registry.register_prompt(actor=analyst, name=NAME, template=V2)
    assert raised.value.kind == "already_exists"


async def test_viewers_and_approvers_cannot_write_prompts(kernel, analyst, viewer, approver):
    await kernel.prompt_registry.register_prompt(actor=analyst, name=NAME, template=V1)
    for who in (viewer, approver):
        with pytest.raises(airisk.AuthorizationError):
            await kernel.prompt_registry.update_prompt(actor=who, name=NAME, template=V2, change_reason="x")
        # Reading is allowed to every role.
        assert (await kernel.prompt_registry.get_prompt(actor=who, name=NAME)).version == 1


async def test_a_missing_prompt_or_version_is_not_found(kernel, analyst):
    await kernel.prompt_registry.register_prompt(actor=analyst, name=NAME, template=V1)
    for kwargs in ({"name": "other"}, {"name": NAME, "version": 2}, {"name": NAME, "label": "production"}):
        with pytest.raises(airisk.PromptRegistryError) as raised:
            await kernel.prompt_registry.get_prompt(actor=analyst, **kwargs)
        assert raised.value.kind == "not_found"
    with pytest.raises(airisk.ValidationError):
        await kernel.prompt_registry.get_prompt(actor=analyst, name=NAME, version=1, label="production")


async def test_the_production_label_moves_only_with_an_approved_request(kernel, analyst, approver):
    prompts, workflow = kernel.prompt_registry, kernel.approval_workflow
    await prompts.register_prompt(actor=analyst, name=NAME, template=V1)
    with pytest.raises(airisk.PromptRegistryError) as raised:
        await prompts.move_label(actor=analyst, name=NAME, label="production", version=1)
    assert raised.value.kind == "move_not_approved"

    opened = await workflow.request_approval(
        actor=analyst, prompt_name=NAME, prompt_version=1, label="production", justification="go live",
    )
    await workflow.approve(actor=approver, request_id=opened.request.id, reason="reviewed")
    moved = await prompts.move_label(actor=analyst, name=NAME, label="production", version=1)
    assert (moved.label, moved.from_version, moved.to_version) == ("production", None, 1)
    assert moved.approval_request_id == opened.request.id
    assert (await prompts.get_prompt(actor=analyst, name=NAME, label="production")).template == V1
    # The approval is single-use.
    with pytest.raises(airisk.PromptRegistryError):
        await prompts.move_label(actor=analyst, name=NAME, label="production", version=1)
