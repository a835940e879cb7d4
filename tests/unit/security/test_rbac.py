"""RBACService.check_permission: the whole matrix, written out here from the seed's table (not
read from the kernel), and deny-by-default parsing."""

from __future__ import annotations

import pytest

import airisk
from airisk import Role

# The seed's matrix: which of its four permissions each role holds.
SEED = {
    # `shred` is not in the seed: crypto-shredding is irreversible, so admin only, on its own.
    Role.ADMIN: {"create", "approve", "view", "register_model", "shred"},
    Role.ANALYST: {"create", "view"},
    Role.APPROVER: {"approve", "view"},
    Role.VIEWER: {"view"},
}

# Every kernel action and the seed permission it needs (docs/development-phase, "RBAC matrix").
ACTIONS = {
    "model.register": "register_model",
    "model.approve": "approve",
    "model.reject": "approve",
    "model.authorize_deployment": "create",
    "model.view": "view",
    "prompt.register": "create",
    "prompt.update": "create",
    "prompt.move_label": "create",
    "prompt.view": "view",
    "approval.request": "create",
    "approval.approve": "approve",
    "approval.reject": "approve",
    "approval.cancel": "create",
    "approval.view": "view",
    "audit.append": "create",
    "audit.read": "view",
    "audit.export": "view",
    "audit.verify": "view",
    "audit.checkpoint": "create",
    "keys.rotate": "register_model",
    "keys.rotate_data_key": "register_model",
    "tenant.shred": "shred",
    "tenant.shred_subject": "shred",
}

# The 4 x 23 expected answers, spelled out (A = allowed, - = denied), columns in ACTIONS' order.
MATRIX = {
    #              model      prompt  approval audit   keys tenant
    #              r a j d v  r u m v r a j c v a r e v c r d s u
    Role.ADMIN:    "A A A A A A A A A A A A A A A A A A A A A A A",
    Role.ANALYST:  "- - - A A A A A A A - - A A A A A A A - - - -",
    Role.APPROVER: "- A A - A - - - A - A A - A - A A A - - - - -",
    Role.VIEWER:   "- - - - A - - - A - - - - A - A A A - - - - -",
}

CASES = [
    (role, action, row.split()[i] == "A")
    for role, row in MATRIX.items()
    for i, action in enumerate(ACTIONS)
]


def test_the_written_out_matrix_agrees_with_the_seed_table():
    for role, action, allowed in CASES:
        assert allowed == (ACTIONS[action] in SEED[role]), (role, action)


def test_the_table_names_every_action_the_kernel_knows():
    assert sorted(airisk.RBACService.actions()) == sorted(ACTIONS)


@pytest.mark.parametrize("role, action, allowed", CASES, ids=[f"{r.value}-{a}" for r, a, _ in CASES])
def test_every_role_and_action_is_allowed_exactly_as_the_matrix_says(role, action, allowed):
    rbac = airisk.RBACService()
    for given in (role, role.value):  # an airisk.Role or its canonical string
        if allowed:
            assert rbac.check_permission(given, action) is None
        else:
            with pytest.raises(airisk.AuthorizationError) as raised:
                rbac.check_permission(given, action)
            assert raised.value.kind == "denied"
            assert isinstance(raised.value, airisk.AiriskError)


@pytest.mark.parametrize("role", ["Admin", "ADMIN", " admin", "admin ", "root", "", "superuser"])
def test_unknown_or_differently_cased_roles_are_denied(role):
    with pytest.raises(airisk.AuthorizationError) as raised:
        airisk.RBACService().check_permission(role, "model.view")
    assert raised.value.kind == "unknown_role"


@pytest.mark.parametrize("action", ["Model.Register", "model.*", "model", "", "delete_everything", "create"])
def test_unknown_actions_are_denied_even_for_admin(action):
    with pytest.raises(airisk.AuthorizationError) as raised:
        airisk.RBACService().check_permission(Role.ADMIN, action)
    assert raised.value.kind == "unknown_action"


def test_a_principal_cannot_be_built_with_an_unknown_role():
    with pytest.raises(airisk.AuthorizationError):
        airisk.Principal(actor="x@bank.example", tenant_id="acme", role="root")
    with pytest.raises(airisk.AuthorizationError):
        airisk.Principal(actor="x@bank.example", tenant_id="acme", role=42)


def test_role_is_an_enum_and_a_principal_is_a_service_unless_it_says_human():
    import enum

    assert issubclass(Role, enum.Enum)
    assert [r.value for r in Role] == ["admin", "analyst", "approver", "viewer"]
    p = airisk.Principal(actor="svc:ci", tenant_id="acme", role="admin")
    assert p.role is Role.ADMIN and p.human is False


def test_principals_compare_by_value():
    a = airisk.Principal(actor="alice@bank.example", tenant_id="acme", role=Role.ADMIN, human=True)
    same = airisk.Principal(actor="alice@bank.example", tenant_id="acme", role="admin", human=True)
    assert a == same and hash(a) == hash(same) and len({a, same}) == 1
    for other in (
        airisk.Principal(actor="alice@bank.example", tenant_id="acme", role=Role.ADMIN, human=False),
        airisk.Principal(actor="alice@bank.example", tenant_id="acme", role=Role.VIEWER, human=True),
        airisk.Principal(actor="alice@bank.example", tenant_id="globex", role=Role.ADMIN, human=True),
    ):
        assert a != other
