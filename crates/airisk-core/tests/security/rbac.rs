//! The RBAC matrix, every role against every action, from a table written out in this test.

use airisk_core::security::rbac::{Action, AuthorizationError, Permission, RbacService, Role};
use proptest::prelude::*;

/// The seed's matrix, written out independently of the code: (role, create, approve, view,
/// register_model).
const SEED_MATRIX: [(&str, bool, bool, bool, bool); 4] = [
    ("admin", true, true, true, true),
    ("analyst", true, false, true, false),
    ("approver", false, true, true, false),
    ("viewer", false, false, true, false),
];

/// Every action and the seed column it maps to, written out independently of the code.
const ACTION_COLUMNS: [(&str, &str); 23] = [
    ("model.register", "register_model"),
    ("model.approve", "approve"),
    ("model.reject", "approve"),
    ("model.authorize_deployment", "create"),
    ("model.view", "view"),
    ("prompt.register", "create"),
    ("prompt.update", "create"),
    ("prompt.move_label", "create"),
    ("prompt.view", "view"),
    ("approval.request", "create"),
    ("approval.approve", "approve"),
    ("approval.reject", "approve"),
    ("approval.cancel", "create"),
    ("approval.view", "view"),
    ("audit.append", "create"),
    ("audit.read", "view"),
    ("audit.export", "view"),
    ("audit.verify", "view"),
    ("audit.checkpoint", "create"),
    ("keys.rotate", "register_model"),
    ("tenant.shred", "shred"),
    ("keys.rotate_data_key", "register_model"),
    ("tenant.shred_subject", "shred"),
];

fn seed_allows(role: &str, column: &str) -> bool {
    let (_, create, approve, view, register) = SEED_MATRIX
        .iter()
        .find(|(r, ..)| *r == role)
        .copied()
        .expect("role in the seed matrix");
    match column {
        "create" => create,
        "approve" => approve,
        "view" => view,
        "register_model" => register,
        // Not in the seed: crypto-shredding is irreversible, so admin only, on its own.
        "shred" => role == "admin",
        other => panic!("no such column {other}"),
    }
}

#[test]
fn every_role_and_every_action_is_allowed_exactly_as_the_seed_matrix_says() {
    let rbac = RbacService::new();
    let mut checked = 0;
    for (role_name, ..) in SEED_MATRIX {
        let role: Role = role_name.parse().unwrap();
        for (action_name, column) in ACTION_COLUMNS {
            let action: Action = action_name.parse().unwrap();
            let expected = seed_allows(role_name, column);
            let got = rbac.check_permission(role, action);
            assert_eq!(got.is_ok(), expected, "{role_name} x {action_name}");
            if let Err(e) = got {
                assert_eq!(
                    e,
                    AuthorizationError::Denied {
                        role,
                        action,
                        required: action.required_permission()
                    }
                );
                assert!(e.to_string().contains(action_name), "{e}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 4 * 23);
}

#[test]
fn the_test_table_covers_every_action_the_code_knows() {
    assert_eq!(Action::ALL.len(), ACTION_COLUMNS.len());
    for action in Action::ALL {
        let (_, column) = ACTION_COLUMNS
            .iter()
            .find(|(name, _)| *name == action.as_str())
            .unwrap_or_else(|| panic!("{action} missing from the test table"));
        assert_eq!(action.required_permission().as_str(), *column, "{action}");
    }
}

#[test]
fn the_four_seed_columns_hold_for_each_role() {
    // The seed's own table, column by column.
    let rows = [
        (Role::Admin, [true, true, true, true]),
        (Role::Analyst, [true, false, true, false]),
        (Role::Approver, [false, true, true, false]),
        (Role::Viewer, [false, false, true, false]),
    ];
    for (role, expected) in rows {
        for (permission, want) in Permission::ALL.into_iter().zip(expected) {
            assert_eq!(role.grants(permission), want, "{role} {permission}");
        }
        assert_eq!(
            role.grants(Permission::Shred),
            role == Role::Admin,
            "{role} shred"
        );
    }
}

#[test]
fn unknown_or_differently_cased_role_strings_are_denied() {
    let rbac = RbacService::new();
    for role in [
        "",
        "root",
        "Admin",
        "ADMIN",
        " admin",
        "admin ",
        "superuser",
        "approver\0",
    ] {
        let got = rbac.check_permission_str(role, "model.view");
        assert!(
            matches!(got, Err(AuthorizationError::UnknownRole { .. })),
            "{role:?}: {got:?}"
        );
    }
}

#[test]
fn unknown_or_differently_cased_action_strings_are_denied_even_for_admin() {
    let rbac = RbacService::new();
    for action in [
        "",
        "*",
        "model.*",
        "MODEL.VIEW",
        "model.view ",
        "model.delete",
        "audit.delete",
    ] {
        let got = rbac.check_permission_str("admin", action);
        assert!(
            matches!(got, Err(AuthorizationError::UnknownAction { .. })),
            "{action:?}: {got:?}"
        );
    }
}

#[test]
fn known_strings_check_like_their_enums() {
    let rbac = RbacService::new();
    assert!(
        rbac.check_permission_str("analyst", "prompt.update")
            .is_ok()
    );
    assert!(matches!(
        rbac.check_permission_str("analyst", "model.approve"),
        Err(AuthorizationError::Denied { .. })
    ));
}

#[test]
fn only_admin_may_register_models_or_rotate_keys() {
    let rbac = RbacService::new();
    for role in Role::ALL {
        let allowed = role == Role::Admin;
        assert_eq!(
            rbac.check_permission(role, Action::ModelRegister).is_ok(),
            allowed
        );
        assert_eq!(
            rbac.check_permission(role, Action::KeyRotate).is_ok(),
            allowed
        );
    }
}

proptest! {
    /// Any string that is not exactly a canonical name is denied; never allowed by accident.
    #[test]
    fn arbitrary_strings_never_grant_anything_unless_canonical(role in ".{0,12}", action in ".{0,30}") {
        let rbac = RbacService::new();
        let got = rbac.check_permission_str(&role, &action);
        let canonical_role = Role::ALL.iter().any(|r| r.as_str() == role);
        let canonical_action = Action::ALL.iter().any(|a| a.as_str() == action);
        if got.is_ok() {
            prop_assert!(canonical_role && canonical_action);
        }
        if !canonical_role {
            let unknown_role = matches!(got, Err(AuthorizationError::UnknownRole { .. }));
            prop_assert!(unknown_role);
        }
    }

    /// Allowed exactly when the written-out seed table above says so (the expected answer never
    /// comes from `Role::grants` or `Action::required_permission`, the code under test).
    #[test]
    fn decision_equals_the_written_seed_table(r in 0usize..4, a in 0usize..ACTION_COLUMNS.len()) {
        let (role, ..) = SEED_MATRIX[r];
        let (action, column) = ACTION_COLUMNS[a];
        let allowed = RbacService::new().check_permission_str(role, action).is_ok();
        prop_assert_eq!(allowed, seed_allows(role, column), "{} x {}", role, action);
    }
}

/// The names the role matrix uses, as the permissions print them (in denials and the API's
/// problem details). Killed a surviving mutant: Display for Permission printing nothing.
#[test]
fn permissions_and_roles_print_their_seed_names() {
    let permissions: Vec<String> = Permission::ALL.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        permissions,
        ["create", "approve", "view", "register_model", "shred"]
    );
    let roles: Vec<String> = Role::ALL.iter().map(|r| r.to_string()).collect();
    assert_eq!(roles, ["admin", "analyst", "approver", "viewer"]);
    let denied = RbacService::new()
        .check_permission(Role::Viewer, Action::ModelRegister)
        .unwrap_err()
        .to_string();
    assert!(
        denied.contains("viewer") && denied.contains("model.register"),
        "{denied}"
    );
}
